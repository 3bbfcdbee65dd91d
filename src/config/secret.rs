//! Secrets (the push token, later the OAuth secret and the ICWS password): where they come from,
//! and a holder that never prints them.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Where a secret comes from, as written in the config.
#[derive(Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    /// Read from an environment variable: `{ env = "VAR" }`.
    Env {
        /// The variable's name.
        env: String,
    },
    /// Read from a file (surrounding white space trimmed): `{ file = "PATH" }`.
    File {
        /// The file.
        file: PathBuf,
    },
    /// Written inline (or given by a `CONDUIT_...` override).
    Inline(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { env } => write!(f, "env:{env}"),
            SecretSource::File { file } => write!(f, "file:{}", file.display()),
            SecretSource::Inline(_) => f.write_str("<inline, redacted>"),
        }
    }
}

impl SecretSource {
    /// Reads the secret; `key` names the config key in errors (never the value).
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        let value = match self {
            SecretSource::Inline(v) => v.clone(),
            SecretSource::Env { env } => std::env::var(env).map_err(|_| ConfigError::Secret {
                key: key.into(),
                message: format!("environment variable {env} is not set or not UTF-8"),
            })?,
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map_err(|e| ConfigError::Secret {
                    key: key.into(),
                    message: format!("cannot read {}: {e}", file.display()),
                })?
                .trim()
                .to_string(),
        };
        if value.is_empty() {
            return Err(ConfigError::Secret {
                key: key.into(),
                message: "the secret is empty".into(),
            });
        }
        Ok(Secret(value))
    }
}

/// A resolved secret. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests and tools).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        let src = SecretSource::Inline("hunter2".into());
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn from_file_trimmed_and_missing_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "abc\n").unwrap();
        let s = SecretSource::File { file: p }.resolve("sources.http.token").unwrap();
        assert_eq!(s.expose(), "abc");
        let err = SecretSource::Env {
            env: "CONDUIT_TEST_SURELY_UNSET_VAR".into(),
        }
        .resolve("sources.http.token")
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sources.http.token") && err.contains("CONDUIT_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
    }
}
