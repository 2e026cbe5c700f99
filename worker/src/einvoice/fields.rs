//! Field rules shared by the UBL and CII readers: the document kind from its type code, VAT
//! rates and breakdown entries, VAT identifiers and the payee account.
//!
//! Both syntaxes carry the same EN 16931 semantic model and use the same code lists (UNTDID 1001
//! document types, UNCL5305 VAT categories, UNCL4461 payment means), so these rules live here
//! once rather than in each reader.

use roxmltree::Node;
use rust_decimal::Decimal;
use shared::proposal::{DocumentKind, Party, VatBreakdown};

use super::iban::{iban_is_valid, normalize_iban};
use super::xml::position;

/// UNTDID 1001 document type codes that denote a credit note; every other code is an invoice
/// (380 commercial invoice, 384 corrected invoice, 389 self-billed invoice, 751, ...).
const CREDIT_NOTE_TYPE_CODES: [&str; 11] = ["81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"];

/// UNCL5305 VAT categories whose rate is zero by definition, so a missing rate means 0: exempt,
/// not subject to VAT, zero-rated, reverse charge, intra-community supply and export.
const ZERO_RATE_CATEGORIES: [&str; 6] = ["E", "O", "Z", "AE", "K", "G"];

/// UNCL4461 payment means in which the buyer pays into the seller's account: credit transfer,
/// payment to bank account, SEPA credit transfer.
const CREDIT_TRANSFER_CODES: [&str; 4] = ["30", "31", "42", "58"];

/// Invoice or credit note, from a UNTDID 1001 type code; a missing code means invoice.
pub(crate) fn document_kind(type_code: Option<&str>) -> DocumentKind {
    match type_code {
        Some(code) if CREDIT_NOTE_TYPE_CODES.contains(&code) => DocumentKind::CreditNote,
        _ => DocumentKind::Invoice,
    }
}

/// The VAT rate for a line or breakdown entry: the stated rate, or 0 when none is stated and the
/// category is one whose rate is zero by definition.
pub(crate) fn vat_rate(category: Option<&str>, stated: Option<Decimal>) -> Option<Decimal> {
    stated.or_else(|| category.filter(|c| ZERO_RATE_CATEGORIES.contains(c)).map(|_| Decimal::ZERO))
}

/// What one VAT breakdown element (`cac:TaxSubtotal`, `ram:ApplicableTradeTax`) at `at` states.
pub(crate) struct StatedBreakdown {
    pub(crate) category: Option<String>,
    pub(crate) rate: Option<Decimal>,
    pub(crate) taxable_amount: Option<Decimal>,
    pub(crate) tax_amount: Option<Decimal>,
}

/// Turns a stated breakdown entry into a [`VatBreakdown`]. An entry without its amounts is left
/// out; a missing rate in a category that is not zero-rated by definition is derived from the
/// amounts. Either way a warning says so.
pub(crate) fn vat_breakdown(
    at: Node<'_, '_>,
    stated: StatedBreakdown,
    warnings: &mut Vec<String>,
) -> Option<VatBreakdown> {
    let (Some(taxable_amount), Some(tax_amount)) = (stated.taxable_amount, stated.tax_amount) else {
        warnings.push(format!("VAT breakdown entry at {} lacks its taxable or tax amount; left out", position(at)));
        return None;
    };
    let category = stated.category;
    let rate = vat_rate(category.as_deref(), stated.rate).unwrap_or_else(|| {
        let derived = tax_amount
            .checked_div(taxable_amount)
            .map_or(Decimal::ZERO, |share| (share * Decimal::ONE_HUNDRED).round_dp(2).normalize());
        warnings.push(format!(
            "VAT breakdown entry at {} (category {}) states no rate; derived {derived}% from its amounts",
            position(at),
            category.as_deref().unwrap_or("unknown"),
        ));
        derived
    });
    Some(VatBreakdown { category, rate, taxable_amount, tax_amount })
}

/// A VAT identifier as stored: without whitespace, so `DE 123456789` becomes `DE123456789`.
pub(crate) fn vat_id(stated: &str) -> String {
    stated.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether an invoice line is a note or section heading rather than something invoiced: it bills
/// nothing (net amount 0) and states no quantity, or a quantity of 0. Generators such as Odoo put
/// headings and remarks among the lines this way. A zero-priced item with a quantity is a real
/// line and stays; either way the totals are the document's own.
pub(crate) fn is_note_line(net_amount: Decimal, quantity: Option<Decimal>) -> bool {
    net_amount.is_zero() && quantity.is_none_or(|quantity| quantity.is_zero())
}

/// The seller's account from the document's payment means, given as (means code, account)
/// pairs: the first account of a credit-transfer means, else the first account at all. Direct
/// debits name the buyer's account elsewhere and never reach this function.
pub(crate) fn payee_account(means: &[(Option<String>, Option<String>)]) -> Option<String> {
    let is_credit_transfer =
        |code: &Option<String>| code.as_deref().is_some_and(|c| CREDIT_TRANSFER_CODES.contains(&c));
    means
        .iter()
        .filter(|(code, _)| is_credit_transfer(code))
        .find_map(|(_, account)| account.clone())
        .or_else(|| means.iter().find_map(|(_, account)| account.clone()))
}

/// Stores `account` as `party`'s IBAN with its checksum verdict, warning when it fails.
pub(crate) fn set_iban(party: &mut Party, account: &str, warnings: &mut Vec<String>) {
    let iban = normalize_iban(account);
    let valid = iban_is_valid(&iban);
    if !valid {
        warnings.push(format!(
            "payee account {iban} is not a valid IBAN (ISO 13616 checksum fails); check it before paying"
        ));
    }
    party.iban = Some(iban);
    party.iban_valid = Some(valid);
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn note_lines_bill_nothing_and_have_no_quantity() {
        assert!(is_note_line(dec!(0.00), None));
        assert!(is_note_line(dec!(0), Some(dec!(0.00))));
        assert!(!is_note_line(dec!(0), Some(dec!(3))), "a zero-priced item is a real line");
        assert!(!is_note_line(dec!(12.50), None));
        assert!(!is_note_line(dec!(-5), Some(dec!(0))));
    }

    #[test]
    fn type_codes() {
        assert_eq!(document_kind(Some("380")), DocumentKind::Invoice);
        assert_eq!(document_kind(Some("384")), DocumentKind::Invoice);
        assert_eq!(document_kind(Some("389")), DocumentKind::Invoice);
        assert_eq!(document_kind(Some("381")), DocumentKind::CreditNote);
        assert_eq!(document_kind(Some("396")), DocumentKind::CreditNote);
        assert_eq!(document_kind(Some("261")), DocumentKind::CreditNote);
        assert_eq!(document_kind(Some("532")), DocumentKind::CreditNote);
        assert_eq!(document_kind(None), DocumentKind::Invoice);
    }

    #[test]
    fn zero_rate_categories_default_to_zero() {
        assert_eq!(vat_rate(Some("O"), None), Some(dec!(0)));
        assert_eq!(vat_rate(Some("AE"), None), Some(dec!(0)));
        assert_eq!(vat_rate(Some("S"), None), None);
        assert_eq!(vat_rate(Some("S"), Some(dec!(19))), Some(dec!(19)));
        assert_eq!(vat_rate(None, None), None);
    }

    #[test]
    fn breakdown_derives_a_missing_standard_rate() {
        let doc = roxmltree::Document::parse("<t/>").expect("parses");
        let mut warnings = Vec::new();
        let stated = StatedBreakdown {
            category: Some("S".into()),
            rate: None,
            taxable_amount: Some(dec!(100)),
            tax_amount: Some(dec!(19)),
        };
        let entry = vat_breakdown(doc.root_element(), stated, &mut warnings).expect("amounts present");
        assert_eq!(entry.rate, dec!(19));
        assert_eq!(warnings.len(), 1);

        let incomplete =
            StatedBreakdown { category: None, rate: None, taxable_amount: None, tax_amount: Some(dec!(1)) };
        assert!(vat_breakdown(doc.root_element(), incomplete, &mut warnings).is_none());
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn payee_account_prefers_credit_transfer() {
        let means = [
            (Some("48".to_owned()), Some("card".to_owned())),
            (Some("58".to_owned()), Some("DE79000000001234567890".to_owned())),
        ];
        assert_eq!(payee_account(&means).as_deref(), Some("DE79000000001234567890"));
        assert_eq!(payee_account(&means[..1]).as_deref(), Some("card"));
        assert_eq!(payee_account(&[]), None);
    }

    #[test]
    fn iban_verdicts() {
        let mut warnings = Vec::new();
        let mut party = Party::default();
        set_iban(&mut party, "de79 0000 0000 1234 5678 90", &mut warnings);
        assert_eq!(party.iban.as_deref(), Some("DE79000000001234567890"));
        assert_eq!(party.iban_valid, Some(true));
        assert!(warnings.is_empty());
        set_iban(&mut party, "IBAN32423940", &mut warnings);
        assert_eq!(party.iban_valid, Some(false));
        assert_eq!(warnings.len(), 1);
    }
}
