//! The e-invoice reader against every public sample invoice in the shared samples directory, and
//! against hostile and broken input.
//!
//! Each sample's totals and VAT breakdown are read a second time here, independently of the
//! reader under test (by local name only, with no namespace handling and no shared helpers), and
//! must match what [`parse`] returns; the booking of each must balance without a rounding entry.
//! The samples live outside the repository (`SURGE_SAMPLES`, default `../../shared/samples`
//! from the worker crate); when they are missing the tests fail rather than skip.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use roxmltree::Node;
use rust_decimal::Decimal;
use shared::chart::Chart;
use shared::proposal::{BookingProposal, SourceFormat};

use super::parse;
use crate::booking::book;
use crate::error::ExtractError;

/// Far more than any of these documents needs; a hang or a blow-up would exceed it.
const FAST: Duration = Duration::from_secs(2);

fn samples_dir() -> PathBuf {
    let dir = std::env::var_os("SURGE_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/samples")));
    assert!(
        dir.is_dir(),
        "sample invoices not found at {}: set SURGE_SAMPLES to the shared samples directory",
        dir.display()
    );
    dir
}

/// The files in `folder` of the samples directory whose names end with `suffix`, sorted; fails
/// when there are none.
fn samples(folder: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = samples_dir().join(folder);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *{suffix} samples in {}", dir.display());
    files
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// --- An independent reading of what a sample states -------------------------------------------

/// Totals and VAT breakdown as the XML states them.
#[derive(Debug, PartialEq)]
struct Stated {
    net: Option<Decimal>,
    tax: Option<Decimal>,
    gross: Option<Decimal>,
    payable: Option<Decimal>,
    /// (category, rate, taxable amount, tax amount)
    breakdown: Vec<(Option<String>, Decimal, Decimal, Decimal)>,
}

fn named<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Vec<Node<'a, 'i>> {
    node.children().filter(|c| c.tag_name().name() == name).collect()
}

fn at<'a, 'i>(node: Node<'a, 'i>, path: &[&str]) -> Option<Node<'a, 'i>> {
    path.iter().try_fold(node, |n, name| named(n, name).into_iter().next())
}

fn string_at(node: Node<'_, '_>, path: &[&str]) -> Option<String> {
    at(node, path).and_then(|n| n.text()).map(|t| t.trim().to_owned())
}

fn number(node: Node<'_, '_>) -> Decimal {
    let text = node.text().unwrap_or_default().trim();
    Decimal::from_str(text).unwrap_or_else(|e| panic!("<{}> {text:?}: {e}", node.tag_name().name()))
}

fn number_at(node: Node<'_, '_>, path: &[&str]) -> Option<Decimal> {
    at(node, path).map(number)
}

fn stated_ubl(root: Node<'_, '_>) -> Stated {
    let currency = string_at(root, &["DocumentCurrencyCode"]);
    let tax_total = named(root, "TaxTotal")
        .into_iter()
        .find(|t| {
            at(*t, &["TaxAmount"]).and_then(|a| a.attribute("currencyID")) == currency.as_deref()
                && at(*t, &["TaxSubtotal"]).is_some()
        })
        .expect("a TaxTotal in the document currency with subtotals");
    let totals = at(root, &["LegalMonetaryTotal"]).expect("LegalMonetaryTotal");
    let breakdown = named(tax_total, "TaxSubtotal")
        .into_iter()
        .map(|s| {
            (
                string_at(s, &["TaxCategory", "ID"]),
                number_at(s, &["TaxCategory", "Percent"]).unwrap_or_default(),
                number_at(s, &["TaxableAmount"]).expect("TaxableAmount"),
                number_at(s, &["TaxAmount"]).expect("TaxAmount"),
            )
        })
        .collect();
    Stated {
        net: number_at(totals, &["TaxExclusiveAmount"]),
        tax: number_at(tax_total, &["TaxAmount"]),
        gross: number_at(totals, &["TaxInclusiveAmount"]),
        payable: number_at(totals, &["PayableAmount"]),
        breakdown,
    }
}

fn stated_cii(root: Node<'_, '_>) -> Stated {
    let settlement =
        at(root, &["SupplyChainTradeTransaction", "ApplicableHeaderTradeSettlement"]).expect("header settlement");
    let currency = string_at(settlement, &["InvoiceCurrencyCode"]);
    let sums = at(settlement, &["SpecifiedTradeSettlementHeaderMonetarySummation"]).expect("monetary summation");
    let tax = named(sums, "TaxTotalAmount")
        .into_iter()
        .find(|t| t.attribute("currencyID") == currency.as_deref())
        .map(number);
    let breakdown = named(settlement, "ApplicableTradeTax")
        .into_iter()
        .map(|t| {
            (
                string_at(t, &["CategoryCode"]),
                number_at(t, &["RateApplicablePercent"]).unwrap_or_default(),
                number_at(t, &["BasisAmount"]).expect("BasisAmount"),
                number_at(t, &["CalculatedAmount"]).expect("CalculatedAmount"),
            )
        })
        .collect();
    Stated {
        net: number_at(sums, &["TaxBasisTotalAmount"]),
        tax,
        gross: number_at(sums, &["GrandTotalAmount"]),
        payable: number_at(sums, &["DuePayableAmount"]),
        breakdown,
    }
}

fn stated(xml: &[u8]) -> Stated {
    let text = std::str::from_utf8(xml).expect("samples are UTF-8");
    let doc = roxmltree::Document::parse(text).expect("samples are well-formed");
    let root = doc.root_element();
    match root.tag_name().name() {
        "CrossIndustryInvoice" => stated_cii(root),
        _ => stated_ubl(root),
    }
}

fn found(p: &BookingProposal) -> Stated {
    Stated {
        net: p.totals.net,
        tax: p.totals.tax,
        gross: p.totals.gross,
        payable: p.totals.payable,
        breakdown: p
            .vat_breakdown
            .iter()
            .map(|b| (b.category.clone(), b.rate, b.taxable_amount, b.tax_amount))
            .collect(),
    }
}

/// Parses and books one sample; returns what is wrong with the result, if anything.
fn check_sample(path: &Path, format: SourceFormat) -> Vec<String> {
    let xml = read(path);
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut proposal = match parse(&xml) {
        Ok(proposal) => proposal,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let mut problems = Vec::new();
    if proposal.source_format != format {
        problems.push(format!("{name}: source format {:?}", proposal.source_format));
    }
    let (expected, actual) = (stated(&xml), found(&proposal));
    if expected != actual {
        problems.push(format!("{name}: read {actual:?}\n  but the XML states {expected:?}"));
    }
    for field in ["invoice_number", "issue_date", "currency", "supplier.name", "totals.net", "totals.gross"] {
        if proposal.confidence.get(field) != Some(&1.0) {
            problems.push(format!("{name}: no confidence for {field}"));
        }
    }
    // The samples are consistent, so no cross-check may complain.
    problems.extend(proposal.warnings.iter().filter(|w| w.contains(", but the ")).map(|w| format!("{name}: {w}")));

    book(&mut proposal, &Chart::default()).expect("in range");
    // XRechnung 02.04a states zero everywhere: nothing to book, which is right.
    let zero_invoice = proposal.totals.gross.is_some_and(|g| g.is_zero());
    if !proposal.is_balanced() || (proposal.journal_entries.is_empty() && !zero_invoice) {
        problems.push(format!("{name}: booking unbalanced or empty: {:#?}", proposal.journal_entries));
    }
    if proposal.journal_entries.iter().any(|e| e.account == Chart::default().rounding.number) {
        problems.push(format!("{name}: booking needed a rounding entry: {:?}", proposal.warnings));
    }
    problems
}

fn check_all(files: &[PathBuf], format: SourceFormat) {
    let problems: Vec<String> = files.iter().flat_map(|f| check_sample(f, format)).collect();
    assert!(problems.is_empty(), "{} of {} samples failed:\n{}", problems.len(), files.len(), problems.join("\n"));
}

#[test]
fn peppol_bis3_samples() {
    check_all(&samples("peppol-bis3", ".xml"), SourceFormat::Ubl);
}

#[test]
fn xrechnung_ubl_samples() {
    check_all(&samples("xrechnung", "_ubl.xml"), SourceFormat::Ubl);
}

#[test]
fn xrechnung_cii_samples() {
    check_all(&samples("xrechnung", "_uncefact.xml"), SourceFormat::Cii);
}

#[test]
fn zugferd_cii_samples() {
    check_all(&samples("zugferd", ".cii.xml"), SourceFormat::Cii);
}

#[test]
fn every_xml_sample_is_covered() {
    let covered = samples("peppol-bis3", ".xml").len()
        + samples("xrechnung", "_ubl.xml").len()
        + samples("xrechnung", "_uncefact.xml").len()
        + samples("zugferd", ".cii.xml").len();
    let all = ["peppol-bis3", "xrechnung", "zugferd"].iter().map(|f| samples(f, ".xml").len()).sum::<usize>();
    assert_eq!(covered, all, "some sample XML files match none of the sample tests");
}

// --- Particular samples --------------------------------------------------------------------------

fn sample(relative: &str) -> BookingProposal {
    let path = samples_dir().join(relative);
    parse(&read(&path)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn peppol_credit_note_keeps_its_positive_amounts() {
    let p = sample("peppol-bis3/base-creditnote-correction.xml");
    assert_eq!(p.document_kind, shared::proposal::DocumentKind::CreditNote);
    assert_eq!(p.totals.gross, Some(Decimal::new(165625, 2)));
    assert_eq!(p.lines.len(), 2);
}

#[test]
fn peppol_negative_invoice_keeps_its_signs() {
    let p = sample("peppol-bis3/base-negative-inv-correction.xml");
    assert_eq!(p.document_kind, shared::proposal::DocumentKind::Invoice);
    assert!(p.totals.gross.is_some_and(|g| g.is_sign_negative()), "{:?}", p.totals);
    let mut booked = p.clone();
    book(&mut booked, &Chart::default()).expect("in range");
    let creditors = booked.journal_entries.last().expect("entries");
    assert_eq!(creditors.account, Chart::default().creditors.number);
    assert!(creditors.credit.is_zero() && creditors.debit == Decimal::new(165625, 2), "{creditors:?}");
}

#[test]
fn peppol_placeholder_iban_is_flagged() {
    let p = sample("peppol-bis3/base-example.xml");
    assert_eq!(p.supplier.iban.as_deref(), Some("IBAN32423940"));
    assert_eq!(p.supplier.iban_valid, Some(false));
    assert!(p.warnings.iter().any(|w| w.contains("IBAN32423940")), "{:?}", p.warnings);
    assert_eq!(p.supplier.name.as_deref(), Some("SupplierOfficialName Ltd"));
    assert_eq!(p.supplier.vat_id.as_deref(), Some("GB1232434"));
    assert_eq!(p.customer.vat_id.as_deref(), Some("SE4598375937"));
    assert_eq!(p.payment_reference.as_deref(), Some("Snippet1"));
    assert_eq!(p.due_date, chrono::NaiveDate::from_ymd_opt(2017, 12, 1));
}

#[test]
fn two_tax_totals_use_the_document_currency() {
    let p = sample("peppol-bis3/Allowance-example.xml");
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.totals.tax, Some(Decimal::new(122500, 2)));
    assert_eq!(p.totals.prepaid, Some(Decimal::from(1000)));
}

#[test]
fn xrechnung_cii_fields() {
    let p = sample("xrechnung/01.01a-INVOICE_uncefact.xml");
    assert_eq!(p.invoice_number.as_deref(), Some("123456XX"));
    assert_eq!(p.issue_date, chrono::NaiveDate::from_ymd_opt(2016, 4, 4));
    assert_eq!(p.supplier.vat_id.as_deref(), Some("DE123456789"));
    assert_eq!(p.supplier.iban.as_deref(), Some("DE79000000001234567890"));
    assert_eq!(p.supplier.iban_valid, Some(true));
    assert_eq!(p.lines.len(), 2);
}

#[test]
fn zugferd_rounding_and_prepaid_are_allowed_for() {
    let p = sample("zugferd/EN16931_Rabatte.cii.xml");
    assert_eq!(p.totals.prepaid, Some(Decimal::from(50)));
    let p = sample("xrechnung/01.17a-INVOICE_uncefact.xml");
    assert_eq!(p.totals.payable, Some(Decimal::new(33691, 2)));
    assert!(!p.warnings.iter().any(|w| w.contains("amount due")), "{:?}", p.warnings);
}

// --- Hostile and broken input ----------------------------------------------------------------------

/// Parses `relative` from the samples, checking it returns within [`FAST`].
fn parse_hostile(relative: &str) -> ExtractError {
    let bytes = read(&samples_dir().join(relative));
    let started = Instant::now();
    let result = parse(&bytes);
    assert!(started.elapsed() < FAST, "{relative} took {:?}", started.elapsed());
    result.expect_err("hostile input must fail")
}

#[test]
fn billion_laughs_is_rejected() {
    let err = parse_hostile("hostile/billion-laughs.xml");
    assert!(matches!(&err, ExtractError::Rejected(m) if m.contains("DTD")), "{err}");
}

#[test]
fn external_entity_is_rejected() {
    let err = parse_hostile("hostile/xxe.xml");
    assert!(matches!(&err, ExtractError::Rejected(m) if m.contains("DTD")), "{err}");
}

#[test]
fn purchase_order_is_not_an_invoice() {
    let err = parse_hostile("hostile/order.xml");
    assert!(matches!(&err, ExtractError::NotAnInvoice(m) if m.contains("<Order>") && m.contains("Order-2")), "{err}");
}

#[test]
fn empty_file_is_malformed() {
    assert_eq!(parse_hostile("hostile/empty.xml"), ExtractError::Malformed("empty document".to_owned()));
}

#[test]
fn binary_garbage_is_malformed() {
    let err = parse_hostile("hostile/random.pdf");
    assert!(matches!(err, ExtractError::Malformed(_)), "{err}");
}

#[test]
fn syntax_errors_say_where() {
    let err = parse(b"<Invoice>\n  <ID>1</Id>\n</Invoice>").expect_err("mismatched tags");
    assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("2:")), "{err}");
    let bom = format!("\u{FEFF}<Invoice xmlns=\"{}\"/>", super::xml::UBL_INVOICE);
    let err = parse(bom.as_bytes()).expect_err("no totals");
    assert!(matches!(err, ExtractError::NotAnInvoice(_)), "a UTF-8 byte-order mark is fine: {err}");
    let err = parse(b"  \n ").expect_err("blank");
    assert_eq!(err, ExtractError::Malformed("empty document".to_owned()));
    let err = parse(&[0x3C, 0x61, 0xFF, 0x3E]).expect_err("not UTF-8");
    assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("UTF-8")), "{err}");
    let err = parse(&[0xFF, 0xFE, 0x3C, 0x00]).expect_err("UTF-16");
    assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("UTF-16")), "{err}");
}

#[test]
fn unknown_roots_are_not_invoices() {
    let err = parse(b"<html><body/></html>").expect_err("not an invoice");
    assert!(matches!(&err, ExtractError::NotAnInvoice(m) if m.contains("no namespace")), "{err}");
    // Right local name, wrong namespace.
    let err = parse(br#"<Invoice xmlns="urn:example:invoice"/>"#).expect_err("not UBL");
    assert!(matches!(err, ExtractError::NotAnInvoice(_)), "{err}");
    let err = parse(br#"<CrossIndustryDocument xmlns="urn:ferd:CrossIndustryDocument:invoice:1p0"/>"#)
        .expect_err("ZUGFeRD 1");
    assert!(matches!(err, ExtractError::Unsupported(_)), "{err}");
}

#[test]
fn too_many_nodes_is_rejected_fast() {
    let xml = format!("<r>{}</r>", "<a/>".repeat(super::NODES_LIMIT as usize + 1));
    let started = Instant::now();
    let err = parse(xml.as_bytes()).expect_err("over the node limit");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    assert!(matches!(err, ExtractError::Rejected(_)), "{err}");
}

#[test]
fn amounts_at_the_edge_of_the_decimal_range_are_refused_not_a_panic() {
    let xml = String::from_utf8(read(&samples_dir().join("peppol-bis3/base-example.xml"))).expect("UTF-8");
    for amount in ["79228162514264337593543950335", "-79228162514264337593543950335", "1000000000000000.01"] {
        let edged = xml
            .replace(">1656.25</cbc:PayableAmount>", &format!(">{amount}</cbc:PayableAmount>"))
            .replace(">1656.25</cbc:TaxInclusiveAmount>", &format!(">{amount}</cbc:TaxInclusiveAmount>"));
        assert_ne!(edged, xml);
        let err = parse(edged.as_bytes()).expect_err("out of range");
        assert!(matches!(&err, ExtractError::AmountOutOfRange(m) if m.contains(amount)), "{err}");
        assert_eq!(err.code(), shared::domain::ErrorCode::AmountOutOfRange);
    }
}
