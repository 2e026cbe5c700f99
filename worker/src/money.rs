//! Checked money arithmetic: the range every amount of a proposal must lie in, and sums and
//! differences that report an overflow as the document's fault instead of panicking.
//!
//! `rust_decimal`'s operators panic when a result leaves the type's 96-bit range, and a document
//! can state amounts right at that edge. Every reader therefore calls [`check_range`] before it
//! adds anything up, and the checks and the booking add with [`sum`], [`add`] and [`sub`].

use rust_decimal::Decimal;
use shared::proposal::BookingProposal;

use crate::error::ExtractError;

/// The largest amount Surge books: ±10^15 (a quadrillion) in any currency. Far above any real
/// invoice, and far enough below `Decimal::MAX` (about 7.9 × 10^28) that sums of a document's
/// amounts cannot leave the type's range.
pub(crate) const MAX_AMOUNT: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// The largest VAT rate, in percent, that Surge accepts.
pub(crate) const MAX_RATE: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);

/// Fails when any amount that is added up or booked (totals, line net amounts, the VAT breakdown)
/// or any VAT rate in `proposal` lies outside ±[`MAX_AMOUNT`] (rates: ±[`MAX_RATE`]). Quantities
/// and unit prices are only shown, never computed with, so they are not limited.
pub(crate) fn check_range(proposal: &BookingProposal) -> Result<(), ExtractError> {
    let t = &proposal.totals;
    let totals = [t.line_total, t.net, t.tax, t.gross, t.prepaid, t.payable].into_iter().flatten();
    let lines = proposal.lines.iter().map(|l| l.net_amount);
    let breakdown = proposal.vat_breakdown.iter().flat_map(|b| [b.taxable_amount, b.tax_amount]);
    if let Some(amount) = totals.chain(lines).chain(breakdown).find(|a| a.abs() > MAX_AMOUNT) {
        return Err(out_of_range(&format!("the amount {amount}")));
    }
    let rates = proposal.lines.iter().filter_map(|l| l.vat_rate).chain(proposal.vat_breakdown.iter().map(|b| b.rate));
    if let Some(rate) = rates.into_iter().find(|r| r.abs() > MAX_RATE) {
        return Err(out_of_range(&format!("the VAT rate {rate}%")));
    }
    Ok(())
}

/// `a + b`, or the document's fault when the sum leaves the representable range.
pub(crate) fn add(a: Decimal, b: Decimal) -> Result<Decimal, ExtractError> {
    a.checked_add(b).ok_or_else(|| out_of_range("a sum of the amounts"))
}

/// `a - b`, or the document's fault when the difference leaves the representable range.
pub(crate) fn sub(a: Decimal, b: Decimal) -> Result<Decimal, ExtractError> {
    a.checked_sub(b).ok_or_else(|| out_of_range("a difference of the amounts"))
}

/// The sum of `amounts`, or the document's fault when it leaves the representable range.
pub(crate) fn sum(amounts: impl IntoIterator<Item = Decimal>) -> Result<Decimal, ExtractError> {
    amounts.into_iter().try_fold(Decimal::ZERO, add)
}

fn out_of_range(what: &str) -> ExtractError {
    ExtractError::AmountOutOfRange(format!("{what} is beyond the ±{MAX_AMOUNT} Surge books"))
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use shared::proposal::{InvoiceLine, SourceFormat, VatBreakdown};

    use super::*;

    #[test]
    fn the_bounds_are_what_they_say() {
        assert_eq!(MAX_AMOUNT, dec!(1_000_000_000_000_000));
        assert_eq!(MAX_RATE, dec!(1000));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(matches!(add(Decimal::MAX, Decimal::ONE), Err(ExtractError::AmountOutOfRange(_))));
        assert!(matches!(sub(Decimal::MIN, Decimal::ONE), Err(ExtractError::AmountOutOfRange(_))));
        assert!(sum([Decimal::MAX, Decimal::MAX]).is_err());
        assert_eq!(sum([dec!(1.5), dec!(2.25)]).ok(), Some(dec!(3.75)));
        assert_eq!(sum([]).ok(), Some(Decimal::ZERO));
    }

    #[test]
    fn amounts_beyond_the_range_are_refused() {
        let mut p = BookingProposal::empty(SourceFormat::Ubl);
        p.totals.gross = Some(dec!(999_999_999_999_999.99));
        assert!(check_range(&p).is_ok());
        p.totals.gross = Some(Decimal::MAX);
        let err = check_range(&p).expect_err("MAX is out of range");
        assert!(err.to_string().contains("79228162514264337593543950335"), "{err}");

        let line = InvoiceLine {
            description: None,
            quantity: None,
            unit_price: None,
            net_amount: Decimal::MIN,
            vat_rate: None,
        };
        let mut p = BookingProposal::empty(SourceFormat::Ubl);
        p.lines.push(line);
        assert!(check_range(&p).is_err());

        let entry = VatBreakdown { category: None, rate: dec!(100000), taxable_amount: dec!(1), tax_amount: dec!(1) };
        let mut p = BookingProposal::empty(SourceFormat::Ubl);
        p.vat_breakdown.push(entry);
        assert!(check_range(&p).is_err());
    }
}
