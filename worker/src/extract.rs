//! Document → booking proposal: the CPU-heavy, pure part of a job, shared by the worker loop,
//! `surge-worker extract` and `surge-worker eval`. This is the dispatcher that picks a reader
//! for the document type; the readers report an [`ExtractError`].
//!
//! XML goes straight to the e-invoice readers. PDFs are read through the embedded e-invoice when
//! they carry one (Factur-X, ZUGFeRD, XRechnung), else through their text layer, and pages
//! without text through OCR; images go through OCR. Every external tool runs as a subprocess
//! under the [`Limits`] of the document (see the `sandbox` module).

use shared::chart::Chart;
use shared::domain::DocumentType;
use shared::proposal::BookingProposal;

use crate::error::ExtractError;
use crate::limits::Limits;
use crate::{booking, einvoice, pdf, scan};

/// How to read a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Read a PDF's visible text even when it embeds an e-invoice; for measuring the text route
    /// on Factur-X PDFs whose XML is the answer key.
    pub ignore_embedded: bool,
    /// Time, memory and size limits for the document.
    pub limits: Limits,
}

/// Turns `bytes` of `document_type` into a booking proposal with balanced journal entries.
pub fn extract_with(
    bytes: &[u8],
    document_type: DocumentType,
    chart: &Chart,
    options: &ExtractOptions,
) -> Result<BookingProposal, ExtractError> {
    let limits = &options.limits;
    if bytes.len() > limits.max_input_bytes {
        return Err(ExtractError::TooLarge(format!(
            "the document has {} bytes; at most {} are read",
            bytes.len(),
            limits.max_input_bytes
        )));
    }
    let mut proposal = match document_type {
        DocumentType::Xml => einvoice::parse(bytes)?,
        DocumentType::Pdf => pdf::read(bytes, limits, options.ignore_embedded)?,
        DocumentType::Png | DocumentType::Jpeg | DocumentType::Tiff => scan::read(bytes, document_type, limits)?,
    };
    booking::book(&mut proposal, chart)?;
    Ok(proposal)
}
