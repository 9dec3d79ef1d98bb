//! The one type that holds credentials. It never prints its content: `Debug` and `Display` show `***`,
//! so a secret can sit in any config struct, log line or error without leaking.

use std::fmt;

/// A credential (webhook signing key, API secret). Read it with [`Secret::expose`] at the one place that
/// needs the bytes; everything else sees `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself. Call it only where the bytes are used (a MAC key, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(vec![s.clone()])), "Some([***])");
        assert_eq!(s.expose(), "hunter2");
    }
}
