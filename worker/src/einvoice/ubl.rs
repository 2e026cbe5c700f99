//! Reads an OASIS UBL 2.1 `Invoice` or `CreditNote` (Peppol BIS Billing 3, XRechnung UBL) into a
//! booking proposal.

use roxmltree::Node;
use shared::proposal::{BookingProposal, DocumentKind, InvoiceLine, Party, SourceFormat, Totals};

use super::Reading;
use super::fields::{self, StatedBreakdown};
use super::xml::{all, children, decimal_at, decimal_under, first, iso_date, per_unit, position, text_at};
use crate::error::ExtractError;

/// Where the due date may be, in order of preference: the invoice's own `DueDate`, then the
/// payment means' and payment terms' due dates (the only places a UBL credit note has one).
const DUE_DATE_PATHS: [&str; 3] =
    ["cbc:DueDate", "cac:PaymentMeans/cbc:PaymentDueDate", "cac:PaymentTerms/cbc:PaymentDueDate"];

/// Reads the UBL document whose root element is `root` (`Invoice` or `CreditNote`).
pub(super) fn read(root: Node<'_, '_>) -> Result<Reading, ExtractError> {
    let is_credit_note_syntax = root.tag_name().name() == "CreditNote";
    let mut warnings = Vec::new();
    let mut proposal = BookingProposal::empty(SourceFormat::Ubl);

    proposal.document_kind = if is_credit_note_syntax {
        DocumentKind::CreditNote
    } else {
        fields::document_kind(text_at(root, "cbc:InvoiceTypeCode").as_deref())
    };
    proposal.invoice_number = text_at(root, "cbc:ID");
    proposal.issue_date = first(root, "cbc:IssueDate").and_then(|n| iso_date(n, "issue date", &mut warnings));
    proposal.due_date =
        DUE_DATE_PATHS.iter().find_map(|path| first(root, path)).and_then(|n| iso_date(n, "due date", &mut warnings));
    proposal.currency = text_at(root, "cbc:DocumentCurrencyCode");
    proposal.payment_reference = text_at(root, "cac:PaymentMeans/cbc:PaymentID");

    proposal.supplier = party(first(root, "cac:AccountingSupplierParty/cac:Party"));
    if let Some(account) = payee_account(root) {
        fields::set_iban(&mut proposal.supplier, &account, &mut warnings);
    }
    proposal.customer = party(first(root, "cac:AccountingCustomerParty/cac:Party"));

    let (line_path, quantity_path) = if is_credit_note_syntax {
        ("cac:CreditNoteLine", "cbc:CreditedQuantity")
    } else {
        ("cac:InvoiceLine", "cbc:InvoicedQuantity")
    };
    for node in all(root, line_path) {
        if let Some(line) = line(node, quantity_path, &mut warnings)? {
            proposal.lines.push(line);
        }
    }

    let tax_total = tax_total(root, proposal.currency.as_deref());
    for subtotal in tax_total.map(|t| all(t, "cac:TaxSubtotal")).unwrap_or_default() {
        if let Some(entry) = fields::vat_breakdown(subtotal, stated_breakdown(subtotal)?, &mut warnings) {
            proposal.vat_breakdown.push(entry);
        }
    }

    let monetary_total = first(root, "cac:LegalMonetaryTotal");
    proposal.totals = Totals {
        line_total: decimal_under(monetary_total, "cbc:LineExtensionAmount")?,
        net: decimal_under(monetary_total, "cbc:TaxExclusiveAmount")?,
        tax: decimal_under(tax_total, "cbc:TaxAmount")?,
        gross: decimal_under(monetary_total, "cbc:TaxInclusiveAmount")?,
        prepaid: decimal_under(monetary_total, "cbc:PrepaidAmount")?,
        payable: decimal_under(monetary_total, "cbc:PayableAmount")?,
    };
    let rounding = decimal_under(monetary_total, "cbc:PayableRoundingAmount")?;

    proposal.warnings = warnings;
    Ok(Reading { proposal, rounding })
}

/// Name and VAT identifier of a `cac:Party`: the legal name if stated, else the trading name;
/// the `CompanyID` of the tax scheme whose ID is `VAT` (not, say, a German tax number `FC`).
fn party(party: Option<Node<'_, '_>>) -> Party {
    let Some(party) = party else { return Party::default() };
    let name = text_at(party, "cac:PartyLegalEntity/cbc:RegistrationName")
        .or_else(|| text_at(party, "cac:PartyName/cbc:Name"));
    let vat_id = children(party, "cac:PartyTaxScheme")
        .filter(|scheme| text_at(*scheme, "cac:TaxScheme/cbc:ID").is_some_and(|id| id.eq_ignore_ascii_case("VAT")))
        .find_map(|scheme| text_at(scheme, "cbc:CompanyID"))
        .map(|id| fields::vat_id(&id));
    Party { name, vat_id, ..Party::default() }
}

/// The seller's account from the `cac:PaymentMeans` elements.
fn payee_account(root: Node<'_, '_>) -> Option<String> {
    let means: Vec<_> = children(root, "cac:PaymentMeans")
        .map(|m| (text_at(m, "cbc:PaymentMeansCode"), text_at(m, "cac:PayeeFinancialAccount/cbc:ID")))
        .collect();
    fields::payee_account(&means)
}

/// One `cac:InvoiceLine` / `cac:CreditNoteLine`; `None` (with a warning) when it states no net
/// amount, and `None` for a note or section line that invoices nothing.
fn line(
    node: Node<'_, '_>,
    quantity_path: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<InvoiceLine>, ExtractError> {
    let Some(net_amount) = decimal_at(node, "cbc:LineExtensionAmount")? else {
        warnings.push(format!("invoice line at {} states no net amount; left out of the lines", position(node)));
        return Ok(None);
    };
    let quantity = decimal_at(node, quantity_path)?;
    if fields::is_note_line(net_amount, quantity) {
        return Ok(None);
    }
    let base_quantity = decimal_at(node, "cac:Price/cbc:BaseQuantity")?;
    let category = text_at(node, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID");
    let stated_rate = decimal_at(node, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent")?;
    Ok(Some(InvoiceLine {
        description: text_at(node, "cac:Item/cbc:Name").or_else(|| text_at(node, "cac:Item/cbc:Description")),
        quantity,
        unit_price: decimal_at(node, "cac:Price/cbc:PriceAmount")?.map(|price| per_unit(price, base_quantity)),
        net_amount,
        vat_rate: fields::vat_rate(category.as_deref(), stated_rate),
    }))
}

/// The `cac:TaxTotal` to read. A document whose VAT accounting currency differs from its own
/// currency has two: one in the document currency with the breakdown, and one holding only the
/// VAT total in the accounting currency. Prefer a total in the document currency with a
/// breakdown, then any in the document currency, then any with a breakdown.
fn tax_total<'a, 'input>(root: Node<'a, 'input>, currency: Option<&str>) -> Option<Node<'a, 'input>> {
    let totals: Vec<_> = children(root, "cac:TaxTotal").collect();
    let in_currency = |total: &&Node<'_, '_>| {
        let stated = first(**total, "cbc:TaxAmount").and_then(|amount| amount.attribute("currencyID"));
        match (currency, stated) {
            (Some(currency), Some(stated)) => currency == stated.trim(),
            _ => true,
        }
    };
    let has_breakdown = |total: &&Node<'_, '_>| first(**total, "cac:TaxSubtotal").is_some();
    totals
        .iter()
        .find(|t| in_currency(t) && has_breakdown(t))
        .or_else(|| totals.iter().find(in_currency))
        .or_else(|| totals.iter().find(has_breakdown))
        .copied()
}

/// What a `cac:TaxSubtotal` states. The rate is normally in its tax category, but UBL also
/// allows it on the subtotal itself.
fn stated_breakdown(subtotal: Node<'_, '_>) -> Result<StatedBreakdown, ExtractError> {
    let rate = match decimal_at(subtotal, "cac:TaxCategory/cbc:Percent")? {
        Some(rate) => Some(rate),
        None => decimal_at(subtotal, "cbc:Percent")?,
    };
    Ok(StatedBreakdown {
        category: text_at(subtotal, "cac:TaxCategory/cbc:ID"),
        rate,
        taxable_amount: decimal_at(subtotal, "cbc:TaxableAmount")?,
        tax_amount: decimal_at(subtotal, "cbc:TaxAmount")?,
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    use super::*;
    use crate::einvoice::parse;

    /// A minimal UBL invoice with `body` inside the root, using unusual prefixes on purpose.
    fn invoice(root: &str, body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2"
    xmlns:agg="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
    xmlns:bas="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <bas:ID>INV-1</bas:ID>
  <bas:IssueDate>2024-03-01</bas:IssueDate>
  <bas:DocumentCurrencyCode>EUR</bas:DocumentCurrencyCode>
  {body}
</{root}>"#
        )
    }

    const TOTALS: &str = r#"
  <agg:TaxTotal>
    <bas:TaxAmount currencyID="EUR">19.00</bas:TaxAmount>
    <agg:TaxSubtotal>
      <bas:TaxableAmount currencyID="EUR">100.00</bas:TaxableAmount>
      <bas:TaxAmount currencyID="EUR">19.00</bas:TaxAmount>
      <agg:TaxCategory><bas:ID>S</bas:ID><bas:Percent>19</bas:Percent></agg:TaxCategory>
    </agg:TaxSubtotal>
  </agg:TaxTotal>
  <agg:LegalMonetaryTotal>
    <bas:LineExtensionAmount currencyID="EUR">100.00</bas:LineExtensionAmount>
    <bas:TaxExclusiveAmount currencyID="EUR">100.00</bas:TaxExclusiveAmount>
    <bas:TaxInclusiveAmount currencyID="EUR">119.00</bas:TaxInclusiveAmount>
    <bas:PayableAmount currencyID="EUR">119.00</bas:PayableAmount>
  </agg:LegalMonetaryTotal>"#;

    #[test]
    fn reads_any_prefix() {
        let p = parse(invoice("Invoice", TOTALS).as_bytes()).expect("valid invoice");
        assert_eq!(p.source_format, SourceFormat::Ubl);
        assert_eq!(p.document_kind, DocumentKind::Invoice);
        assert_eq!(p.invoice_number.as_deref(), Some("INV-1"));
        assert_eq!(p.totals.gross, Some(dec!(119)));
        assert_eq!(p.vat_breakdown.len(), 1);
        assert_eq!(p.confidence.get("totals.gross"), Some(&1.0));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn credit_note_root_and_type_code() {
        let p = parse(invoice("CreditNote", TOTALS).as_bytes()).expect("valid credit note");
        assert_eq!(p.document_kind, DocumentKind::CreditNote);
        let typed = invoice("Invoice", &format!("<bas:InvoiceTypeCode>381</bas:InvoiceTypeCode>{TOTALS}"));
        assert_eq!(parse(typed.as_bytes()).expect("valid").document_kind, DocumentKind::CreditNote);
    }

    #[test]
    fn tax_total_in_the_accounting_currency_is_ignored() {
        let body =
            format!(r#"<agg:TaxTotal><bas:TaxAmount currencyID="SEK">200.00</bas:TaxAmount></agg:TaxTotal>{TOTALS}"#);
        let p = parse(invoice("Invoice", &body).as_bytes()).expect("valid");
        assert_eq!(p.totals.tax, Some(dec!(19)));
        assert_eq!(p.vat_breakdown[0].tax_amount, dec!(19));
    }

    #[test]
    fn parties_payment_and_lines() {
        let body = format!(
            r#"
  <bas:DueDate>2024-03-31</bas:DueDate>
  <agg:AccountingSupplierParty><agg:Party>
    <agg:PartyName><bas:Name>Trading name</bas:Name></agg:PartyName>
    <agg:PartyTaxScheme><bas:CompanyID>201/113/40209</bas:CompanyID><agg:TaxScheme><bas:ID>FC</bas:ID></agg:TaxScheme></agg:PartyTaxScheme>
    <agg:PartyTaxScheme><bas:CompanyID>DE 123456789</bas:CompanyID><agg:TaxScheme><bas:ID>VAT</bas:ID></agg:TaxScheme></agg:PartyTaxScheme>
    <agg:PartyLegalEntity><bas:RegistrationName>Legal name GmbH</bas:RegistrationName></agg:PartyLegalEntity>
  </agg:Party></agg:AccountingSupplierParty>
  <agg:AccountingCustomerParty><agg:Party><agg:PartyName><bas:Name>Buyer</bas:Name></agg:PartyName></agg:Party></agg:AccountingCustomerParty>
  <agg:PaymentMeans><bas:PaymentMeansCode>48</bas:PaymentMeansCode></agg:PaymentMeans>
  <agg:PaymentMeans>
    <bas:PaymentMeansCode>58</bas:PaymentMeansCode><bas:PaymentID>RF18 5390 0754 7034</bas:PaymentID>
    <agg:PayeeFinancialAccount><bas:ID>DE89 3704 0044 0532 0130 00</bas:ID></agg:PayeeFinancialAccount>
  </agg:PaymentMeans>
  {TOTALS}
  <agg:InvoiceLine>
    <bas:InvoicedQuantity unitCode="C62">4</bas:InvoicedQuantity>
    <bas:LineExtensionAmount currencyID="EUR">100.00</bas:LineExtensionAmount>
    <agg:Item><bas:Description>Long text</bas:Description><bas:Name>Widget</bas:Name>
      <agg:ClassifiedTaxCategory><bas:ID>S</bas:ID><bas:Percent>19</bas:Percent></agg:ClassifiedTaxCategory></agg:Item>
    <agg:Price><bas:PriceAmount currencyID="EUR">50</bas:PriceAmount><bas:BaseQuantity>2</bas:BaseQuantity></agg:Price>
  </agg:InvoiceLine>"#
        );
        let p = parse(invoice("Invoice", &body).as_bytes()).expect("valid");
        assert_eq!(p.supplier.name.as_deref(), Some("Legal name GmbH"));
        assert_eq!(p.supplier.vat_id.as_deref(), Some("DE123456789"));
        assert_eq!(p.supplier.iban.as_deref(), Some("DE89370400440532013000"));
        assert_eq!(p.supplier.iban_valid, Some(true));
        assert_eq!(p.customer.name.as_deref(), Some("Buyer"));
        assert_eq!(p.payment_reference.as_deref(), Some("RF18 5390 0754 7034"));
        assert_eq!(p.due_date, chrono::NaiveDate::from_ymd_opt(2024, 3, 31));
        let line = &p.lines[0];
        assert_eq!(line.description.as_deref(), Some("Widget"));
        assert_eq!(line.quantity, Some(dec!(4)));
        assert_eq!(line.unit_price, Some(dec!(25)));
        assert_eq!(line.vat_rate, Some(dec!(19)));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn section_lines_are_left_out() {
        let line = |quantity: &str, amount: &str, name: &str| {
            format!(
                r#"<agg:InvoiceLine><bas:InvoicedQuantity>{quantity}</bas:InvoicedQuantity>
    <bas:LineExtensionAmount currencyID="EUR">{amount}</bas:LineExtensionAmount>
    <agg:Item><bas:Name>{name}</bas:Name></agg:Item></agg:InvoiceLine>"#
            )
        };
        let lines =
            [line("0.00", "0.00", "--- Food ---"), line("1", "100.00", "Bread"), line("2", "0.00", "Free sample")];
        let body = format!("{TOTALS}{}", lines.concat());
        let p = parse(invoice("Invoice", &body).as_bytes()).expect("valid");
        let names: Vec<_> = p.lines.iter().map(|l| l.description.as_deref()).collect();
        assert_eq!(names, [Some("Bread"), Some("Free sample")]);
        assert_eq!(p.totals.gross, Some(dec!(119)));
    }

    #[test]
    fn missing_rate_for_exempt_category_is_zero() {
        let body = r#"
  <agg:TaxTotal>
    <bas:TaxAmount currencyID="EUR">0.00</bas:TaxAmount>
    <agg:TaxSubtotal>
      <bas:TaxableAmount currencyID="EUR">50</bas:TaxableAmount>
      <bas:TaxAmount currencyID="EUR">0</bas:TaxAmount>
      <agg:TaxCategory><bas:ID>O</bas:ID></agg:TaxCategory>
    </agg:TaxSubtotal>
  </agg:TaxTotal>
  <agg:LegalMonetaryTotal><bas:PayableAmount currencyID="EUR">50</bas:PayableAmount></agg:LegalMonetaryTotal>"#;
        let p = parse(invoice("Invoice", body).as_bytes()).expect("valid");
        assert_eq!(p.vat_breakdown[0].rate, Decimal::ZERO);
        assert_eq!(p.vat_breakdown[0].category.as_deref(), Some("O"));
    }

    #[test]
    fn unparseable_amount_is_malformed() {
        let body = TOTALS.replace("119.00</bas:TaxInclusiveAmount>", "119,00</bas:TaxInclusiveAmount>");
        let err = parse(invoice("Invoice", &body).as_bytes()).expect_err("bad amount");
        assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("TaxInclusiveAmount")), "{err}");
    }

    #[test]
    fn no_totals_is_not_an_invoice() {
        let err = parse(invoice("Invoice", "").as_bytes()).expect_err("no totals");
        assert!(matches!(err, ExtractError::NotAnInvoice(_)), "{err}");
    }
}
