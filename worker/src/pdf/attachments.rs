//! The e-invoice embedded in a Factur-X / ZUGFeRD / XRechnung PDF, found among the PDF's file
//! attachments by `pdfdetach` (which also decodes UTF-16 attachment names with a byte-order
//! mark) and read by the e-invoice readers: the result is then as exact as the XML.

use std::path::Path;

use shared::proposal::{BookingProposal, SourceFormat};

use super::DOCUMENT;
use crate::einvoice;
use crate::error::ExtractError;
use crate::sandbox::{Budget, Tool, ToolError};

/// Attachment names the standards prescribe, most specific first; any other `.xml` comes after.
const KNOWN_NAMES: [&str; 5] =
    ["factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "zugferd_invoice.xml", "order-x.xml"];
/// File the chosen attachment is saved to.
const SAVED: &str = "attachment.xml";
/// Largest embedded XML read (the biggest real e-invoices are a few MiB).
const MAX_XML_BYTES: u64 = 16 * 1024 * 1024;

/// What the attachments yielded.
#[derive(Debug)]
pub(crate) enum Embedded {
    /// An e-invoice was embedded and read.
    Invoice(Box<BookingProposal>),
    /// An XML attachment was there but could not be used; the note says why.
    Unusable(String),
    /// No XML attachment.
    None,
}

/// Finds and reads the embedded e-invoice of the document in `dir`.
///
/// XML that is refused on principle (a DTD, entity tricks) fails the document; XML that is
/// merely not a readable invoice (ZUGFeRD 1, an order) leaves the text route to try.
pub(crate) fn embedded_invoice(dir: &Path, budget: &Budget) -> Result<Embedded, ExtractError> {
    let listing = match Tool::new("pdfdetach", dir).args(["-list", "-enc", "UTF-8", DOCUMENT]).run(budget) {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(ToolError::Failed { stderr, .. }) => {
            return Ok(Embedded::Unusable(format!("the PDF's attachments could not be listed ({})", stderr.trim())));
        }
        Err(other) => return Err(other.into_extract_error(|r| ExtractError::Malformed(r.to_owned()))),
    };
    let found = attachments(&listing);
    let Some((number, name)) = choose(&found) else { return Ok(Embedded::None) };
    let number = number.to_string();
    let saved = Tool::new("pdfdetach", dir).args(["-save", number.as_str(), "-o", SAVED, DOCUMENT]).run(budget);
    if let Err(error) = saved {
        return match error {
            ToolError::Failed { stderr, .. } => {
                Ok(Embedded::Unusable(format!("the embedded {name} could not be extracted ({})", stderr.trim())))
            }
            other => Err(other.into_extract_error(|r| ExtractError::Malformed(r.to_owned()))),
        };
    }
    let path = dir.join(SAVED);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_XML_BYTES {
        return Err(ExtractError::TooLarge(format!(
            "the embedded {name} has {size} bytes; at most {MAX_XML_BYTES} are read"
        )));
    }
    let xml =
        std::fs::read(&path).map_err(|err| ExtractError::ToolUnavailable(format!("cannot read back {name}: {err}")))?;
    match einvoice::parse(&xml) {
        Ok(mut proposal) => {
            proposal.source_format = SourceFormat::FacturX;
            Ok(Embedded::Invoice(Box::new(proposal)))
        }
        Err(rejected @ ExtractError::Rejected(_)) => Err(rejected),
        Err(other) => Ok(Embedded::Unusable(format!(
            "the embedded {name} could not be used ({other}); read the PDF's visible text instead"
        ))),
    }
}

/// `pdfdetach -list` output (`1 embedded files` / `1: factur-x.xml`) as (number, name) pairs.
fn attachments(listing: &str) -> Vec<(u32, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let (number, name) = line.split_once(": ")?;
            Some((number.trim().parse().ok()?, name.trim().to_owned()))
        })
        .collect()
}

/// The attachment most likely to be the e-invoice: a prescribed name, else any `.xml`.
fn choose(attachments: &[(u32, String)]) -> Option<(u32, &str)> {
    let lower = |name: &str| name.to_lowercase();
    let known = KNOWN_NAMES.iter().find_map(|known| attachments.iter().find(|(_, name)| lower(name) == *known));
    known
        .or_else(|| attachments.iter().find(|(_, name)| lower(name).ends_with(".xml")))
        .map(|(number, name)| (*number, name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_invoice_among_attachments() {
        let listing = "3 embedded files\n1: Hotelrechnung.pdf\n2: notes.xml\n3: factur-x.xml\n";
        let found = attachments(listing);
        assert_eq!(found.len(), 3);
        assert_eq!(choose(&found), Some((3, "factur-x.xml")));
        assert_eq!(choose(&found[..2]), Some((2, "notes.xml")));
        assert_eq!(choose(&found[..1]), None);
    }
}
