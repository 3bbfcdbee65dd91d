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
            SecretSource::File { file } => read_secret_file(key, file)?,
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

/// Largest secret file read: a secret is a line, and a path pointing at `/dev/zero` or a huge
/// file must not hang or fill memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file, bounded, trimmed; warns when others than its owner may read it.
fn read_secret_file(key: &str, file: &std::path::Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let err = |message: String| ConfigError::Secret {
        key: key.into(),
        message,
    };
    let f = std::fs::File::open(file).map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
    let meta = f
        .metadata()
        .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(err(format!("{} is not a regular file", file.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                key,
                path = %file.display(),
                mode = format!("{mode:o}"),
                "a secret file is readable by others than its owner; chmod 600 it"
            );
        }
    }
    let mut bytes = Vec::new();
    f.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(err(format!(
            "{} is larger than {MAX_SECRET_FILE_BYTES} bytes; it should hold only the secret",
            file.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| err(format!("{} is not UTF-8 text", file.display())))?;
    Ok(text.trim().to_string())
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
    fn a_secret_file_is_read_with_a_bound() {
        let err = SecretSource::File {
            file: "/dev/zero".into(),
        }
        .resolve("organization.client_secret")
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("organization.client_secret") && err.contains("/dev/zero"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'a'; 70_000]).unwrap();
        let err = SecretSource::File { file: p }.resolve("k").unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
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
