//! Measured accuracy: `surge-worker eval DIR` reads every document that has a ground truth
//! beside it and compares the proposal with it, field by field.
//!
//! Two kinds of ground truth are understood:
//!
//! - `X.cii.xml` beside `X.pdf` (the ZUGFeRD corpus): the e-invoice embedded in the PDF, read by
//!   the CII reader. Every field it states is compared; with `--ignore-embedded` this scores
//!   the text route on the PDF's visible text.
//! - `X.json` beside `X.pdf` / `X.png` / `X.jpg` / `X.tif` (invoice2data's test set): the fields
//!   invoice2data's own tests expect. They map to proposal fields as follows: `issuer` →
//!   `supplier.name`, `invoice_number`, `date` → `issue_date`, `date_due` → `due_date`,
//!   `amount` → `totals.gross`, `amount_untaxed` → `totals.net`, `amount_tax` → `totals.tax`,
//!   `currency`, `vat` → `supplier.vat_id`, `iban` → `supplier.iban`, `payment_reference`, and
//!   `lines` → the line amounts (`price_subtotal`, else `qty` × `price`). The other keys
//!   (addresses, e-mail, telephone, BIC, order numbers, notes, ...) have no proposal field and
//!   are not scored; `partner_name` repeats `issuer`.
//!
//! Values are compared normalised: amounts by value, dates as dates, VAT ids and IBANs without
//! spaces and in upper case, invoice numbers without spaces or a leading `#`, names ignoring case,
//! spaces and trailing punctuation, the VAT breakdown as a set of (rate, base, tax) and lines as
//! the sorted list of their amounts. A field the ground truth does not state is not scored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use shared::chart::Chart;
use shared::domain::DocumentType;
use shared::proposal::BookingProposal;

use crate::einvoice;
use crate::extract::{self, ExtractOptions};

/// Fields of the accuracy targets for the text route on Factur-X PDFs: invoice number, dates,
/// totals and VAT breakdown.
pub(crate) const CORE_FIELDS: [&str; 10] = [
    "invoice_number",
    "issue_date",
    "due_date",
    "totals.line_total",
    "totals.net",
    "totals.tax",
    "totals.gross",
    "totals.prepaid",
    "totals.payable",
    "vat_breakdown",
];

/// Why an evaluation could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The folder holds no document with a ground truth beside it.
    #[error("no document with a ground truth beside it under {0}")]
    NothingToEvaluate(PathBuf),
}

/// An expected value, in the form it is compared in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Expected {
    /// A normalised string (see the module documentation).
    Text(String),
    /// An amount, trailing zeros removed.
    Amount(Decimal),
    Date(NaiveDate),
    /// (rate, taxable amount, tax amount), sorted.
    Breakdown(Vec<(Decimal, Decimal, Decimal)>),
    /// Line amounts, sorted.
    Lines(Vec<Decimal>),
}

/// One compared field of one document.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FieldResult {
    /// Proposal field name (`invoice_number`, `totals.gross`, ...).
    pub(crate) field: String,
    /// Whether the extracted value equals the expected one.
    pub(crate) right: bool,
    pub(crate) expected: Expected,
    /// What extraction gave, if anything.
    pub(crate) found: Option<Expected>,
}

/// The comparison for one document.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DocumentResult {
    /// The document evaluated.
    pub(crate) file: PathBuf,
    /// Why extraction failed, if it did (every field then counts as wrong).
    pub(crate) error: Option<String>,
    /// Every field the ground truth states.
    pub(crate) fields: Vec<FieldResult>,
}

/// Right and compared counts for one field over all documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct FieldAccuracy {
    /// Fields extracted right.
    pub(crate) right: usize,
    /// Fields compared.
    pub(crate) total: usize,
}

impl FieldAccuracy {
    /// Share right, from 0 to 1 (1 when nothing was compared).
    pub(crate) fn ratio(&self) -> f64 {
        if self.total == 0 { 1.0 } else { self.right as f64 / self.total as f64 }
    }
}

/// The evaluation of a folder.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One result per document with a ground truth, in path order.
    pub(crate) documents: Vec<DocumentResult>,
}

impl Report {
    /// Accuracy per field, by field name.
    pub(crate) fn per_field(&self) -> BTreeMap<String, FieldAccuracy> {
        let mut fields: BTreeMap<String, FieldAccuracy> = BTreeMap::new();
        for result in self.documents.iter().flat_map(|d| &d.fields) {
            let entry = fields.entry(result.field.clone()).or_default();
            entry.total += 1;
            entry.right += usize::from(result.right);
        }
        fields
    }

    /// Accuracy over every compared field.
    pub(crate) fn overall(&self) -> FieldAccuracy {
        self.sum(|_| true)
    }

    /// Accuracy over the [`CORE_FIELDS`].
    pub(crate) fn core(&self) -> FieldAccuracy {
        self.sum(|field| CORE_FIELDS.contains(&field))
    }

    fn sum(&self, include: impl Fn(&str) -> bool) -> FieldAccuracy {
        self.per_field().into_iter().filter(|(field, _)| include(field)).fold(
            FieldAccuracy::default(),
            |acc, (_, f)| FieldAccuracy { right: acc.right + f.right, total: acc.total + f.total },
        )
    }

    /// A plain-text table: per field, then core and overall, then every wrong field.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} documents\n\n{:<22} {:>6} {:>6} {:>8}\n",
            self.documents.len(),
            "field",
            "right",
            "total",
            "accuracy"
        );
        let row = |name: &str, a: &FieldAccuracy| {
            format!("{name:<22} {:>6} {:>6} {:>7.1}%\n", a.right, a.total, a.ratio() * 100.0)
        };
        for (field, accuracy) in self.per_field() {
            out.push_str(&row(&field, &accuracy));
        }
        out.push('\n');
        out.push_str(&row("core fields", &self.core()));
        out.push_str(&row("overall", &self.overall()));
        let wrong: Vec<String> = self
            .documents
            .iter()
            .flat_map(|d| {
                let name = d.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let error = d.error.iter().map(move |e| format!("  {}: failed: {e}", d.file.display()));
                let misses = d.fields.iter().filter(|f| !f.right).map(move |f| {
                    format!(
                        "  {name}: {} expected {} found {}",
                        f.field,
                        show(Some(&f.expected)),
                        show(f.found.as_ref())
                    )
                });
                error.chain(misses).collect::<Vec<_>>()
            })
            .collect();
        if !wrong.is_empty() {
            out.push_str("\nwrong:\n");
            out.push_str(&wrong.join("\n"));
            out.push('\n');
        }
        out
    }
}

fn show(value: Option<&Expected>) -> String {
    match value {
        None => "nothing".to_owned(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Evaluates every document with a ground truth under `dir` (recursively).
pub fn evaluate(dir: &Path, options: &ExtractOptions) -> Result<Report, EvalError> {
    let mut documents = Vec::new();
    for file in files(dir)? {
        let Some((document_type, truth)) = ground_truth(&file)? else { continue };
        documents.push(evaluate_one(&file, document_type, &truth, options)?);
    }
    if documents.is_empty() {
        return Err(EvalError::NothingToEvaluate(dir.to_owned()));
    }
    Ok(Report { documents })
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let io = |source| EvalError::Io { path: dir.to_owned(), source };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            found.extend(files(&path)?);
        } else {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The document type and expected fields of `file`, when it is a document with a ground truth.
/// Expected values by field name.
type Truth = Vec<(String, Expected)>;

fn ground_truth(file: &Path) -> Result<Option<(DocumentType, Truth)>, EvalError> {
    let Some(document_type) = document_type(file) else { return Ok(None) };
    let read = |path: &Path| std::fs::read(path).map_err(|source| EvalError::Io { path: path.to_owned(), source });
    let cii = file.with_extension("cii.xml");
    if document_type == DocumentType::Pdf && cii.is_file() {
        let Ok(truth) = einvoice::parse(&read(&cii)?) else { return Ok(None) };
        return Ok(Some((document_type, expected_from_proposal(&truth))));
    }
    let json = file.with_extension("json");
    if json.is_file() {
        let value: serde_json::Value = serde_json::from_slice(&read(&json)?).unwrap_or_default();
        let first = value.as_array().and_then(|a| a.first()).cloned().unwrap_or(value);
        return Ok(Some((document_type, expected_from_invoice2data(&first))));
    }
    Ok(None)
}

fn document_type(file: &Path) -> Option<DocumentType> {
    let extension = file.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "pdf" => Some(DocumentType::Pdf),
        "png" => Some(DocumentType::Png),
        "jpg" | "jpeg" => Some(DocumentType::Jpeg),
        "tif" | "tiff" => Some(DocumentType::Tiff),
        _ => None,
    }
}

fn evaluate_one(
    file: &Path,
    document_type: DocumentType,
    truth: &[(String, Expected)],
    options: &ExtractOptions,
) -> Result<DocumentResult, EvalError> {
    let bytes = std::fs::read(file).map_err(|source| EvalError::Io { path: file.to_owned(), source })?;
    let (found, error) = match extract::extract_with(&bytes, document_type, &Chart::default(), options) {
        Ok(proposal) => (expected_from_proposal(&proposal).into_iter().collect::<BTreeMap<_, _>>(), None),
        Err(error) => (BTreeMap::new(), Some(error.to_string())),
    };
    let fields = truth
        .iter()
        .map(|(field, expected)| {
            let found = found.get(field).cloned();
            FieldResult {
                field: field.clone(),
                right: found.as_ref() == Some(expected),
                expected: expected.clone(),
                found,
            }
        })
        .collect();
    Ok(DocumentResult { file: file.to_owned(), error, fields })
}

/// Every field a proposal states, normalised for comparison.
fn expected_from_proposal(p: &BookingProposal) -> Vec<(String, Expected)> {
    let mut fields: Vec<(String, Expected)> = Vec::new();
    let mut text = |name: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            fields.push((name.to_owned(), Expected::Text(value)));
        }
    };
    text("invoice_number", p.invoice_number.as_deref().map(invoice_number));
    text("currency", p.currency.as_deref().map(str::to_uppercase));
    text("payment_reference", p.payment_reference.as_deref().map(compact));
    text("supplier.name", p.supplier.name.as_deref().map(name));
    text("supplier.vat_id", p.supplier.vat_id.as_deref().map(compact));
    text("supplier.iban", p.supplier.iban.as_deref().map(compact));
    text("customer.name", p.customer.name.as_deref().map(name));
    text("customer.vat_id", p.customer.vat_id.as_deref().map(compact));
    text("document_kind", Some(format!("{:?}", p.document_kind).to_lowercase()));
    for (field, date) in [("issue_date", p.issue_date), ("due_date", p.due_date)] {
        fields.extend(date.map(|d| (field.to_owned(), Expected::Date(d))));
    }
    let t = &p.totals;
    let totals = [
        ("totals.line_total", t.line_total),
        ("totals.net", t.net),
        ("totals.tax", t.tax),
        ("totals.gross", t.gross),
        ("totals.prepaid", t.prepaid),
        ("totals.payable", t.payable),
    ];
    for (field, amount) in totals {
        fields.extend(amount.map(|a| (field.to_owned(), Expected::Amount(a.normalize()))));
    }
    if !p.vat_breakdown.is_empty() {
        let mut entries: Vec<(Decimal, Decimal, Decimal)> = p
            .vat_breakdown
            .iter()
            .map(|b| (b.rate.normalize(), b.taxable_amount.normalize(), b.tax_amount.normalize()))
            .collect();
        entries.sort();
        fields.push(("vat_breakdown".to_owned(), Expected::Breakdown(entries)));
    }
    if !p.lines.is_empty() {
        fields.push(("lines".to_owned(), Expected::Lines(sorted(p.lines.iter().map(|l| l.net_amount)))));
    }
    fields
}

/// The fields of an invoice2data ground truth that the proposal has, normalised.
fn expected_from_invoice2data(truth: &serde_json::Value) -> Vec<(String, Expected)> {
    let string = |key: &str| truth.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let amount = |key: &str| truth.get(key).and_then(json_decimal);
    let date = |key: &str| string(key).and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
    let mut fields: Vec<(String, Expected)> = Vec::new();
    let texts = [
        ("supplier.name", string("issuer").map(|s| name(&s))),
        ("invoice_number", string("invoice_number").map(|s| invoice_number(&s))),
        ("currency", string("currency").map(|s| s.to_uppercase())),
        ("supplier.vat_id", string("vat").map(|s| compact(&s))),
        ("supplier.iban", string("iban").map(|s| compact(&s))),
        ("payment_reference", string("payment_reference").map(|s| compact(&s))),
    ];
    for (field, value) in texts {
        fields.extend(value.map(|v| (field.to_owned(), Expected::Text(v))));
    }
    for (field, key) in [("issue_date", "date"), ("due_date", "date_due")] {
        fields.extend(date(key).map(|d| (field.to_owned(), Expected::Date(d))));
    }
    for (field, key) in [("totals.gross", "amount"), ("totals.net", "amount_untaxed"), ("totals.tax", "amount_tax")] {
        fields.extend(amount(key).map(|a| (field.to_owned(), Expected::Amount(a))));
    }
    let lines: Vec<Decimal> = truth
        .get("lines")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|line| {
            let subtotal = line.get("price_subtotal").and_then(json_decimal);
            let price = line.get("price").and_then(json_decimal);
            let quantity = line.get("qty").and_then(json_decimal).unwrap_or(Decimal::ONE);
            subtotal.or(price.map(|p| (p * quantity).normalize()))
        })
        .collect();
    if !lines.is_empty() {
        fields.push(("lines".to_owned(), Expected::Lines(sorted(lines.into_iter()))));
    }
    fields
}

/// A JSON number or numeric string as an exact decimal (through its printed form, never a float
/// computation).
fn json_decimal(value: &serde_json::Value) -> Option<Decimal> {
    let text = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    text.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(&text).ok()).map(|d| d.normalize())
}

fn sorted(amounts: impl Iterator<Item = Decimal>) -> Vec<Decimal> {
    let mut amounts: Vec<Decimal> = amounts.map(|a| a.normalize()).collect();
    amounts.sort();
    amounts
}

/// Without whitespace, upper case: VAT ids, IBANs, references.
fn compact(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

/// An invoice number without whitespace and a leading `#`, upper case.
fn invoice_number(value: &str) -> String {
    compact(value.trim().trim_start_matches('#'))
}

/// A name in lower case with single spaces and no trailing punctuation.
fn name(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches(['.', ',', ';', ':']).to_lowercase()
}

#[cfg(test)]
mod tests;
