//! E-invoice XML → booking proposal: UBL 2.1 (Peppol BIS 3, XRechnung UBL) and UN/CEFACT CII
//! (XRechnung CII, Factur-X / ZUGFeRD 2.x), read straight from the structured data.
//!
//! Hostile input is refused before anything is read: a document type declaration ends parsing
//! at once (so no entity expansion and no external entities), and the node count is capped.
//! Everything the document states is taken as stated, including signs; what does not add up
//! becomes a warning on the proposal, never a silent correction.

pub(crate) mod checks;
mod cii;
pub(crate) mod fields;
mod iban;
mod ubl;
mod xml;

#[cfg(test)]
mod tests;

use roxmltree::{Document, Node, ParsingOptions};
use rust_decimal::Decimal;
use shared::proposal::BookingProposal;

pub(crate) use self::iban::iban_is_valid;
use crate::error::ExtractError;

/// Most XML nodes (elements, text, comments) a document may have. The largest sample invoices
/// have a few thousand; a million leaves room for huge invoices while bounding memory.
const NODES_LIMIT: u32 = 1_000_000;

/// Namespace of ZUGFeRD 1.0's `CrossIndustryDocument`, recognised only to say it is unsupported.
const ZUGFERD_1: &str = "urn:ferd:CrossIndustryDocument:invoice:1p0";

/// What a syntax reader found.
struct Reading {
    proposal: BookingProposal,
    /// The payable rounding amount, which the proposal has no field for but the cross-checks
    /// need: UBL `PayableRoundingAmount`, CII `RoundingAmount`.
    rounding: Option<Decimal>,
}

/// Which reader a document needs, from its root element.
enum Syntax {
    Ubl,
    Cii,
}

/// Reads a UBL or CII e-invoice into a booking proposal without journal entries.
///
/// Fails with [`ExtractError::Rejected`] for a document type declaration or too many nodes,
/// [`ExtractError::Malformed`] for empty, non-UTF-8 or ill-formed XML and unreadable amounts, and
/// [`ExtractError::NotAnInvoice`] for well-formed XML that is not an invoice or states no totals.
/// Every field found gets confidence 1; missing fields and sums that do not add up are warnings.
pub(crate) fn parse(xml: &[u8]) -> Result<BookingProposal, ExtractError> {
    let text = decode(xml)?;
    let options = ParsingOptions { allow_dtd: false, nodes_limit: NODES_LIMIT, ..ParsingOptions::default() };
    let document = Document::parse_with_options(text, options).map_err(parse_error)?;
    let root = document.root_element();
    let Reading { mut proposal, rounding } = match syntax(root)? {
        Syntax::Ubl => ubl::read(root)?,
        Syntax::Cii => cii::read(root)?,
    };
    checks::require_totals(&proposal)?;
    checks::warn_missing(&mut proposal);
    checks::cross_check(&mut proposal, rounding)?;
    checks::record_confidence(&mut proposal);
    Ok(proposal)
}

/// The document as text: UTF-8, which both UBL and CII e-invoicing profiles require.
fn decode(xml: &[u8]) -> Result<&str, ExtractError> {
    if xml.iter().all(u8::is_ascii_whitespace) {
        return Err(ExtractError::Malformed("empty document".to_owned()));
    }
    if xml.starts_with(&[0xFE, 0xFF]) || xml.starts_with(&[0xFF, 0xFE]) {
        return Err(ExtractError::Malformed("document is UTF-16; e-invoices must be UTF-8".to_owned()));
    }
    std::str::from_utf8(xml).map_err(|e| ExtractError::Malformed(format!("document is not valid UTF-8: {e}")))
}

/// Maps a parser error: what we refuse on principle is `Rejected`, the rest `Malformed`.
fn parse_error(error: roxmltree::Error) -> ExtractError {
    use roxmltree::Error;
    match error {
        Error::DtdDetected | Error::EntityReferenceLoop(_) => ExtractError::Rejected(
            "XML document type declarations (DTDs) are not allowed: they enable entity-expansion \
             and external-entity attacks"
                .to_owned(),
        ),
        Error::NodesLimitReached => ExtractError::Rejected(format!("document has more than {NODES_LIMIT} XML nodes")),
        Error::AttributesLimitReached | Error::NamespacesLimitReached => {
            ExtractError::Rejected(format!("document exceeds the parser's limits: {error}"))
        }
        other => ExtractError::Malformed(format!("not well-formed XML: {other}")),
    }
}

/// Picks the reader from the root element's namespace and local name.
fn syntax(root: Node<'_, '_>) -> Result<Syntax, ExtractError> {
    let name = root.tag_name();
    match (name.namespace(), name.name()) {
        (Some(xml::UBL_INVOICE), "Invoice") | (Some(xml::UBL_CREDIT_NOTE), "CreditNote") => Ok(Syntax::Ubl),
        (Some(xml::CII), "CrossIndustryInvoice") => Ok(Syntax::Cii),
        (Some(ZUGFERD_1), "CrossIndustryDocument") => Err(ExtractError::Unsupported(
            "ZUGFeRD 1.0 invoices are not supported; send ZUGFeRD 2 / Factur-X, XRechnung or Peppol BIS 3".to_owned(),
        )),
        (namespace, local) => Err(ExtractError::NotAnInvoice(format!(
            "root element <{local}> in {} is not a UBL Invoice/CreditNote or CII CrossIndustryInvoice",
            namespace.map_or_else(|| "no namespace".to_owned(), |ns| format!("namespace {ns}"))
        ))),
    }
}
