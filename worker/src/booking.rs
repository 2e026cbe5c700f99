//! Suggested double-entry booking of a purchase invoice (the tenant is the buyer): expense and
//! input VAT against the creditors account, from the tenant's chart of accounts.
//!
//! The booking always balances. When the document's own numbers do not add up, the difference
//! goes to a rounding-differences account and a warning says so; the bookkeeper decides.

use rust_decimal::Decimal;
use shared::chart::{Account, Chart};
use shared::proposal::{BookingProposal, DocumentKind, JournalEntry, Party};

use crate::error::ExtractError;
use crate::money;

/// Net and VAT at one rate.
struct RateAmounts {
    rate: Option<Decimal>,
    net: Decimal,
    tax: Decimal,
}

/// One side of the booking before it becomes a [`JournalEntry`]: positive is a debit for an
/// invoice.
struct Posting {
    account: Account,
    amount: Decimal,
    description: String,
}

/// Fills `proposal.journal_entries` (replacing any) with a booking of the purchase invoice:
/// expense per VAT rate and input VAT per rate as debits, the gross amount owed as a credit to
/// the creditors account. A credit note is booked the other way round, and a negative amount
/// moves to the other side, so every debit and credit is zero or more. The entries always
/// balance; assumptions and differences are added to `proposal.warnings`. Fails only when the
/// amounts are out of range (see [`money`]).
pub(crate) fn book(proposal: &mut BookingProposal, chart: &Chart) -> Result<(), ExtractError> {
    money::check_range(proposal)?;
    let mut warnings = Vec::new();
    let label = document_label(proposal);
    let amounts = amounts_by_rate(proposal, &mut warnings)?;
    if amounts.is_empty() {
        warnings.push("the document states no net or gross amount; no booking suggested".to_owned());
        proposal.journal_entries.clear();
        proposal.warnings.extend(warnings);
        return Ok(());
    }
    let expense = expense_account(&proposal.supplier, chart, &mut warnings);

    let mut postings = Vec::new();
    for RateAmounts { rate, net, tax } in amounts {
        let rate_text = rate.map_or_else(|| "unknown rate".to_owned(), |r| format!("{}%", r.normalize()));
        postings.push(Posting {
            account: expense.clone(),
            amount: net,
            description: format!("{label}: net at {rate_text}"),
        });
        if !tax.is_zero() {
            postings.push(Posting {
                account: chart.input_vat_account(rate),
                amount: tax,
                description: format!("{label}: input VAT at {rate_text}"),
            });
        }
    }
    let booked = money::sum(postings.iter().map(|p| p.amount))?;
    let gross = gross_amount(proposal, booked, &mut warnings)?;
    postings.push(Posting {
        account: chart.creditors.clone(),
        amount: -gross,
        description: format!("{label}: owed to supplier"),
    });

    let difference = money::sum(postings.iter().map(|p| p.amount))?;
    if !difference.is_zero() {
        warnings.push(format!(
            "the document's amounts do not add up: debits and credits differ by {}; booked the \
             difference to {} {}",
            difference.abs(),
            chart.rounding.number,
            chart.rounding.name
        ));
        postings.push(Posting {
            account: chart.rounding.clone(),
            amount: -difference,
            description: format!("{label}: rounding difference"),
        });
    }

    let reversed = proposal.document_kind == DocumentKind::CreditNote;
    proposal.journal_entries =
        postings.into_iter().filter(|p| !p.amount.is_zero()).map(|p| journal_entry(p, reversed)).collect();
    if proposal.journal_entries.is_empty() {
        warnings.push("every amount on the document is zero; nothing to book".to_owned());
    }
    proposal.warnings.extend(warnings);
    Ok(())
}

/// Net and VAT per rate: from the VAT breakdown (entries at the same rate merged), else from the
/// totals at the lines' common rate. Empty when the document states neither.
fn amounts_by_rate(proposal: &BookingProposal, warnings: &mut Vec<String>) -> Result<Vec<RateAmounts>, ExtractError> {
    let mut amounts: Vec<RateAmounts> = Vec::new();
    for entry in &proposal.vat_breakdown {
        if matches!(entry.category.as_deref(), Some("AE" | "K")) && !entry.taxable_amount.is_zero() {
            warnings.push(format!(
                "VAT category {}: the buyer owes the VAT on {} (reverse charge / intra-community \
                 acquisition); book it as input and output VAT",
                entry.category.as_deref().unwrap_or_default(),
                entry.taxable_amount
            ));
        }
        match amounts.iter_mut().find(|a| a.rate == Some(entry.rate)) {
            Some(same_rate) => {
                same_rate.net = money::add(same_rate.net, entry.taxable_amount)?;
                same_rate.tax = money::add(same_rate.tax, entry.tax_amount)?;
            }
            None => {
                amounts.push(RateAmounts { rate: Some(entry.rate), net: entry.taxable_amount, tax: entry.tax_amount })
            }
        }
    }
    if !amounts.is_empty() {
        return Ok(amounts);
    }

    let totals = &proposal.totals;
    let rate = common_line_rate(proposal);
    let (net, tax) = match (totals.net, totals.tax, totals.gross) {
        (Some(net), Some(tax), _) => (net, tax),
        (Some(net), None, _) => {
            warnings.push("the document states no VAT total; no input VAT booked".to_owned());
            (net, Decimal::ZERO)
        }
        (None, Some(tax), Some(gross)) => {
            let net = money::sub(gross, tax)?;
            warnings.push(format!("the document states no net total; booked gross - VAT = {net}"));
            (net, tax)
        }
        (None, None, Some(gross)) => {
            warnings
                .push("the document states neither net total nor VAT; booked the gross amount as expense".to_owned());
            (gross, Decimal::ZERO)
        }
        (None, _, None) => return Ok(amounts),
    };
    if rate.is_none() && !tax.is_zero() {
        warnings.push(
            "the document states no VAT breakdown and no single VAT rate; check the input VAT account".to_owned(),
        );
    }
    Ok(vec![RateAmounts { rate, net, tax }])
}

/// The VAT rate all lines share, if they state one and it is the same.
fn common_line_rate(proposal: &BookingProposal) -> Option<Decimal> {
    let first = proposal.lines.first()?.vat_rate?;
    proposal.lines.iter().all(|line| line.vat_rate == Some(first)).then_some(first)
}

/// The amount owed: the gross total, else net + VAT, else whatever was booked as expense and VAT.
fn gross_amount(
    proposal: &BookingProposal,
    booked: Decimal,
    warnings: &mut Vec<String>,
) -> Result<Decimal, ExtractError> {
    let totals = &proposal.totals;
    if let Some(gross) = totals.gross {
        return Ok(gross);
    }
    let (gross, how) = match (totals.net, totals.tax) {
        (Some(net), Some(tax)) => (money::add(net, tax)?, "net + VAT"),
        _ => (booked, "the booked expense and VAT"),
    };
    warnings.push(format!("the document states no gross total; credited {how} = {gross} to the creditors account"));
    Ok(gross)
}

/// The expense account for `supplier`: its rule's, else the chart's default (with a warning).
fn expense_account(supplier: &Party, chart: &Chart, warnings: &mut Vec<String>) -> Account {
    if let Some(rule) = chart.rule_for(supplier) {
        return Account { number: rule.account.clone(), name: rule.account_name.clone() };
    }
    let who = match (&supplier.name, &supplier.vat_id) {
        (Some(name), Some(vat_id)) => format!("{name} ({vat_id})"),
        (Some(name), None) => name.clone(),
        (None, Some(vat_id)) => vat_id.clone(),
        (None, None) => "(unnamed)".to_owned(),
    };
    warnings.push(format!(
        "no ledger rule for supplier {who}; booked to default expense account {} {}",
        chart.expense.number, chart.expense.name
    ));
    chart.expense.clone()
}

/// `Invoice 471102 from Lieferant GmbH`, for entry descriptions.
fn document_label(proposal: &BookingProposal) -> String {
    let kind = match proposal.document_kind {
        DocumentKind::Invoice => "Invoice",
        DocumentKind::CreditNote => "Credit note",
    };
    let number = proposal.invoice_number.as_deref().unwrap_or("without number");
    match &proposal.supplier.name {
        Some(supplier) => format!("{kind} {number} from {supplier}"),
        None => format!("{kind} {number}"),
    }
}

/// Places a signed posting on its side: `reversed` for a credit note, and a negative amount moves
/// to the other side.
fn journal_entry(posting: Posting, reversed: bool) -> JournalEntry {
    let amount = if reversed { -posting.amount } else { posting.amount };
    let (debit, credit) = if amount.is_sign_negative() { (Decimal::ZERO, -amount) } else { (amount, Decimal::ZERO) };
    JournalEntry {
        account: posting.account.number,
        account_name: posting.account.name,
        debit,
        credit,
        description: posting.description,
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use shared::chart::LedgerRule;
    use shared::proposal::{SourceFormat, VatBreakdown};

    use super::*;

    fn entry(category: &str, rate: Decimal, taxable: Decimal, tax: Decimal) -> VatBreakdown {
        VatBreakdown { category: Some(category.to_owned()), rate, taxable_amount: taxable, tax_amount: tax }
    }

    /// 100 at 19 %, 50 at 7 %, 20 exempt: gross 192.50.
    fn invoice() -> BookingProposal {
        let mut p = BookingProposal::empty(SourceFormat::Ubl);
        p.invoice_number = Some("INV-1".into());
        p.supplier.name = Some("Acme Office Supplies".into());
        p.supplier.vat_id = Some("DE123456789".into());
        p.vat_breakdown = vec![
            entry("S", dec!(19), dec!(100), dec!(19)),
            entry("S", dec!(7), dec!(50), dec!(3.50)),
            entry("E", dec!(0), dec!(20), dec!(0)),
        ];
        p.totals.net = Some(dec!(170));
        p.totals.tax = Some(dec!(22.50));
        p.totals.gross = Some(dec!(192.50));
        p.totals.payable = Some(dec!(192.50));
        p
    }

    fn negated(mut p: BookingProposal) -> BookingProposal {
        for b in &mut p.vat_breakdown {
            b.taxable_amount = -b.taxable_amount;
            b.tax_amount = -b.tax_amount;
        }
        let t = &mut p.totals;
        for amount in [&mut t.net, &mut t.tax, &mut t.gross, &mut t.payable].into_iter().flatten() {
            *amount = -*amount;
        }
        p
    }

    /// (account, debit, credit) of every entry, for compact assertions.
    fn sides(p: &BookingProposal) -> Vec<(&str, Decimal, Decimal)> {
        p.journal_entries.iter().map(|e| (e.account.as_str(), e.debit, e.credit)).collect()
    }

    fn assert_well_formed(p: &BookingProposal) {
        assert!(p.is_balanced(), "unbalanced: {:#?}", p.journal_entries);
        for e in &p.journal_entries {
            assert!(e.debit >= Decimal::ZERO && e.credit >= Decimal::ZERO, "negative side: {e:?}");
            assert!(e.debit.is_zero() != e.credit.is_zero(), "entry on both or no side: {e:?}");
        }
    }

    #[test]
    fn invoice_debits_expense_and_input_vat() {
        let mut p = invoice();
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(
            sides(&p),
            [
                ("4000", dec!(100), dec!(0)),
                ("1576", dec!(19), dec!(0)),
                ("4000", dec!(50), dec!(0)),
                ("1571", dec!(3.50), dec!(0)),
                ("4000", dec!(20), dec!(0)),
                ("1600", dec!(0), dec!(192.50)),
            ]
        );
        assert_eq!(p.journal_entries[1].account_name, "Input VAT 19%");
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].starts_with("no ledger rule for supplier Acme Office Supplies"), "{:?}", p.warnings);
        assert!(p.warnings[0].contains("default expense account 4000"), "{:?}", p.warnings);
    }

    #[test]
    fn credit_note_is_reversed() {
        let mut p = invoice();
        p.document_kind = DocumentKind::CreditNote;
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(sides(&p)[0], ("4000", dec!(0), dec!(100)));
        assert_eq!(sides(&p)[1], ("1576", dec!(0), dec!(19)));
        assert_eq!(sides(&p)[5], ("1600", dec!(192.50), dec!(0)));
    }

    #[test]
    fn negative_invoice_flips_sides() {
        let mut p = negated(invoice());
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(sides(&p)[0], ("4000", dec!(0), dec!(100)));
        assert_eq!(sides(&p)[5], ("1600", dec!(192.50), dec!(0)));

        // A negative credit note is an invoice again.
        let mut p = negated(invoice());
        p.document_kind = DocumentKind::CreditNote;
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(sides(&p)[0], ("4000", dec!(100), dec!(0)));
    }

    #[test]
    fn inconsistent_document_is_balanced_with_a_rounding_entry() {
        for kind in [DocumentKind::Invoice, DocumentKind::CreditNote] {
            let mut p = invoice();
            p.document_kind = kind;
            p.totals.gross = Some(dec!(193.00));
            book(&mut p, &Chart::default()).expect("in range");
            assert_well_formed(&p);
            let rounding = p.journal_entries.last().expect("entries");
            assert_eq!(rounding.account, "4999");
            assert_eq!(rounding.debit + rounding.credit, dec!(0.50));
            assert!(p.warnings.iter().any(|w| w.contains("do not add up")), "{:?}", p.warnings);
        }
    }

    #[test]
    fn unknown_rates_get_the_other_account_named_with_the_rate() {
        let mut p = invoice();
        p.vat_breakdown = vec![entry("S", dec!(25.0), dec!(100), dec!(25))];
        p.totals = shared::proposal::Totals {
            net: Some(dec!(100)),
            tax: Some(dec!(25)),
            gross: Some(dec!(125)),
            ..Default::default()
        };
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(p.journal_entries[1].account, "1570");
        assert_eq!(p.journal_entries[1].account_name, "Input VAT 25%");
    }

    #[test]
    fn rules_pick_the_expense_account() {
        let rule = |vat: Option<&str>, name: Option<&str>, account: &str| LedgerRule {
            supplier_vat_id: vat.map(str::to_owned),
            supplier_name_contains: name.map(str::to_owned),
            account: account.to_owned(),
            account_name: format!("Account {account}"),
        };
        let chart = Chart {
            rules: vec![
                rule(None, None, "9999"),
                rule(Some("DE 123 456 789"), Some("nobody"), "9998"),
                rule(None, Some("office"), "4930"),
                rule(Some("de123456789"), None, "4931"),
            ],
            ..Chart::default()
        };
        let mut p = invoice();
        book(&mut p, &chart).expect("in range");
        assert_well_formed(&p);
        assert_eq!(p.journal_entries[0].account, "4930");
        assert_eq!(p.journal_entries[0].account_name, "Account 4930");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);

        let mut p = invoice();
        p.supplier.name = Some("Someone else".into());
        book(&mut p, &chart).expect("in range");
        assert_eq!(p.journal_entries[0].account, "4931");
    }

    #[test]
    fn without_breakdown_the_totals_are_booked() {
        let mut p = invoice();
        p.vat_breakdown.clear();
        p.lines = vec![shared::proposal::InvoiceLine {
            description: None,
            quantity: None,
            unit_price: None,
            net_amount: dec!(170),
            vat_rate: Some(dec!(7)),
        }];
        p.totals.tax = Some(dec!(11.90));
        p.totals.gross = Some(dec!(181.90));
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(
            sides(&p),
            [("4000", dec!(170), dec!(0)), ("1571", dec!(11.90), dec!(0)), ("1600", dec!(0), dec!(181.90))]
        );
    }

    #[test]
    fn missing_gross_uses_net_plus_tax() {
        let mut p = invoice();
        p.totals.gross = None;
        book(&mut p, &Chart::default()).expect("in range");
        assert_well_formed(&p);
        assert_eq!(sides(&p).last(), Some(&("1600", dec!(0), dec!(192.50))));
        assert!(p.warnings.iter().any(|w| w.contains("no gross total")), "{:?}", p.warnings);
    }

    #[test]
    fn nothing_to_book() {
        let mut p = BookingProposal::empty(SourceFormat::PdfText);
        book(&mut p, &Chart::default()).expect("in range");
        assert!(p.journal_entries.is_empty());
        assert!(p.is_balanced());
        assert_eq!(p.warnings.len(), 1);

        // A zero-amount invoice (XRechnung has one) books nothing, and says so.
        let mut p = invoice();
        p.vat_breakdown = vec![entry("S", dec!(19), dec!(0), dec!(0))];
        p.totals = shared::proposal::Totals {
            net: Some(dec!(0)),
            tax: Some(dec!(0)),
            gross: Some(dec!(0)),
            ..Default::default()
        };
        book(&mut p, &Chart::default()).expect("in range");
        assert!(p.journal_entries.is_empty());
        assert!(p.warnings.iter().any(|w| w.contains("zero")), "{:?}", p.warnings);
    }

    #[test]
    fn chart_from_partial_config() {
        let json = r#"{"rules": [{"supplier_name_contains": "Telekom", "account": "4920", "account_name": "Telephone"}],
                       "input_vat": [{"rate": "19", "number": "1406", "name": "Vorsteuer 19%"}]}"#;
        let chart: Chart = serde_json::from_str(json).expect("valid chart");
        assert_eq!(chart.rules.len(), 1);
        assert_eq!(chart.input_vat[0].rate, dec!(19));
        assert_eq!(chart.creditors, Chart::default().creditors);
        assert!(serde_json::from_str::<Chart>(r#"{"expens": {"number": "1", "name": "x"}}"#).is_err());
    }
}
