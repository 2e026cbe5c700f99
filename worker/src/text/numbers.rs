//! Amounts and rates as printed: `1.234,56`, `1,234.56`, `1'234.56`, `-14,73`, `€ 399,00`,
//! `81,90 €`, `$ 42.00`, `19 %`.
//!
//! Which of `.` and `,` is the decimal separator is decided per document ([`NumberStyle`]), so
//! `1.234` reads as a thousand in a German invoice and `1,234` in an American one.

use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;

/// A numeric token: digits with separators inside, bounded by non-alphanumerics.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(r"\d(?:[\d.,'\u{a0}\u{202f}]*\d)?"));
/// Two-decimal amounts with a dot or a comma, for guessing the document's style.
static DOT_DECIMALS: LazyLock<Regex> = LazyLock::new(|| regex(r"\d\.\d{2}(?:[^\d.,]|$)"));
static COMMA_DECIMALS: LazyLock<Regex> = LazyLock::new(|| regex(r"\d,\d{2}(?:[^\d.,]|$)"));

/// Compiles a pattern that is a constant of this crate.
pub(crate) fn regex(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(regex) => regex,
        Err(err) => panic!("invalid built-in pattern {pattern:?}: {err}"),
    }
}

/// How a document writes decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumberStyle {
    /// `1.234,56` rather than `1,234.56`.
    pub(crate) decimal_comma: bool,
}

impl NumberStyle {
    /// The style most two-decimal amounts in `text` use; dots when there is no evidence.
    pub(crate) fn detect(text: &str) -> NumberStyle {
        let commas = COMMA_DECIMALS.find_iter(text).count();
        let dots = DOT_DECIMALS.find_iter(text).count();
        NumberStyle { decimal_comma: commas > dots }
    }
}

/// One number found in a piece of text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Number {
    /// The value with its sign.
    pub(crate) value: Decimal,
    /// Digits after the decimal separator (`2` for money as usually printed).
    pub(crate) fraction_digits: u32,
    /// Followed by `%`.
    pub(crate) percent: bool,
    /// A currency symbol or code right before or after it.
    pub(crate) currency: Option<&'static str>,
    /// Byte span in the text, sign and currency excluded.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Number {
    /// Printed like money: two decimals (or a currency mark), not a percentage.
    pub(crate) fn is_money(&self) -> bool {
        !self.percent && (self.fraction_digits == 2 || (self.fraction_digits == 0 && self.currency.is_some()))
    }
}

/// Every number in `text`, read in `style`. Numbers glued to letters (`A4`, `DE123456789`) and
/// tokens that are not numbers in that style (`05.03.2018`) are skipped.
pub(crate) fn numbers(text: &str, style: NumberStyle) -> Vec<Number> {
    NUMBER
        .find_iter(text)
        .filter(|m| standalone(text, m.start(), m.end()))
        .filter_map(|m| {
            let (value, fraction_digits) = parse(m.as_str(), style)?;
            let before = &text[..m.start()];
            let after = &text[m.end()..];
            let negative = is_negative(before);
            Some(Number {
                value: if negative { -value } else { value },
                fraction_digits,
                percent: after.trim_start().starts_with('%'),
                currency: currency_before(before).or_else(|| currency_after(after)),
                start: m.start(),
                end: m.end(),
            })
        })
        .collect()
}

/// Whether the token at `start..end` stands on its own, not inside a word or code.
fn standalone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let glued_before = before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | ','))
        && !before.is_some_and(is_currency_symbol);
    let glued_after = after.is_some_and(|c| c.is_alphanumeric() && !matches!(c, '€' | '$' | '£' | '₹'))
        || text[end..].starts_with(['/', '_'])
        || (text[end..].starts_with(['.', ',']) && text[end + 1..].starts_with(|c: char| c.is_ascii_digit()));
    let glued_after = glued_after && !text[end..].starts_with(|c: char| c.is_alphabetic() && is_unit_start(c));
    !glued_before && !glued_after
}

/// Units printed right after a quantity (`2kg`, `3m²`) still leave the number standing alone.
fn is_unit_start(c: char) -> bool {
    matches!(c, 'k' | 'g' | 'm' | 'l' | 'L' | 'x' | 'h')
}

fn is_currency_symbol(c: char) -> bool {
    matches!(c, '€' | '$' | '£' | '₹' | '¥')
}

/// A minus sign (ASCII, Unicode minus or dash) directly before the number, a currency symbol
/// possibly in between.
fn is_negative(before: &str) -> bool {
    let trimmed = before.trim_end();
    let trimmed = trimmed.trim_end_matches(is_currency_symbol).trim_end();
    let trimmed = trimmed.strip_suffix("EUR").or_else(|| trimmed.strip_suffix("USD")).unwrap_or(trimmed).trim_end();
    let Some(last) = trimmed.chars().next_back() else { return false };
    if !matches!(last, '-' | '−' | '–') {
        return false;
    }
    // "40-42" is a range, "- 9,32" or " -9,32" a sign.
    let rest = &trimmed[..trimmed.len() - last.len_utf8()];
    !rest.ends_with(|c: char| c.is_ascii_digit())
}

fn currency_before(before: &str) -> Option<&'static str> {
    let trimmed = before.trim_end().trim_end_matches(['-', '−', '–']).trim_end();
    currency_at(trimmed, true)
}

fn currency_after(after: &str) -> Option<&'static str> {
    currency_at(after.trim_start(), false)
}

/// A currency mark at the end (`at_end`) or start of `text`.
fn currency_at(text: &str, at_end: bool) -> Option<&'static str> {
    const MARKS: [(&str, &str); 9] = [
        ("€", "EUR"),
        ("EUR", "EUR"),
        ("$", "USD"),
        ("USD", "USD"),
        ("£", "GBP"),
        ("GBP", "GBP"),
        ("₹", "INR"),
        ("Rs.", "INR"),
        ("CHF", "CHF"),
    ];
    MARKS
        .iter()
        .find(|(mark, _)| if at_end { text.ends_with(mark) } else { text.starts_with(mark) })
        .map(|(_, code)| *code)
}

/// Reads one numeric token in `style`: the value and its number of decimals. `None` when the
/// separators do not form a number (`05.03.2018`, `1.2.3`) or it is beyond any amount.
pub(crate) fn parse(token: &str, style: NumberStyle) -> Option<(Decimal, u32)> {
    let token: String = token.chars().filter(|c| !matches!(c, '\'' | '\u{a0}' | '\u{202f}')).collect();
    let (decimal, thousands) = if style.decimal_comma { (',', '.') } else { ('.', ',') };
    let has_decimal = token.contains(decimal);
    let has_thousands = token.contains(thousands);
    let (integer, fraction) = match (has_decimal, has_thousands) {
        (true, _) => split_once_last(&token, decimal)?,
        (false, true) => {
            // Only the other separator: thousands if every group after it has three digits,
            // else it is a decimal separator after all (`9,9000` in a dot document).
            let groups: Vec<&str> = token.split(thousands).collect();
            if groups.len() > 1 && groups[1..].iter().all(|g| g.len() == 3) && groups[0].len() <= 3 {
                (token.as_str(), "")
            } else {
                split_once_last(&token, thousands)?
            }
        }
        (false, false) => (token.as_str(), ""),
    };
    let integer_digits = strip_thousands(integer, thousands)?;
    if fraction.contains(['.', ',']) {
        return None;
    }
    let text = if fraction.is_empty() { integer_digits } else { format!("{integer_digits}.{fraction}") };
    let value: Decimal = text.parse().ok()?;
    // Nothing this large is an amount (a reference or a code is), and products of two such
    // numbers would leave the decimal range.
    if value.abs() > crate::money::MAX_AMOUNT {
        return None;
    }
    Some((value, u32::try_from(fraction.len()).ok()?))
}

/// Splits at the last `separator`, which must occur once.
fn split_once_last(token: &str, separator: char) -> Option<(&str, &str)> {
    if token.matches(separator).count() != 1 {
        return None;
    }
    token.rsplit_once(separator)
}

/// The integer part without thousands separators, which must group digits by three.
fn strip_thousands(integer: &str, thousands: char) -> Option<String> {
    let groups: Vec<&str> = integer.split(thousands).collect();
    let grouped_well = groups.len() == 1
        || (!groups[0].is_empty() && groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3));
    let digits_only = groups.iter().all(|g| g.chars().all(|c| c.is_ascii_digit()));
    (grouped_well && digits_only).then(|| groups.concat())
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    const COMMA: NumberStyle = NumberStyle { decimal_comma: true };
    const DOT: NumberStyle = NumberStyle { decimal_comma: false };

    fn values(text: &str, style: NumberStyle) -> Vec<Decimal> {
        numbers(text, style).into_iter().map(|n| n.value).collect()
    }

    #[test]
    fn parses_both_styles() {
        assert_eq!(parse("1.234,56", COMMA), Some((dec!(1234.56), 2)));
        assert_eq!(parse("1,234.56", DOT), Some((dec!(1234.56), 2)));
        assert_eq!(parse("1.234", COMMA), Some((dec!(1234), 0)));
        assert_eq!(parse("1,234", DOT), Some((dec!(1234), 0)));
        assert_eq!(parse("9,9000", DOT), Some((dec!(9.9000), 4)));
        assert_eq!(parse("529,87", DOT), Some((dec!(529.87), 2)));
        assert_eq!(parse("1'234.50", DOT), Some((dec!(1234.50), 2)));
        assert_eq!(parse("05.03.2018", COMMA), None);
        assert_eq!(parse("05.03.2018", DOT), None);
        assert_eq!(parse("1.2.3", DOT), None);
    }

    #[test]
    fn finds_amounts_with_signs_currency_and_percent() {
        let found = numbers("Abschläge -14,73  € 399,00  19 %  81,90 €", COMMA);
        assert_eq!(
            found.iter().map(|n| n.value).collect::<Vec<_>>(),
            [dec!(-14.73), dec!(399.00), dec!(19), dec!(81.90)]
        );
        assert_eq!(found[1].currency, Some("EUR"));
        assert!(found[2].percent);
        assert_eq!(found[3].currency, Some("EUR"));
        assert!(found[0].is_money() && !found[2].is_money());
    }

    #[test]
    fn skips_codes_dates_and_ranges() {
        assert!(values("Trennblätter A4 DE123456789 E2018092011804", COMMA).is_empty());
        assert!(values("01.05.14-31.05.14", COMMA).is_empty());
        assert_eq!(values("Uferweg 40-42", COMMA), [dec!(40), dec!(42)]);
        assert_eq!(values("$ 42.00 and 3m² 2kg", DOT), [dec!(42.00), dec!(3), dec!(2)]);
    }

    #[test]
    fn detects_the_style() {
        assert!(NumberStyle::detect("Summe 473,00 Steuer 56,87 Brutto 1.234,56").decimal_comma);
        assert!(!NumberStyle::detect("Total $ 279.84 Tax 16.94").decimal_comma);
    }
}
