//! Document → booking proposal: the CPU-heavy, pure part of a job, shared by the worker loop,
//! `surge-worker extract` and `surge-worker eval`.
//!
//! XML goes straight to the e-invoice readers. PDFs are read through the embedded e-invoice when
//! they carry one (Factur-X, ZUGFeRD, XRechnung), else through their text layer, and pages
//! without text through OCR; images go through OCR. Every external tool runs as a subprocess
//! under the [`Limits`] of the document (see [`crate::sandbox`]).

use std::time::Duration;

use shared::domain::DocumentType;
use shared::proposal::BookingProposal;

use crate::booking::{self, Chart};
use crate::{einvoice, pdf, scan};

/// Why a document could not be turned into a proposal. Apart from
/// [`ExtractError::ToolUnavailable`], these are properties of the document itself: retrying will
/// not help, so the job ends `failed`.
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
    /// The PDF is encrypted; we do not try passwords.
    #[error("encrypted document: {0}")]
    Encrypted(String),
    /// The document is larger than the limits allow: bytes, pages, pixels.
    #[error("document too large: {0}")]
    TooLarge(String),
    /// Reading the document took more time, memory or output than its budget allows.
    #[error("over budget: {0}")]
    OverBudget(String),
    /// A tool the extractor needs (`pdftotext`, `tesseract`, ...) is not installed or cannot be
    /// started: the machine's fault, not the document's, so worth retrying elsewhere.
    #[error("extraction tool unavailable: {0}")]
    ToolUnavailable(String),
}

impl ExtractError {
    /// A short, stable machine-readable code for the job record and the API.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Malformed(_) => "malformed_document",
            ExtractError::NotAnInvoice(_) => "not_an_invoice",
            ExtractError::Rejected(_) => "rejected_document",
            ExtractError::Unsupported(_) => "unsupported_format",
            ExtractError::Encrypted(_) => "encrypted_document",
            ExtractError::TooLarge(_) => "document_too_large",
            ExtractError::OverBudget(_) => "over_budget",
            ExtractError::ToolUnavailable(_) => "extractor_unavailable",
        }
    }

    /// Whether the failure lies with the machine rather than the document, so another attempt
    /// (on another worker) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ExtractError::ToolUnavailable(_))
    }
}

/// Resource limits for reading one document. Every external tool runs under them; the defaults
/// suit the worker's default 120 s job budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget for the whole document; subprocesses still running then are killed.
    pub time: Duration,
    /// Address-space limit of each subprocess (`prlimit --as`), which bounds its memory.
    pub memory_bytes: u64,
    /// Largest document accepted, in bytes.
    pub max_input_bytes: usize,
    /// Most pages a PDF may have.
    pub max_pages: u32,
    /// Largest image (or rendered PDF page) accepted, in pixels.
    pub max_pixels: u64,
    /// Most bytes any tool may print or write (text layer, attachment, page bitmaps each).
    pub max_output_bytes: u64,
    /// Tesseract processes run side by side for a multi-page document.
    pub ocr_processes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            time: Duration::from_secs(110),
            memory_bytes: 1536 * 1024 * 1024,
            max_input_bytes: 64 * 1024 * 1024,
            max_pages: 200,
            max_pixels: 100_000_000,
            max_output_bytes: 256 * 1024 * 1024,
            ocr_processes: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

impl Limits {
    /// The default limits with the wall-clock budget `time`, e.g. the worker's job timeout less
    /// a margin for storing the result.
    pub fn with_time(time: Duration) -> Limits {
        Limits { time, ..Limits::default() }
    }
}

/// How to read a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Read a PDF's visible text even when it embeds an e-invoice; for measuring the text route
    /// on Factur-X PDFs whose XML is the answer key.
    pub ignore_embedded: bool,
    /// Time, memory and size limits for the document.
    pub limits: Limits,
}

/// Turns `bytes` of `document_type` into a booking proposal with balanced journal entries, under
/// the default [`ExtractOptions`].
pub fn extract(bytes: &[u8], document_type: DocumentType, chart: &Chart) -> Result<BookingProposal, ExtractError> {
    extract_with(bytes, document_type, chart, &ExtractOptions::default())
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
        DocumentType::Pdf => pdf::read(bytes, options)?,
        DocumentType::Png | DocumentType::Jpeg | DocumentType::Tiff => scan::read(bytes, document_type, limits)?,
        DocumentType::BenchNoop => {
            return Err(ExtractError::Unsupported("no-op jobs carry no document".to_owned()));
        }
    };
    booking::book(&mut proposal, chart);
    Ok(proposal)
}
