//! Namespace-aware XML lookups shared by the UBL and CII readers: `prefix:Name` paths, element
//! text, amounts and dates.
//!
//! Paths are written with this module's own fixed prefixes (`cac`, `cbc`, `rsm`, `ram`, `udt`),
//! which are resolved to namespace URIs here; a document may bind any prefix (or none) to those
//! namespaces and is still read the same way. Elements are matched on namespace URI and local
//! name, never on the prefix the document happens to use.

use std::str::FromStr;

use chrono::NaiveDate;
use roxmltree::Node;
use rust_decimal::Decimal;

use crate::error::ExtractError;

/// Root namespace of a UBL 2.1 invoice.
pub(crate) const UBL_INVOICE: &str = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2";
/// Root namespace of a UBL 2.1 credit note.
pub(crate) const UBL_CREDIT_NOTE: &str = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2";
/// Root namespace of a UN/CEFACT Cross Industry Invoice (D16B, used by EN 16931, XRechnung and
/// Factur-X / ZUGFeRD 2.x).
pub(crate) const CII: &str = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100";

const CAC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
const CBC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";
const RAM: &str = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100";
const UDT: &str = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100";

/// The prefixes paths in this crate may use, and the namespace each stands for.
const PREFIXES: [(&str, &str); 5] = [("cac", CAC), ("cbc", CBC), ("rsm", CII), ("ram", RAM), ("udt", UDT)];

/// Longest piece of a bad value quoted back in an error message.
const QUOTE_LIMIT: usize = 40;

/// Resolves one path step such as `cbc:ID` to (namespace URI, local name).
fn resolve(step: &str) -> Option<(&'static str, &str)> {
    let (prefix, local) = step.split_once(':')?;
    let namespace = PREFIXES.iter().find(|(known, _)| *known == prefix)?.1;
    Some((namespace, local))
}

/// The child elements of `node` matching one path step (`cac:TaxTotal`), in document order.
pub(crate) fn children<'a, 'input>(node: Node<'a, 'input>, step: &str) -> impl Iterator<Item = Node<'a, 'input>> {
    let name = resolve(step);
    debug_assert!(name.is_some(), "unknown prefix in path step {step}");
    node.children().filter(move |child| {
        child.is_element()
            && name.is_some_and(|(namespace, local)| {
                child.tag_name().name() == local && child.tag_name().namespace() == Some(namespace)
            })
    })
}

/// Every element reached from `node` along `path` (steps separated by `/`), in document order.
pub(crate) fn all<'a, 'input>(node: Node<'a, 'input>, path: &str) -> Vec<Node<'a, 'input>> {
    path.split('/').fold(vec![node], |nodes, step| nodes.into_iter().flat_map(|n| children(n, step)).collect())
}

/// The first element reached from `node` along `path`.
pub(crate) fn first<'a, 'input>(node: Node<'a, 'input>, path: &str) -> Option<Node<'a, 'input>> {
    all(node, path).into_iter().next()
}

/// The trimmed text content of `node`'s own text children; `None` when there is none.
pub(crate) fn text(node: Node<'_, '_>) -> Option<String> {
    let joined: String = node.children().filter(Node::is_text).filter_map(|t| t.text()).collect();
    let trimmed = joined.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The text of the first element along `path` that has any.
pub(crate) fn text_at(node: Node<'_, '_>, path: &str) -> Option<String> {
    all(node, path).into_iter().find_map(text)
}

/// Where `node` starts, as `line L, column C`, for error messages and warnings.
pub(crate) fn position(node: Node<'_, '_>) -> String {
    let pos = node.document().text_pos_at(node.range().start);
    format!("line {}, column {}", pos.row, pos.col)
}

/// `value`, shortened for quoting in a message.
fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Parses an XML Schema decimal (`-12.50`, `+3`, `.5`): no exponent, no thousands separators.
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    Decimal::from_str(text.strip_prefix('+').unwrap_or(text)).ok()
}

/// The decimal value of `node` (an amount, quantity or percentage); `Malformed` naming the
/// element when it is empty or not a number.
pub(crate) fn decimal(node: Node<'_, '_>) -> Result<Decimal, ExtractError> {
    let name = node.tag_name().name();
    let value = text(node).ok_or_else(|| {
        ExtractError::Malformed(format!("<{name}> at {} is empty; expected a number", position(node)))
    })?;
    parse_decimal(&value).ok_or_else(|| {
        ExtractError::Malformed(format!(
            "<{name}> at {} holds {}, which is not a decimal number",
            position(node),
            quote(&value)
        ))
    })
}

/// The decimal value of the first element along `path`, `None` when there is no such element.
pub(crate) fn decimal_at(node: Node<'_, '_>, path: &str) -> Result<Option<Decimal>, ExtractError> {
    first(node, path).map(decimal).transpose()
}

/// The decimal value at `path` under `node`, when there is a `node` and such an element.
pub(crate) fn decimal_under(node: Option<Node<'_, '_>>, path: &str) -> Result<Option<Decimal>, ExtractError> {
    node.map_or(Ok(None), |node| decimal_at(node, path))
}

/// `amount / per` when `per` is a usable divisor (a price stated per base quantity), rounded to
/// six decimals; `amount` itself otherwise.
pub(crate) fn per_unit(amount: Decimal, per: Option<Decimal>) -> Decimal {
    match per {
        Some(per) if !per.is_zero() && per != Decimal::ONE => {
            amount.checked_div(per).map_or(amount, |unit| unit.round_dp(6).normalize())
        }
        _ => amount,
    }
}

/// Reads an ISO 8601 date (`2017-11-13`, optionally followed by a time zone as `xs:date` allows).
/// Pushes a warning naming `field` and returns `None` when the text is not a date.
pub(crate) fn iso_date(node: Node<'_, '_>, field: &str, warnings: &mut Vec<String>) -> Option<NaiveDate> {
    let value = text(node)?;
    let date = value
        .get(..10)
        .filter(|_| value.get(10..).is_some_and(is_time_zone))
        .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok());
    if date.is_none() {
        warnings.push(format!("{field} {} at {} is not a date; ignored", quote(&value), position(node)));
    }
    date
}

/// Whether `rest` is empty or an `xs:date` time zone suffix (`Z`, `+01:00`).
fn is_time_zone(rest: &str) -> bool {
    rest.is_empty() || rest == "Z" || (rest.len() == 6 && rest.starts_with(['+', '-']) && rest.get(3..4) == Some(":"))
}

/// Reads a CII `udt:DateTimeString` inside `node`: format `102` (`YYYYMMDD`, also assumed when
/// the attribute is missing). Other formats and bad values give a warning naming `field`.
pub(crate) fn cii_date(node: Node<'_, '_>, field: &str, warnings: &mut Vec<String>) -> Option<NaiveDate> {
    let string = first(node, "udt:DateTimeString")?;
    let value = text(string)?;
    let format = string.attribute("format").unwrap_or("102");
    let date = if format == "102" { NaiveDate::parse_from_str(&value, "%Y%m%d").ok() } else { None };
    if date.is_none() {
        warnings.push(format!(
            "{field} {} (format {}) at {} is not a YYYYMMDD date; ignored",
            quote(&value),
            quote(format),
            position(string)
        ));
    }
    date
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn decimals_follow_xml_schema() {
        assert_eq!(parse_decimal("1656.25"), Some(dec!(1656.25)));
        assert_eq!(parse_decimal("-1500"), Some(dec!(-1500)));
        assert_eq!(parse_decimal("+3"), Some(dec!(3)));
        assert_eq!(parse_decimal(".5"), Some(dec!(0.5)));
        assert_eq!(parse_decimal("5."), Some(dec!(5)));
        for bad in ["", ".", "-", "1,5", "1e5", "1_000", "12.5.1", " 1", "NaN", "0x10", "١٢"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        // More digits than a Decimal holds is an error, not a silent rounding.
        assert_eq!(parse_decimal("123456789012345678901234567890123"), None);
    }

    #[test]
    fn paths_match_namespaces_not_prefixes() {
        let xml = format!(
            r#"<r xmlns:a="{CAC}" xmlns:b="{CBC}" xmlns:cbc="urn:other">
                 <a:Party><b:Name> Acme </b:Name></a:Party>
                 <a:Party><cbc:Name>Impostor</cbc:Name><b:Name>Second</b:Name></a:Party>
               </r>"#
        );
        let doc = roxmltree::Document::parse(&xml).expect("test XML parses");
        let root = doc.root_element();
        let names: Vec<_> = all(root, "cac:Party/cbc:Name").into_iter().filter_map(text).collect();
        assert_eq!(names, ["Acme", "Second"]);
        assert_eq!(text_at(root, "cac:Party/cbc:Name").as_deref(), Some("Acme"));
        assert!(first(root, "cac:Missing/cbc:Name").is_none());
    }

    #[test]
    fn bad_amounts_name_the_element() {
        let xml = format!(r#"<r xmlns:cbc="{CBC}"><cbc:TaxAmount>12,50</cbc:TaxAmount><cbc:Empty/></r>"#);
        let doc = roxmltree::Document::parse(&xml).expect("test XML parses");
        let root = doc.root_element();
        let err = decimal_at(root, "cbc:TaxAmount").expect_err("comma is not a decimal point");
        assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("<TaxAmount>") && m.contains("12,50")));
        assert!(decimal_at(root, "cbc:Empty").is_err());
        assert_eq!(decimal_at(root, "cbc:Missing"), Ok(None));
    }

    #[test]
    fn dates() {
        let xml = format!(
            r#"<r xmlns:cbc="{CBC}" xmlns:udt="{UDT}">
                 <cbc:IssueDate>2017-11-13</cbc:IssueDate><cbc:DueDate>2017-12-01+01:00</cbc:DueDate>
                 <cbc:Bad>13.11.2017</cbc:Bad>
                 <d><udt:DateTimeString format="102">20160404</udt:DateTimeString></d>
                 <m><udt:DateTimeString format="610">201604</udt:DateTimeString></m>
               </r>"#
        );
        let doc = roxmltree::Document::parse(&xml).expect("test XML parses");
        let root = doc.root_element();
        let mut warnings = Vec::new();
        let at = |path| first(root, path).expect("element exists");
        assert_eq!(iso_date(at("cbc:IssueDate"), "issue date", &mut warnings), NaiveDate::from_ymd_opt(2017, 11, 13));
        assert_eq!(iso_date(at("cbc:DueDate"), "due date", &mut warnings), NaiveDate::from_ymd_opt(2017, 12, 1));
        assert_eq!(iso_date(at("cbc:Bad"), "due date", &mut warnings), None);
        let d = root.children().find(|n| n.has_tag_name("d")).expect("d");
        let m = root.children().find(|n| n.has_tag_name("m")).expect("m");
        assert_eq!(cii_date(d, "issue date", &mut warnings), NaiveDate::from_ymd_opt(2016, 4, 4));
        assert_eq!(cii_date(m, "issue date", &mut warnings), None);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn unit_prices_divide_by_base_quantity() {
        assert_eq!(per_unit(dec!(200), Some(dec!(2))), dec!(100));
        assert_eq!(per_unit(dec!(9.9000), Some(dec!(1))), dec!(9.9000));
        assert_eq!(per_unit(dec!(10), Some(dec!(0))), dec!(10));
        assert_eq!(per_unit(dec!(10), Some(dec!(3))), dec!(3.333333));
        assert_eq!(per_unit(dec!(10), None), dec!(10));
    }
}
