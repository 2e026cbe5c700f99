//! Integration tests: start the real `surge` and `surge-worker` binaries on scratch data
//! directories and drive them over HTTP, as a user would.

mod documents;
mod recovery;
mod support;
