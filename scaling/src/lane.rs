//! Lanes: the two queues a document can wait in, the rule that picks one, and a container
//! with one value per lane.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Scheduling lane. Large documents run on their own workers so they never block small ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Small,
    Large,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Small, Lane::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Small => "small",
            Lane::Large => "large",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lane name that is neither `small` nor `large`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lane; expected small or large")]
pub struct UnknownLane;

impl FromStr for Lane {
    type Err = UnknownLane;

    fn from_str(s: &str) -> Result<Lane, UnknownLane> {
        match s {
            "small" => Ok(Lane::Small),
            "large" => Ok(Lane::Large),
            _ => Err(UnknownLane),
        }
    }
}

/// One value per lane: a lookup that cannot fail, unlike a map keyed by lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerLane<T> {
    pub small: T,
    pub large: T,
}

impl<T> PerLane<T> {
    /// A value for each lane, made by `f`.
    pub fn from_fn(mut f: impl FnMut(Lane) -> T) -> PerLane<T> {
        PerLane { small: f(Lane::Small), large: f(Lane::Large) }
    }

    pub fn get(&self, lane: Lane) -> &T {
        match lane {
            Lane::Small => &self.small,
            Lane::Large => &self.large,
        }
    }

    pub fn get_mut(&mut self, lane: Lane) -> &mut T {
        match lane {
            Lane::Small => &mut self.small,
            Lane::Large => &mut self.large,
        }
    }

    /// The values, small first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        [&self.small, &self.large].into_iter()
    }

    /// The values, small first, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        [&mut self.small, &mut self.large].into_iter()
    }

    /// Each lane with its value, small first.
    pub fn iter(&self) -> impl Iterator<Item = (Lane, &T)> {
        [(Lane::Small, &self.small), (Lane::Large, &self.large)].into_iter()
    }

    pub fn map<U>(self, mut f: impl FnMut(Lane, T) -> U) -> PerLane<U> {
        PerLane { small: f(Lane::Small, self.small), large: f(Lane::Large, self.large) }
    }
}

impl<T> std::ops::Index<Lane> for PerLane<T> {
    type Output = T;

    fn index(&self, lane: Lane) -> &T {
        self.get(lane)
    }
}

impl<T> std::ops::IndexMut<Lane> for PerLane<T> {
    fn index_mut(&mut self, lane: Lane) -> &mut T {
        self.get_mut(lane)
    }
}

/// Which documents go to the large lane (`[lanes]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaneConfig {
    /// Documents of at least this many bytes go to the `large` lane.
    pub large_from_bytes: u64,
    /// Documents of at least this many pages go to the `large` lane.
    pub large_from_pages: u32,
}

impl Default for LaneConfig {
    fn default() -> LaneConfig {
        LaneConfig { large_from_bytes: 2 * 1024 * 1024, large_from_pages: 10 }
    }
}

impl LaneConfig {
    /// The lane a document of `size` bytes and `pages` pages belongs in.
    pub fn lane_of(&self, size: u64, pages: u32) -> Lane {
        if size >= self.large_from_bytes || pages >= self.large_from_pages { Lane::Large } else { Lane::Small }
    }
}

/// Bytes of a document that count as one unit of work (one page).
pub const BYTES_PER_WORK_UNIT: f64 = 1_048_576.0;

/// The work a document represents, in units: its pages (at least one) plus its size in MiB.
/// Extraction cost grows with pages (text, OCR) and with bytes (parsing); a message count sees
/// neither.
pub fn work_units(size_bytes: u64, pages: u32) -> f64 {
    f64::from(pages.max(1)) + size_bytes as f64 / BYTES_PER_WORK_UNIT
}
