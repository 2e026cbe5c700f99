//! Document → booking proposal: the CPU-heavy, pure part of a job, shared by the worker loop and
//! `surge-worker extract`.

use shared::domain::DocumentType;
use shared::proposal::BookingProposal;

use crate::booking::{self, Chart};
use crate::einvoice;

/// Why a document could not be turned into a proposal. All of these are properties of the
/// document itself: retrying will not help, so the job ends `failed`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// The bytes are not a well-formed document of the declared type.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// Well-formed, but not an invoice or credit note (a purchase order, say).
    #[error("not an invoice: {0}")]
    NotAnInvoice(String),
    /// The document tries something we refuse on principle (DTDs, entity expansion).
    #[error("rejected: {0}")]
    Rejected(String),
    /// A content type this version cannot read yet.
    #[error("format not supported yet: {0}")]
    Unsupported(String),
}

impl ExtractError {
    /// A short, stable machine-readable code for the job record and the API.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Malformed(_) => "malformed_document",
            ExtractError::NotAnInvoice(_) => "not_an_invoice",
            ExtractError::Rejected(_) => "rejected_document",
            ExtractError::Unsupported(_) => "unsupported_format",
        }
    }
}

/// Turns `bytes` of `document_type` into a booking proposal with balanced journal entries.
pub fn extract(bytes: &[u8], document_type: DocumentType, chart: &Chart) -> Result<BookingProposal, ExtractError> {
    let mut proposal = match document_type {
        DocumentType::Xml => einvoice::parse(bytes)?,
        DocumentType::Pdf => {
            return Err(ExtractError::Unsupported(
                "PDF invoices are not supported yet; send the e-invoice XML".to_owned(),
            ));
        }
        DocumentType::Png | DocumentType::Jpeg | DocumentType::Tiff => {
            return Err(ExtractError::Unsupported(
                "scanned images are not supported yet; send the e-invoice XML".to_owned(),
            ));
        }
        DocumentType::BenchNoop => {
            return Err(ExtractError::Unsupported("no-op jobs carry no document".to_owned()));
        }
    };
    booking::book(&mut proposal, chart);
    Ok(proposal)
}
