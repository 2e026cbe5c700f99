//! The booking proposal: what a worker makes of one invoice, ready for a bookkeeper to accept.
//!
//! Every amount is a [`Decimal`] serialised as a string (`"1234.50"`), never a float. Fields that
//! could not be found are `None`; how sure the extractor is about each field is in
//! [`BookingProposal::confidence`], and anything that did not add up is in
//! [`BookingProposal::warnings`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Version of the proposal's JSON shape, bumped on incompatible changes.
pub const PROPOSAL_SCHEMA_VERSION: u32 = 1;

/// A booking proposal for one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BookingProposal {
    /// Shape version, see [`PROPOSAL_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Where the data came from; tells the reader how far to trust it.
    pub source_format: SourceFormat,
    /// Invoice or credit note. A credit note's amounts are stated positive, as on the document;
    /// its journal entries are reversed.
    pub document_kind: DocumentKind,
    pub supplier: Party,
    pub customer: Party,
    pub invoice_number: Option<String>,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    /// ISO 4217 code of the document currency, e.g. `EUR`.
    pub currency: Option<String>,
    /// Free-text payment reference (structured creditor reference or remittance text).
    pub payment_reference: Option<String>,
    pub lines: Vec<InvoiceLine>,
    /// One entry per VAT category and rate, as the document states it.
    pub vat_breakdown: Vec<VatBreakdown>,
    pub totals: Totals,
    /// Suggested double-entry booking; debits always equal credits.
    pub journal_entries: Vec<JournalEntry>,
    /// Confidence per field name (`invoice_number`, `totals.gross`, ...), from 0 to 1.
    pub confidence: BTreeMap<String, f32>,
    /// Human-readable notes about anything that did not add up or was assumed.
    pub warnings: Vec<String>,
}

/// Which route produced the proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// OASIS UBL 2.1 (Peppol BIS 3, XRechnung UBL).
    Ubl,
    /// UN/CEFACT Cross Industry Invoice (XRechnung CII, Factur-X, ZUGFeRD).
    Cii,
    /// CII embedded in a PDF (Factur-X / ZUGFeRD).
    FacturX,
    /// Text layer of a PDF, read without templates.
    PdfText,
    /// OCR of a scanned image or image-only PDF.
    Ocr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Invoice,
    CreditNote,
}

/// A trading party as far as bookkeeping needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Party {
    pub name: Option<String>,
    /// VAT identifier including its country prefix, e.g. `DE123456789`.
    pub vat_id: Option<String>,
    /// Payee account; for the customer usually `None`.
    pub iban: Option<String>,
    /// Whether `iban` passed the ISO 13616 mod-97 check.
    pub iban_valid: Option<bool>,
}

/// One invoice line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    pub description: Option<String>,
    pub quantity: Option<Decimal>,
    pub unit_price: Option<Decimal>,
    /// Line net amount (after line allowances and charges).
    pub net_amount: Decimal,
    /// VAT rate in percent, e.g. `19` or `7.5`.
    pub vat_rate: Option<Decimal>,
}

/// Taxable base and tax for one VAT category and rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VatBreakdown {
    /// UNCL5305 category code (`S` standard, `Z` zero, `E` exempt, `AE` reverse charge, ...).
    pub category: Option<String>,
    /// Rate in percent.
    pub rate: Decimal,
    pub taxable_amount: Decimal,
    pub tax_amount: Decimal,
}

/// Document-level totals, in the document currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// Sum of line net amounts, before document-level allowances and charges.
    pub line_total: Option<Decimal>,
    /// Total without VAT (after document-level allowances and charges).
    pub net: Option<Decimal>,
    /// Total VAT.
    pub tax: Option<Decimal>,
    /// Total with VAT.
    pub gross: Option<Decimal>,
    /// Amount already paid.
    pub prepaid: Option<Decimal>,
    /// Amount still due (gross - prepaid + rounding).
    pub payable: Option<Decimal>,
}

/// One posting of the suggested booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JournalEntry {
    /// Ledger account number in the tenant's chart.
    pub account: String,
    pub account_name: String,
    pub debit: Decimal,
    pub credit: Decimal,
    pub description: String,
}

impl BookingProposal {
    /// An empty proposal for `source_format`, to be filled by an extractor.
    pub fn empty(source_format: SourceFormat) -> BookingProposal {
        BookingProposal {
            schema_version: PROPOSAL_SCHEMA_VERSION,
            source_format,
            document_kind: DocumentKind::Invoice,
            supplier: Party::default(),
            customer: Party::default(),
            invoice_number: None,
            issue_date: None,
            due_date: None,
            currency: None,
            payment_reference: None,
            lines: Vec::new(),
            vat_breakdown: Vec::new(),
            totals: Totals::default(),
            journal_entries: Vec::new(),
            confidence: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether the journal entries balance (debits equal credits).
    pub fn is_balanced(&self) -> bool {
        let debit: Decimal = self.journal_entries.iter().map(|e| e.debit).sum();
        let credit: Decimal = self.journal_entries.iter().map(|e| e.credit).sum();
        debit == credit
    }
}
