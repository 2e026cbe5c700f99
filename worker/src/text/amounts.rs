//! Totals and the per-rate VAT breakdown, chosen by arithmetic.
//!
//! Every labeled amount is a candidate for its role (`Subtotal` for net, `BTW 21%` for VAT,
//! `Bruttosumme` for gross, ...). A breakdown entry is any line where a base times a rate gives
//! the tax printed beside it. Among the candidates, the combination of net, VAT and gross that
//! best agrees with itself (net + VAT = gross), with the breakdown (bases add up to net, taxes
//! to VAT) and with the line items wins; what is missing is derived and said so.

use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;
use shared::proposal::{InvoiceLine, Totals, VatBreakdown};

use super::Context;
use super::candidates::{Candidate, confidence, merge};
use super::labels::VAT_WORD;
use super::layout::Line;
use super::numbers::{Number, numbers, regex};

/// What a labeled amount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Net,
    Tax,
    Gross,
    Payable,
    Prepaid,
    LineTotal,
}

static NET: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:sub\s?-?total|subtotaal|zwischensumme|total\s+ht|montant\s+ht|total\s+hors\s+taxes?|total\s+(?:excl\.?|excluding|exclusive|before|without)\s+(?:vat|tax(?:es)?|btw)|net\s+(?:amount|total)|total\s+net|nettobetrag|netto(?:summe|betrag)?|summe\s+netto|gesamt\s+netto|rechnungssumme\s+(?:ohne|exkl\.?|excl\.?)\s+(?:ust|mwst)\.?|(?:totaal\s+)?excl(?:usief|\.)?\s+btw|untaxed\s+amount|amount\s+before\s+tax|totaal\s+excl)",
    )
});
static TAX: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:total\s+)?(?:vat|tax(?:es)?|mwst\.?|ust\.?|umsatzsteuer|mehrwertsteuer|steuerbetrag|btw|tva|montant\s+tva|sales\s+tax|gst|cst)\b",
    )
});
static GROSS: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:grand\s+total|invoice\s+total|total(?:\s+amount)?|totaal(?:\s+incl\.?\s+btw)?|total\s+ttc|montant\s+ttc|total\s+(?:incl\.?|including|inclusive)\s+(?:vat|tax(?:es)?)|bruttosumme|brutto(?:betrag)?|gesamtbetrag|gesamtsumme|rechnungsbetrag|rechnungssumme|endbetrag|summe)\b",
    )
});
static PAYABLE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:zahlbetrag|amount\s+due|balance\s+due|total\s+due|amount\s+payable|solde\s+(?:à|a)\s+payer|net\s+(?:à|a)\s+payer|reste\s+(?:à|a)\s+payer|(?:nog\s+)?te\s+betalen|zu\s+zahlen(?:der\s+betrag)?|offener\s+betrag|restbetrag)\b",
    )
});
static PREPAID: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:erhaltene\s+anzahlung(?:en)?|anzahlung(?:en)?|bereits\s+(?:bezahlt|gezahlt)|prepaid(?:\s+amount)?|amount\s+paid|already\s+paid|acompte|déjà\s+(?:payé|réglé)|reeds\s+betaald|aanbetaling|voorschot)\b",
    )
});
static LINE_TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:positionssumme|summe\s+(?:der\s+)?positionen|warensumme|line\s+total|total\s+lines|items\s+total)\b",
    )
});
/// A UNCL5305 VAT category printed in brackets: `Umsatzsteuer (S )`.
static CATEGORY: LazyLock<Regex> = LazyLock::new(|| regex(r"\(\s*(S|Z|E|AE|K|G|O|L|M)\s*\)"));

/// Labels in the order they are tried: specific ones first, so `Total HT` is net, not gross.
fn roles() -> [(Role, &'static Regex); 6] {
    [
        (Role::Net, &NET),
        (Role::Payable, &PAYABLE),
        (Role::Prepaid, &PREPAID),
        (Role::LineTotal, &LINE_TOTAL),
        (Role::Tax, &TAX),
        (Role::Gross, &GROSS),
    ]
}
/// Candidates kept per role when combinations are tried.
const PER_ROLE: usize = 5;

impl Role {
    /// The role a cell's label gives, and how much of the cell the label covers (1 when the
    /// rest is only a currency or a rate, less when the label is part of a longer phrase).
    fn of_cell(text: &str) -> Option<(Role, f32)> {
        let (role, m) = roles().into_iter().find_map(|(role, label)| label.find(text).map(|m| (role, m)))?;
        let rest: String = text[m.end()..].chars().filter(|c| c.is_alphabetic()).collect();
        let covered = rest.len() <= 3 || rest.eq_ignore_ascii_case("eur") || text[m.end()..].contains('%');
        Some((role, if covered { 0.8 } else { 0.35 }))
    }

    /// The role of the first labeled cell of `line`, if any.
    pub(crate) fn of_line(line: &Line) -> Option<Role> {
        line.cells.iter().find_map(|c| Role::of_cell(&c.text)).map(|(role, _)| role)
    }
}

/// The chosen totals and breakdown with their confidence and warnings.
#[derive(Debug, Default)]
pub(crate) struct Amounts {
    pub(crate) totals: Totals,
    pub(crate) breakdown: Vec<VatBreakdown>,
    pub(crate) confidence: Vec<(&'static str, f32)>,
    pub(crate) warnings: Vec<String>,
}

/// Candidate amounts by role.
#[derive(Debug, Default)]
struct Labeled {
    net: Vec<Candidate<Decimal>>,
    tax: Vec<Candidate<Decimal>>,
    gross: Vec<Candidate<Decimal>>,
    payable: Vec<Candidate<Decimal>>,
    prepaid: Vec<Candidate<Decimal>>,
    line_total: Vec<Candidate<Decimal>>,
}

impl Labeled {
    fn push(&mut self, role: Role, candidate: Candidate<Decimal>) {
        let list = match role {
            Role::Net => &mut self.net,
            Role::Tax => &mut self.tax,
            Role::Gross => &mut self.gross,
            Role::Payable => &mut self.payable,
            Role::Prepaid => &mut self.prepaid,
            Role::LineTotal => &mut self.line_total,
        };
        list.push(candidate);
    }
}

/// Finds totals and breakdown, checked against each other and against `items`.
pub(crate) fn amounts(context: &Context<'_>, items: &[InvoiceLine]) -> Amounts {
    let labeled = labeled_amounts(context);
    let breakdown = breakdown(context);
    let items_sum: Option<Decimal> = (!items.is_empty()).then(|| items.iter().map(|l| l.net_amount).sum());
    let mut found = Amounts::default();
    choose_totals(&mut found, &labeled, &breakdown, items_sum);
    found.breakdown = complete_breakdown(breakdown, &found.totals, &mut found.warnings);
    derive_missing(&mut found, &labeled, items_sum);
    found
}

/// Every labeled amount: the rightmost money amount after a label on its line, else one just
/// below the label.
fn labeled_amounts(context: &Context<'_>) -> Labeled {
    let mut labeled = Labeled::default();
    let layout = context.layout;
    for (index, line) in layout.lines.iter().enumerate() {
        let mut current: Option<(Role, f32, usize)> = None;
        let mut amount: Option<Decimal> = None;
        let flush = |labeled: &mut Labeled, current: Option<(Role, f32, usize)>, amount: Option<Decimal>| {
            if let Some((role, weight, cell)) = current {
                match amount {
                    Some(value) => labeled.push(role, Candidate::new(value, weight)),
                    None => {
                        let at = super::layout::At { line: index, cell };
                        let below = layout.below(at, 1).into_iter().flat_map(|(_, c)| numbers(&c.text, context.style));
                        if let Some(value) = below.filter(Number::is_money).map(|n| n.value).next_back() {
                            labeled.push(role, Candidate::new(value, weight * 0.5));
                        }
                    }
                }
            }
        };
        for (cell_index, cell) in line.cells.iter().enumerate() {
            if let Some((role, weight)) = Role::of_cell(&cell.text) {
                flush(&mut labeled, current, amount);
                current = Some((role, weight, cell_index));
                amount = None;
            }
            if current.is_some()
                && let Some(last) = numbers(&cell.text, context.style).into_iter().rfind(Number::is_money)
            {
                amount = Some(last.value);
            }
        }
        flush(&mut labeled, current, amount);
    }
    for prepaid in &mut labeled.prepaid {
        prepaid.value = prepaid.value.abs();
    }
    labeled
}

/// Breakdown entries: lines where base × rate = tax, and lines with only a rate and its tax
/// (base to be found from the net total).
fn breakdown(context: &Context<'_>) -> Vec<VatBreakdown> {
    let lines = &context.layout.lines;
    let mut entries: Vec<VatBreakdown> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let figures = numbers(&line.text, context.style);
        let about_vat = VAT_WORD.is_match(&line.text);
        let Some(entry) = full_entry(&figures, about_vat).or_else(|| partial_entry(&figures, about_vat)) else {
            continue;
        };
        let above = index.checked_sub(1).map_or("", |i| lines[i].text.as_str());
        let category = CATEGORY.captures(&line.text).or_else(|| CATEGORY.captures(above)).map(|c| c[1].to_owned());
        let entry = VatBreakdown { category: category.or(entry.category), ..entry };
        if !entries.iter().any(|e| {
            e.rate == entry.rate && e.taxable_amount == entry.taxable_amount && e.tax_amount == entry.tax_amount
        }) {
            entries.push(entry);
        }
    }
    // Full entries win over partial ones (whose base is still zero).
    if entries.iter().any(|e| !e.taxable_amount.is_zero()) {
        entries.retain(|e| !e.taxable_amount.is_zero());
    }
    entries
}

/// A (base, rate, tax) triple on one line with base × rate / 100 = tax to the cent.
fn full_entry(figures: &[Number], about_vat: bool) -> Option<VatBreakdown> {
    let rates = figures.iter().filter(|n| is_rate(n, about_vat));
    let money: Vec<&Number> = figures.iter().filter(|n| n.is_money() && n.value > Decimal::ZERO).collect();
    let zero_tax = figures.iter().any(|n| n.is_money() && n.value.is_zero());
    for rate in rates {
        for base in &money {
            if rate.value.is_zero() {
                if about_vat && zero_tax && base.start != rate.start {
                    return Some(entry(rate.value, base.value, Decimal::ZERO));
                }
                continue;
            }
            let Some(expected) = base.value.checked_mul(rate.value).map(|v| v / Decimal::ONE_HUNDRED) else {
                continue;
            };
            let tax = money.iter().find(|t| {
                t.start > base.start && t.value < base.value && (t.value - expected).abs() <= tolerance(expected)
            });
            if let Some(tax) = tax {
                return Some(entry(rate.value, base.value, tax.value));
            }
        }
    }
    None
}

/// A VAT line with a rate and a single amount: the tax; the base is filled in later.
fn partial_entry(figures: &[Number], about_vat: bool) -> Option<VatBreakdown> {
    let rate = figures.iter().find(|n| n.percent && is_rate(n, about_vat) && !n.value.is_zero())?;
    let money: Vec<&Number> = figures.iter().filter(|n| n.is_money()).collect();
    match money.as_slice() {
        [tax] if about_vat && tax.start > rate.start => Some(entry(rate.value, Decimal::ZERO, tax.value)),
        _ => None,
    }
}

fn entry(rate: Decimal, base: Decimal, tax: Decimal) -> VatBreakdown {
    let category = if rate.is_zero() { None } else { Some("S".to_owned()) };
    VatBreakdown { category, rate: rate.normalize(), taxable_amount: base, tax_amount: tax }
}

/// Whether a number can be a VAT rate: printed with `%`, or a plain small number on a VAT line.
fn is_rate(n: &Number, about_vat: bool) -> bool {
    let plausible = n.value >= Decimal::ZERO && n.value <= Decimal::from(30) && n.fraction_digits <= 2;
    plausible && (n.percent || (about_vat && n.currency.is_none() && n.fraction_digits <= 1))
}

/// How far a printed tax may be from base × rate: a cent, or half a per mille of the tax for
/// sums of rounded line taxes.
fn tolerance(expected: Decimal) -> Decimal {
    (expected.abs() / Decimal::from(2000)).max(Decimal::new(1, 2))
}

/// A chosen net, VAT and gross.
type Choice = [Option<Candidate<Decimal>>; 3];

/// Picks net, VAT and gross from the candidates: the combination with the best labels that
/// agrees most with itself, the breakdown and the line items.
fn choose_totals(found: &mut Amounts, labeled: &Labeled, breakdown: &[VatBreakdown], items_sum: Option<Decimal>) {
    let options = |list: &[Candidate<Decimal>]| {
        let mut merged = merge(list.to_vec());
        merged.sort_by(|a, b| b.score.total_cmp(&a.score));
        merged.truncate(PER_ROLE);
        let mut options: Vec<Option<Candidate<Decimal>>> = merged.into_iter().map(Some).collect();
        options.push(None);
        options
    };
    let bases: Option<Decimal> = full(breakdown).then(|| breakdown.iter().map(|b| b.taxable_amount).sum());
    let taxes: Option<Decimal> = (!breakdown.is_empty()).then(|| breakdown.iter().map(|b| b.tax_amount).sum());
    let mut best: Option<(f32, Choice, bool)> = None;
    for net in options(&labeled.net) {
        for tax in options(&labeled.tax) {
            for gross in options(&labeled.gross) {
                let values =
                    [net.as_ref().map(|c| c.value), tax.as_ref().map(|c| c.value), gross.as_ref().map(|c| c.value)];
                let (agreement, consistent) = agreement(values, bases, taxes, items_sum);
                let labels: f32 = [&net, &tax, &gross].iter().filter_map(|c| c.as_ref()).map(|c| c.score).sum();
                let score = labels + agreement;
                if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                    best = Some((score, [net.clone(), tax.clone(), gross.clone()], consistent));
                }
            }
        }
    }
    let Some((_, [net, tax, gross], consistent)) = best else { return };
    let bonus = if consistent { 0.3 } else { 0.0 };
    let mut set = |field: &'static str, chosen: Option<Candidate<Decimal>>, slot: &mut Option<Decimal>| {
        if let Some(c) = chosen {
            *slot = Some(c.value);
            found.confidence.push((field, confidence(c.score + bonus)));
        }
    };
    let totals = &mut found.totals;
    set("totals.net", net, &mut totals.net);
    set("totals.tax", tax, &mut totals.tax);
    set("totals.gross", gross, &mut totals.gross);
}

/// Whether every breakdown entry has its base.
fn full(breakdown: &[VatBreakdown]) -> bool {
    !breakdown.is_empty() && breakdown.iter().all(|b| !b.taxable_amount.is_zero())
}

/// How well net, VAT and gross agree with each other and the other evidence, and whether
/// net + VAT = gross holds.
fn agreement(
    [net, tax, gross]: [Option<Decimal>; 3],
    bases: Option<Decimal>,
    taxes: Option<Decimal>,
    items_sum: Option<Decimal>,
) -> (f32, bool) {
    let mut score = 0.0;
    let mut consistent = false;
    if let (Some(net), Some(tax), Some(gross)) = (net, tax, gross) {
        consistent = net + tax == gross;
        score += if consistent { 1.5 } else { -0.5 };
    }
    if let (Some(net), Some(gross)) = (net, gross)
        && net.abs() > gross.abs()
    {
        score -= 1.0;
    }
    if let (Some(tax), Some(gross)) = (tax, gross)
        && tax.abs() >= gross.abs()
        && !gross.is_zero()
    {
        score -= 1.0;
    }
    if tax.is_some() && net.is_none() && taxes.is_none() {
        // A VAT amount with neither a net total nor a breakdown to check it against.
        score -= 0.5;
    }
    let matches = |a: Option<Decimal>, b: Option<Decimal>| matches!((a, b), (Some(a), Some(b)) if a == b);
    score += if matches(net, bases) { 0.8 } else { 0.0 };
    score += if matches(tax, taxes) { 0.8 } else { 0.0 };
    score += if matches(net, items_sum) || matches(gross, items_sum) { 0.4 } else { 0.0 };
    if net.is_none() && tax.is_none() && matches(gross, items_sum) {
        score += 0.2;
    }
    (score, consistent)
}

/// Fills in the bases of rate-and-tax-only entries from the net total, and adds an untaxed
/// entry when the taxed bases leave part of the net total uncovered.
fn complete_breakdown(
    mut breakdown: Vec<VatBreakdown>,
    totals: &Totals,
    warnings: &mut Vec<String>,
) -> Vec<VatBreakdown> {
    let partial = breakdown.iter().any(|b| b.taxable_amount.is_zero());
    if partial {
        match (breakdown.as_mut_slice(), totals.net) {
            ([only], Some(net))
                if net.checked_mul(only.rate).is_some_and(|product| {
                    (product / Decimal::ONE_HUNDRED - only.tax_amount).abs()
                        <= tolerance(only.tax_amount) + Decimal::new(1, 2)
                }) =>
            {
                only.taxable_amount = net;
            }
            _ => {
                warnings.push("VAT amounts were found without their taxable bases; no VAT breakdown given".to_owned());
                return Vec::new();
            }
        }
    }
    let (Some(net), Some(tax)) = (totals.net, totals.tax) else { return breakdown };
    let bases: Decimal = breakdown.iter().map(|b| b.taxable_amount).sum();
    let taxes: Decimal = breakdown.iter().map(|b| b.tax_amount).sum();
    if !breakdown.is_empty() && taxes == tax && bases < net && net > Decimal::ZERO {
        let rest = net - bases;
        warnings.push(format!(
            "the VAT breakdown covers {bases} of the net total {net}; assumed the remaining {rest} is not taxed"
        ));
        breakdown.push(VatBreakdown {
            category: None,
            rate: Decimal::ZERO,
            taxable_amount: rest,
            tax_amount: Decimal::ZERO,
        });
    }
    breakdown
}

/// Derives what the labels did not give from what they did, with a warning for each.
fn derive_missing(found: &mut Amounts, labeled: &Labeled, items_sum: Option<Decimal>) {
    let bases: Option<Decimal> = full(&found.breakdown).then(|| found.breakdown.iter().map(|b| b.taxable_amount).sum());
    let taxes: Option<Decimal> =
        (!found.breakdown.is_empty()).then(|| found.breakdown.iter().map(|b| b.tax_amount).sum());
    let mut derived: Vec<(&'static str, Decimal, String)> = Vec::new();
    let t = &mut found.totals;
    if t.tax.is_none() {
        if let Some(taxes) = taxes {
            t.tax = Some(taxes);
            derived.push(("totals.tax", taxes, "the sum of the VAT breakdown".to_owned()));
        } else if let (Some(net), Some(gross)) = (t.net, t.gross) {
            t.tax = Some(gross - net);
            derived.push(("totals.tax", gross - net, "gross - net".to_owned()));
        }
    }
    if t.net.is_none() {
        if let Some(bases) = bases {
            t.net = Some(bases);
            derived.push(("totals.net", bases, "the sum of the VAT breakdown".to_owned()));
        } else if let (Some(gross), Some(tax)) = (t.gross, t.tax) {
            t.net = Some(gross - tax);
            derived.push(("totals.net", gross - tax, "gross - VAT".to_owned()));
        }
    }
    if t.gross.is_none()
        && let (Some(net), Some(tax)) = (t.net, t.tax)
    {
        t.gross = Some(net + tax);
        derived.push(("totals.gross", net + tax, "net + VAT".to_owned()));
    }
    if t.tax.is_none() && found.breakdown.is_empty() {
        // Nothing on the document is about VAT at all: take it as untaxed, and say so.
        let amount = t.gross.or(t.net);
        if let Some(amount) = amount {
            t.net.get_or_insert(amount);
            t.gross.get_or_insert(amount);
            t.tax = Some(Decimal::ZERO);
            found.warnings.push(format!("the document states no VAT; taken as untaxed ({amount})"));
            found.confidence.retain(|(f, _)| *f != "totals.net");
            found.confidence.push(("totals.net", 0.5));
            found.confidence.push(("totals.tax", 0.4));
        }
    }
    choose_payments(found, labeled, &mut derived);
    if t_line_total(found, labeled, items_sum, &mut derived) {
        found.confidence.push(("totals.line_total", 0.8));
    }
    for (field, value, how) in derived {
        found.warnings.push(format!(
            "{} not found on the document; derived {value} from {how}",
            field.trim_start_matches("totals.")
        ));
        found.confidence.push((field, 0.5));
    }
}

/// Picks prepaid and payable amounts: the payable candidate equal to gross - prepaid if any,
/// else the best; a missing one is derived from the other.
fn choose_payments(found: &mut Amounts, labeled: &Labeled, derived: &mut Vec<(&'static str, Decimal, String)>) {
    let best_of =
        |list: &[Candidate<Decimal>]| merge(list.to_vec()).into_iter().max_by(|a, b| a.score.total_cmp(&b.score));
    let prepaid = best_of(&labeled.prepaid);
    let gross = found.totals.gross;
    let expected = gross.map(|g| g - prepaid.as_ref().map_or(Decimal::ZERO, |p| p.value));
    let payable = merge(labeled.payable.clone())
        .into_iter()
        .find(|c| Some(c.value) == expected)
        .or_else(|| best_of(&labeled.payable));
    let t = &mut found.totals;
    if let Some(p) = &prepaid {
        t.prepaid = Some(p.value);
        found.confidence.push(("totals.prepaid", confidence(p.score)));
    }
    match (payable, gross) {
        (Some(p), _) => {
            t.payable = Some(p.value);
            let agrees = Some(p.value) == expected;
            found.confidence.push(("totals.payable", confidence(p.score + if agrees { 0.3 } else { 0.0 })));
            if let (None, Some(gross)) = (&prepaid, gross)
                && p.value < gross
                && p.value > Decimal::ZERO
            {
                t.prepaid = Some(gross - p.value);
                derived.push(("totals.prepaid", gross - p.value, "gross - amount due".to_owned()));
            }
        }
        (None, Some(gross)) => {
            let value = gross - t.prepaid.unwrap_or_default();
            t.payable = Some(value);
            found.confidence.push(("totals.payable", 0.6));
        }
        (None, None) => {}
    }
}

/// Sets the line total from its label, else from the items; whether it was labeled.
fn t_line_total(
    found: &mut Amounts,
    labeled: &Labeled,
    items_sum: Option<Decimal>,
    derived: &mut Vec<(&'static str, Decimal, String)>,
) -> bool {
    let best = merge(labeled.line_total.clone()).into_iter().max_by(|a, b| a.score.total_cmp(&b.score));
    match (best, items_sum) {
        (Some(c), _) => {
            found.totals.line_total = Some(c.value);
            true
        }
        (None, Some(sum)) if Some(sum) == found.totals.net => {
            found.totals.line_total = Some(sum);
            derived.push(("totals.line_total", sum, "the line items".to_owned()));
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::text::layout::Layout;

    fn amounts_of(text: &str) -> Amounts {
        let layout = Layout::new(&[text.to_owned()]);
        let context = Context::new(&layout);
        amounts(&context, &[])
    }

    #[test]
    fn arithmetic_picks_the_right_subtotal() {
        let found = amounts_of(
            "Subtotal $ 112.00\nSubtotal $ 150.90\nSubtotal $ 262.90\nTax 15% on $ 112.90     $ 16.94\nTotal   $ 279.84\n",
        );
        assert_eq!(found.totals.net, Some(dec!(262.90)));
        assert_eq!(found.totals.tax, Some(dec!(16.94)));
        assert_eq!(found.totals.gross, Some(dec!(279.84)));
        assert_eq!(found.breakdown[0].taxable_amount, dec!(112.90));
        assert_eq!(found.breakdown[1].taxable_amount, dec!(150.00), "untaxed rest: {:?}", found.breakdown);
    }

    #[test]
    fn german_totals_and_breakdown() {
        let found = amounts_of(
            "\
Umsatzsteuer (S )        275,00        7       19,25
Umsatzsteuer (S )        198,00       19       37,62
Positionssumme                          473,00
Rechnungssumme ohne USt.                473,00
Steuerbetrag                             56,87
Bruttosumme                             529,87
Erhaltene Anzahlungen                   -50,00
Zahlbetrag                              479,87
",
        );
        let t = &found.totals;
        assert_eq!((t.net, t.tax, t.gross), (Some(dec!(473.00)), Some(dec!(56.87)), Some(dec!(529.87))));
        assert_eq!((t.prepaid, t.payable, t.line_total), (Some(dec!(50.00)), Some(dec!(479.87)), Some(dec!(473.00))));
        assert_eq!(found.breakdown.len(), 2);
        assert_eq!(found.breakdown[1].rate, dec!(19));
        assert_eq!(found.breakdown[1].category.as_deref(), Some("S"));
    }

    #[test]
    fn labels_side_by_side_and_rate_only_vat() {
        let found = amounts_of(
            "    Exclusief BTW       € 593,36               Subtotaal        € 717,97\n\
             \x20        BTW 21%       € 124,61\n\
             \x20          Totaal      € 717,97\n",
        );
        let t = &found.totals;
        assert_eq!((t.net, t.tax, t.gross), (Some(dec!(593.36)), Some(dec!(124.61)), Some(dec!(717.97))));
        assert_eq!(found.breakdown.len(), 1);
        assert_eq!(found.breakdown[0].taxable_amount, dec!(593.36));
    }

    #[test]
    fn no_vat_at_all_is_untaxed() {
        let found = amounts_of("Total EUR          34,73\n");
        assert_eq!(found.totals.net, Some(dec!(34.73)));
        assert_eq!(found.totals.tax, Some(dec!(0)));
        assert!(found.warnings.iter().any(|w| w.contains("no VAT")), "{:?}", found.warnings);
    }
}
