//! Line items: rows of the items table under a header such as `Beschreibung ... Menge ...
//! Nettobetrag` or `Description Quantity Unit Price ... Amount`.
//!
//! A row's amount is the money amount printed in the header's rightmost column, on the row's
//! own line or alone on the line below it (as Factur-X renderings print it). Quantity and unit
//! price are the pair of other numbers on the row whose product (less a printed discount) gives
//! that amount.

use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;
use shared::proposal::InvoiceLine;

use super::Context;
use super::amounts::Role;
use super::layout::{Cell, Line};
use super::numbers::{Number, numbers, regex};

/// Column headings of the description column.
static DESCRIPTION_HEADING: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:description|beschreibung|bezeichnung|omschrijving|artikel|article|désignation|designation|product|produkt|item|title|leistung|libellé|prestation)\b",
    )
});
/// Column headings of quantity, price or amount columns.
static FIGURE_HEADING: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:qty|quantity|menge|anzahl|aantal|quantité|qté|price|unit\s+price|preis|einzelpreis|nettopreis|vk-preis|prijs|prix|amount|betrag|bedrag|montant|total|totaal|nettobetrag|zeilenbetrag|gesamtpreis)\b",
    )
});
/// How far (in characters) an amount's right edge may be from the amount column's.
const COLUMN_SLACK: usize = 4;
/// Rows scanned after a header before the table is given up.
const TABLE_LINES: usize = 120;

/// The line items of every items table in the document.
pub(crate) fn items(context: &Context<'_>) -> Vec<InvoiceLine> {
    let lines = &context.layout.lines;
    let mut items = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if let Some(column) = amount_column(&lines[index]) {
            let (table, next) = table(context, index + 1, column);
            items.extend(table);
            index = next;
        } else {
            index += 1;
        }
    }
    items
}

/// The amount column of a header line (its rightmost cell) if the line is an items header.
fn amount_column(line: &Line) -> Option<&Cell> {
    let description = line.cells.iter().any(|c| DESCRIPTION_HEADING.is_match(&c.text));
    let figures = line.cells.iter().filter(|c| FIGURE_HEADING.is_match(&c.text)).count();
    (description && figures >= 1 && line.cells.len() >= 3).then(|| line.cells.last()).flatten()
}

/// The rows of one table from line `from` on, and the line after the table.
fn table(context: &Context<'_>, from: usize, column: &Cell) -> (Vec<InvoiceLine>, usize) {
    let lines = &context.layout.lines;
    let mut rows = Vec::new();
    // A line with a description and figures but no amount yet: its amount may be on the next line.
    let mut pending: Option<usize> = None;
    let mut index = from;
    while index < lines.len() && index < from + TABLE_LINES {
        let line = &lines[index];
        if amount_column(line).is_some() {
            break;
        }
        let figures = numbers(&line.text, context.style);
        // Sub-totals are skipped; any other total ends the table. Labels without amounts are
        // column headings spread over several lines (`Ohne / MwSt.`).
        match Role::of_line(line) {
            Some(_) if !figures.iter().any(Number::is_money) => {}
            Some(Role::Net | Role::LineTotal) => {
                index += 1;
                continue;
            }
            Some(_) => break,
            None => {}
        }
        let amount =
            figures.iter().rev().find(|n| n.fraction_digits == 2 && !n.percent && in_column(&line.text, n, column));
        let words = description(&line.text, &figures);
        match (amount, words.is_empty()) {
            (Some(amount), false) => {
                rows.push(row(&words, &figures, amount));
                pending = None;
            }
            (Some(amount), true) => {
                if let Some(above) = pending.take() {
                    let above_line = &lines[above].text;
                    let above_figures = numbers(above_line, context.style);
                    rows.push(row(&description(above_line, &above_figures), &above_figures, amount));
                }
            }
            (None, false) if figures.iter().any(|n| !n.percent) => pending = Some(index),
            _ => {}
        }
        index += 1;
    }
    (rows, index)
}

/// Whether number `n` of `line` ends in the amount column.
fn in_column(line: &str, n: &Number, column: &Cell) -> bool {
    let end = line[..n.end].chars().count();
    let currency_after = line[n.end..].trim_start().starts_with(['€', '$', '£']);
    let end = if currency_after { end + 2 } else { end };
    end + COLUMN_SLACK >= column.end && end <= column.end + COLUMN_SLACK + 2
}

/// The words of a row: its text without the numbers, a leading position number dropped.
fn description(line: &str, figures: &[Number]) -> String {
    let mut text = String::new();
    let mut last = 0;
    for n in figures {
        text.push_str(&line[last..n.start]);
        text.push(' ');
        last = n.end;
    }
    text.push_str(&line[last..]);
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic) && !matches!(*w, "€" | "$" | "£" | "%"))
        .collect();
    let joined = words.join(" ");
    if joined.chars().filter(|c| c.is_alphabetic()).count() >= 3 { joined } else { String::new() }
}

/// A line item with `amount`, and quantity and unit price when two figures multiply to it.
fn row(words: &str, figures: &[Number], amount: &Number) -> InvoiceLine {
    let others: Vec<&Number> = figures.iter().filter(|n| *n != amount && !n.percent).collect();
    let (quantity, unit_price, discount) = quantity_and_price(figures, &others, amount.value);
    InvoiceLine {
        description: Some(words.to_owned()).filter(|w| !w.is_empty()),
        quantity,
        unit_price,
        net_amount: amount.value,
        // The VAT column comes after any discount column; a percentage that was the discount is not the rate.
        vat_rate: figures.iter().filter(|n| n.percent && Some(n.value) != discount).map(|n| n.value).next_back(),
    }
}

/// The pair of `others` whose product is `amount`, else whose product less a discount printed
/// on the row is, as (quantity, unit price, discount percentage used).
fn quantity_and_price(
    figures: &[Number],
    others: &[&Number],
    amount: Decimal,
) -> (Option<Decimal>, Option<Decimal>, Option<Decimal>) {
    let discounts =
        figures.iter().filter(|n| n.value > Decimal::ZERO && n.value < Decimal::ONE_HUNDRED).map(|n| Some(n.value));
    for discount in std::iter::once(None).chain(discounts) {
        let factor = discount.map_or(Decimal::ONE, |d| Decimal::ONE - d / Decimal::ONE_HUNDRED);
        for (i, quantity) in others.iter().enumerate() {
            for price in &others[i + 1..] {
                let Some(product) = quantity.value.checked_mul(price.value).and_then(|p| p.checked_mul(factor)) else {
                    continue;
                };
                if !quantity.value.is_zero() && (product.round_dp(2) - amount).abs() <= Decimal::new(1, 2) {
                    // A whole count next to a price with decimals is the quantity, wherever printed.
                    let swapped = quantity.fraction_digits > 0 && price.fraction_digits == 0;
                    let (quantity, price) = if swapped { (price, quantity) } else { (quantity, price) };
                    return (Some(quantity.value), Some(price.value), discount);
                }
            }
        }
    }
    (None, None, None)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::text::layout::Layout;
    use crate::text::numbers::NumberStyle;

    fn items_of(text: &str) -> Vec<InvoiceLine> {
        let layout = Layout::new(&[text.to_owned()]);
        let context = Context::new(&layout);
        items(&context)
    }

    #[test]
    fn rows_with_amount_on_the_same_line() {
        let text = "\
Description                        Quantity     Unit Price    Disc.%   Taxes          Amount
[1] Beeswax XL                        1.00 kg        42.00      0.00  15.00%        $ 42.00
Olive Oil                             1.00 L          1.00     10.00  15.00%         $ 0.90
                                                                          Subtotal $ 42.90
Total                                                                              $ 49.34
";
        let lines = items_of(text);
        assert_eq!(lines.iter().map(|l| l.net_amount).collect::<Vec<_>>(), [dec!(42.00), dec!(0.90)]);
        assert_eq!(lines[0].quantity, Some(dec!(1.00)));
        assert_eq!(lines[0].unit_price, Some(dec!(42.00)));
        assert_eq!(lines[0].vat_rate, Some(dec!(15.00)));
    }

    #[test]
    fn rows_with_amount_on_the_next_line() {
        let text = "\
Pos        Beschreibung          Nettopreis      Menge     Steuersatz     Nettobetrag
1          Trennblätter A4           9,9000      20 Stk         19 %
           4012345001235                                                       198,00
Steuerbetrag                                                                    37,62
";
        let layout = Layout::new(&[text.to_owned()]);
        let context = Context::new(&layout);
        assert_eq!(context.style, NumberStyle { decimal_comma: true });
        let lines = items(&context);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].net_amount, dec!(198.00));
        assert_eq!(lines[0].quantity, Some(dec!(20)));
        assert_eq!(lines[0].unit_price, Some(dec!(9.9000)));
        assert_eq!(lines[0].description.as_deref(), Some("Trennblätter A4 Stk"));
    }
}
