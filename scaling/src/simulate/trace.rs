//! Arrival traces: the CSV the simulator replays (`at_secs,tenant,size_bytes,pages`).
//!
//! ```text
//! # comments start with '#'; this one declares how long the trace lasts:
//! # duration_secs=108000
//! at_secs,tenant,size_bytes,pages
//! 12.25,t03,48211,1
//! 12.80,bulk,9437184,42
//! ```
//! Times are seconds from the start, in any order (they are sorted on reading). Without a
//! `duration_secs` comment the trace ends with its last arrival.

use std::fmt::Write as _;

/// The header line every trace starts with (after comments).
pub const TRACE_HEADER: &str = "at_secs,tenant,size_bytes,pages";

/// One uploaded document.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Seconds from the start of the trace.
    pub at_secs: f64,
    pub tenant: String,
    pub size_bytes: u64,
    /// Estimated pages (what the dispatcher's `page_estimate` would say).
    pub pages: u32,
}

/// A replayable arrival trace, sorted by time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    pub arrivals: Vec<Arrival>,
    /// How long the trace lasts: at least until its last arrival.
    pub duration_secs: f64,
}

/// Why a trace cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    #[error("the trace does not start with the header `{TRACE_HEADER}`")]
    MissingHeader,
    #[error("line {line}: {problem}")]
    Invalid { line: usize, problem: String },
}

/// Reads a trace in the CSV format above.
pub fn parse_trace(text: &str) -> Result<Trace, TraceError> {
    let mut declared_duration = None;
    let mut header_seen = false;
    let mut arrivals = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Some(value) = comment.trim().strip_prefix("duration_secs=") {
                let secs = parse_field::<f64>(value.trim(), line, "duration_secs")?;
                declared_duration = Some(secs);
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if !header_seen {
            if trimmed != TRACE_HEADER {
                return Err(TraceError::MissingHeader);
            }
            header_seen = true;
            continue;
        }
        arrivals.push(parse_arrival(trimmed, line)?);
    }
    if !header_seen {
        return Err(TraceError::MissingHeader);
    }
    arrivals.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    let last = arrivals.last().map_or(0.0, |a| a.at_secs);
    Ok(Trace { arrivals, duration_secs: declared_duration.unwrap_or(0.0).max(last) })
}

fn parse_arrival(line_text: &str, line: usize) -> Result<Arrival, TraceError> {
    let fields: Vec<&str> = line_text.split(',').map(str::trim).collect();
    let [at, tenant, size, pages] = fields[..] else {
        return Err(TraceError::Invalid { line, problem: format!("expected 4 fields, found {}", fields.len()) });
    };
    let at_secs = parse_field::<f64>(at, line, "at_secs")?;
    if !(at_secs.is_finite() && at_secs >= 0.0) {
        return Err(TraceError::Invalid { line, problem: format!("at_secs must be a time >= 0, not `{at}`") });
    }
    if tenant.is_empty() {
        return Err(TraceError::Invalid { line, problem: "tenant is empty".to_owned() });
    }
    Ok(Arrival {
        at_secs,
        tenant: tenant.to_owned(),
        size_bytes: parse_field(size, line, "size_bytes")?,
        pages: parse_field(pages, line, "pages")?,
    })
}

fn parse_field<T: std::str::FromStr>(value: &str, line: usize, name: &str) -> Result<T, TraceError> {
    value.parse().map_err(|_| TraceError::Invalid { line, problem: format!("{name} `{value}` is not a valid number") })
}

impl Trace {
    /// The trace in the CSV format [`parse_trace`] reads, preceded by `comments` (one per line).
    pub fn to_csv(&self, comments: &[&str]) -> String {
        let mut out = String::with_capacity(self.arrivals.len() * 28 + 256);
        for comment in comments {
            let _ = writeln!(out, "# {comment}");
        }
        let _ = writeln!(out, "# duration_secs={}", self.duration_secs);
        let _ = writeln!(out, "{TRACE_HEADER}");
        for a in &self.arrivals {
            let _ = writeln!(out, "{:.2},{},{},{}", a.at_secs, a.tenant, a.size_bytes, a.pages);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sorts_and_round_trips() {
        let text =
            "# a comment\n# duration_secs=100\nat_secs,tenant,size_bytes,pages\n5.5,t02,2048,2\n\n1.25,t01,100,1\n";
        let trace = parse_trace(text).unwrap();
        assert_eq!(trace.duration_secs, 100.0);
        assert_eq!(trace.arrivals.len(), 2);
        assert_eq!(trace.arrivals[0].tenant, "t01", "sorted by time");
        assert_eq!(trace.arrivals[1], Arrival { at_secs: 5.5, tenant: "t02".into(), size_bytes: 2048, pages: 2 });
        assert_eq!(parse_trace(&trace.to_csv(&["round trip"])).unwrap(), trace);
    }

    #[test]
    fn duration_defaults_to_the_last_arrival() {
        let trace = parse_trace("at_secs,tenant,size_bytes,pages\n7,t,1,1\n").unwrap();
        assert_eq!(trace.duration_secs, 7.0);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        assert_eq!(parse_trace("time,tenant\n1,t\n"), Err(TraceError::MissingHeader));
        assert_eq!(parse_trace("# only a comment\n"), Err(TraceError::MissingHeader));
        let err = parse_trace("at_secs,tenant,size_bytes,pages\n1,t,1,1\n2,t,big,1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: size_bytes `big` is not a valid number");
        let err = parse_trace("at_secs,tenant,size_bytes,pages\n1,t,1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: expected 4 fields, found 3");
        let err = parse_trace("at_secs,tenant,size_bytes,pages\n-1,t,1,1\n").unwrap_err();
        assert!(err.to_string().contains("at_secs"), "{err}");
    }
}
