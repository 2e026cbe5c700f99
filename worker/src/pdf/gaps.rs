//! Fills the gaps an embedded e-invoice leaves from the same PDF's visible text.
//!
//! Some generators embed XML that omits what the printed invoice shows (Odoo's UBL, for one, has
//! no payee IBAN and no payment reference). The text route reads those from the visible text;
//! they fill only fields the XML leaves empty, never replace what it states, keep the text
//! route's confidence (below 1) and each gets a warning saying where it came from. Amounts, lines
//! and the VAT breakdown stay the XML's alone, so the totals and their cross-checks are exactly
//! the XML's.

use shared::proposal::BookingProposal;

use crate::einvoice::fields;

/// Confidence of a filled field when the text route recorded none for it (it always does today).
const UNRECORDED_CONFIDENCE: f32 = 0.5;

/// Fills every header field `embedded` (read from the XML) leaves empty with the value `visible`
/// (read from the visible text) has, with the text route's confidence and a warning per field.
pub(super) fn fill_from_visible_text(embedded: &mut BookingProposal, visible: BookingProposal) {
    let mut filled: Vec<(&'static str, &'static str)> = Vec::new();
    let mut fill = |field: &'static str, label: &'static str, slot: &mut Option<String>, seen: Option<String>| {
        if slot.is_none() && seen.is_some() {
            *slot = seen;
            filled.push((field, label));
        }
    };
    fill("invoice_number", "invoice number", &mut embedded.invoice_number, visible.invoice_number);
    fill("currency", "currency", &mut embedded.currency, visible.currency);
    fill("payment_reference", "payment reference", &mut embedded.payment_reference, visible.payment_reference);
    fill("supplier.name", "supplier name", &mut embedded.supplier.name, visible.supplier.name);
    fill("supplier.vat_id", "supplier VAT id", &mut embedded.supplier.vat_id, visible.supplier.vat_id);
    fill("customer.name", "customer name", &mut embedded.customer.name, visible.customer.name);
    fill("customer.vat_id", "customer VAT id", &mut embedded.customer.vat_id, visible.customer.vat_id);
    let mut iban_warnings = Vec::new();
    if embedded.supplier.iban.is_none()
        && let Some(iban) = visible.supplier.iban
    {
        fields::set_iban(&mut embedded.supplier, &iban, &mut iban_warnings);
        filled.push(("supplier.iban", "supplier IBAN"));
    }
    for (field, label, slot, seen) in [
        ("issue_date", "issue date", &mut embedded.issue_date, visible.issue_date),
        ("due_date", "due date", &mut embedded.due_date, visible.due_date),
    ] {
        if slot.is_none() && seen.is_some() {
            *slot = seen;
            filled.push((field, label));
        }
    }

    for (field, label) in filled {
        let confidence = visible.confidence.get(field).copied().unwrap_or(UNRECORDED_CONFIDENCE);
        embedded.confidence.insert(field.to_owned(), confidence);
        // The XML reader warned that the document states no such field; the PDF does.
        let stale = format!("the document states no {label}");
        embedded.warnings.retain(|warning| *warning != stale);
        embedded.warnings.push(format!("{label} taken from the PDF's visible text; the embedded XML has none"));
    }
    embedded.warnings.extend(iban_warnings);
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use shared::proposal::{Party, SourceFormat};

    use super::*;

    fn embedded() -> BookingProposal {
        let mut p = BookingProposal::empty(SourceFormat::FacturX);
        p.invoice_number = Some("INV/1".to_owned());
        p.supplier = Party { name: Some("Azure Interior".to_owned()), ..Party::default() };
        p.confidence.insert("invoice_number".to_owned(), 1.0);
        p.confidence.insert("supplier.name".to_owned(), 1.0);
        p.warnings.push("the document states no currency".to_owned());
        p
    }

    fn visible() -> BookingProposal {
        let mut p = BookingProposal::empty(SourceFormat::PdfText);
        p.invoice_number = Some("INV-1-misread".to_owned());
        p.currency = Some("EUR".to_owned());
        p.payment_reference = Some("RF18 5390 0754 7034".to_owned());
        p.due_date = NaiveDate::from_ymd_opt(2024, 4, 4);
        p.supplier = Party {
            name: Some("Azure".to_owned()),
            iban: Some("NL91ABNA0417164300".to_owned()),
            iban_valid: Some(true),
            ..Party::default()
        };
        for (field, confidence) in
            [("invoice_number", 0.8), ("currency", 0.7), ("payment_reference", 0.6), ("due_date", 0.75)]
        {
            p.confidence.insert(field.to_owned(), confidence);
        }
        p.confidence.insert("supplier.iban".to_owned(), 0.85);
        p
    }

    #[test]
    fn fills_only_what_the_xml_leaves_empty() {
        let mut p = embedded();
        fill_from_visible_text(&mut p, visible());
        assert_eq!(p.source_format, SourceFormat::FacturX);
        assert_eq!(p.invoice_number.as_deref(), Some("INV/1"));
        assert_eq!(p.supplier.name.as_deref(), Some("Azure Interior"));
        assert_eq!(p.confidence["invoice_number"], 1.0);
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.payment_reference.as_deref(), Some("RF18 5390 0754 7034"));
        assert_eq!(p.due_date, NaiveDate::from_ymd_opt(2024, 4, 4));
        assert_eq!(p.supplier.iban.as_deref(), Some("NL91ABNA0417164300"));
        assert_eq!(p.supplier.iban_valid, Some(true));
        assert_eq!(p.confidence["supplier.iban"], 0.85);
        assert_eq!(p.confidence["currency"], 0.7);
        assert!(!p.warnings.contains(&"the document states no currency".to_owned()), "{:?}", p.warnings);
        assert!(
            p.warnings
                .contains(&"supplier IBAN taken from the PDF's visible text; the embedded XML has none".to_owned()),
            "{:?}",
            p.warnings
        );
        assert_eq!(p.warnings.len(), 4, "{:?}", p.warnings);
    }

    #[test]
    fn an_invalid_iban_is_flagged() {
        let mut p = embedded();
        let mut seen = visible();
        seen.supplier.iban = Some("US1234567890".to_owned());
        fill_from_visible_text(&mut p, seen);
        assert_eq!(p.supplier.iban.as_deref(), Some("US1234567890"));
        assert_eq!(p.supplier.iban_valid, Some(false));
        assert!(p.warnings.iter().any(|w| w.contains("not a valid IBAN")), "{:?}", p.warnings);
    }
}
