//! Why a document could not be read: [`ExtractError`], returned by every reader (e-invoice XML,
//! PDF, scan, OCR, the sandboxed tools) and by the dispatcher that picks among them.
//!
//! It lives apart from the dispatcher so that the readers depend on it and not on the dispatcher
//! that depends on them.

use shared::domain::ErrorCode;

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
    /// An amount beyond what Surge books (see `money::MAX_AMOUNT`), or sums of the document's
    /// amounts that leave the decimal range.
    #[error("amount out of range: {0}")]
    AmountOutOfRange(String),
    /// A tool the extractor needs (`pdftotext`, `tesseract`, ...) is not installed or cannot be
    /// started: the machine's fault, not the document's, so worth retrying elsewhere.
    #[error("extraction tool unavailable: {0}")]
    ToolUnavailable(String),
}

impl ExtractError {
    /// A short, stable machine-readable code for the job record and the API.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ExtractError::Malformed(_) => ErrorCode::MalformedDocument,
            ExtractError::NotAnInvoice(_) => ErrorCode::NotAnInvoice,
            ExtractError::Rejected(_) => ErrorCode::RejectedDocument,
            ExtractError::Unsupported(_) => ErrorCode::UnsupportedFormat,
            ExtractError::Encrypted(_) => ErrorCode::EncryptedDocument,
            ExtractError::TooLarge(_) => ErrorCode::DocumentTooLarge,
            ExtractError::OverBudget(_) => ErrorCode::OverBudget,
            ExtractError::AmountOutOfRange(_) => ErrorCode::AmountOutOfRange,
            ExtractError::ToolUnavailable(_) => ErrorCode::ExtractorUnavailable,
        }
    }

    /// Whether the failure lies with the machine rather than the document, so another attempt
    /// (on another worker) may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, ExtractError::ToolUnavailable(_))
    }
}
