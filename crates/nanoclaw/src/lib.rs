//! NanoClaw isolation (spec: `NanoClawScope`): which logs one caller may touch.
//!
//! Owns: scope patterns (exact log names and `prefix*` patterns), their validation, and
//! the access decision [`NanoClawScope::check_access`] (allowed, or `UNAUTHORIZED` naming
//! the log and the caller). Deny by default: an empty scope allows nothing.
//!
//! Does not: open logs, record or emit anything, or know where a scope comes from. It is
//! pure policy; `tauri-plugin-nova-hypercore` builds a scope from a window's capability
//! for every call and records denials through the manager.
//!
//! Used by: `crates/tauri-bridge` (every IPC command), and any host that hands log access
//! to an untrusted caller.
//!
//! ```
//! use nova_hypercore_nanoclaw::NanoClawScope;
//! use nova_hypercore_serialization::{ErrorCode, LogName};
//!
//! let scope = NanoClawScope::new("main", ["agent-*", "atlas-memory"])?;
//! assert!(scope.check_access(&LogName::parse("agent-state")?).is_ok());
//! assert!(scope.check_access(&LogName::parse("atlas-memory")?).is_ok());
//! let err = scope.check_access(&LogName::parse("crdt-collab")?).unwrap_err();
//! assert_eq!(err.code(), ErrorCode::Unauthorized);
//! // A name that is not a valid log name never gets as far as the scope:
//! assert_eq!(scope.check_name("../agent-state").unwrap_err().code(), ErrorCode::Unauthorized);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use nova_hypercore_serialization::{HypercoreError, LogName, MAX_LOG_NAME_BYTES};

/// Why a scope pattern was refused when the scope was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid NanoClaw scope pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One scope entry.
///
/// - `atlas-memory`: exactly that log (must be a valid [`LogName`]).
/// - `agent-*`: every log whose name starts with `agent-` (the prefix: `[a-z0-9-]`, at
///   most [`MAX_LOG_NAME_BYTES`] bytes). `*` alone matches every log.
///
/// Matching is byte-exact: no case folding, no normalization, no other wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Exactly this log.
    Exact(LogName),
    /// Every log whose name starts with this prefix.
    Prefix(String),
}

impl Pattern {
    /// Parses one entry; anything but `[a-z0-9-]` with an optional final `*` is refused.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let refuse = |reason| PatternError {
            pattern: pattern.chars().take(2 * MAX_LOG_NAME_BYTES).collect(),
            reason,
        };
        if pattern.is_empty() {
            return Err(refuse("it is empty"));
        }
        let (body, prefix) = match pattern.strip_suffix('*') {
            Some(body) => (body, true),
            None => (pattern, false),
        };
        if body.len() > MAX_LOG_NAME_BYTES {
            return Err(refuse("it is longer than a log name can be"));
        }
        if !body
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(refuse(
                "only a-z, 0-9 and - are allowed, plus one * at the end",
            ));
        }
        if body.starts_with('-') {
            return Err(refuse("a log name cannot start with -"));
        }
        if prefix {
            return Ok(Pattern::Prefix(body.to_owned()));
        }
        LogName::parse(body)
            .map(Pattern::Exact)
            .map_err(|_| refuse("not a valid log name"))
    }

    /// Whether `log` matches this entry.
    pub fn matches(&self, log: &LogName) -> bool {
        match self {
            Pattern::Exact(name) => name == log,
            Pattern::Prefix(prefix) => log.as_str().starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => write!(f, "{name}"),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The logs one caller may touch: an allow list minus a deny list of [`Pattern`]s.
///
/// A log is allowed when some allow entry matches it and no deny entry does. An empty
/// allow list allows nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NanoClawScope {
    caller: String,
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

impl NanoClawScope {
    /// A scope for `caller` (a label for messages, e.g. the window label) allowing
    /// `allowed` (see [`Pattern`]). Any invalid entry refuses the whole scope.
    pub fn new<I, S>(caller: impl Into<String>, allowed: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(NanoClawScope {
            caller: caller.into(),
            allow: parse_all(allowed)?,
            deny: Vec::new(),
        })
    }

    /// The scope that allows nothing.
    pub fn deny_all(caller: impl Into<String>) -> Self {
        NanoClawScope {
            caller: caller.into(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Adds deny entries: logs they match are refused even if an allow entry matches.
    pub fn with_denied<I, S>(mut self, denied: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.deny.extend(parse_all(denied)?);
        Ok(self)
    }

    /// The caller's label.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// Whether `log` is allowed.
    pub fn allows(&self, log: &LogName) -> bool {
        self.allow.iter().any(|p| p.matches(log)) && !self.deny.iter().any(|p| p.matches(log))
    }

    /// `Ok` if `log` is allowed, else `UNAUTHORIZED` carrying the log and the caller.
    pub fn check_access(&self, log: &LogName) -> Result<(), HypercoreError> {
        if self.allows(log) {
            return Ok(());
        }
        let why = if self.deny.iter().any(|p| p.matches(log)) {
            "is denied to"
        } else {
            "is outside the scope of"
        };
        Err(HypercoreError::Unauthorized {
            log: Some(log.as_str().to_owned()),
            reason: format!("log {log} {why} caller {:?}", self.caller),
        })
    }

    /// [`LogName::parse`] then [`check_access`](Self::check_access): an invalid name is
    /// `UNAUTHORIZED` too. Returns the validated name.
    pub fn check_name(&self, name: &str) -> Result<LogName, HypercoreError> {
        let log = LogName::parse(name)?;
        self.check_access(&log)?;
        Ok(log)
    }
}

fn parse_all<I, S>(patterns: I) -> Result<Vec<Pattern>, PatternError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    patterns
        .into_iter()
        .map(|p| Pattern::parse(p.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use nova_hypercore_serialization::ErrorCode;

    fn name(s: &str) -> LogName {
        LogName::parse(s).unwrap()
    }

    #[test]
    fn patterns_are_validated() {
        for ok in ["a", "agent-*", "*", "0-x", "atlas-memory"] {
            assert!(Pattern::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Agent", "a*b", "**", "a**", "*a", "../x", "x/..", "x%2f", "-a", "-*", "é*", "a b",
            "a\0",
        ] {
            let err = Pattern::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid NanoClaw scope pattern"));
        }
        assert!(NanoClawScope::new("w", ["ok", "Bad"]).is_err());
    }

    #[test]
    fn empty_scope_denies_everything() {
        for scope in [
            NanoClawScope::deny_all("w"),
            NanoClawScope::new("w", Vec::<String>::new()).unwrap(),
        ] {
            let err = scope.check_access(&name("anything")).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthorized);
            assert_eq!(err.log_name(), Some("anything"));
            assert!(err.to_string().contains("\"w\""), "{err}");
        }
    }

    #[test]
    fn exact_prefix_and_deny() {
        let scope = NanoClawScope::new("main", ["agent-*", "atlas-memory"])
            .unwrap()
            .with_denied(["agent-secret"])
            .unwrap();
        assert!(scope.allows(&name("agent-")));
        assert!(scope.allows(&name("agent-x")));
        assert!(scope.allows(&name("atlas-memory")));
        assert!(!scope.allows(&name("atlas-memory2")));
        assert!(!scope.allows(&name("agent")));
        assert!(!scope.allows(&name("xagent-x")));
        let err = scope.check_access(&name("agent-secret")).unwrap_err();
        assert!(err.to_string().contains("denied"), "{err}");
        assert_eq!(
            scope.check_name("atlas-memory").unwrap(),
            name("atlas-memory")
        );
        assert_eq!(
            scope.check_name("Atlas-memory").unwrap_err().code(),
            ErrorCode::Unauthorized
        );
    }
}
