//! A bounded fuzz test over every reader (UBL, CII, Factur-X, the text route) and the booking:
//! mutated sample invoices and generated invoice text, each run under `catch_unwind`. The
//! property: no input panics, and every proposal that comes out books balanced entries.
//!
//! Each test stops after its time budget (`SURGE_FUZZ_SECS`, default 6 s) or its iteration cap,
//! whichever comes first; the budget only bounds the run and is never asserted. The seed is
//! printed and can be replayed with `SURGE_FUZZ_SEED`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use shared::chart::Chart;
use shared::proposal::{BookingProposal, SourceFormat};

use crate::error::ExtractError;
use crate::limits::Limits;
use crate::test_samples::samples_dir;
use crate::{booking, einvoice, pdf, text};

/// Numbers at and beyond the edges: the decimal type's limits, the most decimals it holds,
/// Surge's amount limit and just past it, and strings that are not numbers at all.
const EXTREMES: &[&str] = &[
    "79228162514264337593543950335",
    "-79228162514264337593543950335",
    "7922816251426433759354395033.5",
    "0.0000000000000000000000000001",
    "1000000000000000",
    "1000000000000000.01",
    "-1000000000000000.01",
    "99999999999999999999999999999999999",
    "-0",
    "0",
    "1e30",
    "NaN",
    "",
    "12,34",
    "+5",
    ".5",
];

struct Fuzzer {
    rng: StdRng,
    seed: u64,
    deadline: Instant,
    cap: usize,
}

impl Fuzzer {
    fn new(cap: usize) -> Fuzzer {
        let seed = std::env::var("SURGE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
        let secs = std::env::var("SURGE_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
        eprintln!("fuzz seed {seed} (replay with SURGE_FUZZ_SEED={seed})");
        Fuzzer { rng: StdRng::seed_from_u64(seed), seed, deadline: Instant::now() + Duration::from_secs(secs), cap }
    }

    /// Runs `case` until the budget or the cap is used up; returns how many cases ran.
    fn run(&mut self, mut case: impl FnMut(&mut StdRng) -> Result<(), String>) -> usize {
        let mut runs = 0;
        while runs < self.cap && Instant::now() < self.deadline {
            if let Err(failure) = case(&mut self.rng) {
                panic!("fuzz case {runs} (seed {}) failed: {failure}", self.seed);
            }
            runs += 1;
        }
        runs
    }

    fn extreme(rng: &mut StdRng) -> String {
        if rng.random_bool(0.7) {
            EXTREMES[rng.random_range(0..EXTREMES.len())].to_owned()
        } else {
            let digits = rng.random_range(1..40);
            let mut number: String = (0..digits).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
            if rng.random_bool(0.5) {
                let at = rng.random_range(0..=number.len());
                number.insert(at, '.');
            }
            if rng.random_bool(0.3) {
                number.insert(0, '-');
            }
            number
        }
    }
}

/// Runs a reader and the booking on its result; `Err` describes a panic or an unbalanced booking.
fn check(what: &str, input: &[u8], read: impl FnOnce() -> Result<BookingProposal, ExtractError>) -> Result<(), String> {
    let show = || String::from_utf8_lossy(&input[..input.len().min(2_000)]).into_owned();
    let proposal = match catch_unwind(AssertUnwindSafe(read)) {
        Err(panic) => return Err(format!("{what} panicked: {}\ninput: {}", panic_message(&panic), show())),
        Ok(Err(_)) => return Ok(()),
        Ok(Ok(proposal)) => proposal,
    };
    let mut booked = proposal;
    match catch_unwind(AssertUnwindSafe(|| booking::book(&mut booked, &Chart::default()))) {
        Err(panic) => Err(format!("booking after {what} panicked: {}\ninput: {}", panic_message(&panic), show())),
        Ok(Err(_)) => Ok(()),
        Ok(Ok(())) => {
            let debits = booked.journal_entries.iter().try_fold(Decimal::ZERO, |sum, e| sum.checked_add(e.debit));
            let credits = booked.journal_entries.iter().try_fold(Decimal::ZERO, |sum, e| sum.checked_add(e.credit));
            if debits.is_some() && debits == credits {
                Ok(())
            } else {
                Err(format!("{what}: unbalanced booking {debits:?} != {credits:?}\ninput: {}", show()))
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// The sample files under `folders` whose names end in `extension`.
fn seeds(folders: &[&str], extension: &str) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for folder in folders {
        let dir = samples_dir().join(folder);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(extension) {
                seeds.push(std::fs::read(entry.path()).unwrap_or_else(|err| panic!("cannot read seed: {err}")));
            }
        }
    }
    assert!(!seeds.is_empty(), "no *{extension} seeds in {folders:?}");
    seeds
}

/// Replaces the text of one or more numeric elements (`>123.45<`) with extremes.
fn mutate_numbers(xml: &str, rng: &mut StdRng) -> String {
    let numbers = crate::text::numbers::regex(r">\s*-?\d+(?:\.\d+)?\s*<");
    let spans: Vec<_> = numbers.find_iter(xml).map(|m| m.range()).collect();
    if spans.is_empty() {
        return xml.to_owned();
    }
    let mut out = xml.to_owned();
    let count = rng.random_range(1..=spans.len().min(6));
    let mut chosen: Vec<_> = (0..count).map(|_| spans[rng.random_range(0..spans.len())].clone()).collect();
    chosen.sort_by_key(|span| std::cmp::Reverse(span.start));
    chosen.dedup();
    for span in chosen {
        out.replace_range(span, &format!(">{}<", Fuzzer::extreme(rng)));
    }
    out
}

/// Flips, deletes, duplicates or truncates a few random bytes.
fn mutate_bytes(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if out.is_empty() {
            break;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..4) {
            0 => out[at] = rng.random(),
            1 => {
                let end = (at + rng.random_range(1..64)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(1..256)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn e_invoice_readers_never_panic() {
    let seeds = seeds(&["peppol-bis3", "xrechnung", "zugferd"], ".xml");
    let mut fuzzer = Fuzzer::new(20_000);
    let runs = fuzzer.run(|rng| {
        let seed = &seeds[rng.random_range(0..seeds.len())];
        let input = if rng.random_bool(0.6) {
            mutate_numbers(&String::from_utf8_lossy(seed), rng).into_bytes()
        } else {
            mutate_bytes(seed, rng)
        };
        check("einvoice::parse", &input, || einvoice::parse(&input))
    });
    eprintln!("{runs} mutated UBL/CII/Factur-X documents read without a panic");
    assert!(runs > 0);
}

/// Lines an invoice's text layer is made of; `{}` is a number.
const TEXT_LINES: &[&str] = &[
    "RECHNUNG",
    "Invoice",
    "Rechnungsnummer: RE-{}",
    "Invoice no. {}",
    "Rechnungsdatum: 15.01.2024",
    "Date: 2024-01-15",
    "Netto {} EUR",
    "Subtotal {}",
    "MwSt {} %   {}",
    "VAT {}% on {}   {}",
    "USt 19 % {}",
    "Brutto {} €",
    "Gesamtbetrag {}",
    "Total {}",
    "Amount due {}",
    "Anzahlung {}",
    "{}   Stück   {}   {}",
    "Pos {} Widget {} x {} = {}",
    "Rabatt {} %",
    "IBAN DE89 3704 0044 0532 0130 00",
    "USt-IdNr. DE123456789",
    "Lieferant GmbH, Hauptstr. {}, 10115 Berlin",
];

/// A random number as an invoice prints it, or an extreme.
fn printed_number(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => Fuzzer::extreme(rng),
        1 => format!("{}.{:03},{:02}", rng.random_range(1..1000), rng.random_range(0..1000), rng.random_range(0..100)),
        2 => format!("{},{:03}.{:02}", rng.random_range(1..1000), rng.random_range(0..1000), rng.random_range(0..100)),
        _ => format!("{},{:02}", rng.random_range(0..100_000), rng.random_range(0..100)),
    }
}

#[test]
fn the_text_route_never_panics() {
    let mut fuzzer = Fuzzer::new(5_000);
    let runs = fuzzer.run(|rng| {
        let pages: Vec<String> = (0..rng.random_range(1..3))
            .map(|_| {
                let mut page = String::new();
                for _ in 0..rng.random_range(1..40) {
                    let template = TEXT_LINES[rng.random_range(0..TEXT_LINES.len())];
                    let mut line = String::new();
                    for (i, part) in template.split("{}").enumerate() {
                        if i > 0 {
                            line.push_str(&printed_number(rng));
                        }
                        line.push_str(part);
                    }
                    page.push_str(&" ".repeat(rng.random_range(0..50)));
                    page.push_str(&line);
                    page.push('\n');
                }
                page
            })
            .collect();
        let input = pages.join("\u{c}");
        check("text::read", input.as_bytes(), || text::read(&pages, SourceFormat::PdfText))
    });
    eprintln!("{runs} generated text layers read without a panic");
    assert!(runs > 0);
}

/// The PDF route with its external tools is slow, so a few dozen mutated Factur-X PDFs.
#[test]
fn the_pdf_route_never_panics() {
    let seeds = seeds(&["zugferd"], ".pdf");
    let limits = Limits::default();
    let mut fuzzer = Fuzzer::new(40);
    let runs = fuzzer.run(|rng| {
        let input = mutate_bytes(&seeds[rng.random_range(0..seeds.len())], rng);
        check("pdf::read", &input, || pdf::read(&input, &limits, false))
    });
    eprintln!("{runs} mutated Factur-X PDFs read without a panic");
    assert!(runs > 0);
}
