//! Layout text (as `pdftotext -layout` prints it, or as OCR words are placed back on a grid) cut
//! into lines and cells, so a label can find its value beside it or below it.
//!
//! A cell is a run of text on one line separated from its neighbours by two or more spaces:
//! `Rechnungsnr.          30064443` is two cells, `Factuurnummer: 993548900` one.

/// A piece of a line between column gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cell {
    /// Column (in characters) where the cell starts.
    pub(crate) start: usize,
    /// Column just past the cell's last character.
    pub(crate) end: usize,
    pub(crate) text: String,
}

/// One line of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Page number, from 0.
    pub(crate) page: usize,
    pub(crate) text: String,
    pub(crate) cells: Vec<Cell>,
}

impl Line {
    pub(crate) fn is_blank(&self) -> bool {
        self.cells.is_empty()
    }
}

/// The whole document as lines, pages one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) lines: Vec<Line>,
}

/// A position in the layout: line index and cell index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) line: usize,
    pub(crate) cell: usize,
}

impl Layout {
    /// Cuts pages of layout text into lines and cells.
    pub(crate) fn new(pages: &[String]) -> Layout {
        let lines = pages
            .iter()
            .enumerate()
            .flat_map(|(page, text)| {
                text.lines().map(move |line| {
                    let text = line.replace('\t', "    ");
                    Line { page, cells: cells(&text), text }
                })
            })
            .collect();
        Layout { lines }
    }

    /// The cell at `at`.
    pub(crate) fn cell(&self, at: At) -> &Cell {
        &self.lines[at.line].cells[at.cell]
    }

    /// Every cell with its position, in reading order.
    pub(crate) fn cells(&self) -> impl Iterator<Item = (At, &Cell)> {
        self.lines
            .iter()
            .enumerate()
            .flat_map(|(line, l)| l.cells.iter().enumerate().map(move |(cell, c)| (At { line, cell }, c)))
    }

    /// Cells in up to `max_lines` non-blank lines below `at` (on the same page) that overlap it
    /// horizontally, nearest first.
    pub(crate) fn below(&self, at: At, max_lines: usize) -> Vec<(At, &Cell)> {
        let anchor = self.cell(at);
        let page = self.lines[at.line].page;
        self.lines
            .iter()
            .enumerate()
            .skip(at.line + 1)
            .take_while(|(_, line)| line.page == page)
            .filter(|(_, line)| !line.is_blank())
            .take(max_lines)
            .flat_map(|(index, line)| {
                line.cells
                    .iter()
                    .enumerate()
                    .filter(|(_, cell)| overlaps(anchor, cell))
                    .map(move |(cell_index, cell)| (At { line: index, cell: cell_index }, cell))
            })
            .collect()
    }

    /// The text of the cells right of `at` on its line, joined by two spaces.
    pub(crate) fn right_of(&self, at: At) -> String {
        let line = &self.lines[at.line];
        line.cells[at.cell + 1..].iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("  ")
    }

    /// All text, lines joined by newlines (for document-wide statistics).
    pub(crate) fn full_text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// Whether two cells share columns, allowing two characters of slack.
pub(crate) fn overlaps(a: &Cell, b: &Cell) -> bool {
    b.start < a.end + 2 && a.start < b.end + 2
}

/// Splits a line at runs of two or more spaces.
fn cells(line: &str) -> Vec<Cell> {
    let chars: Vec<char> = line.chars().collect();
    let mut cells = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index].is_whitespace() {
            index += 1;
            continue;
        }
        let start = index;
        let mut end = index;
        while index < chars.len() {
            let gap = chars[index].is_whitespace() && chars.get(index + 1).is_none_or(|c| c.is_whitespace());
            if gap {
                break;
            }
            if !chars[index].is_whitespace() {
                end = index + 1;
            }
            index += 1;
        }
        cells.push(Cell { start, end, text: chars[start..end].iter().collect() });
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_cells_at_wide_gaps() {
        let layout =
            Layout::new(&["Rechnungsnr.      30064443     Kundennr. 47774\nFactuurnummer: 993548900".to_owned()]);
        let texts: Vec<&str> = layout.lines[0].cells.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["Rechnungsnr.", "30064443", "Kundennr. 47774"]);
        assert_eq!(layout.lines[0].cells[1].start, 18);
        assert_eq!(layout.lines[1].cells.len(), 1);
    }

    #[test]
    fn finds_values_below() {
        let text = "Invoice Date:        Due Date:\n\n03/20/2023           04/04/2023\n";
        let layout = Layout::new(&[text.to_owned()]);
        let below = layout.below(At { line: 0, cell: 1 }, 2);
        assert_eq!(below.len(), 1);
        assert_eq!(below[0].1.text, "04/04/2023");
        assert_eq!(layout.right_of(At { line: 0, cell: 0 }), "Due Date:");
    }
}
