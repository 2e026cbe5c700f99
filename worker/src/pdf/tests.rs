//! The PDF routes against the public samples: Factur-X through the embedded XML, the text
//! layer, an image-only PDF through OCR, and hostile or encrypted files failing fast and clearly.

use std::time::{Duration, Instant};

use shared::chart::Chart;
use shared::domain::DocumentType;
use shared::proposal::{BookingProposal, SourceFormat};

use super::*;
use crate::einvoice;
use crate::extract::{ExtractOptions, extract_with};
use crate::test_samples::{sample, samples_dir};

fn extract(bytes: &[u8], options: &ExtractOptions) -> Result<BookingProposal, ExtractError> {
    extract_with(bytes, DocumentType::Pdf, &Chart::default(), options)
}

/// The Factur-X PDFs that have their XML beside them, as (pdf, xml) names.
fn factur_x_pairs() -> Vec<(String, String)> {
    let dir = samples_dir().join("zugferd");
    let mut pairs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let stem = name.strip_suffix(".pdf")?;
            let xml = format!("{stem}.cii.xml");
            dir.join(&xml).is_file().then(|| (format!("zugferd/{name}"), format!("zugferd/{xml}")))
        })
        .collect();
    pairs.sort();
    assert!(pairs.len() >= 5, "expected the Factur-X samples in {}", dir.display());
    pairs
}

#[test]
fn factur_x_pdfs_give_exactly_the_embedded_totals() {
    for (pdf, xml) in factur_x_pairs() {
        let proposal = extract(&sample(&pdf), &ExtractOptions::default()).unwrap_or_else(|e| panic!("{pdf}: {e}"));
        let truth = einvoice::parse(&sample(&xml)).unwrap_or_else(|e| panic!("{xml}: {e}"));
        assert_eq!(proposal.source_format, SourceFormat::FacturX, "{pdf}");
        assert_eq!(proposal.totals, truth.totals, "{pdf}");
        assert_eq!(proposal.vat_breakdown, truth.vat_breakdown, "{pdf}");
        assert_eq!(proposal.invoice_number, truth.invoice_number, "{pdf}");
        assert_eq!(proposal.confidence.get("totals.gross"), Some(&1.0), "{pdf}");
        assert!(proposal.is_balanced(), "{pdf}");
    }
}

#[test]
fn factur_x_minimum_profile_is_read_from_its_attachment() {
    let proposal = extract(&sample("zugferd/Facture_FR_MINIMUM.pdf"), &ExtractOptions::default()).expect("reads");
    assert_eq!(proposal.source_format, SourceFormat::FacturX);
    assert!(proposal.totals.gross.is_some());
}

#[test]
fn ignore_embedded_reads_the_visible_text() {
    let options = ExtractOptions { ignore_embedded: true, ..ExtractOptions::default() };
    let proposal = extract(&sample("zugferd/EN16931_Einfach.pdf"), &options).expect("reads");
    assert_eq!(proposal.source_format, SourceFormat::PdfText);
    assert_eq!(proposal.invoice_number.as_deref(), Some("471102"));
    assert_eq!(proposal.totals.gross.map(|g| g.to_string()).as_deref(), Some("529.87"));
    assert!(proposal.confidence.values().all(|c| *c < 1.0), "{:?}", proposal.confidence);
    assert!(proposal.is_balanced());
}

#[test]
fn hostile_pdfs_fail_clearly_and_fast() {
    for (file, expected) in [("hostile/random.pdf", "no %PDF- header"), ("hostile/truncated.pdf", "not a readable PDF")]
    {
        let started = Instant::now();
        let error = extract(&sample(file), &ExtractOptions::default()).expect_err(file);
        assert_eq!(error.code(), "malformed_document", "{file}: {error}");
        assert!(error.to_string().contains(expected), "{file}: {error}");
        assert!(started.elapsed() < Duration::from_secs(5), "{file} took {:?}", started.elapsed());
    }
}

/// A one-page PDF whose trailer declares encryption (the dictionary's content does not matter:
/// encryption is refused before anything is decrypted).
fn encrypted_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        "<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 /O (0123456789abcdef0123456789abcdef) /U (0123456789abcdef0123456789abcdef) >>",
    ];
    build_pdf(&objects.iter().map(|o| o.as_bytes().to_vec()).collect::<Vec<_>>(), "/Encrypt 4 0 R /ID [<00> <00>]")
}

/// A PDF with `objects` numbered from 1 (the first the catalog), a cross-reference table and a
/// trailer with `extra` entries.
fn build_pdf(objects: &[Vec<u8>], extra: &str) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let trailer = format!("trailer\n<< /Size {} /Root 1 0 R {extra} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    pdf.extend_from_slice(trailer.as_bytes());
    pdf
}

#[test]
fn encrypted_pdfs_are_refused() {
    let started = Instant::now();
    let error = extract(&encrypted_pdf(), &ExtractOptions::default()).expect_err("encrypted");
    assert_eq!(error.code(), "encrypted_document", "{error}");
    assert!(error.to_string().contains("encrypted"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!declares_encryption(b"%PDF-1.4 /EncryptMetadata false"));
}

/// A one-page PDF showing the Flipkart sample as an uncompressed greyscale image: no text
/// layer, so only OCR can read it.
fn image_only_pdf() -> Vec<u8> {
    let png = sample("invoice2data/FlipkartInvoice.png");
    let grey = image::load_from_memory(&png).expect("sample decodes").to_luma8();
    let (width, height) = grey.dimensions();
    // Shown at 100 dpi, so the 300 dpi rendering enlarges it threefold.
    let (page_width, page_height) = (width * 72 / 100, height * 72 / 100);
    let content = format!("q {page_width} 0 0 {page_height} 0 0 cm /Im1 Do Q");
    let mut image_object = format!(
        "<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceGray /BitsPerComponent 8 /Length {} >>\nstream\n",
        grey.as_raw().len()
    )
    .into_bytes();
    image_object.extend_from_slice(grey.as_raw());
    image_object.extend_from_slice(b"\nendstream");
    let objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_width} {page_height}] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>"
        )
        .into_bytes(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes(),
        image_object,
    ];
    build_pdf(&objects, "")
}

#[test]
fn image_only_pdfs_are_read_by_ocr() {
    let proposal = extract(&image_only_pdf(), &ExtractOptions::default()).expect("OCR reads the page");
    assert_eq!(proposal.source_format, SourceFormat::Ocr);
    assert_eq!(proposal.totals.gross.map(|g| g.to_string()).as_deref(), Some("319.00"), "{proposal:#?}");
    assert!(proposal.warnings.iter().any(|w| w.contains("read by OCR")), "{:?}", proposal.warnings);
}

#[test]
fn a_document_over_its_time_budget_fails_and_its_tools_are_stopped() {
    let limits = Limits { time: Duration::from_millis(300), ..Limits::default() };
    let options = ExtractOptions { ignore_embedded: false, limits };
    let started = Instant::now();
    let error = extract(&image_only_pdf(), &options).expect_err("OCR cannot finish in 300 ms");
    assert_eq!(error.code(), "over_budget", "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[test]
fn pdfinfo_output_is_parsed() {
    let info = parse_info(
        "Pages:           2\nEncrypted:       no\nPage    1 size:  595 x 842 pts (A4)\nPage    2 size:  612 x 792 pts (letter)\n",
    );
    assert_eq!(info.pages, 2);
    assert!(!info.encrypted);
    assert_eq!(info.page_sizes, [(1, 595.0, 842.0), (2, 612.0, 792.0)]);
    let huge = Info { pages: 1, encrypted: false, page_sizes: vec![(1, 14400.0, 14400.0)] };
    let error = check_page_sizes(&huge, &[1], &Limits::default()).expect_err("too big to render");
    assert_eq!(error.code(), "document_too_large");
}
