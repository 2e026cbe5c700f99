//! Surge's stateless worker: receives jobs from the lanes and turns documents into booking
//! proposals. Holds no state between jobs: everything durable is in the ports.
//!
//! The public surface is what `surge-worker` uses: [`run`] (the worker loop), [`extract`] with
//! its [`limits`] and [`error`], [`local_file`] and [`eval`] (the inspection commands) and
//! [`protection`] (ECS task scale-in protection settings). Everything else is crate-private.

mod booking;
mod einvoice;
pub mod error;
pub mod eval;
pub mod extract;
#[cfg(test)]
mod fuzz;
pub mod limits;
pub mod local_file;
mod money;
mod ocr;
mod pdf;
pub mod protection;
pub mod run;
mod sandbox;
mod scan;
#[cfg(test)]
mod test_samples;
mod text;
