//! The file and environment layers, applied as the settings arguments' defaults, and
//! [`load_from`], the whole load as the command does it.

use std::path::Path;

use clap::{Args, Command};

use super::{ConfigError, Settings};

/// Settings whose values never appear in errors or `--help`.
const SECRETS: &[&str] = &["root_secret_key", "store_secret_key"];

/// Keys of earlier releases, with the key that replaced them.
const RENAMED: &[(&str, &str)] = &[
    ("scan_timeout_secs", "scan_timeout"),
    ("store_timeout_secs", "store_timeout"),
    ("store_breaker_cooldown_secs", "store_breaker_cooldown"),
    ("index_snapshot_interval_secs", "index_snapshot_interval"),
];

/// The environment variable of a setting.
pub fn env_name(key: &str) -> String {
    format!("S3DEDUP_{}", key.to_ascii_uppercase())
}

/// A command holding only the settings arguments: the schema the layers are checked
/// against.
pub fn schema() -> Command {
    Settings::augment_args(Command::new("s3dedup"))
}

/// Every setting's key, in declaration order.
pub fn keys() -> Vec<String> {
    schema()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// The file and environment layers: values checked, to become the settings arguments'
/// defaults.
#[derive(Clone, Default)]
pub struct Layers {
    values: Vec<(String, String)>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys only: values may be secrets.
        f.debug_list()
            .entries(self.values.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Layers {
    /// Reads `file` (if any) and the `S3DEDUP_*` variables found by `env`; the
    /// environment wins over the file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, key or variable and the value at fault.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let schema = schema();
        let mut values: Vec<(String, String)> = Vec::new();
        let mut set = |key: &str, value: String| {
            values.retain(|(k, _)| k != key);
            if !value.is_empty() {
                values.push((key.to_owned(), value));
            }
        };
        if let Some(path) = file {
            for (key, value) in read_file(&schema, path)? {
                set(&key, value);
            }
        }
        for arg in schema.get_arguments() {
            let key = arg.get_id().as_str();
            let name = env_name(key);
            if let Some(value) = env(&name) {
                // Empty = unset: back to the built-in default, whatever the file said.
                if !value.is_empty() {
                    check(&schema, key, &value, || name.clone())?;
                }
                set(key, value);
            }
        }
        Ok(Layers { values })
    }

    /// `cmd` with each settings argument's default replaced by its layered value, and
    /// each one's environment variable named in its help.
    pub fn apply(&self, mut cmd: Command) -> Command {
        for key in keys() {
            let value = self
                .values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone());
            let env = env_name(&key);
            cmd = cmd.mut_arg(&key, |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                let a = a.help(format!("{help} [env: {env}]"));
                match value {
                    Some(v) => a.default_value(v),
                    None => a,
                }
            });
        }
        cmd
    }
}

/// The file's key/value pairs, each checked against the schema.
fn read_file(schema: &Command, path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: ")
        });
        ConfigError::Parse {
            path: path.to_owned(),
            message: format!("{at}{}", e.message().trim_end()),
        }
    })?;
    let origin = |key: &str| format!("config file {}, key `{key}`", path.display());
    let mut out = Vec::new();
    for (key, value) in table {
        if !schema.get_arguments().any(|a| a.get_id() == key.as_str()) {
            let hint = RENAMED
                .iter()
                .find(|(old, _)| *old == key)
                .map(|(_, new)| format!(" (renamed `{new}`)"))
                .unwrap_or_default();
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
                hint,
            });
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::Invalid {
                    origin: origin(&key),
                    value: shown(&key, &other.to_string()),
                    reason: "expected a string, number or boolean".into(),
                });
            }
        };
        if !text.is_empty() {
            check(schema, &key, &text, || origin(&key))?;
        }
        out.push((key, text));
    }
    Ok(out)
}

fn shown(key: &str, value: &str) -> String {
    if SECRETS.contains(&key) {
        "(hidden)".into()
    } else {
        format!("{value:?}")
    }
}

/// Runs `key`'s own parser on `value`.
fn check(
    schema: &Command,
    key: &str,
    value: &str,
    origin: impl FnOnce() -> String,
) -> Result<(), ConfigError> {
    let Some(arg) = schema.get_arguments().find(|a| a.get_id() == key) else {
        return Ok(());
    };
    // The argument's own parser, run through clap exactly as a flag would be.
    let long = arg.get_long().unwrap_or(key).to_owned();
    Command::new("check")
        .no_binary_name(true)
        .arg(arg.clone())
        .try_get_matches_from([format!("--{long}={value}")])
        .map(drop)
        .map_err(|e| ConfigError::Invalid {
            origin: origin(),
            value: shown(key, value),
            reason: reason(&e),
        })
}

/// The parser's own message, without clap's framing.
fn reason(e: &clap::Error) -> String {
    use std::error::Error as _;
    if let Some(source) = e.source() {
        return source.to_string();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}

/// Loads settings as the `s3dedup` command does, from explicit arguments and an
/// environment lookup (tests use this; `main` passes the process's own).
///
/// # Errors
/// [`ConfigError`] from the file or environment layers or the cross-field checks; a
/// bad flag is clap's error (rendered as `clap::Error`'s message).
pub fn load_from<I, T>(
    args: I,
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let layers = Layers::load(file, env)?;
    let matches = layers.apply(schema()).try_get_matches_from(args)?;
    let settings = Settings::from_arg_matches(&matches)?;
    settings.validate()?;
    Ok(settings)
}

/// Why [`load_from`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file, environment or cross-field checks.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag.
    #[error(transparent)]
    Flag(#[from] clap::Error),
}
