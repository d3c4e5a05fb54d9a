//! Validated log names: the only form in which a name reaches the file system.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::HypercoreError;

/// Longest accepted log name, in bytes.
pub const MAX_LOG_NAME_BYTES: usize = 64;

/// A log name that is safe to use as a file or directory name.
///
/// Rules: 1 to [`MAX_LOG_NAME_BYTES`] characters from `a-z`, `0-9` and `-`, starting with
/// a letter or digit. That excludes every path trick (`..`, `/`, `\`, NUL, absolute
/// paths, drive letters) and case-only collisions on case-insensitive file systems.
///
/// ```
/// use nova_hypercore_serialization::LogName;
/// assert!(LogName::parse("atlas-memory").is_ok());
/// assert!(LogName::parse("../etc").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LogName(String);

impl LogName {
    /// Checks `name` against the rules; the error (`UNAUTHORIZED`) says which one failed.
    pub fn parse(name: &str) -> Result<Self, HypercoreError> {
        let refuse = |reason: String| HypercoreError::Unauthorized {
            log: Some(name.chars().take(2 * MAX_LOG_NAME_BYTES).collect()),
            reason: format!("invalid log name {name:?}: {reason}"),
        };
        if name.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        if name.len() > MAX_LOG_NAME_BYTES {
            return Err(refuse(format!(
                "{} bytes is longer than the limit of {MAX_LOG_NAME_BYTES}",
                name.len()
            )));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(refuse(format!(
                "character {bad:?} is not allowed (use a-z, 0-9 and -)"
            )));
        }
        if name.starts_with('-') {
            return Err(refuse("it must start with a letter or digit".into()));
        }
        Ok(LogName(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for LogName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for LogName {
    type Err = HypercoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogName::parse(s)
    }
}

impl<'de> Deserialize<'de> for LogName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        LogName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn accepts_spec_names() {
        for n in ["atlas-memory", "crdt-collab", "agent-state", "a", "0-1"] {
            assert_eq!(
                LogName::parse(n).map(|l| l.to_string()).ok().as_deref(),
                Some(n)
            );
        }
    }

    #[test]
    fn rejects_path_tricks_with_unauthorized() {
        let long = "a".repeat(MAX_LOG_NAME_BYTES + 1);
        for n in [
            "",
            "..",
            ".",
            "../x",
            "a/b",
            "a\\b",
            "/abs",
            "C:",
            "a\0b",
            "-lead",
            "Atlas",
            "a b",
            "é",
            long.as_str(),
        ] {
            let err = LogName::parse(n).expect_err(n);
            assert_eq!(err.code(), ErrorCode::Unauthorized, "{n:?}");
            assert!(err.to_string().contains("invalid log name"), "{err}");
        }
    }
}
