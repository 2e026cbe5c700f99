//! A tenant's chart of accounts and ledger rules: which accounts a booking proposal's journal
//! entries use. Set per tenant through the API (`PUT /v1/chart`), read by the worker.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::proposal::Party;

/// Where a tenant's chart is stored in the blob store.
pub fn chart_key(tenant: &crate::domain::TenantId) -> String {
    crate::keys::chart(tenant)
}

/// A ledger account as the tenant's chart names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub number: String,
    pub name: String,
}

/// The account that takes VAT at one rate; the name should say the rate (`Input VAT 19%`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateAccount {
    /// Rate in percent, e.g. `"19"`.
    pub rate: Decimal,
    pub number: String,
    pub name: String,
}

/// Maps a supplier to the expense account its invoices are booked to.
///
/// A rule matches when every criterion it sets matches; a rule that sets neither criterion
/// matches nothing. The first matching rule in [`Chart::rules`] wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerRule {
    /// The supplier's VAT identifier; compared ignoring spaces and case.
    #[serde(default)]
    pub supplier_vat_id: Option<String>,
    /// A piece of the supplier's name; compared ignoring case.
    #[serde(default)]
    pub supplier_name_contains: Option<String>,
    /// Expense account number to book to.
    pub account: String,
    pub account_name: String,
}

/// A tenant's chart of accounts, as far as booking invoices needs it.
///
/// Deserialisable so it can come from configuration; fields left out take their values from
/// [`Chart::default`], so a tenant can supply only its `rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Chart {
    /// Where purchases go when no rule names an account for the supplier.
    pub expense: Account,
    /// Input VAT (deductible VAT on purchases), one account per rate.
    pub input_vat: Vec<RateAccount>,
    /// Input VAT at a rate not in `input_vat`; the rate is appended to its name.
    pub input_vat_other: Account,
    /// Trade creditors: what the tenant owes its suppliers.
    pub creditors: Account,
    /// Sales, for booking outgoing invoices later.
    pub revenue: Account,
    /// Output VAT (VAT owed on sales), one account per rate, for booking outgoing invoices later.
    pub output_vat: Vec<RateAccount>,
    /// Output VAT at a rate not in `output_vat`.
    pub output_vat_other: Account,
    /// Takes the difference when a document's amounts do not add up.
    pub rounding: Account,
    /// Supplier-specific expense accounts, first match wins.
    pub rules: Vec<LedgerRule>,
}

impl Default for Chart {
    /// A small chart with account numbers in the style of the German SKR03. A placeholder: each
    /// tenant is expected to supply its own.
    fn default() -> Chart {
        let account = |number: &str, name: &str| Account { number: number.to_owned(), name: name.to_owned() };
        let rate_account = |rate: i64, number: &str, name: &str| RateAccount {
            rate: Decimal::from(rate),
            number: number.to_owned(),
            name: name.to_owned(),
        };
        Chart {
            expense: account("4000", "Purchased goods and services"),
            input_vat: vec![rate_account(19, "1576", "Input VAT 19%"), rate_account(7, "1571", "Input VAT 7%")],
            input_vat_other: account("1570", "Input VAT"),
            creditors: account("1600", "Trade creditors"),
            revenue: account("8400", "Revenue"),
            output_vat: vec![rate_account(19, "1776", "Output VAT 19%"), rate_account(7, "1771", "Output VAT 7%")],
            output_vat_other: account("1770", "Output VAT"),
            rounding: account("4999", "Rounding differences"),
            rules: Vec::new(),
        }
    }
}

impl Chart {
    /// The input VAT account for `rate`; when the rate is not in [`Chart::input_vat`], the
    /// `input_vat_other` account with the rate in its name.
    pub fn input_vat_account(&self, rate: Option<Decimal>) -> Account {
        let other = &self.input_vat_other;
        match rate {
            Some(rate) => self.input_vat.iter().find(|a| a.rate == rate).map_or_else(
                || Account { number: other.number.clone(), name: format!("{} {}%", other.name, rate.normalize()) },
                |a| Account { number: a.number.clone(), name: a.name.clone() },
            ),
            None => Account { number: other.number.clone(), name: format!("{} (rate unknown)", other.name) },
        }
    }

    /// The first rule matching `supplier`.
    pub fn rule_for(&self, supplier: &Party) -> Option<&LedgerRule> {
        self.rules.iter().find(|rule| rule.matches(supplier))
    }
}

impl LedgerRule {
    pub fn matches(&self, supplier: &Party) -> bool {
        if self.supplier_vat_id.is_none() && self.supplier_name_contains.is_none() {
            return false;
        }
        let vat_matches = self.supplier_vat_id.as_deref().is_none_or(|wanted| {
            supplier.vat_id.as_deref().is_some_and(|actual| compact_id(actual) == compact_id(wanted))
        });
        let name_matches = self.supplier_name_contains.as_deref().is_none_or(|wanted| {
            supplier.name.as_deref().is_some_and(|actual| actual.to_lowercase().contains(&wanted.to_lowercase()))
        });
        vat_matches && name_matches
    }
}

/// `id` without whitespace and in upper case, for comparing identifiers as people write them.
fn compact_id(id: &str) -> String {
    id.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}
