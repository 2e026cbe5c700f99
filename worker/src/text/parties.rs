//! Supplier and customer: names, VAT identifiers and the payee IBAN.
//!
//! Names come from a labeled block (`Verkäufer ... Name:`, `Sold By:`, `Bill to`), the sender
//! line above the address window (`QualityHosting AG - Uferweg 40-42 - D-63571 Gelnhausen`),
//! a legal form (`GmbH`, `B.V.`, `SARL`, `Ltd`), or the first address block on the first page.
//! Anything inside the buyer's block belongs to the customer.

use std::sync::LazyLock;

use regex::Regex;
use shared::proposal::Party;

use super::Context;
use super::candidates::{Candidate, best, confidence};
use super::labels::{self, labeled};
use super::layout::{At, Cell, Layout};
use super::numbers::regex;
use crate::einvoice::iban_is_valid;

/// Company legal forms in the four languages' countries and beyond.
static LEGAL_FORM: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"\b(?:GmbH(?:\s*&\s*Co\.?\s*KG)?|GMBH|Gmbh|AG|KG|OHG|UG|e\.\s?K\.|GbR|B\.V\.|BV|N\.V\.|NV|V\.O\.F\.|VOF|SARL|S\.A\.R\.L\.|SAS|S\.A\.S\.|S\.A\.|SA|EURL|SNC|Ltd\.?|LTD|Limited|LLC|L\.L\.C\.|Inc\.?|Corp\.?|PLC|LLP|Pvt\.?\s*Ltd\.?|Oy|AB|A/S|ApS|S\.r\.l\.|S\.p\.A\.|BVBA|SRL)(?:$|[\s,.;)])",
    )
});
/// The sender line above an address window: `Name - Street 1 - 12345 City`.
static SENDER_LINE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^([^-–|•·]{3,60}?)\s+[-–|•·]\s+\S.*\b[A-Z]?-?\d{4,5}\b"));
/// VAT identifiers of European countries, spaces allowed where they are usually printed.
static VAT_ID: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"\b(?:DE\s?\d{3}\s?\d{3}\s?\d{3}|ATU\s?\d{8}|NL\s?\d{9}\s?B\s?\d{2}|BE\s?[01]\d{3}[.\s]?\d{3}[.\s]?\d{3}|FR\s?[0-9A-HJ-NP-Z]{2}\s?\d{3}\s?\d{3}\s?\d{3}|GB\s?\d{3}\s?\d{4}\s?\d{2}(?:\s?\d{3})?|LU\s?\d{8}|IT\s?\d{11}|ES\s?[A-Z0-9]\d{7}[A-Z0-9]|CHE[-\s]?\d{3}[.\s]?\d{3}[.\s]?\d{3}|DK\s?\d{8}|SE\s?\d{12}|PL\s?\d{10}|PT\s?\d{9}|IE\s?\d[0-9A-Z+*]\d{5}[A-Z]{1,2}|CZ\s?\d{8,10})\b",
    )
});
/// Where an IBAN may start: country code and check digits.
static IBAN_START: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[A-Z]{2}\d{2}"));
/// A street with a house number, or a postcode with a city: evidence of an address line.
static ADDRESS_LINE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?:\p{L}{3,}\.?\s+\d{1,5}[a-zA-Z]?\b|^\d{1,5}[a-zA-Z]?\s+\p{L}{2,}|\b[A-Z]{0,2}-?\d{4,5}(?:\s?[A-Z]{2})?\s+\p{L}{2,}|\b\p{L}{2,}\s+[A-Z]{2}\s+\d{5}\b)",
    )
});

/// Lines after a section heading that still belong to its block.
const BLOCK_LINES: usize = 10;
/// Lines at the top of the first page where letterheads and address windows are.
const HEAD_LINES: usize = 25;

/// What was found about both parties.
#[derive(Debug, Default)]
pub(crate) struct Parties {
    pub(crate) supplier: Party,
    pub(crate) customer: Party,
    /// Confidence per proposal field name.
    pub(crate) confidence: Vec<(&'static str, f32)>,
    pub(crate) warnings: Vec<String>,
}

/// A party's block: lines below a section heading, from its column on.
#[derive(Debug, Clone, Copy)]
struct Block {
    heading: At,
    last_line: usize,
    column: usize,
}

impl Block {
    fn contains(&self, at: At, layout: &Layout) -> bool {
        if self.last_line == self.heading.line {
            return at == self.heading;
        }
        let cell = layout.cell(at);
        (self.heading.line..=self.last_line).contains(&at.line) && cell.start + 2 >= self.column
    }
}

/// Finds both parties in the document.
pub(crate) fn parties(context: &Context<'_>) -> Parties {
    let layout = context.layout;
    let sellers = blocks(layout, &labels::SELLER_SECTION);
    let buyers = blocks(layout, &labels::BUYER_SECTION);
    let in_buyer = |at: At| buyers.iter().any(|b| b.contains(at, layout));
    let in_seller = |at: At| sellers.iter().any(|b| b.contains(at, layout));

    let mut found = Parties::default();
    let supplier_name = supplier_name(layout, &sellers, &in_buyer);
    let customer_name = customer_name(layout, &buyers, supplier_name.as_ref().map(|c| c.value.as_str()));
    let (supplier_vat, customer_vat) = vat_ids(layout, &in_buyer, &in_seller);
    let iban = iban(layout, &in_buyer);

    if let Some(name) = supplier_name {
        found.confidence.push(("supplier.name", confidence(name.score)));
        found.supplier.name = Some(name.value);
    }
    if let Some(name) = customer_name {
        found.confidence.push(("customer.name", confidence(name.score)));
        found.customer.name = Some(name.value);
    }
    if let Some(vat) = supplier_vat {
        found.confidence.push(("supplier.vat_id", confidence(vat.score)));
        found.supplier.vat_id = Some(vat.value);
    }
    if let Some(vat) = customer_vat {
        found.confidence.push(("customer.vat_id", confidence(vat.score)));
        found.customer.vat_id = Some(vat.value);
    }
    if let Some(account) = iban {
        let valid = iban_is_valid(&account.value);
        if !valid {
            found.warnings.push(format!(
                "payee account {} is not a valid IBAN (ISO 13616 checksum fails); check it before paying",
                account.value
            ));
        }
        found.confidence.push(("supplier.iban", confidence(account.score)));
        found.supplier.iban = Some(account.value);
        found.supplier.iban_valid = Some(valid);
    }
    found
}

/// The blocks under every heading matching `heading`. A heading with its value in the same
/// cell (`Klant: De Vries`) is a block of that cell alone.
fn blocks(layout: &Layout, heading: &Regex) -> Vec<Block> {
    layout
        .cells()
        .filter_map(|(at, cell)| heading.find(&cell.text).map(|m| (at, cell, m.end() < cell.text.len())))
        .map(|(at, cell, inline)| {
            if inline {
                return Block { heading: at, last_line: at.line, column: cell.start };
            }
            let page = layout.lines[at.line].page;
            let mut last_line = at.line;
            let mut blanks = 0;
            for (index, line) in layout.lines.iter().enumerate().skip(at.line + 1).take(BLOCK_LINES) {
                if line.page != page || blanks >= 2 {
                    break;
                }
                if line.is_blank() {
                    blanks += 1;
                } else {
                    blanks = 0;
                    last_line = index;
                }
            }
            Block { heading: at, last_line, column: cell.start }
        })
        .collect()
}

/// The supplier's name from every kind of evidence, the buyer's block excluded.
fn supplier_name(layout: &Layout, sellers: &[Block], in_buyer: &dyn Fn(At) -> bool) -> Option<Candidate<String>> {
    let mut candidates: Vec<Candidate<String>> = sellers.iter().filter_map(|b| block_name(layout, b)).collect();
    for (at, cell) in layout.cells() {
        if in_buyer(at) {
            continue;
        }
        let line = &layout.lines[at.line];
        let head = line.page == 0 && at.line < HEAD_LINES;
        if head && let Some(name) = SENDER_LINE.captures(&cell.text).and_then(|c| name_like(&c[1])) {
            candidates.push(Candidate::new(name, 0.75));
        }
        if let Some(name) = legal_form_name(&cell.text) {
            let letterhead = if head && at.line < 12 { 0.1 } else { 0.0 };
            candidates.push(Candidate::new(name, 0.55 + letterhead));
        }
    }
    let blocks = address_blocks(layout).into_iter().filter(|at| !in_buyer(*at));
    for (rank, at) in blocks.take(3).enumerate() {
        if let Some(name) = name_like(&layout.cell(at).text) {
            candidates.push(Candidate::new(name, 0.45 - 0.1 * rank as f32));
        }
    }
    best(candidates)
}

/// The customer's name: from the buyer's block, else the first address block that is not the
/// supplier's.
fn customer_name(layout: &Layout, buyers: &[Block], supplier: Option<&str>) -> Option<Candidate<String>> {
    let from_block = buyers.iter().filter_map(|b| block_name(layout, b)).collect::<Vec<_>>();
    if let Some(name) = best(from_block) {
        return Some(Candidate::new(name.value, name.score - 0.05));
    }
    address_blocks(layout)
        .into_iter()
        .filter_map(|at| name_like(&layout.cell(at).text))
        .find(|name| Some(name.as_str()) != supplier && !supplier.is_some_and(|s| s.contains(name.as_str())))
        .map(|name| Candidate::new(name, 0.3))
}

/// The name in a party's block: after `Name:`, after the heading itself (`Sold By : X`), or
/// the block's first line.
fn block_name(layout: &Layout, block: &Block) -> Option<Candidate<String>> {
    let heading = layout.cell(block.heading);
    let inline = labels::SELLER_SECTION
        .find(&heading.text)
        .or_else(|| labels::BUYER_SECTION.find(&heading.text))
        .and_then(|m| name_like(&heading.text[m.end()..]));
    if let Some(name) = inline {
        return Some(Candidate::new(name, 0.85));
    }
    let cells_in_block = || {
        layout
            .cells()
            .filter(|(at, _)| at.line > block.heading.line && block.contains(*at, layout))
            .filter(|(at, _)| at.line <= block.last_line)
    };
    let labeled_name = cells_in_block().find_map(|(at, cell)| {
        let m = labels::NAME.find(&cell.text)?;
        name_like(&cell.text[m.end()..]).or_else(|| name_like(&layout.right_of(at)))
    });
    if let Some(name) = labeled_name {
        return Some(Candidate::new(name, 0.9));
    }
    let below: Vec<(At, &Cell)> = layout.below(block.heading, 2);
    below.into_iter().find_map(|(_, cell)| name_like(&cell.text)).map(|name| Candidate::new(name, 0.7))
}

/// The name up to and including a legal form in `text`, if it has one.
fn legal_form_name(text: &str) -> Option<String> {
    let m = LEGAL_FORM.find(text)?;
    let end = m.end()
        - m.as_str().chars().next_back().filter(|c| matches!(c, ' ' | ',' | ';' | ')')).map_or(0, char::len_utf8);
    let name = text[..end].trim();
    if name.contains(':') || name.split_whitespace().count() > 8 {
        return None;
    }
    name_like(name).filter(|n| n.chars().filter(|c| c.is_alphabetic()).count() > m.as_str().len())
}

/// `text` cleaned up if it can be a party's name: some letters, few digits, not a label.
fn name_like(text: &str) -> Option<String> {
    let name = text.trim().trim_start_matches([':', '-', ' ']).trim_end_matches([',', ';', ':', ' ']);
    let letters = name.chars().filter(|c| c.is_alphabetic()).count();
    let digits = name.chars().filter(char::is_ascii_digit).count();
    let is_label = [
        &labels::SELLER_SECTION,
        &labels::BUYER_SECTION,
        &labels::NAME,
        &labels::INVOICE_TITLE,
        &labels::INVOICE_NUMBER,
        &labels::ISSUE_DATE,
    ]
    .iter()
    .any(|label| label.is_match(name));
    let plausible = letters >= 3 && digits <= 2 && name.chars().count() <= 60 && !name.contains('@') && !is_label;
    plausible.then(|| name.to_owned())
}

/// Cells at the top of the first page that start an address block: a name over one to three
/// lines of street and postcode in the same column, in reading order.
fn address_blocks(layout: &Layout) -> Vec<At> {
    layout
        .cells()
        .filter(|(at, cell)| {
            let line = &layout.lines[at.line];
            line.page == 0
                && at.line < HEAD_LINES
                && !ADDRESS_LINE.is_match(&cell.text)
                && name_like(&cell.text).is_some()
        })
        .filter(|(at, _)| {
            let below = layout.below(*at, 3);
            let first_below = below.first().map(|(b, _)| b.line);
            first_below.is_some_and(|line| line <= at.line + 2)
                && below.iter().any(|(_, cell)| ADDRESS_LINE.is_match(&cell.text))
        })
        .map(|(at, _)| at)
        .collect()
}

/// Supplier and customer VAT identifiers: in the buyer's block or next to a buyer word it is the
/// customer's, otherwise the supplier's (one in the seller's block preferred).
fn vat_ids(
    layout: &Layout,
    in_buyer: &dyn Fn(At) -> bool,
    in_seller: &dyn Fn(At) -> bool,
) -> (Option<Candidate<String>>, Option<Candidate<String>>) {
    let mut supplier = Vec::new();
    let mut customer = Vec::new();
    for (at, cell) in layout.cells() {
        for m in VAT_ID.find_iter(&cell.text) {
            let vat_id = crate::einvoice::fields::vat_id(m.as_str());
            let context = format!("{} {}", previous_cell(layout, at), &cell.text[..m.start()]);
            if in_buyer(at) || labels::BUYER_CONTEXT.is_match(&context) {
                customer.push(Candidate::new(vat_id, 0.8));
            } else {
                let score = if in_seller(at) { 0.9 } else { 0.75 };
                supplier.push(Candidate::new(vat_id, score));
            }
        }
    }
    (best(supplier), best(customer))
}

/// The text of the cell left of `at`, or nothing.
fn previous_cell(layout: &Layout, at: At) -> &str {
    match at.cell.checked_sub(1) {
        Some(cell) => &layout.lines[at.line].cells[cell].text,
        None => "",
    }
}

/// The payee IBAN: a valid one outside the buyer's context, else an account number after an
/// account label (kept, and flagged invalid, so a person can check it).
fn iban(layout: &Layout, in_buyer: &dyn Fn(At) -> bool) -> Option<Candidate<String>> {
    let mut candidates = Vec::new();
    for (at, cell) in layout.cells() {
        let context = format!("{} {}", previous_cell(layout, at), cell.text);
        if in_buyer(at) || labels::BUYER_CONTEXT.is_match(&context) {
            continue;
        }
        let labeled_here = labels::BANK_ACCOUNT.is_match(&context);
        for start in IBAN_START.find_iter(&cell.text) {
            let (run, valid) = iban_at(&cell.text[start.start()..]);
            match (valid, labeled_here) {
                (Some(iban), _) => candidates.push(Candidate::new(iban, if labeled_here { 0.95 } else { 0.85 })),
                (None, true) if run.len() >= 15 => candidates.push(Candidate::new(run, 0.5)),
                _ => {}
            }
        }
    }
    if candidates.is_empty() {
        candidates = labeled(layout, &labels::BANK_ACCOUNT, 0)
            .into_iter()
            .filter_map(|f| account_token(&f.text).map(|account| Candidate::new(account, 0.3 * f.nearness)))
            .collect();
    }
    best(candidates)
}

/// The alphanumeric run from the start of `text` (single spaces allowed between groups, at most
/// 34 characters), and the longest prefix of it at a group boundary that is a valid IBAN.
fn iban_at(text: &str) -> (String, Option<String>) {
    let mut run = String::new();
    let mut boundaries = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() && run.len() < 34 {
            run.push(c.to_ascii_uppercase());
        } else if c == ' ' && chars.peek().is_some_and(char::is_ascii_alphanumeric) && run.len() < 34 {
            boundaries.push(run.len());
        } else {
            break;
        }
    }
    boundaries.push(run.len());
    let valid = boundaries.iter().rev().map(|&end| &run[..end]).find(|prefix| iban_is_valid(prefix)).map(str::to_owned);
    let first_group_end = boundaries.first().copied().unwrap_or(run.len());
    let whole = if boundaries.len() > 1 || first_group_end >= 15 { run } else { String::new() };
    (whole, valid)
}

/// An account number after a label: letters and digits, with at least six digits.
fn account_token(text: &str) -> Option<String> {
    let token = text.trim_start_matches([':', ' ', '.']).split_whitespace().next()?;
    let token = token.trim_end_matches([',', '.', ';']);
    let digits = token.chars().filter(char::is_ascii_digit).count();
    (digits >= 6 && token.len() <= 34 && token.chars().all(|c| c.is_ascii_alphanumeric())).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_forms() {
        assert_eq!(legal_form_name("Coolblue B.V.").as_deref(), Some("Coolblue B.V."));
        assert_eq!(legal_form_name("WS Retail Services Pvt. Ltd.,").as_deref(), Some("WS Retail Services Pvt. Ltd."));
        assert_eq!(legal_form_name("Lieferant GmbH").as_deref(), Some("Lieferant GmbH"));
        assert_eq!(legal_form_name("Geschäftsführer: Hans Muster"), None);
        assert_eq!(legal_form_name("Agentur"), None);
    }

    #[test]
    fn ibans_with_spaces() {
        assert_eq!(iban_at("DE02 1203 0000 0000 2020 51 BIC").1.as_deref(), Some("DE02120300000000202051"));
        assert_eq!(iban_at("NL50INGB0683251309").1.as_deref(), Some("NL50INGB0683251309"));
        let (run, valid) = iban_at("DE12 1234 5678 9012 3456 78");
        assert_eq!((run.as_str(), valid), ("DE12123456789012345678", None));
    }

    #[test]
    fn vat_id_shapes() {
        for vat in ["DE123456789", "DE 232 446 240", "NL810433941B01", "FR11999999998", "ATU12345678"] {
            assert!(VAT_ID.is_match(vat), "{vat}");
        }
        assert!(!VAT_ID.is_match("DE30507500940000048567"));
    }
}
