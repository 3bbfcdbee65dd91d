//! Reading a config: TOML text, then `CONDUIT_` environment overrides, then typed
//! deserialization (errors carry the full key path), then [`Config::validate`].
//!
//! Override names: `CONDUIT_` followed by the key path in upper case, with `__` between
//! sections: `CONDUIT_BUFFER__PERSIST=flush`, `CONDUIT_ENABLED=false`,
//! `CONDUIT_SOURCES__HTTP__TOKEN=...`. Values are TOML literals (`false`, `42`, `["a","b"]`);
//! anything that is not one is taken as a string, and keys that name secrets are always strings.
//! A prefixed variable that names no key (an unrelated `CONDUIT_HOME`, a misspelling) is left
//! out with a warning in [`Config::warnings`] naming the variable — the service manager's
//! environment is not ours to police; a bad *value* for a real key is an error naming the key,
//! and an unknown key in the file is an error too.

use std::path::Path;

use toml::{Table, Value};

use super::{Config, ConfigError};

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "CONDUIT_";

/// Reads, overrides from the process environment, and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, std::env::vars()).map_err(|e| match e {
        ConfigError::Syntax(m) => ConfigError::Syntax(format!("{}: {m}", path.display())),
        e => e,
    })
}

/// Parses config text, applies the given `CONDUIT_*` variables, and validates.
pub fn load_str(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
    let base: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax(syntax_error(text, &e)))?;
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !is_service_link(k))
        .collect();
    overrides.sort();
    let mut warnings = Vec::new();
    // Each round either deserializes or sets aside one variable that names no key: bounded.
    loop {
        let mut table = base.clone();
        let mut paths = Vec::with_capacity(overrides.len());
        let mut i = 0;
        while i < overrides.len() {
            let (var, value) = &overrides[i];
            match apply_override(&mut table, var, value) {
                Ok(path) => {
                    paths.push(path);
                    i += 1;
                }
                Err(message) => {
                    warnings.push(ignored(var, &message));
                    overrides.remove(i);
                }
            }
        }
        refuse_old_buffer_form(&table)?;
        let err = match serde_path_to_error::deserialize::<_, Config>(table) {
            Ok(mut config) => {
                config.buffer.data_dir = config.data_dir.clone();
                config.validate()?;
                config.warnings = warnings;
                return Ok(config);
            }
            Err(e) => e,
        };
        let at = err.path().to_string();
        let message = err.inner().to_string();
        let unknown = unknown_key(&message).filter(|_| message.starts_with("unknown field"));
        // serde names the unknown field in the path, except at the top level.
        let key = match &unknown {
            Some(field) if at == "." => field.clone(),
            _ => at,
        };
        // An unknown key that only a variable brought in, or a variable that takes a value for
        // a section: that variable names no key.
        let below = format!("{key}.");
        let culprit = if unknown.is_some() {
            paths.iter().position(|p| *p == key || p.starts_with(&below))
        } else if message.starts_with("invalid type: map") {
            paths.iter().position(|p| p.starts_with(&below))
        } else {
            None
        };
        match culprit {
            Some(i) => {
                let (var, _) = overrides.remove(i);
                let why = if unknown.is_some() {
                    format!("there is no config key `{key}`")
                } else {
                    format!("`{key}` is a value, not a section")
                };
                warnings.push(ignored(&var, &why));
            }
            None => return Err(ConfigError::Invalid { key, message }),
        }
    }
}

/// The buffer section of earlier versions (`data_dir` inside `[buffer]`) is refused with the form
/// that replaces it: the top-level `data_dir` and a tagged `[buffer]`.
fn refuse_old_buffer_form(table: &Table) -> Result<(), ConfigError> {
    let Some(Value::Table(buffer)) = table.get("buffer") else {
        return Ok(());
    };
    let rest: Vec<String> = buffer
        .iter()
        .filter(|(k, _)| !["data_dir", "type"].contains(&k.as_str()))
        .map(|(k, v)| format!("    {k} = {v}"))
        .collect();
    let new_form = |data_dir: &str| {
        let mut text = format!("\n\n    data_dir = {data_dir}\n\n    [buffer]\n    type = \"disk\"\n");
        for line in &rest {
            text.push_str(line);
            text.push('\n');
        }
        text
    };
    if let Some(dir) = buffer.get("data_dir") {
        let here = if table.contains_key("data_dir") {
            "; remove it (the top-level `data_dir` is set already)"
        } else {
            ""
        };
        return Err(ConfigError::invalid(
            "buffer.data_dir",
            format!(
                "the data directory is now the top-level key `data_dir` (environment: CONDUIT_DATA_DIR), and the buffer section names its type{here}. Write:{}",
                new_form(&dir.to_string())
            ),
        ));
    }
    Ok(())
}

fn ignored(var: &str, why: &str) -> String {
    format!("environment variable {var} ignored: {why}")
}

/// Whether `var` is one of the variables Kubernetes gives every container for a service named
/// `conduit` (`CONDUIT_SERVICE_HOST`, `CONDUIT_SERVICE_PORT[_<name>]`, `CONDUIT_PORT`,
/// `CONDUIT_PORT_<port>_<proto>[_PROTO|_PORT|_ADDR]`): never an override, and not worth a
/// warning at every start.
pub fn is_service_link(var: &str) -> bool {
    let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
        return false;
    };
    rest == "SERVICE_HOST"
        || rest == "SERVICE_PORT"
        || rest.starts_with("SERVICE_PORT_")
        || rest == "PORT"
        || rest.strip_prefix("PORT_").is_some_and(|p| {
            p.split('_')
                .next()
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// For an error at the top level, the field serde named, if any.
fn unknown_key(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// Applies one variable to the table, returning the dotted key path it set; an error says why
/// the variable names no key.
fn apply_override(table: &mut Table, var: &str, raw: &str) -> Result<String, String> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|p| p.to_ascii_lowercase())
        .collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(
            "empty key segment; separate sections with a double underscore, e.g. CONDUIT_BUFFER__PERSIST".into(),
        );
    }
    let (last, parents) = path.split_last().expect("split on a non-empty string yields a part");
    let mut node = table;
    for part in parents {
        let entry = node.entry(part.clone()).or_insert_with(|| Value::Table(Table::new()));
        node = match entry {
            Value::Table(t) => t,
            _ => return Err(format!("`{part}` is a value, not a section")),
        };
    }
    let is_secret = ["token", "password", "secret", "client_secret"].contains(&last.as_str());
    let keep_string = is_secret || matches!(node.get(last), Some(Value::String(_)));
    let value = if keep_string {
        Value::String(raw.to_string())
    } else {
        parse_literal(raw).unwrap_or_else(|| Value::String(raw.to_string()))
    };
    node.insert(last.clone(), value);
    Ok(path.join("."))
}

fn parse_literal(raw: &str) -> Option<Value> {
    let doc: Table = format!("v = {raw}").parse().ok()?;
    doc.get("v").cloned()
}

/// A TOML syntax error as the line, column and key it is at and what is wrong — never the text
/// of the line, which may hold a secret.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().lines().next().unwrap_or("syntax error").to_string();
    let Some(span) = e.span() else { return what };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_.-\"".contains(c)));
    match key {
        Some(k) => format!("line {line_no}, column {column} (key `{k}`): {what}"),
        None => format!("line {line_no}, column {column}: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        cic_server = "cic01"
        data_dir = "/tmp/x"
        [organization]
        short_name = "acme"
        region = "eu-west-1"
        [sources.http]
        token = "t0ken"
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kubernetes_service_links_for_a_service_named_conduit_are_no_overrides() {
        // What Kubernetes sets in every container of a namespace with a service `conduit`.
        let links = env(&[
            ("CONDUIT_SERVICE_HOST", "10.96.0.12"),
            ("CONDUIT_SERVICE_PORT", "8087"),
            ("CONDUIT_SERVICE_PORT_HTTP", "8087"),
            ("CONDUIT_PORT", "tcp://10.96.0.12:8087"),
            ("CONDUIT_PORT_8087_TCP", "tcp://10.96.0.12:8087"),
            ("CONDUIT_PORT_8087_TCP_PROTO", "tcp"),
            ("CONDUIT_PORT_8087_TCP_PORT", "8087"),
            ("CONDUIT_PORT_8087_TCP_ADDR", "10.96.0.12"),
        ]);
        let c = load_str(MINIMAL, links).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // A real override beside them still applies, and a misspelt one is still reported.
        let c = load_str(
            MINIMAL,
            env(&[
                ("CONDUIT_PORT", "tcp://x:1"),
                ("CONDUIT_ENABLED", "false"),
                ("CONDUIT_PORTS", "1"),
            ]),
        )
        .unwrap();
        assert!(!c.enabled);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(!is_service_link("CONDUIT_PORT_HTTP") && !is_service_link("CONDUIT_SERVER__LISTEN"));
    }

    #[test]
    fn the_buffer_section_before_its_type_is_refused_with_the_new_form() {
        let old =
            MINIMAL.replace("data_dir = \"/tmp/x\"\n", "") + "[buffer]\ndata_dir = \"/srv/cc\"\npersist = \"flush\"\n";
        let err = load_str(&old, env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("config key `buffer.data_dir`:"), "{err}");
        for line in [
            "data_dir = \"/srv/cc\"",
            "[buffer]",
            "type = \"disk\"",
            "persist = \"flush\"",
            "CONDUIT_DATA_DIR",
        ] {
            assert!(err.contains(line), "the message lacks {line:?}: {err}");
        }
        // The new form it shows loads.
        let shown = err[err.find("Write:").unwrap() + 6..].to_string();
        let fixed = MINIMAL
            .replace("data_dir = \"/tmp/x\"\n", "")
            .replace("[organization]", &format!("{shown}\n[organization]"));
        let c = load_str(&fixed, env(&[])).unwrap();
        assert_eq!(c.data_dir, std::path::PathBuf::from("/srv/cc"));
        assert_eq!(c.buffer.data_dir, c.data_dir, "the buffer lives under the data dir");
        assert_eq!(c.buffer.persist, crate::config::PersistPolicy::Flush);
        // An override in the old form is refused the same way.
        let err = load_str(MINIMAL, env(&[("CONDUIT_BUFFER__DATA_DIR", "/srv/x")])).unwrap_err();
        assert!(err.to_string().contains("CONDUIT_DATA_DIR"), "{err}");
        // A type this version does not know names the key.
        let err = load_str(&format!("{MINIMAL}[buffer]\ntype = \"tape\"\n"), env(&[])).unwrap_err();
        assert!(err.to_string().starts_with("config key `buffer.type`:"), "{err}");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load_str(MINIMAL, env(&[])).unwrap();
        assert!(c.enabled);
        assert_eq!(c.buffer.persist, crate::config::PersistPolicy::Fsync);
        assert_eq!(c.organization.api_base(), "https://api.mypurecloud.ie");
    }

    #[test]
    fn env_overrides_keys() {
        let c = load_str(
            MINIMAL,
            env(&[
                ("CONDUIT_ENABLED", "false"),
                ("CONDUIT_BUFFER__PERSIST", "flush"),
                ("CONDUIT_SOURCES__HTTP__TOKEN", "123"),
            ]),
        )
        .unwrap();
        assert!(!c.enabled);
        assert_eq!(c.buffer.persist, crate::config::PersistPolicy::Flush);
        let tok = c.sources.http.token.unwrap().resolve("sources.http.token").unwrap();
        assert_eq!(tok.expose(), "123");
    }

    #[test]
    fn errors_name_the_key() {
        type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
        let cases: &[Case] = &[
            (
                MINIMAL,
                env(&[("CONDUIT_BUFFER__PERSIST", "sometimes")]),
                "buffer.persist",
            ),
            (
                MINIMAL,
                env(&[("CONDUIT_ORGANIZATION__REGION", "mars-1")]),
                "organization.region",
            ),
            (
                MINIMAL,
                env(&[("CONDUIT_ORGANIZATION__SHORT_NAME", "ac-me")]),
                "organization.short_name",
            ),
            (MINIMAL, env(&[("CONDUIT_SERVER__LISTEN", "nowhere")]), "server.listen"),
            (
                MINIMAL,
                env(&[("CONDUIT_BUFFER__MAX_BYTES", "1000")]),
                "buffer.max_bytes",
            ),
            ("cic_server = \"x\"", env(&[]), "organization"),
        ];
        for (text, vars, key) in cases {
            let err = load_str(text, vars.clone()).unwrap_err().to_string();
            assert!(err.contains(key), "expected `{key}` in: {err}");
        }
    }

    #[test]
    fn a_variable_naming_no_key_is_a_warning_not_a_stop() {
        let vars = env(&[
            ("CONDUIT_HOME", "/opt/conduit"),
            ("CONDUIT_BUFFER__PERSIT", "flush"),
            ("CONDUIT_NEW_SECTION__KEY", "1"),
            ("CONDUIT_ENABLED__X", "1"),
            ("CONDUIT_", "1"),
            ("CONDUIT_BUFFER__PERSIST", "flush"),
        ]);
        let c = load_str(MINIMAL, vars).unwrap();
        assert_eq!(
            c.buffer.persist,
            crate::config::PersistPolicy::Flush,
            "real keys still apply"
        );
        let w = c.warnings.join("\n");
        for var in [
            "CONDUIT_HOME ",
            "CONDUIT_BUFFER__PERSIT ",
            "CONDUIT_NEW_SECTION__KEY ",
            "CONDUIT_ENABLED__X ",
            "CONDUIT_ ",
        ] {
            assert!(w.contains(var), "no warning for {var}: {w}");
        }
        assert!(w.contains("`buffer.persit`") && w.contains("`home`"), "{w}");
        assert_eq!(c.warnings.len(), 5, "{w}");
        // A misspelling in the file itself is still an error.
        let err = load_str(&format!("{MINIMAL}\nsurprise = 1\n"), env(&[("CONDUIT_HOME", "x")])).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn a_syntax_error_names_line_and_key_but_never_prints_the_line() {
        let text = "cic_server = \"c\"\n[sources.http]\ntoken = \"hunter2-very-secret\n";
        let err = load_str(text, Vec::new()).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("line 3") && err.contains("`token`"), "{err}");
    }

    #[test]
    fn token_required_when_push_enabled() {
        let text = MINIMAL.replace("token = \"t0ken\"", "");
        let err = load_str(&text, env(&[])).unwrap_err().to_string();
        assert!(err.contains("sources.http.token"), "{err}");
    }

    #[test]
    fn a_kafka_buffer_is_checked_naming_the_key() {
        let kafka = |buffer: &str| format!("{MINIMAL}\n[buffer]\n{buffer}");
        let ok = load_str(
            &kafka("type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k1:9092,k2:9092\"\n[buffer.kafka.properties]\n\"compression.type\" = \"zstd\""),
            env(&[]),
        )
        .unwrap();
        let k = ok.buffer.kafka.as_ref().unwrap();
        assert_eq!(
            (k.topic.as_str(), k.group.as_str(), k.partitions),
            ("cic-conduit-events", "cic-conduit-dispatch", 12)
        );
        let cases = [
            ("type = \"kafka\"", "buffer.kafka"),
            ("[buffer.kafka]\nbrokers = \"k:9092\"", "buffer.type"),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k1\"",
                "buffer.kafka.brokers",
            ),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k:9092\"\ntopic = \"a b\"",
                "buffer.kafka.topic",
            ),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k:9092\"\npartitions = 0",
                "buffer.kafka.partitions",
            ),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k:9092\"\n[buffer.kafka.properties]\nacks = \"1\"",
                "buffer.kafka.properties.acks",
            ),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k:9092\"\n[buffer.kafka.secret_properties]\n\"enable.auto.commit\" = \"true\"",
                "buffer.kafka.properties.enable.auto.commit",
            ),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k:9092\"\n[buffer.kafka.properties]\n\"enable.ssl.certificate.verification\" = \"False\"",
                "buffer.kafka.properties.enable.ssl.certificate.verification",
            ),
            (
                "type = \"kafka\"\n[buffer.kafka]\nbrokers = \"k:9092\"\n[buffer.kafka.properties]\n\"ssl.endpoint.identification.algorithm\" = \"none\"",
                "buffer.kafka.properties.ssl.endpoint.identification.algorithm",
            ),
        ];
        for (buffer, key) in cases {
            let err = load_str(&kafka(buffer), env(&[])).unwrap_err().to_string();
            assert!(err.contains(key), "expected `{key}` in: {err}");
        }
    }
}
