//! Invoice fields from layout text (a PDF's text layer or OCR output), without templates.
//!
//! The text is cut into lines and cells ([`layout`]); generic label dictionaries in Dutch,
//! German, French and English find candidates for each field ([`labels`]); dates and amounts are
//! read in the document's own conventions ([`dates`], [`numbers`]); and the arithmetic between
//! line items, VAT breakdown and totals chooses among candidates ([`amounts`]). Every field gets
//! a confidence below 1, and whatever did not add up becomes a warning.

mod amounts;
mod candidates;
mod dates;
mod fields;
mod items;
mod labels;
pub(crate) mod layout;
pub(crate) mod numbers;
mod parties;

use rust_decimal::Decimal;
use shared::proposal::{BookingProposal, SourceFormat};

use self::candidates::{Candidate, confidence};
use self::dates::DateOrder;
use self::layout::Layout;
use self::numbers::{Number, NumberStyle};
use crate::einvoice::checks;
use crate::error::ExtractError;

/// A document's text and the conventions it writes in, shared by every finder.
pub(crate) struct Context<'a> {
    pub(crate) layout: &'a Layout,
    /// All lines joined, for document-wide searches.
    pub(crate) text: String,
    pub(crate) style: NumberStyle,
    pub(crate) date_order: DateOrder,
}

impl<'a> Context<'a> {
    pub(crate) fn new(layout: &'a Layout) -> Context<'a> {
        let text = layout.full_text();
        Context { style: NumberStyle::detect(&text), date_order: DateOrder::detect(&text), layout, text }
    }

    /// Every number in the document.
    pub(crate) fn amounts(&self) -> impl Iterator<Item = Number> + '_ {
        self.layout.lines.iter().flat_map(|line| numbers::numbers(&line.text, self.style))
    }
}

/// Reads a booking proposal (without journal entries) from pages of layout text.
///
/// Fails with [`ExtractError::NotAnInvoice`] when the text has nothing an invoice has: no
/// amounts, invoice number or dates.
pub(crate) fn read(pages: &[String], source: SourceFormat) -> Result<BookingProposal, ExtractError> {
    let layout = Layout::new(pages);
    if !layout.lines.iter().any(|line| line.text.chars().any(char::is_alphanumeric)) {
        return Err(ExtractError::NotAnInvoice("the document has no readable text".to_owned()));
    }
    let context = Context::new(&layout);
    let mut proposal = BookingProposal::empty(source);
    proposal.document_kind = fields::document_kind(&context);
    let mut found: Vec<(&'static str, f32)> = Vec::new();
    proposal.invoice_number = take(fields::invoice_number(&context), "invoice_number", &mut found);
    proposal.issue_date = take(fields::issue_date(&context), "issue_date", &mut found);
    proposal.due_date = take(fields::due_date(&context), "due_date", &mut found);
    proposal.currency = take(fields::currency(&context), "currency", &mut found);
    proposal.payment_reference = take(fields::payment_reference(&context), "payment_reference", &mut found);

    let parties = parties::parties(&context);
    proposal.supplier = parties.supplier;
    proposal.customer = parties.customer;
    found.extend(parties.confidence);

    let items = items::items(&context);
    let amounts = amounts::amounts(&context, &items);
    proposal.totals = amounts.totals;
    proposal.vat_breakdown = amounts.breakdown;
    proposal.lines = items;
    found.extend(amounts.confidence);

    if is_empty(&proposal) {
        return Err(ExtractError::NotAnInvoice(
            "no invoice number, date or amount found in the document's text".to_owned(),
        ));
    }
    if let Some(lines) = lines_confidence(&proposal) {
        found.push(("lines", lines));
    }
    if !proposal.vat_breakdown.is_empty() {
        found.push(("vat_breakdown", breakdown_confidence(&proposal)));
    }
    for (field, value) in found {
        proposal.confidence.insert(field.to_owned(), value);
    }
    proposal.warnings.extend(parties.warnings);
    proposal.warnings.extend(amounts.warnings);
    checks::warn_missing(&mut proposal);
    checks::cross_check(&mut proposal, None)?;
    warn_lines(&mut proposal);
    warn_dates(&mut proposal);
    Ok(proposal)
}

/// The value of a candidate, recording its confidence under `field`.
fn take<T>(candidate: Option<Candidate<T>>, field: &'static str, found: &mut Vec<(&'static str, f32)>) -> Option<T> {
    let candidate = candidate?;
    found.push((field, confidence(candidate.score)));
    Some(candidate.value)
}

fn is_empty(proposal: &BookingProposal) -> bool {
    let t = &proposal.totals;
    proposal.invoice_number.is_none()
        && proposal.issue_date.is_none()
        && [t.net, t.tax, t.gross, t.payable].iter().all(Option::is_none)
}

/// High when the line amounts add up to the line total or net total, low otherwise.
fn lines_confidence(proposal: &BookingProposal) -> Option<f32> {
    if proposal.lines.is_empty() {
        return None;
    }
    let sum: Decimal = proposal.lines.iter().map(|l| l.net_amount).sum();
    let t = &proposal.totals;
    let adds_up = [t.line_total, t.net, t.gross].contains(&Some(sum));
    Some(if adds_up { 0.9 } else { 0.4 })
}

/// High when the breakdown adds up to the net and VAT totals.
fn breakdown_confidence(proposal: &BookingProposal) -> f32 {
    let bases: Decimal = proposal.vat_breakdown.iter().map(|b| b.taxable_amount).sum();
    let taxes: Decimal = proposal.vat_breakdown.iter().map(|b| b.tax_amount).sum();
    let adds_up = proposal.totals.net == Some(bases) && proposal.totals.tax == Some(taxes);
    if adds_up { 0.9 } else { 0.5 }
}

/// Warns when line items were found but add up to none of the totals (the line total itself
/// is already checked by [`checks::cross_check`]).
fn warn_lines(proposal: &mut BookingProposal) {
    if proposal.lines.is_empty() || proposal.totals.line_total.is_some() {
        return;
    }
    let sum: Decimal = proposal.lines.iter().map(|l| l.net_amount).sum();
    let t = &proposal.totals;
    if ![t.net, t.gross].contains(&Some(sum)) {
        proposal.warnings.push(format!(
            "{} line items add up to {sum}, which matches neither the net nor the gross total; check the lines",
            proposal.lines.len()
        ));
    }
}

/// Warns when the due date is before the issue date.
fn warn_dates(proposal: &mut BookingProposal) {
    if let (Some(issue), Some(due)) = (proposal.issue_date, proposal.due_date)
        && due < issue
    {
        proposal.warnings.push(format!("the due date {due} is before the issue date {issue}"));
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn reads_a_dutch_invoice_without_a_template() {
        let page = "\
FACTUUR                                                       Bakkerij Jansen B.V.
                                                              Dorpsstraat 12
Klant: De Vries Horeca                                        1234 AB Utrecht
Factuurnummer: F2024-0031                                     BTW NL123456789B01
Factuurdatum: 15 januari 2024                                 IBAN NL91 ABNA 0417 1643 00
Vervaldatum: 29 januari 2024

Omschrijving                         Aantal        Prijs          Bedrag
Brood volkoren                           10        2,50            25,00
Taart appel                               2       12,75            25,50

Totaal excl. BTW                                                   50,50
BTW 9%                                                              4,55
Totaal                                                             55,05
";
        let proposal = read(&[page.to_owned()], SourceFormat::PdfText).expect("an invoice");
        assert_eq!(proposal.invoice_number.as_deref(), Some("F2024-0031"));
        assert_eq!(proposal.issue_date, chrono::NaiveDate::from_ymd_opt(2024, 1, 15));
        assert_eq!(proposal.due_date, chrono::NaiveDate::from_ymd_opt(2024, 1, 29));
        assert_eq!(proposal.supplier.name.as_deref(), Some("Bakkerij Jansen B.V."));
        assert_eq!(proposal.supplier.vat_id.as_deref(), Some("NL123456789B01"));
        assert_eq!(proposal.supplier.iban.as_deref(), Some("NL91ABNA0417164300"));
        assert_eq!(proposal.supplier.iban_valid, Some(true));
        let t = &proposal.totals;
        assert_eq!((t.net, t.tax, t.gross), (Some(dec!(50.50)), Some(dec!(4.55)), Some(dec!(55.05))));
        assert_eq!(proposal.vat_breakdown.len(), 1);
        assert_eq!(proposal.vat_breakdown[0].taxable_amount, dec!(50.50));
        assert_eq!(proposal.lines.len(), 2);
        assert_eq!(proposal.lines[1].unit_price, Some(dec!(12.75)));
        assert!(proposal.confidence.values().all(|c| *c > 0.0 && *c < 1.0), "{:?}", proposal.confidence);
    }

    #[test]
    fn text_without_invoice_fields_is_not_an_invoice() {
        let error = read(&["Dear customer,\nthank you for your letter.\n".to_owned()], SourceFormat::PdfText);
        assert!(matches!(error, Err(ExtractError::NotAnInvoice(_))), "{error:?}");
        let blank = read(&["   \n\n".to_owned()], SourceFormat::Ocr);
        assert!(matches!(blank, Err(ExtractError::NotAnInvoice(_))), "{blank:?}");
    }
}
