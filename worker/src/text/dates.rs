//! Dates as printed on invoices: numeric (`05.03.2018`, `05-03-2018`, `2018-03-05`,
//! `03/20/2023`, `21.05.14`) and with month names in Dutch, German, French and English
//! (`7. Mai 2014`, `15 januari 2024`, `1er mars 2023`, `March 20, 2023`).
//!
//! Whether `03/04/2023` is the 3rd of April or the 4th of March is decided per document
//! ([`DateOrder`]): a slash date whose second part exceeds 12 makes the whole document
//! month-first.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

use super::numbers::regex;

/// Month names and abbreviations in the four languages, with their month number.
#[rustfmt::skip]
const MONTHS: &[(&str, u32)] = &[
    ("januari", 1), ("january", 1), ("janvier", 1), ("januar", 1), ("jänner", 1), ("jan", 1),
    ("februari", 2), ("february", 2), ("février", 2), ("fevrier", 2), ("februar", 2), ("feb", 2), ("févr", 2),
    ("maart", 3), ("march", 3), ("märz", 3), ("mars", 3), ("mrz", 3), ("mär", 3), ("mar", 3),
    ("april", 4), ("avril", 4), ("apr", 4), ("avr", 4),
    ("mei", 5), ("mai", 5), ("may", 5),
    ("juni", 6), ("june", 6), ("juin", 6), ("jun", 6),
    ("juli", 7), ("july", 7), ("juillet", 7), ("juil", 7), ("jul", 7),
    ("augustus", 8), ("august", 8), ("août", 8), ("aout", 8), ("aug", 8),
    ("september", 9), ("septembre", 9), ("sept", 9), ("sep", 9),
    ("oktober", 10), ("october", 10), ("octobre", 10), ("okt", 10), ("oct", 10),
    ("november", 11), ("novembre", 11), ("nov", 11),
    ("december", 12), ("dezember", 12), ("décembre", 12), ("decembre", 12), ("dec", 12), ("dez", 12), ("déc", 12),
];

static MONTH_ALTERNATION: LazyLock<String> = LazyLock::new(|| {
    let mut names: Vec<&str> = month_table().map(|(name, _)| name).collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.chars().count()));
    names.join("|")
});

static ISO: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"));
static NUMERIC: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:^|[^\d.,/-])(\d{1,2})([./-])(\d{1,2})([./-])(\d{4}|\d{2})\b"));
static DAY_MONTH_YEAR: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(r"(?i)\b(\d{{1,2}})(?:er|st|nd|rd|th|\.)?\s*(?:de\s+)?({})\.?,?\s+(\d{{4}})\b", *MONTH_ALTERNATION))
});
static MONTH_DAY_YEAR: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(r"(?i)\b({})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", *MONTH_ALTERNATION))
});

fn month_table() -> impl Iterator<Item = (&'static str, u32)> {
    MONTHS.iter().copied()
}

fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_lowercase();
    month_table().find(|(candidate, _)| *candidate == lower).map(|(_, number)| number)
}

/// How a document orders day and month in numeric dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateOrder {
    DayFirst,
    MonthFirst,
}

impl DateOrder {
    /// Month-first when some slash date can only be read that way (`03/20/2023`) and none only
    /// the other way; day-first otherwise.
    pub(crate) fn detect(text: &str) -> DateOrder {
        let (mut day_first, mut month_first) = (false, false);
        for captures in NUMERIC.captures_iter(text) {
            if &captures[2] != "/" {
                continue;
            }
            let first: u32 = captures[1].parse().unwrap_or(0);
            let second: u32 = captures[3].parse().unwrap_or(0);
            day_first |= first > 12;
            month_first |= second > 12;
        }
        if month_first && !day_first { DateOrder::MonthFirst } else { DateOrder::DayFirst }
    }
}

/// A date found in a piece of text, with its byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FoundDate {
    pub(crate) date: NaiveDate,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Every date in `text`, in order of position.
pub(crate) fn dates(text: &str, order: DateOrder) -> Vec<FoundDate> {
    let mut found: Vec<FoundDate> = Vec::new();
    for c in ISO.captures_iter(text) {
        push(&mut found, &c, ymd(&c[1], &c[2], &c[3]));
    }
    for c in NUMERIC.captures_iter(text) {
        if c[2] != c[4] {
            continue;
        }
        let (day, month) = match order {
            DateOrder::DayFirst => (&c[1], &c[3]),
            DateOrder::MonthFirst => (&c[3], &c[1]),
        };
        push(&mut found, &c, ymd(&c[5], month, day));
    }
    for c in DAY_MONTH_YEAR.captures_iter(text) {
        let month = month_number(&c[2]).map(|m| m.to_string());
        push(&mut found, &c, month.and_then(|m| ymd(&c[3], &m, &c[1])));
    }
    for c in MONTH_DAY_YEAR.captures_iter(text) {
        let month = month_number(&c[1]).map(|m| m.to_string());
        push(&mut found, &c, month.and_then(|m| ymd(&c[3], &m, &c[2])));
    }
    found.sort_by_key(|d| d.start);
    found
}

/// Records a date for the whole match of `captures` unless it overlaps one already found.
fn push(found: &mut Vec<FoundDate>, captures: &regex::Captures<'_>, date: Option<NaiveDate>) {
    let (Some(date), Some(whole)) = (date, captures.get(0)) else { return };
    // The numeric pattern may include one leading delimiter; the date starts at its first digit.
    let start = captures.get(1).map_or(whole.start(), |first| first.start().min(whole.end()));
    let end = whole.end();
    if found.iter().any(|d| d.start < end && start < d.end) {
        return;
    }
    found.push(FoundDate { date, start, end });
}

/// A calendar date from year, month and day strings; two-digit years are 20xx.
fn ymd(year: &str, month: &str, day: &str) -> Option<NaiveDate> {
    let mut year: i32 = year.parse().ok()?;
    if year < 100 {
        year += 2000;
    }
    if !(1990..=2100).contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month.parse().ok()?, day.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str, order: DateOrder) -> Option<NaiveDate> {
        dates(text, order).first().map(|d| d.date)
    }

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn numeric_formats() {
        let day = DateOrder::DayFirst;
        assert_eq!(first("vom 05.03.2018", day), date(2018, 3, 5));
        assert_eq!(first("20-10-2015", day), date(2015, 10, 20));
        assert_eq!(first("2024-11-15", day), date(2024, 11, 15));
        assert_eq!(first("13/11/2017", day), date(2017, 11, 13));
        assert_eq!(first("Zahlungsziel 21.05.14", day), date(2014, 5, 21));
        assert_eq!(first("03/20/2023", DateOrder::MonthFirst), date(2023, 3, 20));
        assert_eq!(first("Tel. 05.2018 1.2.3", day), None);
    }

    #[test]
    fn month_names_in_four_languages() {
        let day = DateOrder::DayFirst;
        assert_eq!(first("Rechnungsdatum 7. Mai 2014", day), date(2014, 5, 7));
        assert_eq!(first("Factuurdatum: 15 januari 2024", day), date(2024, 1, 15));
        assert_eq!(first("le 1er mars 2023", day), date(2023, 3, 1));
        assert_eq!(first("19 april 2014", day), date(2014, 4, 19));
        assert_eq!(first("March 20, 2023", day), date(2023, 3, 20));
        assert_eq!(first("12 Dec 2022", day), date(2022, 12, 12));
        assert_eq!(first("3. März 2021", day), date(2021, 3, 3));
        assert_eq!(first("14 août 2020", day), date(2020, 8, 14));
    }

    #[test]
    fn order_detection() {
        assert_eq!(DateOrder::detect("03/20/2023 04/04/2023"), DateOrder::MonthFirst);
        assert_eq!(DateOrder::detect("13/11/2017 13/12/2017"), DateOrder::DayFirst);
        assert_eq!(DateOrder::detect("05.03.2018"), DateOrder::DayFirst);
    }
}
