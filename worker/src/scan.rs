//! Scanned images (PNG, JPEG, TIFF) → booking proposal through OCR.
//!
//! The dimensions are read from the image header first, so an image claiming absurd dimensions
//! fails before anything is decoded. Images of ordinary size go to Tesseract as they are (it
//! decodes them in its own sandboxed process); small ones (phone screenshots, low-resolution
//! scans) are decoded here under allocation limits, converted to grey and enlarged, because
//! Tesseract reads text best at about 300 dpi.

use std::io::Cursor;
use std::path::PathBuf;

use image::{ImageFormat, ImageReader, imageops::FilterType};
use shared::domain::DocumentType;
use shared::proposal::{BookingProposal, SourceFormat};

use crate::error::ExtractError;
use crate::limits::Limits;
use crate::ocr;
use crate::sandbox::Budget;
use crate::text;

/// Images narrower than this are enlarged before OCR.
const SMALL_WIDTH: u32 = 1600;
/// Width small images are enlarged to, about an A4 page at 300 dpi.
const TARGET_WIDTH: u32 = 2400;
/// Longest side accepted, whatever the pixel count.
const MAX_SIDE: u32 = 30_000;

/// Reads a scanned image into a booking proposal without journal entries.
pub(crate) fn read(
    bytes: &[u8],
    document_type: DocumentType,
    limits: &Limits,
) -> Result<BookingProposal, ExtractError> {
    let format = match document_type {
        DocumentType::Png => ImageFormat::Png,
        DocumentType::Jpeg => ImageFormat::Jpeg,
        _ => ImageFormat::Tiff,
    };
    let (width, height) = dimensions(bytes, format, limits)?;
    let budget = Budget::start(limits);
    let dir = tempfile::Builder::new()
        .prefix("surge-scan-")
        .tempdir()
        .map_err(|err| ExtractError::ToolUnavailable(format!("cannot create a temporary directory: {err}")))?;
    let image = if width < SMALL_WIDTH {
        enlarged(bytes, format, width, height, limits, dir.path())?
    } else {
        let path = dir.path().join(format!("scan.{}", format.extensions_str().first().copied().unwrap_or("img")));
        std::fs::write(&path, bytes)
            .map_err(|err| ExtractError::ToolUnavailable(format!("cannot write the scan: {err}")))?;
        path
    };
    let pages = ocr::recognise(dir.path(), &[image], 0, &budget)?;
    budget.check()?;
    let mut proposal = text::read(&pages, SourceFormat::Ocr)?;
    proposal.warnings.push("read from a scanned image by OCR; check the fields with low confidence".to_owned());
    Ok(proposal)
}

/// Width and height from the header alone, refused when absurd.
pub(crate) fn dimensions(bytes: &[u8], format: ImageFormat, limits: &Limits) -> Result<(u32, u32), ExtractError> {
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|err| ExtractError::Malformed(format!("not a readable {} image: {err}", format_name(format))))?;
    let pixels = u64::from(width) * u64::from(height);
    if width > MAX_SIDE || height > MAX_SIDE || pixels > limits.max_pixels {
        return Err(ExtractError::TooLarge(format!(
            "the image claims {width} x {height} pixels ({} megapixels); at most {} megapixels and {MAX_SIDE} pixels a side are read",
            pixels / 1_000_000,
            limits.max_pixels / 1_000_000
        )));
    }
    if width == 0 || height == 0 {
        return Err(ExtractError::Malformed("the image has no pixels".to_owned()));
    }
    Ok((width, height))
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        _ => "TIFF",
    }
}

/// Decodes a small image, converts it to grey, enlarges it to about [`TARGET_WIDTH`] and writes
/// it as a raw PGM for Tesseract.
fn enlarged(
    bytes: &[u8],
    format: ImageFormat,
    width: u32,
    height: u32,
    limits: &Limits,
    dir: &std::path::Path,
) -> Result<PathBuf, ExtractError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoding_limits = image::Limits::default();
    decoding_limits.max_image_width = Some(SMALL_WIDTH);
    decoding_limits.max_image_height = Some(MAX_SIDE);
    decoding_limits.max_alloc = Some(limits.memory_bytes.min(512 * 1024 * 1024));
    reader.limits(decoding_limits);
    let decoded = reader
        .decode()
        .map_err(|err| ExtractError::Malformed(format!("cannot decode the {} image: {err}", format_name(format))))?;
    let factor = ((TARGET_WIDTH + width / 2) / width).clamp(1, 4);
    let grey = image::imageops::resize(&decoded.to_luma8(), width * factor, height * factor, FilterType::CatmullRom);
    let mut pgm = format!("P5\n{} {}\n255\n", grey.width(), grey.height()).into_bytes();
    pgm.extend_from_slice(grey.as_raw());
    let path = dir.join("scan.pgm");
    std::fs::write(&path, pgm).map_err(|err| ExtractError::ToolUnavailable(format!("cannot write the scan: {err}")))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG claiming `width` x `height` greyscale pixels, with a few bytes of image data.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IDAT", &[0x78, 0x9c, 0x03, 0x00][..]), (b"IEND", &[][..])] {
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(data);
            png.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
            png.extend_from_slice(&chunk);
            png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        png
    }

    /// CRC-32 (IEEE), as PNG chunks need.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn absurd_dimensions_fail_before_decoding() {
        let started = std::time::Instant::now();
        let png = png_header(100_000, 100_000);
        let error = read(&png, DocumentType::Png, &Limits::default()).expect_err("absurd image");
        assert!(matches!(&error, ExtractError::TooLarge(m) if m.contains("100000 x 100000")), "{error:?}");
        assert_eq!(error.code(), "document_too_large");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_phone_scan_is_read_by_ocr() {
        let png = crate::test_samples::sample("invoice2data/FlipkartInvoice.png");
        let proposal = read(&png, DocumentType::Png, &Limits::default()).expect("OCR reads the scan");
        assert_eq!(proposal.source_format, SourceFormat::Ocr);
        assert_eq!(proposal.totals.gross.map(|g| g.to_string()).as_deref(), Some("319.00"), "{proposal:#?}");
        assert_eq!(proposal.issue_date, chrono::NaiveDate::from_ymd_opt(2015, 10, 20), "{proposal:#?}");
        assert!(proposal.confidence.values().all(|c| *c < 1.0));
    }

    #[test]
    fn garbage_is_malformed() {
        let error = read(b"not an image", DocumentType::Jpeg, &Limits::default()).expect_err("garbage");
        assert!(matches!(error, ExtractError::Malformed(_)), "{error:?}");
    }
}
