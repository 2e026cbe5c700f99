//! Surge's stateless worker: receives jobs from the lanes and turns documents into booking
//! proposals. Holds no state between jobs: everything durable is in the ports.

pub mod booking;
pub mod einvoice;
pub mod eval;
pub mod extract;
mod ocr;
mod pdf;
pub mod protection;
pub mod run;
mod sandbox;
mod scan;
#[cfg(test)]
mod test_samples;
mod text;
