//! `surge-worker extract`: a local file read through the same code as a job's document, with
//! its type taken from a media type or guessed from the file name.

use std::path::{Path, PathBuf};

use shared::chart::Chart;
use shared::domain::DocumentType;
use shared::proposal::BookingProposal;

use crate::error::ExtractError;
use crate::extract::{ExtractOptions, extract_with};

/// Why a local file could not be turned into a proposal.
#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    /// The media type given is not one a job can have.
    #[error("unsupported content type {0}")]
    UnsupportedContentType(String),
    /// No media type was given and the file name does not tell.
    #[error("cannot tell the type of {}; pass --content-type", .0.display())]
    UnknownType(PathBuf),
    #[error("cannot read {}", .path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("cannot extract {}", .path.display())]
    Unextractable { path: PathBuf, source: ExtractError },
}

/// The booking proposal for `file`, read as `content_type` (a media type) or, when that is
/// `None`, as the type its extension names, against the default chart of accounts.
pub fn extract_local_file(
    file: &Path,
    content_type: Option<&str>,
    options: &ExtractOptions,
) -> Result<BookingProposal, LocalFileError> {
    let document_type = match content_type {
        Some(media_type) => DocumentType::from_media_type(media_type)
            .ok_or_else(|| LocalFileError::UnsupportedContentType(media_type.to_owned()))?,
        None => guess_type(file).ok_or_else(|| LocalFileError::UnknownType(file.to_owned()))?,
    };
    let bytes = std::fs::read(file).map_err(|source| LocalFileError::Unreadable { path: file.to_owned(), source })?;
    extract_with(&bytes, document_type, &Chart::default(), options)
        .map_err(|source| LocalFileError::Unextractable { path: file.to_owned(), source })
}

/// The document type a file's extension names, if any.
fn guess_type(path: &Path) -> Option<DocumentType> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    let media_type = match extension.as_str() {
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "tif" | "tiff" => "image/tiff",
        _ => return None,
    };
    DocumentType::from_media_type(media_type)
}
