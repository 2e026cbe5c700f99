//! The label dictionaries (Dutch, German, French, English) and the search for what follows a
//! label: the rest of its cell, the cells right of it, or the cells below it.
//!
//! Labels are generic words of invoicing ("Rechnungsnummer", "Factuurdatum", "N° de facture",
//! "Amount due"), never a supplier's template.

use std::sync::LazyLock;

use regex::Regex;

use super::layout::{At, Layout};
use super::numbers::regex;

/// Words for the document itself (invoice, credit note) in the four languages.
pub(crate) const INVOICE_WORD: &str = r"(?:(?:handels|miet|schluss|teil|abschlags)?rechnung|invoice|factuur|facture|faktura|gutschrift|creditnota|credit\s*note|avoir|bill)";

/// "Number" words that turn an invoice word into the invoice number's label.
const NUMBER_WORD: &str = r"(?:s?-?nummer|s?-?nr\.?|number|num(?:éro|ero)\.?|no\.?|n[°º]\.?|#|id\b)";

/// Labels of the invoice number: `Rechnungsnr.`, `Invoice No`, `N° de facture`, `Factuurnummer`,
/// `Handelsrechnung (380) Nr.`.
pub(crate) static INVOICE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)(?:\b{INVOICE_WORD}\s*(?:\([^)]{{0,40}}\)\s*){{0,2}}{NUMBER_WORD}|\b{NUMBER_WORD}\s*(?:de\s+(?:la\s+)?|of\s+|van\s+(?:de\s+)?)?{INVOICE_WORD}\b|\bbelegnummer\b|\bdocument\s+(?:no\.?|number)\b)\s*[:.]?"
    ))
});

/// A document title directly followed by its number: `Invoice INV/2023/03/0008`,
/// `Facture FA-2017-0010`.
pub(crate) static INVOICE_TITLE: LazyLock<Regex> =
    LazyLock::new(|| regex(&format!(r"(?i)^{INVOICE_WORD}\s*(?:\(\d{{3}}\)\s*)?:?")));

/// Labels of the issue date.
pub(crate) static ISSUE_DATE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b(?:{INVOICE_WORD}s?\s*-?datum|{INVOICE_WORD}\s+date|date\s+(?:of\s+|de\s+(?:la\s+)?)?{INVOICE_WORD}|datum\s+(?:van\s+de\s+)?{INVOICE_WORD}|belegdatum|ausstellungsdatum|issue\s+date|date\s+of\s+issue|date\s+d'émission|date\s+d.émission)\b\s*[:.]?"
    ))
});

/// A generic date label at the start of a cell: `Datum:`, `Date:`.
pub(crate) static GENERIC_DATE: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)^(?:datum|date|dated|le)\b\s*[:.]?"));

/// "of/dated" after an invoice title and number: `Rechnung Nr. 471102 vom 05.03.2018`.
pub(crate) static TITLE_DATE: LazyLock<Regex> =
    LazyLock::new(|| regex(&format!(r"(?i)\b{INVOICE_WORD}\b[^:]*?\s(?:vom|du|van|of|dated|from)\s")));

/// Words that make a date something other than the issue date.
pub(crate) static OTHER_DATE_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(?:bestell|order|liefer|leistung|deliver|livraison|levering|commande|due|fällig|échéance|verval|zahlbar|payable|period|zeitraum|periode|période|from|bis|until|geldig|gültig|valid)",
    )
});

/// Labels of the due date.
pub(crate) static DUE_DATE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:due\s+date|date\s+due|payment\s+due(?:\s+date)?|due\s+(?:on|by)|pay(?:able)?\s+by|fälligkeit(?:sdatum)?|fällig\s+(?:am|bis)|zahlungsziel|zahlbar\s+bis|vervaldatum|vervaldag|uiterste\s+betaaldatum|(?:te\s+)?betalen\s+v[oó]{2}r|date\s+d.échéance|échéance|date\s+limite\s+de\s+paiement|à\s+payer\s+avant\s+le)\b\s*[:.]?",
    )
});

/// Payment terms ending in a date: `Zahlbar innerhalb 30 Tagen netto bis 04.04.2018`.
pub(crate) static TERMS_DUE_DATE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)(?:zahlbar|payable|netto|net|betaalbaar|payer).*?\b(?:bis|by|until|before|voor|avant)\s")
});

/// Labels of the document currency.
pub(crate) static CURRENCY: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^(?:währung|currency|valuta|devise|monnaie)\b\s*[:.]?"));

/// Labels of the payment reference.
pub(crate) static PAYMENT_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:payment\s+reference|payment\s+ref\.?|communication(?:\s+for\s+your\s+payment)?|verwendungszweck|zahlungsreferenz|betalingskenmerk|betalingsreferentie|référence\s+(?:de\s+)?paiement|structured\s+communication|mededeling)\b\s*[:.]?",
    )
});

/// Section headings of the seller's block.
pub(crate) static SELLER_SECTION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:verkäufer|lieferant|rechnungssteller|seller|supplier|vendor|sold\s+by|leverancier|verkoper|vendeur|fournisseur|émetteur)\s*(?::|$)",
    )
});

/// Section headings of the buyer's block (and other addresses that are not the seller's).
pub(crate) static BUYER_SECTION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:käufer(?:/leistungsempfänger)?|leistungsempfänger|rechnungsempfänger|rechnungsadresse|lieferadresse|abweichender\s+warenempfänger|kunde|buyer|customer|bill(?:ed)?\s+to|invoice\s+to|billing\s+address|sold\s+to|ship(?:ped)?\s+to|shipping\s+address|delivery\s+address|klant|afnemer|factuuradres|afleveradres|acheteur|client|destinataire|adresse\s+de\s+(?:livraison|facturation))\s*(?::|$)",
    )
});

/// A `Name:` label inside a party's block.
pub(crate) static NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)^(?:name|naam|nom|firma|company)\s*:"));

/// Words that make a line about the buyer (a VAT id or account there is not the seller's).
pub(crate) static BUYER_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(?:client|kunde|kunden-|customer|klant|acheteur|buyer|käufer|afnemer|ihr\s+konto|your\s+account|uw\s+rekening)",
    )
});

/// Labels of a bank account that may not be an IBAN.
pub(crate) static BANK_ACCOUNT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:iban|bank\s+account(?:\s+(?:no\.?|number))?|account\s+(?:no\.?|number)|rekeningnummer|rekening|kontonummer|compte)\b\s*[:.]?",
    )
});

/// Words that say a line is about VAT.
pub(crate) static VAT_WORD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)(?:steuer|mwst|\bust\b|\bvat\b|btw|\btva\b|\btax|\biva\b|\bgst\b|\bcst\b)"));

/// What follows a label.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Labeled {
    /// Where the label is.
    pub(crate) at: At,
    /// The text that may hold the value.
    pub(crate) text: String,
    /// How far the text is from the label, which lowers trust: 1.0 in the same cell, 0.9 to
    /// its right, 0.75 below.
    pub(crate) nearness: f32,
}

/// The texts that may hold the value of each occurrence of `label`: the rest of the label's
/// cell, the cells right of it, then cells below it (up to `lines_below` lines).
pub(crate) fn labeled(layout: &Layout, label: &Regex, lines_below: usize) -> Vec<Labeled> {
    let mut found = Vec::new();
    for (at, cell) in layout.cells() {
        let Some(m) = label.find(&cell.text) else { continue };
        let rest = cell.text[m.end()..].trim();
        if !rest.is_empty() {
            found.push(Labeled { at, text: rest.to_owned(), nearness: 1.0 });
        }
        let right = layout.right_of(at);
        if !right.is_empty() {
            found.push(Labeled { at, text: right, nearness: 0.9 });
        }
        for (_, below) in layout.below(at, lines_below) {
            found.push(Labeled { at, text: below.text.clone(), nearness: 0.75 });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_number_labels() {
        for label in [
            "Rechnungsnr.",
            "Rechnungsnummer:",
            "Rechnung Nr.",
            "Invoice No:",
            "Invoice number",
            "Invoice #",
            "Factuurnummer:",
            "N° de facture",
            "Numéro de facture",
            "Facture N°",
            "Handelsrechnung (380) Nr.",
        ] {
            assert!(INVOICE_NUMBER.is_match(label), "{label}");
        }
        for other in ["Kundennr.", "Klantnummer:", "Ordernummer:", "Rechnungsdatum", "Invoice Date:"] {
            assert!(!INVOICE_NUMBER.is_match(other), "{other}");
        }
    }

    #[test]
    fn date_labels() {
        for label in ["Rechnungsdatum", "Invoice Date:", "Factuurdatum:", "Date de facture", "Datum factuur"] {
            assert!(ISSUE_DATE.is_match(label), "{label}");
        }
        assert!(!ISSUE_DATE.is_match("Liefer- und Leistungsdatum:"));
        for label in ["Due Date:", "Fälligkeit", "Zahlungsziel", "Vervaldatum:", "Date d'échéance"] {
            assert!(DUE_DATE.is_match(label), "{label}");
        }
    }

    #[test]
    fn values_beside_and_below() {
        let text = "Invoice Date:       Due Date:\n03/20/2023          04/04/2023\nRechnungsnr.     30064443\n";
        let layout = Layout::new(&[text.to_owned()]);
        let due = labeled(&layout, &DUE_DATE, 1);
        assert_eq!(due.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["04/04/2023"]);
        let number = labeled(&layout, &INVOICE_NUMBER, 1);
        assert_eq!(number[0].text, "30064443");
        assert_eq!(number[0].nearness, 0.9);
    }
}
