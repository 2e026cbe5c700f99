//! Checks on a freshly read proposal: that it is an invoice at all, which required fields are
//! missing, whether the stated amounts add up, and the per-field confidence.
//!
//! Apart from [`require_totals`] and amounts out of range (`money`), nothing here fails: a document whose numbers do not add up is
//! still booked, and the warnings tell the bookkeeper what to look at.

use rust_decimal::Decimal;
use shared::proposal::BookingProposal;

use crate::error::ExtractError;
use crate::money;

/// Refuses a document that states no monetary totals at all: whatever it is, it cannot be booked
/// as an invoice.
pub(crate) fn require_totals(proposal: &BookingProposal) -> Result<(), ExtractError> {
    let t = &proposal.totals;
    let any = [t.line_total, t.net, t.tax, t.gross, t.prepaid, t.payable].iter().any(Option::is_some);
    if any {
        Ok(())
    } else {
        Err(ExtractError::NotAnInvoice(
            "the document states no monetary totals (net, VAT, gross or amount due)".to_owned(),
        ))
    }
}

/// Warns about each required field the document does not state.
pub(crate) fn warn_missing(proposal: &mut BookingProposal) {
    let t = &proposal.totals;
    let required = [
        ("invoice number", proposal.invoice_number.is_some()),
        ("issue date", proposal.issue_date.is_some()),
        ("currency", proposal.currency.is_some()),
        ("net total", t.net.is_some()),
        ("VAT total", t.tax.is_some()),
        ("gross total", t.gross.is_some()),
        ("amount due", t.payable.is_some()),
    ];
    let missing: Vec<String> = required
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(field, _)| format!("the document states no {field}"))
        .collect();
    proposal.warnings.extend(missing);
}

/// Cross-checks the stated amounts against each other and warns about every sum that does not
/// hold. `rounding` is the document's payable rounding amount, which the proposal has no field for.
/// Fails only when the amounts are out of range (see [`money::check_range`]).
pub(crate) fn cross_check(proposal: &mut BookingProposal, rounding: Option<Decimal>) -> Result<(), ExtractError> {
    money::check_range(proposal)?;
    let t = &proposal.totals;
    let breakdown = &proposal.vat_breakdown;
    let mut warnings = Vec::new();

    if !breakdown.is_empty() {
        let taxable = money::sum(breakdown.iter().map(|b| b.taxable_amount))?;
        let tax = money::sum(breakdown.iter().map(|b| b.tax_amount))?;
        if let Some(net) = t.net.filter(|net| *net != taxable) {
            warnings.push(format!("VAT breakdown taxable amounts add up to {taxable}, but the net total is {net}"));
        }
        if let Some(total_tax) = t.tax.filter(|total| *total != tax) {
            warnings.push(format!("VAT breakdown tax amounts add up to {tax}, but the VAT total is {total_tax}"));
        }
    }
    if let (Some(net), Some(tax), Some(gross)) = (t.net, t.tax, t.gross) {
        let sum = money::add(net, tax)?;
        if sum != gross {
            warnings.push(format!("net {net} + VAT {tax} = {sum}, but the gross total is {gross}"));
        }
    }
    if let (Some(gross), Some(payable)) = (t.gross, t.payable) {
        let prepaid = t.prepaid.unwrap_or_default();
        let rounding = rounding.unwrap_or_default();
        let expected = money::add(money::sub(gross, prepaid)?, rounding)?;
        if expected != payable {
            warnings.push(format!(
                "gross {gross} - prepaid {prepaid} + rounding {rounding} = {expected}, but the amount due is {payable}"
            ));
        }
    }
    if let (false, Some(line_total)) = (proposal.lines.is_empty(), t.line_total) {
        let lines = money::sum(proposal.lines.iter().map(|l| l.net_amount))?;
        if lines != line_total {
            warnings.push(format!("line net amounts add up to {lines}, but the line total is {line_total}"));
        }
    }
    proposal.warnings.extend(warnings);
    Ok(())
}

/// Records confidence 1 for every field that was read from the document's structured data.
pub(crate) fn record_confidence(proposal: &mut BookingProposal) {
    let p = &*proposal;
    let found = [
        ("invoice_number", p.invoice_number.is_some()),
        ("issue_date", p.issue_date.is_some()),
        ("due_date", p.due_date.is_some()),
        ("supplier.name", p.supplier.name.is_some()),
        ("supplier.vat_id", p.supplier.vat_id.is_some()),
        ("supplier.iban", p.supplier.iban.is_some()),
        ("customer.name", p.customer.name.is_some()),
        ("customer.vat_id", p.customer.vat_id.is_some()),
        ("currency", p.currency.is_some()),
        ("payment_reference", p.payment_reference.is_some()),
        ("lines", !p.lines.is_empty()),
        ("vat_breakdown", !p.vat_breakdown.is_empty()),
        ("totals.line_total", p.totals.line_total.is_some()),
        ("totals.net", p.totals.net.is_some()),
        ("totals.tax", p.totals.tax.is_some()),
        ("totals.gross", p.totals.gross.is_some()),
        ("totals.prepaid", p.totals.prepaid.is_some()),
        ("totals.payable", p.totals.payable.is_some()),
    ];
    let fields: Vec<&str> = found.into_iter().filter(|(_, present)| *present).map(|(field, _)| field).collect();
    for field in fields {
        proposal.confidence.insert(field.to_owned(), 1.0);
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use shared::proposal::{InvoiceLine, SourceFormat, VatBreakdown};

    use super::*;

    fn consistent() -> BookingProposal {
        let mut p = BookingProposal::empty(SourceFormat::Ubl);
        p.invoice_number = Some("1".into());
        p.issue_date = chrono::NaiveDate::from_ymd_opt(2024, 1, 31);
        p.currency = Some("EUR".into());
        p.lines = vec![InvoiceLine {
            description: None,
            quantity: None,
            unit_price: None,
            net_amount: dec!(100),
            vat_rate: Some(dec!(19)),
        }];
        p.vat_breakdown = vec![VatBreakdown {
            category: Some("S".into()),
            rate: dec!(19),
            taxable_amount: dec!(100),
            tax_amount: dec!(19),
        }];
        p.totals.line_total = Some(dec!(100.00));
        p.totals.net = Some(dec!(100));
        p.totals.tax = Some(dec!(19));
        p.totals.gross = Some(dec!(119));
        p.totals.prepaid = Some(dec!(20));
        p.totals.payable = Some(dec!(99.01));
        p
    }

    #[test]
    fn consistent_documents_get_no_warnings() {
        let mut p = consistent();
        warn_missing(&mut p);
        cross_check(&mut p, Some(dec!(0.01))).expect("in range");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn every_broken_sum_is_reported() {
        let mut p = consistent();
        p.totals.net = Some(dec!(101));
        p.totals.tax = Some(dec!(18));
        p.totals.gross = Some(dec!(120));
        p.totals.line_total = Some(dec!(90));
        cross_check(&mut p, None).expect("in range");
        // taxable vs net, tax vs VAT total, net + tax vs gross, gross - prepaid vs due, lines.
        assert_eq!(p.warnings.len(), 5, "{:?}", p.warnings);
    }

    #[test]
    fn no_totals_is_not_an_invoice() {
        let p = BookingProposal::empty(SourceFormat::Cii);
        assert!(matches!(require_totals(&p), Err(ExtractError::NotAnInvoice(_))));
        assert_eq!(require_totals(&consistent()), Ok(()));
    }

    #[test]
    fn missing_fields_are_named() {
        let mut p = consistent();
        p.invoice_number = None;
        p.totals.gross = None;
        warn_missing(&mut p);
        assert_eq!(p.warnings, ["the document states no invoice number", "the document states no gross total"]);
    }

    #[test]
    fn confidence_covers_found_fields_only() {
        let mut p = consistent();
        record_confidence(&mut p);
        assert_eq!(p.confidence.get("totals.net"), Some(&1.0));
        assert_eq!(p.confidence.get("vat_breakdown"), Some(&1.0));
        assert!(!p.confidence.contains_key("supplier.iban"));
        assert!(!p.confidence.contains_key("due_date"));
    }
}
