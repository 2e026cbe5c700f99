//! Reads a UN/CEFACT Cross Industry Invoice (XRechnung CII, Factur-X / ZUGFeRD 2.x) into a
//! booking proposal.

use roxmltree::Node;
use shared::proposal::{BookingProposal, InvoiceLine, Party, SourceFormat, Totals};

use super::Reading;
use super::fields::{self, StatedBreakdown};
use super::xml::{all, cii_date, decimal, decimal_at, decimal_under, first, per_unit, position, text, text_at};
use crate::error::ExtractError;

/// Reads the CII document whose root element is `root` (`rsm:CrossIndustryInvoice`).
pub(super) fn read(root: Node<'_, '_>) -> Result<Reading, ExtractError> {
    let mut warnings = Vec::new();
    let mut proposal = BookingProposal::empty(SourceFormat::Cii);

    let document = first(root, "rsm:ExchangedDocument");
    let transaction = first(root, "rsm:SupplyChainTradeTransaction");
    let agreement = transaction.and_then(|t| first(t, "ram:ApplicableHeaderTradeAgreement"));
    let settlement = transaction.and_then(|t| first(t, "ram:ApplicableHeaderTradeSettlement"));

    if let Some(document) = document {
        proposal.document_kind = fields::document_kind(text_at(document, "ram:TypeCode").as_deref());
        proposal.invoice_number = text_at(document, "ram:ID");
        proposal.issue_date =
            first(document, "ram:IssueDateTime").and_then(|n| cii_date(n, "issue date", &mut warnings));
    }
    if let Some(agreement) = agreement {
        proposal.supplier = party(first(agreement, "ram:SellerTradeParty"));
        proposal.customer = party(first(agreement, "ram:BuyerTradeParty"));
    }
    if let Some(settlement) = settlement {
        proposal.currency = text_at(settlement, "ram:InvoiceCurrencyCode");
        proposal.payment_reference = text_at(settlement, "ram:PaymentReference");
        proposal.due_date = first(settlement, "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime")
            .and_then(|n| cii_date(n, "due date", &mut warnings));
        if let Some(account) = payee_account(settlement) {
            fields::set_iban(&mut proposal.supplier, &account, &mut warnings);
        }
        for tax in all(settlement, "ram:ApplicableTradeTax") {
            if let Some(entry) = fields::vat_breakdown(tax, stated_breakdown(tax)?, &mut warnings) {
                proposal.vat_breakdown.push(entry);
            }
        }
    }
    for node in transaction.map(|t| all(t, "ram:IncludedSupplyChainTradeLineItem")).unwrap_or_default() {
        if let Some(line) = line(node, &mut warnings)? {
            proposal.lines.push(line);
        }
    }

    let summation = settlement.and_then(|s| first(s, "ram:SpecifiedTradeSettlementHeaderMonetarySummation"));
    let tax_total = summation.and_then(|s| tax_total_amount(s, proposal.currency.as_deref(), &mut warnings));
    proposal.totals = Totals {
        line_total: decimal_under(summation, "ram:LineTotalAmount")?,
        net: decimal_under(summation, "ram:TaxBasisTotalAmount")?,
        tax: tax_total.map(decimal).transpose()?,
        gross: decimal_under(summation, "ram:GrandTotalAmount")?,
        prepaid: decimal_under(summation, "ram:TotalPrepaidAmount")?,
        payable: decimal_under(summation, "ram:DuePayableAmount")?,
    };
    let rounding = decimal_under(summation, "ram:RoundingAmount")?;

    proposal.warnings = warnings;
    Ok(Reading { proposal, rounding })
}

/// Name and VAT identifier of a `ram:SellerTradeParty` / `ram:BuyerTradeParty`; the VAT
/// identifier is the tax registration with scheme `VA` (`FC` is a national tax number).
fn party(party: Option<Node<'_, '_>>) -> Party {
    let Some(party) = party else { return Party::default() };
    let vat_id = all(party, "ram:SpecifiedTaxRegistration/ram:ID")
        .into_iter()
        .filter(|id| id.attribute("schemeID").is_some_and(|scheme| scheme.trim() == "VA"))
        .find_map(text)
        .map(|id| fields::vat_id(&id));
    Party { name: text_at(party, "ram:Name"), vat_id, ..Party::default() }
}

/// The seller's account from the `ram:SpecifiedTradeSettlementPaymentMeans` elements.
fn payee_account(settlement: Node<'_, '_>) -> Option<String> {
    let means: Vec<_> = all(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        .into_iter()
        .map(|m| (text_at(m, "ram:TypeCode"), text_at(m, "ram:PayeePartyCreditorFinancialAccount/ram:IBANID")))
        .collect();
    fields::payee_account(&means)
}

/// The `ram:TaxTotalAmount` in the invoice currency. A document whose VAT accounting currency
/// differs states the total twice, once per currency; an amount without `currencyID` is taken to
/// be in the invoice currency, and a lone amount is used whatever its currency says.
fn tax_total_amount<'a, 'input>(
    summation: Node<'a, 'input>,
    currency: Option<&str>,
    warnings: &mut Vec<String>,
) -> Option<Node<'a, 'input>> {
    let amounts = all(summation, "ram:TaxTotalAmount");
    let in_currency = |amount: &&Node<'_, '_>| match (currency, amount.attribute("currencyID")) {
        (Some(currency), Some(stated)) => currency == stated.trim(),
        _ => true,
    };
    let chosen = amounts.iter().find(in_currency).or(match amounts.as_slice() {
        [only] => Some(only),
        _ => None,
    });
    if chosen.is_none() && !amounts.is_empty() {
        warnings.push(format!(
            "none of the VAT totals at {} is in the invoice currency; VAT total left empty",
            position(summation)
        ));
    }
    chosen.copied()
}

/// What a header `ram:ApplicableTradeTax` states.
fn stated_breakdown(tax: Node<'_, '_>) -> Result<StatedBreakdown, ExtractError> {
    Ok(StatedBreakdown {
        category: text_at(tax, "ram:CategoryCode"),
        rate: decimal_at(tax, "ram:RateApplicablePercent")?,
        taxable_amount: decimal_at(tax, "ram:BasisAmount")?,
        tax_amount: decimal_at(tax, "ram:CalculatedAmount")?,
    })
}

/// One `ram:IncludedSupplyChainTradeLineItem`; `None` (with a warning) when it states no net
/// amount, and `None` for a note or section line that invoices nothing.
fn line(node: Node<'_, '_>, warnings: &mut Vec<String>) -> Result<Option<InvoiceLine>, ExtractError> {
    let settlement = first(node, "ram:SpecifiedLineTradeSettlement");
    let Some(net_amount) =
        decimal_under(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")?
    else {
        warnings.push(format!("invoice line at {} states no net amount; left out of the lines", position(node)));
        return Ok(None);
    };
    let quantity = decimal_at(node, "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity")?;
    if fields::is_note_line(net_amount, quantity) || is_information_only(node) {
        return Ok(None);
    }
    let price = first(node, "ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice");
    let category = settlement.and_then(|s| text_at(s, "ram:ApplicableTradeTax/ram:CategoryCode"));
    let stated_rate = decimal_under(settlement, "ram:ApplicableTradeTax/ram:RateApplicablePercent")?;
    let unit_price = decimal_under(price, "ram:ChargeAmount")?;
    let basis_quantity = decimal_under(price, "ram:BasisQuantity")?;
    Ok(Some(InvoiceLine {
        description: text_at(node, "ram:SpecifiedTradeProduct/ram:Name")
            .or_else(|| text_at(node, "ram:SpecifiedTradeProduct/ram:Description")),
        quantity,
        unit_price: unit_price.map(|price| per_unit(price, basis_quantity)),
        net_amount,
        vat_rate: fields::vat_rate(category.as_deref(), stated_rate),
    }))
}

/// Whether a line is marked information only (ZUGFeRD/Factur-X EXTENDED line status reason
/// `INFORMATION`): its amounts are not part of the invoice's totals.
fn is_information_only(node: Node<'_, '_>) -> bool {
    text_at(node, "ram:AssociatedDocumentLineDocument/ram:LineStatusReasonCode")
        .is_some_and(|code| code.trim().eq_ignore_ascii_case("INFORMATION"))
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use shared::proposal::DocumentKind;

    use super::*;
    use crate::einvoice::parse;

    /// A minimal CII invoice of `type_code` with `settlement` inside the header settlement.
    fn invoice(type_code: &str, settlement: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<inv:CrossIndustryInvoice xmlns:inv="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
    xmlns:r="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
    xmlns:u="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <inv:ExchangedDocument>
    <r:ID>R-42</r:ID>
    <r:TypeCode>{type_code}</r:TypeCode>
    <r:IssueDateTime><u:DateTimeString format="102">20240301</u:DateTimeString></r:IssueDateTime>
  </inv:ExchangedDocument>
  <inv:SupplyChainTradeTransaction>
    <r:IncludedSupplyChainTradeLineItem>
      <r:SpecifiedTradeProduct><r:Name>Rent</r:Name></r:SpecifiedTradeProduct>
      <r:SpecifiedLineTradeAgreement><r:NetPriceProductTradePrice><r:ChargeAmount>100</r:ChargeAmount></r:NetPriceProductTradePrice></r:SpecifiedLineTradeAgreement>
      <r:SpecifiedLineTradeDelivery><r:BilledQuantity unitCode="C62">1</r:BilledQuantity></r:SpecifiedLineTradeDelivery>
      <r:SpecifiedLineTradeSettlement>
        <r:ApplicableTradeTax><r:TypeCode>VAT</r:TypeCode><r:CategoryCode>E</r:CategoryCode></r:ApplicableTradeTax>
        <r:SpecifiedTradeSettlementLineMonetarySummation><r:LineTotalAmount>100</r:LineTotalAmount></r:SpecifiedTradeSettlementLineMonetarySummation>
      </r:SpecifiedLineTradeSettlement>
    </r:IncludedSupplyChainTradeLineItem>
    <r:ApplicableHeaderTradeAgreement>
      <r:SellerTradeParty>
        <r:Name>Lieferant GmbH</r:Name>
        <r:SpecifiedTaxRegistration><r:ID schemeID="FC">201/113/40209</r:ID></r:SpecifiedTaxRegistration>
        <r:SpecifiedTaxRegistration><r:ID schemeID="VA">DE 123456789</r:ID></r:SpecifiedTaxRegistration>
      </r:SellerTradeParty>
      <r:BuyerTradeParty><r:Name>Kunden AG</r:Name></r:BuyerTradeParty>
    </r:ApplicableHeaderTradeAgreement>
    <r:ApplicableHeaderTradeSettlement>
      <r:PaymentReference>Deb. 12345</r:PaymentReference>
      <r:InvoiceCurrencyCode>EUR</r:InvoiceCurrencyCode>
      <r:SpecifiedTradeSettlementPaymentMeans>
        <r:TypeCode>58</r:TypeCode>
        <r:PayeePartyCreditorFinancialAccount><r:IBANID>DE12 1234 5678 9012 3456 78</r:IBANID></r:PayeePartyCreditorFinancialAccount>
      </r:SpecifiedTradeSettlementPaymentMeans>
      {settlement}
    </r:ApplicableHeaderTradeSettlement>
  </inv:SupplyChainTradeTransaction>
</inv:CrossIndustryInvoice>"#
        )
    }

    const SETTLEMENT: &str = r#"
      <r:ApplicableTradeTax><r:CalculatedAmount>0</r:CalculatedAmount><r:TypeCode>VAT</r:TypeCode>
        <r:BasisAmount>100</r:BasisAmount><r:CategoryCode>E</r:CategoryCode></r:ApplicableTradeTax>
      <r:SpecifiedTradePaymentTerms><r:DueDateDateTime><u:DateTimeString format="102">20240331</u:DateTimeString></r:DueDateDateTime></r:SpecifiedTradePaymentTerms>
      <r:SpecifiedTradeSettlementHeaderMonetarySummation>
        <r:LineTotalAmount>100</r:LineTotalAmount>
        <r:TaxBasisTotalAmount>100</r:TaxBasisTotalAmount>
        <r:TaxTotalAmount currencyID="GBP">0</r:TaxTotalAmount>
        <r:TaxTotalAmount currencyID="EUR">0.00</r:TaxTotalAmount>
        <r:GrandTotalAmount>100</r:GrandTotalAmount>
        <r:TotalPrepaidAmount>10</r:TotalPrepaidAmount>
        <r:RoundingAmount>0.01</r:RoundingAmount>
        <r:DuePayableAmount>90.01</r:DuePayableAmount>
      </r:SpecifiedTradeSettlementHeaderMonetarySummation>"#;

    #[test]
    fn reads_header_parties_and_lines() {
        let p = parse(invoice("380", SETTLEMENT).as_bytes()).expect("valid invoice");
        assert_eq!(p.source_format, SourceFormat::Cii);
        assert_eq!(p.document_kind, DocumentKind::Invoice);
        assert_eq!(p.invoice_number.as_deref(), Some("R-42"));
        assert_eq!(p.issue_date, chrono::NaiveDate::from_ymd_opt(2024, 3, 1));
        assert_eq!(p.due_date, chrono::NaiveDate::from_ymd_opt(2024, 3, 31));
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.payment_reference.as_deref(), Some("Deb. 12345"));
        assert_eq!(p.supplier.name.as_deref(), Some("Lieferant GmbH"));
        assert_eq!(p.supplier.vat_id.as_deref(), Some("DE123456789"));
        assert_eq!(p.supplier.iban.as_deref(), Some("DE12123456789012345678"));
        assert_eq!(p.supplier.iban_valid, Some(false));
        assert_eq!(p.customer.name.as_deref(), Some("Kunden AG"));
        assert_eq!(p.lines[0].vat_rate, Some(dec!(0)));
        assert_eq!(p.lines[0].unit_price, Some(dec!(100)));
        assert_eq!(p.vat_breakdown[0].rate, dec!(0));
        assert_eq!(p.totals.tax, Some(dec!(0)));
        assert_eq!(p.totals.payable, Some(dec!(90.01)));
        // Only the IBAN placeholder is worth a warning; rounding is allowed for.
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    }

    #[test]
    fn note_and_information_lines_are_left_out() {
        let zero_line = |inside: &str| {
            format!(
                r#"<r:IncludedSupplyChainTradeLineItem>{inside}
      <r:SpecifiedTradeProduct><r:Name>--- Section ---</r:Name></r:SpecifiedTradeProduct>
      <r:SpecifiedLineTradeSettlement><r:SpecifiedTradeSettlementLineMonetarySummation><r:LineTotalAmount>0.00</r:LineTotalAmount></r:SpecifiedTradeSettlementLineMonetarySummation></r:SpecifiedLineTradeSettlement>
    </r:IncludedSupplyChainTradeLineItem>"#
            )
        };
        let lines = [
            zero_line(""),
            zero_line(
                r#"<r:SpecifiedLineTradeDelivery><r:BilledQuantity unitCode="C62">0</r:BilledQuantity></r:SpecifiedLineTradeDelivery>"#,
            ),
            zero_line(
                "<r:AssociatedDocumentLineDocument><r:LineStatusReasonCode>INFORMATION</r:LineStatusReasonCode></r:AssociatedDocumentLineDocument>",
            ),
            zero_line(
                r#"<r:SpecifiedLineTradeDelivery><r:BilledQuantity unitCode="C62">2</r:BilledQuantity></r:SpecifiedLineTradeDelivery>"#,
            ),
        ];
        let xml = invoice("380", SETTLEMENT).replace(
            "<r:ApplicableHeaderTradeAgreement>",
            &format!("{}\n<r:ApplicableHeaderTradeAgreement>", lines.concat()),
        );
        let p = parse(xml.as_bytes()).expect("valid invoice");
        // The rent line and the zero-priced line with a quantity stay.
        assert_eq!(p.lines.len(), 2, "{:?}", p.lines);
        assert_eq!(p.lines[1].quantity, Some(dec!(2)));
        assert_eq!(p.lines[1].net_amount, dec!(0));
        assert_eq!(p.totals.line_total, Some(dec!(100)));
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    }

    #[test]
    fn credit_note_type_codes() {
        for code in ["381", "396", "261", "532"] {
            let p = parse(invoice(code, SETTLEMENT).as_bytes()).expect("valid credit note");
            assert_eq!(p.document_kind, DocumentKind::CreditNote, "type code {code}");
        }
        for code in ["380", "384", "389", "751"] {
            let p = parse(invoice(code, SETTLEMENT).as_bytes()).expect("valid invoice");
            assert_eq!(p.document_kind, DocumentKind::Invoice, "type code {code}");
        }
    }

    #[test]
    fn unparseable_amount_is_malformed() {
        let settlement = SETTLEMENT.replace("<r:GrandTotalAmount>100<", "<r:GrandTotalAmount>1.0.0<");
        let err = parse(invoice("380", &settlement).as_bytes()).expect_err("bad amount");
        assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("GrandTotalAmount")), "{err}");
    }

    #[test]
    fn no_summation_is_not_an_invoice() {
        let err = parse(invoice("380", "").as_bytes()).expect_err("no totals");
        assert!(matches!(err, ExtractError::NotAnInvoice(_)), "{err}");
    }
}
