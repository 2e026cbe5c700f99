//! Why a backend call failed: what was being done and the error underneath, kept as the error's
//! source rather than flattened into a string.

use std::fmt;
use std::sync::Arc;

/// An infrastructure failure behind a port (a store, queue or service that did not answer as
/// it should). The operation is said in `context`; the underlying error, when there is one, is
/// the [`std::error::Error::source`]. Messages go to logs and operators, never to tenants.
#[derive(Debug, Clone)]
pub struct Fault {
    context: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Fault {
    /// A failure described in words, with no underlying error.
    pub fn new(context: impl Into<String>) -> Fault {
        Fault { context: context.into(), cause: None }
    }

    /// `context` failed because of `cause`.
    pub fn caused_by(context: impl Into<String>, cause: impl std::error::Error + Send + Sync + 'static) -> Fault {
        Fault { context: context.into(), cause: Some(Arc::new(cause)) }
    }

    /// A failure that is just `cause`.
    pub fn from_error(cause: impl std::error::Error + Send + Sync + 'static) -> Fault {
        Fault::caused_by(String::new(), cause)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cause, self.context.is_empty()) {
            (Some(cause), true) => write!(f, "{cause}"),
            (Some(cause), false) => write!(f, "{}: {cause}", self.context),
            (None, _) => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for Fault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_fault_says_what_failed_and_keeps_its_cause() {
        let io = std::io::Error::other("disk on fire");
        let fault = Fault::caused_by("write blob", io);
        assert_eq!(fault.to_string(), "write blob: disk on fire");
        assert_eq!(fault.source().map(ToString::to_string).as_deref(), Some("disk on fire"));
        assert_eq!(Fault::from_error(std::io::Error::other("gone")).to_string(), "gone");
        assert!(Fault::new("no answer").source().is_none());
    }
}
