//! PDF → booking proposal: the embedded e-invoice when there is one (Factur-X, ZUGFeRD,
//! XRechnung), with the gaps it leaves filled from the visible text, else the text layer read
//! with its layout, and OCR for pages that are images.
//!
//! Nothing parses the PDF inside the worker. A quick look at the bytes refuses what is not a
//! PDF or is encrypted; poppler's tools then run in [`crate::sandbox`] on a private copy in a
//! temporary directory, so a damaged or hostile file fails only its own job.

mod attachments;
mod gaps;

use std::path::Path;

use shared::proposal::{BookingProposal, SourceFormat};
use tempfile::TempDir;

use crate::error::ExtractError;
use crate::limits::Limits;
use crate::ocr;
use crate::sandbox::{Budget, Tool, ToolError};
use crate::text;

/// File name of the document inside its working directory.
const DOCUMENT: &str = "document.pdf";
/// How far into the file the `%PDF-` header may be (the spec allows leading garbage).
const HEADER_WINDOW: usize = 1024;
/// A page with fewer letters and digits than this in its text layer is read by OCR.
const TEXT_PAGE_MIN_CHARS: usize = 40;

/// What `pdfinfo` says about a document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Info {
    pub(crate) pages: u32,
    pub(crate) encrypted: bool,
    /// Page sizes in points (1/72 inch), by page number from 1.
    pub(crate) page_sizes: Vec<(u32, f64, f64)>,
}

/// Reads a PDF into a booking proposal without journal entries. With `ignore_embedded`, the
/// visible text is read even when the PDF embeds an e-invoice.
pub(crate) fn read(bytes: &[u8], limits: &Limits, ignore_embedded: bool) -> Result<BookingProposal, ExtractError> {
    preflight(bytes)?;
    let budget = Budget::start(limits);
    let workspace = workspace(bytes)?;
    let dir = workspace.path();
    let info = info(dir, &budget, limits)?;
    let mut notes = Vec::new();
    if !ignore_embedded {
        match attachments::embedded_invoice(dir, &budget)? {
            attachments::Embedded::Invoice(proposal) => {
                let mut proposal = *proposal;
                if let Some(visible) = visible_text(dir, &budget, info.pages) {
                    gaps::fill_from_visible_text(&mut proposal, visible);
                }
                return Ok(proposal);
            }
            attachments::Embedded::Unusable(note) => notes.push(note),
            attachments::Embedded::None => {}
        }
    }
    let mut pages = text_layer(dir, &budget, info.pages)?;
    let scanned: Vec<u32> = (1..=info.pages)
        .filter(|page| pages.get(*page as usize - 1).is_none_or(|text| alphanumerics(text) < TEXT_PAGE_MIN_CHARS))
        .collect();
    let source = if scanned.is_empty() {
        SourceFormat::PdfText
    } else {
        check_page_sizes(&info, &scanned, limits)?;
        let recognised = ocr::pdf_pages(dir, DOCUMENT, &scanned, &budget, limits)?;
        pages.resize(info.pages as usize, String::new());
        for (page, text) in scanned.iter().zip(recognised) {
            pages[*page as usize - 1] = text;
        }
        SourceFormat::Ocr
    };
    budget.check()?;
    let mut proposal = text::read(&pages, source)?;
    if source == SourceFormat::Ocr {
        notes.push(format!("{} of {} pages had no text layer and were read by OCR", scanned.len(), info.pages));
    }
    proposal.warnings.extend(notes);
    Ok(proposal)
}

/// The text route on the visible text of a PDF whose embedded e-invoice was read, to fill the
/// gaps the XML leaves. Best effort: pages without text are not OCR'd, and any failure (no text,
/// nothing an invoice has, the budget spent) leaves the XML's proposal as it is.
fn visible_text(dir: &Path, budget: &Budget, pages: u32) -> Option<BookingProposal> {
    let pages = text_layer(dir, budget, pages).ok()?;
    budget.check().ok()?;
    text::read(&pages, SourceFormat::PdfText).ok()
}

/// Refuses, without starting any tool, what is not a PDF at all or declares encryption.
fn preflight(bytes: &[u8]) -> Result<(), ExtractError> {
    let window = &bytes[..bytes.len().min(HEADER_WINDOW)];
    if !window.windows(5).any(|w| w == b"%PDF-") {
        return Err(ExtractError::Malformed("not a PDF: no %PDF- header".to_owned()));
    }
    if declares_encryption(bytes) {
        return Err(encrypted());
    }
    Ok(())
}

/// Whether a trailer (or cross-reference stream) dictionary has an `/Encrypt` entry. The key
/// occurs nowhere else in a PDF, and those dictionaries are never compressed.
pub(crate) fn declares_encryption(bytes: &[u8]) -> bool {
    const KEY: &[u8] = b"/Encrypt";
    bytes
        .windows(KEY.len() + 1)
        .any(|w| w.starts_with(KEY) && matches!(w[KEY.len()], b' ' | b'\t' | b'\r' | b'\n' | b'<' | b'/' | b'0'..=b'9'))
}

fn encrypted() -> ExtractError {
    ExtractError::Encrypted("the PDF is encrypted; send it without a password or protection".to_owned())
}

/// A private directory holding a copy of the document.
fn workspace(bytes: &[u8]) -> Result<TempDir, ExtractError> {
    let unavailable =
        |err: std::io::Error| ExtractError::ToolUnavailable(format!("cannot write a temporary copy: {err}"));
    let dir = tempfile::Builder::new().prefix("surge-pdf-").tempdir().map_err(unavailable)?;
    std::fs::write(dir.path().join(DOCUMENT), bytes).map_err(unavailable)?;
    Ok(dir)
}

/// Page count, encryption and page sizes from `pdfinfo`; a PDF poppler cannot open is malformed.
fn info(dir: &Path, budget: &Budget, limits: &Limits) -> Result<Info, ExtractError> {
    let last = limits.max_pages.to_string();
    let output = Tool::new("pdfinfo", dir).args(["-f", "1", "-l", last.as_str(), DOCUMENT]).run(budget);
    let output = output.map_err(|error| match error {
        ToolError::Failed { ref stderr, .. } if stderr.contains("password") => encrypted(),
        other => other.into_extract_error(|reason| ExtractError::Malformed(format!("not a readable PDF ({reason})"))),
    })?;
    let info = parse_info(&String::from_utf8_lossy(&output.stdout));
    if info.encrypted {
        return Err(encrypted());
    }
    if info.pages == 0 {
        return Err(ExtractError::Malformed("the PDF has no pages".to_owned()));
    }
    if info.pages > limits.max_pages {
        return Err(ExtractError::TooLarge(format!(
            "the PDF has {} pages; at most {} are read",
            info.pages, limits.max_pages
        )));
    }
    Ok(info)
}

/// Parses `pdfinfo -f 1 -l N` output.
fn parse_info(output: &str) -> Info {
    let mut info = Info { pages: 0, encrypted: false, page_sizes: Vec::new() };
    for line in output.lines() {
        if let Some(pages) = line.strip_prefix("Pages:") {
            info.pages = pages.trim().parse().unwrap_or(0);
        } else if let Some(encrypted) = line.strip_prefix("Encrypted:") {
            info.encrypted = encrypted.trim().starts_with("yes");
        } else if let Some(size) = page_size(line) {
            info.page_sizes.push(size);
        }
    }
    info
}

/// `Page    1 size:  595 x 842 pts (A4)` → (1, 595, 842).
fn page_size(line: &str) -> Option<(u32, f64, f64)> {
    let rest = line.strip_prefix("Page")?;
    let (number, size) = rest.split_once("size:")?;
    let mut parts = size.split_whitespace();
    let width = parts.next()?.parse().ok()?;
    let _x = parts.next()?;
    let height = parts.next()?.parse().ok()?;
    Some((number.trim().parse().ok()?, width, height))
}

/// The text layer with its layout, one string per page.
fn text_layer(dir: &Path, budget: &Budget, pages: u32) -> Result<Vec<String>, ExtractError> {
    let last = pages.to_string();
    let output = Tool::new("pdftotext", dir)
        .args(["-layout", "-enc", "UTF-8", "-f", "1", "-l", last.as_str(), DOCUMENT, "-"])
        .run(budget)
        .map_err(|e| {
            e.into_extract_error(|reason| ExtractError::Malformed(format!("cannot read the PDF's text ({reason})")))
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.split('\u{c}').take(pages as usize).map(str::to_owned).collect())
}

fn alphanumerics(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphanumeric()).count()
}

/// Refuses pages that would render to more pixels than the limit at OCR resolution.
fn check_page_sizes(info: &Info, pages: &[u32], limits: &Limits) -> Result<(), ExtractError> {
    let dpi = f64::from(ocr::DPI);
    for (page, width, height) in &info.page_sizes {
        if !pages.contains(page) {
            continue;
        }
        let pixels = (width / 72.0 * dpi) * (height / 72.0 * dpi);
        if !pixels.is_finite() || pixels > limits.max_pixels as f64 {
            return Err(ExtractError::TooLarge(format!(
                "page {page} measures {width} x {height} pt: {:.0} megapixels at {} dpi, more than the limit of {}",
                pixels / 1e6,
                ocr::DPI,
                limits.max_pixels / 1_000_000
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
