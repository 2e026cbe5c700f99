//! Surge's stateless worker: receives jobs from the lanes and turns documents into booking
//! proposals. Holds no state between jobs: everything durable is in the ports.

pub mod booking;
pub mod einvoice;
pub mod extract;
pub mod run;
