//! Resource limits for reading one document ([`Limits`]): time, memory, size, pages, pixels and
//! tool output. The readers and the sandbox that runs their tools enforce them.

use std::time::Duration;

/// Resource limits for reading one document. Every external tool runs under them; the defaults
/// suit the worker's default 120 s job budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget for the whole document; subprocesses still running then are killed.
    pub time: Duration,
    /// Address-space limit of each subprocess (`prlimit --as`), which bounds its memory.
    pub memory_bytes: u64,
    /// Largest document accepted, in bytes.
    pub max_input_bytes: usize,
    /// Most pages a PDF may have.
    pub max_pages: u32,
    /// Largest image (or rendered PDF page) accepted, in pixels.
    pub max_pixels: u64,
    /// Most bytes any tool may print or write (text layer, attachment, page bitmaps each).
    pub max_output_bytes: u64,
    /// Tesseract processes run side by side for a multi-page document.
    pub ocr_processes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            time: Duration::from_secs(110),
            memory_bytes: 1536 * 1024 * 1024,
            max_input_bytes: 64 * 1024 * 1024,
            max_pages: 200,
            max_pixels: 100_000_000,
            max_output_bytes: 256 * 1024 * 1024,
            ocr_processes: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}
