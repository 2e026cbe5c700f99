//! OCR with Tesseract: PDF pages rasterised by `pdftoppm` to raw greyscale bitmaps (PGM), or
//! scanned images, read back as layout text.
//!
//! One `tesseract` process reads a whole list of pages, so its engine and language data are
//! loaded once; pages are split over several such processes (as many as
//! [`Limits::ocr_processes`]) that run side by side, each single-threaded
//! (`OMP_THREAD_LIMIT=1`). Tesseract's word boxes (TSV) are placed back on a character grid so
//! the field finders see columns as they would in `pdftotext -layout` output.

use std::path::{Path, PathBuf};

use crate::error::ExtractError;
use crate::limits::Limits;
use crate::sandbox::{Budget, Tool};

/// Resolution pages are rasterised at.
pub(crate) const DPI: u32 = 300;
/// Tesseract language data: English, German, Dutch, French (Debian's `tesseract-ocr-*`).
const LANGUAGES: &str = "eng+deu+nld+fra";

/// OCR text of `pages` (numbers from 1) of the PDF `pdf` in `dir`, in the order given.
pub(crate) fn pdf_pages(
    dir: &Path,
    pdf: &str,
    pages: &[u32],
    budget: &Budget,
    limits: &Limits,
) -> Result<Vec<String>, ExtractError> {
    let processes = limits.ocr_processes.clamp(1, pages.len().max(1));
    // Round robin, so each process gets pages from all over the document.
    let chunks: Vec<Vec<u32>> =
        (0..processes).map(|k| pages.iter().copied().skip(k).step_by(processes).collect()).collect();
    let results: Vec<Result<Vec<(u32, String)>, ExtractError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(k, chunk)| scope.spawn(move || rasterise_and_recognise(dir, pdf, chunk, k, budget)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Err(ExtractError::ToolUnavailable("an OCR thread panicked".to_owned())))
            })
            .collect()
    });
    let mut by_page = Vec::new();
    for result in results {
        by_page.extend(result?);
    }
    Ok(pages.iter().map(|p| by_page.iter().find(|(q, _)| q == p).map(|(_, t)| t.clone()).unwrap_or_default()).collect())
}

/// Rasterises `pages` one by one, then reads them all with one Tesseract process.
fn rasterise_and_recognise(
    dir: &Path,
    pdf: &str,
    pages: &[u32],
    process: usize,
    budget: &Budget,
) -> Result<Vec<(u32, String)>, ExtractError> {
    let images = pages.iter().map(|page| rasterise(dir, pdf, *page, budget)).collect::<Result<Vec<_>, _>>()?;
    let texts = recognise(dir, &images, process, budget)?;
    Ok(pages.iter().copied().zip(texts).collect())
}

/// Renders one page as an 8-bit greyscale PGM at [`DPI`].
fn rasterise(dir: &Path, pdf: &str, page: u32, budget: &Budget) -> Result<PathBuf, ExtractError> {
    let number = page.to_string();
    let prefix = format!("page-{page}");
    let resolution = DPI.to_string();
    Tool::new("pdftoppm", dir)
        .args(["-r", resolution.as_str(), "-gray", "-f", number.as_str(), "-l", number.as_str(), "-singlefile"])
        .args([pdf, prefix.as_str()])
        .run(budget)
        .map_err(|e| {
            e.into_extract_error(|reason| ExtractError::Malformed(format!("cannot render page {page} ({reason})")))
        })?;
    Ok(dir.join(format!("{prefix}.pgm")))
}

/// Reads `images` with one Tesseract process; one layout text per image.
pub(crate) fn recognise(
    dir: &Path,
    images: &[PathBuf],
    process: usize,
    budget: &Budget,
) -> Result<Vec<String>, ExtractError> {
    let list = dir.join(format!("pages-{process}.txt"));
    let listing: String = images.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(&list, listing)
        .map_err(|err| ExtractError::ToolUnavailable(format!("cannot write the OCR page list: {err}")))?;
    let list_name = list.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let output = Tool::new("tesseract", dir)
        .args([list_name.as_str(), "-", "-l", LANGUAGES, "--psm", "3", "-c", "preserve_interword_spaces=1", "tsv"])
        .env("OMP_THREAD_LIMIT", "1")
        .run(budget)
        .map_err(|e| e.into_extract_error(|reason| ExtractError::Malformed(format!("OCR failed ({reason})"))))?;
    let tsv = String::from_utf8_lossy(&output.stdout);
    Ok(layout_pages(&tsv, images.len()))
}

/// One recognised word and its box, in pixels.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    page: usize,
    /// Tesseract's block, paragraph and line numbers: the line the word belongs to.
    line: (u32, u32, u32),
    left: i64,
    top: i64,
    width: i64,
    height: i64,
    text: String,
}

/// Tesseract TSV → one layout text per page (`pages` of them, pages without words empty).
fn layout_pages(tsv: &str, pages: usize) -> Vec<String> {
    let words: Vec<Word> = tsv.lines().skip(1).filter_map(word).collect();
    (1..=pages).map(|page| layout_page(words.iter().filter(|w| w.page == page).collect())).collect()
}

/// A TSV row of level 5 (a word) with text.
fn word(row: &str) -> Option<Word> {
    let fields: Vec<&str> = row.split('\t').collect();
    if fields.len() < 12 || fields[0] != "5" {
        return None;
    }
    let text = fields[11].trim();
    if text.is_empty() {
        return None;
    }
    let number = |i: usize| fields[i].parse::<i64>().ok();
    let small = |i: usize| fields[i].parse::<u32>().ok();
    Some(Word {
        page: usize::try_from(number(1)?).ok()?,
        line: (small(2)?, small(3)?, small(4)?),
        left: number(6)?,
        top: number(7)?,
        width: number(8)?,
        height: number(9)?,
        text: text.to_owned(),
    })
}

/// A visual row: Tesseract lines at the same height (columns read as separate blocks).
struct Row<'a> {
    top: i64,
    bottom: i64,
    words: Vec<&'a Word>,
}

/// Places one page's words on a character grid: rows by height, words at their column, a gap
/// of two or more spaces where the page has a wide gap.
fn layout_page(words: Vec<&Word>) -> String {
    if words.is_empty() {
        return String::new();
    }
    let char_width = median(words.iter().map(|w| w.width / (w.text.chars().count() as i64).max(1))).max(4);
    let line_height = median(words.iter().map(|w| w.height)).max(8);
    let mut lines: Vec<Vec<&Word>> = Vec::new();
    for word in words {
        match lines.iter_mut().find(|l| l[0].page == word.page && l[0].line == word.line) {
            Some(line) => line.push(word),
            None => lines.push(vec![word]),
        }
    }
    let rows = rows(lines);
    let mut text = String::new();
    let mut previous_bottom: Option<i64> = None;
    for row in rows {
        if let Some(bottom) = previous_bottom {
            let blank_lines = ((row.top - bottom) / line_height).clamp(0, 2);
            for _ in 0..blank_lines {
                text.push('\n');
            }
        }
        text.push_str(&row_text(&row, char_width));
        text.push('\n');
        previous_bottom = Some(row.bottom);
    }
    text
}

/// Merges Tesseract lines whose vertical centres fall within each other's band into rows.
fn rows(mut lines: Vec<Vec<&Word>>) -> Vec<Row<'_>> {
    lines.sort_by_key(|l| l.iter().map(|w| w.top).min().unwrap_or(0));
    let mut rows: Vec<Row<'_>> = Vec::new();
    for line in lines {
        let top = line.iter().map(|w| w.top).min().unwrap_or(0);
        let bottom = line.iter().map(|w| w.top + w.height).max().unwrap_or(top);
        let centre = (top + bottom) / 2;
        match rows.iter_mut().find(|r| centre >= r.top && centre <= r.bottom) {
            Some(row) => {
                row.words.extend(line);
                row.top = row.top.min(top);
                row.bottom = row.bottom.max(bottom);
            }
            None => rows.push(Row { top, bottom, words: line }),
        }
    }
    rows.sort_by_key(|r| r.top);
    rows
}

/// One row as text: words in column order, single spaces inside phrases, at least two spaces
/// (and the word's own column, if further) across gaps wider than a character or so.
fn row_text(row: &Row<'_>, char_width: i64) -> String {
    let mut words = row.words.clone();
    words.sort_by_key(|w| w.left);
    let mut text = String::new();
    let mut columns = 0usize;
    let mut previous_right: Option<i64> = None;
    for word in words {
        let column = usize::try_from(word.left / char_width).unwrap_or(0);
        let spaces = match previous_right {
            None => column,
            Some(right) if word.left - right < char_width * 3 / 2 => 1,
            Some(_) => column.saturating_sub(columns).max(2),
        };
        text.extend(std::iter::repeat_n(' ', spaces));
        text.push_str(&word.text);
        columns += spaces + word.text.chars().count();
        previous_right = Some(word.left + word.width);
    }
    text
}

fn median(values: impl Iterator<Item = i64>) -> i64 {
    let mut values: Vec<i64> = values.collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_placed_in_columns() {
        let header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n";
        let rows = [
            "5\t1\t1\t1\t1\t1\t0\t100\t140\t20\t95\tInvoice",
            "5\t1\t1\t1\t1\t2\t150\t100\t60\t20\t95\tNo:",
            "5\t1\t2\t1\t1\t1\t800\t102\t120\t20\t95\t12345",
            "5\t1\t1\t1\t2\t1\t0\t200\t80\t20\t95\tTotal",
        ];
        let tsv = format!("{header}{}\n", rows.join("\n"));
        let pages = layout_pages(&tsv, 2);
        assert_eq!(pages.len(), 2);
        let lines: Vec<&str> = pages[0].lines().collect();
        assert!(lines[0].starts_with("Invoice No:  "), "{lines:?}");
        assert!(lines[0].ends_with("12345"), "{lines:?}");
        assert_eq!(lines.last().map(|l| l.trim()), Some("Total"));
        assert!(pages[1].is_empty());
    }
}
