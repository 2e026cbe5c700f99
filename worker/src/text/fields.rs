//! Header fields found by label: invoice number, issue and due dates, currency, payment
//! reference and document kind.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use shared::proposal::DocumentKind;

use super::Context;
use super::candidates::{Candidate, best};
use super::dates::dates;
use super::labels::{self, Labeled, labeled};
use super::numbers::regex;

/// A token that can be an invoice number: letters, digits and `/_.-`, with at least one digit.
static NUMBER_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[#:.\s]*([A-Za-z0-9][A-Za-z0-9/_.\-]*[A-Za-z0-9]|\d)"));
/// ISO 4217 codes common on European invoices.
static CURRENCY_CODE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(EUR|USD|GBP|CHF|INR|SEK|NOK|DKK|PLN|CZK|HUF|CAD|AUD|JPY|CNY)\b"));
/// A UNTDID 1001 document type code in brackets after the title: `Gutschrift (...) (389)`.
static TYPE_CODE: LazyLock<Regex> = LazyLock::new(|| regex(r"\((\d{3})\)"));
/// Titles of a credit note.
static CREDIT_NOTE_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:gutschrift|rechnungskorrektur|credit\s*note|creditnota|creditfactuur|avoir|facture\s+d'avoir|note\s+de\s+crédit)\b",
    )
});
/// Structured creditor reference (ISO 11649), checked like an IBAN.
static CREDITOR_REFERENCE: LazyLock<Regex> = LazyLock::new(|| regex(r"\bRF\d{2}[A-Z0-9]{1,21}\b"));

/// Words a number label is sometimes followed by that are not the number.
const NOT_A_NUMBER: [&str; 6] = ["vom", "du", "van", "of", "date", "datum"];

/// The invoice number: by label (`Rechnungsnr.`), else from the title (`Invoice INV/2023/03/0008`).
pub(crate) fn invoice_number(context: &Context<'_>) -> Option<Candidate<String>> {
    let mut candidates: Vec<Candidate<String>> = labeled(context.layout, &labels::INVOICE_NUMBER, 1)
        .into_iter()
        .filter_map(|found| number_token(context, &found.text).map(|n| Candidate::new(n, 0.85 * found.nearness)))
        .collect();
    for (at, cell) in context.layout.cells() {
        if at.cell > 1 {
            continue;
        }
        if let Some(m) = labels::INVOICE_TITLE.find(&cell.text) {
            let rest = &cell.text[m.end()..];
            if let Some(number) = number_token(context, rest) {
                candidates.push(Candidate::new(number, 0.6));
            }
        }
    }
    best(candidates)
}

/// The first token of `text` if it can be an invoice number (has a digit, is not a date).
fn number_token(context: &Context<'_>, text: &str) -> Option<String> {
    let text = text.trim_start_matches(['#', ':', '.', ' ', '-']);
    let word = text.split_whitespace().next()?;
    if NOT_A_NUMBER.contains(&word.to_lowercase().as_str()) {
        return None;
    }
    let token = NUMBER_TOKEN.captures(text)?.get(1)?.as_str().trim_end_matches(['.', '-']);
    let has_digit = token.chars().any(|c| c.is_ascii_digit());
    let is_date = !dates(token, context.date_order).is_empty();
    (has_digit && !is_date && (2..=40).contains(&token.len())).then(|| token.to_owned())
}

/// The issue date: by label, after the title (`Rechnung Nr. 1 vom 05.03.2018`), by a generic
/// `Datum:` label, else the first date on the first page that is not about something else.
pub(crate) fn issue_date(context: &Context<'_>) -> Option<Candidate<NaiveDate>> {
    let layout = context.layout;
    let mut candidates = dated(context, labeled(layout, &labels::ISSUE_DATE, 2), 0.9);
    for (_, cell) in layout.cells() {
        if let Some(m) = labels::TITLE_DATE.find(&cell.text)
            && !labels::OTHER_DATE_CONTEXT.is_match(&cell.text[..m.end()])
        {
            let first = dates(&cell.text[m.end()..], context.date_order).into_iter().next();
            candidates.extend(first.map(|d| Candidate::new(d.date, 0.75)));
        }
    }
    candidates.extend(dated(context, labeled(layout, &labels::GENERIC_DATE, 1), 0.6));
    if candidates.is_empty() {
        candidates.extend(first_plain_date(context).map(|date| Candidate::new(date, 0.3)));
    }
    best(candidates)
}

/// The due date: by label, else from payment terms (`zahlbar ... bis 04.04.2018`).
pub(crate) fn due_date(context: &Context<'_>) -> Option<Candidate<NaiveDate>> {
    let layout = context.layout;
    let mut candidates = dated(context, labeled(layout, &labels::DUE_DATE, 2), 0.85);
    if candidates.is_empty() {
        for line in &layout.lines {
            if let Some(m) = labels::TERMS_DUE_DATE.find(&line.text) {
                let first = dates(&line.text[m.end()..], context.date_order).into_iter().next();
                candidates.extend(first.map(|d| Candidate::new(d.date, 0.5)));
            }
        }
    }
    best(candidates)
}

/// The first date in each labeled text, scored `weight` × nearness.
fn dated(context: &Context<'_>, found: Vec<Labeled>, weight: f32) -> Vec<Candidate<NaiveDate>> {
    found
        .into_iter()
        .filter_map(|f| {
            let first = dates(&f.text, context.date_order).into_iter().next()?;
            // A date deep inside a long text is rarely the label's value.
            let near_start = f.text[..first.start].chars().filter(|c| c.is_alphabetic()).count() < 12;
            near_start.then(|| Candidate::new(first.date, weight * f.nearness))
        })
        .collect()
}

/// The first date on the first page whose line says nothing about orders, deliveries or terms.
fn first_plain_date(context: &Context<'_>) -> Option<NaiveDate> {
    context
        .layout
        .lines
        .iter()
        .filter(|line| line.page == 0 && !labels::OTHER_DATE_CONTEXT.is_match(&line.text))
        .find_map(|line| dates(&line.text, context.date_order).into_iter().next())
        .map(|d| d.date)
}

/// The currency: by label, else the most frequent code or symbol next to amounts, else the
/// one of the country the document names.
pub(crate) fn currency(context: &Context<'_>) -> Option<Candidate<String>> {
    let labeled_code = labeled(context.layout, &labels::CURRENCY, 1)
        .into_iter()
        .find_map(|f| CURRENCY_CODE.captures(&f.text).map(|c| c[1].to_owned()));
    if let Some(code) = labeled_code {
        return Some(Candidate::new(code, 0.9));
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    let codes = CURRENCY_CODE.captures_iter(&context.text).map(|c| c[1].to_owned());
    let marks = context.amounts().filter_map(|n| n.currency.map(str::to_owned));
    for code in codes.chain(marks) {
        match counts.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }
    let most = counts.into_iter().max_by_key(|(_, n)| *n);
    most.map(|(code, n)| Candidate::new(code, if n > 1 { 0.85 } else { 0.6 }))
        .or_else(|| country_currency(&context.text).map(|code| Candidate::new(code.to_owned(), 0.4)))
}

/// The currency of the first country named in `text`, for documents that print no currency.
fn country_currency(text: &str) -> Option<&'static str> {
    const COUNTRIES: [(&str, &str); 16] = [
        ("Deutschland", "EUR"),
        ("Germany", "EUR"),
        ("Nederland", "EUR"),
        ("Netherlands", "EUR"),
        ("France", "EUR"),
        ("Belgi", "EUR"),
        ("Österreich", "EUR"),
        ("Austria", "EUR"),
        ("India", "INR"),
        ("United States", "USD"),
        ("USA", "USD"),
        ("United Kingdom", "GBP"),
        ("Schweiz", "CHF"),
        ("Suisse", "CHF"),
        ("Switzerland", "CHF"),
        ("Luxembourg", "EUR"),
    ];
    COUNTRIES
        .iter()
        .filter_map(|(name, code)| text.find(name).map(|position| (position, *code)))
        .min_by_key(|(position, _)| *position)
        .map(|(_, code)| code)
}

/// The payment reference: by label, else a structured creditor reference (`RF18...`).
pub(crate) fn payment_reference(context: &Context<'_>) -> Option<Candidate<String>> {
    let labeled_reference = labeled(context.layout, &labels::PAYMENT_REFERENCE, 1).into_iter().find_map(|f| {
        let token = f.text.trim_start_matches([':', ' ', '.']).split("  ").next()?.trim();
        let plausible = token.chars().any(|c| c.is_ascii_digit()) && (4..=60).contains(&token.len());
        plausible.then(|| Candidate::new(token.to_owned(), 0.8 * f.nearness))
    });
    labeled_reference.or_else(|| {
        CREDITOR_REFERENCE
            .find_iter(&context.text)
            .map(|m| m.as_str())
            .find(|reference| is_rf(reference))
            .map(|reference| Candidate::new(reference.to_owned(), 0.8))
    })
}

/// Whether `reference` passes the ISO 11649 check (the IBAN mod-97 rule on `RFkk...`).
fn is_rf(reference: &str) -> bool {
    let rearranged: String = reference[4..].chars().chain(reference[..4].chars()).collect();
    let remainder = rearranged.chars().try_fold(0u32, |acc, c| {
        let value = c.to_digit(36)?;
        Some(if value < 10 { (acc * 10 + value) % 97 } else { (acc * 100 + value) % 97 })
    });
    remainder == Some(1)
}

/// Invoice or credit note, from the document's title (and its UNTDID type code when printed).
pub(crate) fn document_kind(context: &Context<'_>) -> DocumentKind {
    let title =
        context.layout.cells().map(|(_, c)| c).find(|c| {
            CREDIT_NOTE_TITLE.is_match(&c.text) || labels::INVOICE_TITLE.is_match(&c.text) && c.text.len() < 80
        });
    let Some(title) = title else { return DocumentKind::Invoice };
    if let Some(code) = TYPE_CODE.captures(&title.text) {
        return crate::einvoice::fields::document_kind(Some(&code[1]));
    }
    if CREDIT_NOTE_TITLE.is_match(&title.text) { DocumentKind::CreditNote } else { DocumentKind::Invoice }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creditor_reference_check() {
        assert!(is_rf("RF18539007547034"));
        assert!(!is_rf("RF19539007547034"));
    }
}
