//! Integration tests: start the real `surge` and `surge-worker` binaries on scratch data
//! directories and drive them over HTTP, as a user would.

// Tests may unwrap: a panic is how they report failure.
#![allow(clippy::unwrap_used)]

mod dashboard;
mod disaster;
mod documents;
mod recovery;
mod roll;
mod scaling;
mod support;
mod tidy;
