//! Settings: one typed struct, [`Settings`], layered built-in default < TOML file <
//! `S3DEDUP_*` environment variable < command-line flag.
//!
//! A setting is one field with a clap `#[arg]`: its TOML key is the field name, its flag
//! `--field-name`, its environment variable `S3DEDUP_FIELD_NAME`. The file and the
//! environment are applied as the arguments' defaults ([`Layers`]) after each value has
//! been checked with the field's own parser, so a bad value is refused naming where it
//! came from; flags then override them. Values are parsed once, into typed values
//! (addresses, durations, sizes, enums); nothing downstream re-parses a string.
//!
//! Durations are human strings (`"90s"`, `"5m"`, `"1h"`) or plain seconds; sizes are
//! `"16MiB"`, `"1GB"` or plain bytes. An empty value (in the file or the environment)
//! means unset: the built-in default (an empty environment variable also drops the
//! file's value).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::{BoolishValueParser, RangedU64ValueParser};
use clap::{ArgAction, Args, Command};

use s3dedup_scanner::ClamdAddress;
use s3dedup_storage::blob::{ChecksumMode, S3Settings};

use crate::scan::{FailurePolicy, OversizePolicy};

/// Errors reading or validating configuration. Each names the file, key, variable or flag
/// at fault (and the value, unless it is a secret).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// The config file has a key that is not a setting.
    #[error("config file {path}: unknown key `{key}`{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// A suggestion (a renamed key), or empty.
        hint: String,
    },
    /// A value does not parse or is out of range.
    #[error("{origin}: invalid value {value}: {reason}")]
    Invalid {
        /// `config file F, key `k``, `S3DEDUP_K` or `--k`.
        origin: String,
        /// The value, quoted (or `(hidden)` for secrets).
        value: String,
        /// Why.
        reason: String,
    },
    /// Settings that only make sense together disagree.
    #[error("{keys}: {reason}")]
    Conflict {
        /// The keys involved.
        keys: String,
        /// Why.
        reason: String,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// A duration: `"90s"`, `"5m"`, `"1h 30m"`, `"250ms"` (humantime), or plain seconds
/// (`"2.5"`).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| "expected a duration such as 90s, 5m or 1h (or seconds ≥ 0)".into());
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 90s, 5m or 1h (or plain seconds)"))
}

/// A size: `"16MiB"`, `"1GB"`, `"64 KiB"` (bytesize), or plain bytes.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{e}; expected a size such as 64KiB, 16MiB or 1GB (or plain bytes)"))
}

fn parse_size_in(
    lo: u64,
    hi: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s| {
        let n = parse_size(s)?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "{} is outside {}..={}",
                bytesize::ByteSize(n).display().iec(),
                bytesize::ByteSize(lo).display().iec(),
                bytesize::ByteSize(hi).display().iec()
            ))
        }
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("expected a duration > 0".into()),
        d => Ok(d),
    }
}

fn parse_store(s: &str) -> Result<S3Settings, String> {
    S3Settings::from_url(s)
}

fn parse_endpoint(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e}; expected a level (info, debug) or tracing directives"))
}

/// Root credentials are checked as MinIO checks them: short keys are guessable.
fn parse_access_key(s: &str) -> Result<String, String> {
    if s.chars().count() < 3 {
        return Err("an access key needs at least 3 characters".into());
    }
    Ok(s.to_owned())
}

fn parse_secret_key(s: &str) -> Result<Secret, String> {
    if s.chars().count() < 8 {
        return Err("a secret key needs at least 8 characters".into());
    }
    Ok(Secret(s.to_owned()))
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret(s.to_owned()))
}

/// A secret setting: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// All settings of the gateway. Field docs are the `--help` text; the defaults shown
/// there are the built-in ones.
#[derive(Args, Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Where the index and the local chunk store live.
    #[arg(long, value_name = "DIR", default_value = "./s3dedup-data")]
    pub data_dir: PathBuf,
    /// S3 API address (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Admin address: metrics and health.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub admin_listen: SocketAddr,
    /// Region reported and accepted in signatures (s3cmd's `US` is taken as us-east-1).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Base domain for virtual-hosted-style requests; path style always works.
    #[arg(long)]
    pub domain: Option<String>,
    /// Root access key; unset = the one kept in <data_dir>/root-credentials (created at
    /// first start). At least 3 characters.
    #[arg(long, value_name = "KEY", value_parser = parse_access_key)]
    pub root_access_key: Option<String>,
    /// Root secret key (set both or neither). At least 8 characters.
    #[arg(long, value_name = "SECRET", value_parser = parse_secret_key, hide_default_value = true)]
    pub root_secret_key: Option<Secret>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, value_name = "FILTER", default_value = "info", value_parser = parse_log_filter)]
    pub log: String,
    /// Minimum size of every multipart part but the last.
    #[arg(long, value_name = "SIZE", default_value = "5MiB", value_parser = parse_size_in(0, 5 << 30))]
    pub min_part_size: u64,
    /// Target pack size.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size_in(64 << 10, 1 << 30))]
    pub pack_target: u64,
    /// Index page cache.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size_in(1 << 20, 1 << 40))]
    pub index_cache: u64,
    /// clamd address, tcp://host:port or unix:///path; unset = uploads are not scanned.
    #[arg(long, value_name = "ADDR")]
    pub clamd: Option<ClamdAddress>,
    /// On scanner failure: fail-closed (refuse the upload) or fail-open (publish it
    /// unscanned; development only).
    #[arg(long, value_name = "POLICY", default_value = "fail-closed")]
    pub scan_on_failure: FailurePolicy,
    /// Largest object scanned; keep it at or below clamd's StreamMaxLength.
    #[arg(long, value_name = "SIZE", default_value = "100MiB", value_parser = parse_size_in(1, 1 << 42))]
    pub scan_max_size: u64,
    /// Above scan_max_size: reject or allow-unscanned.
    #[arg(long, value_name = "POLICY", default_value = "reject")]
    pub scan_oversize: OversizePolicy,
    /// How long to wait for a verdict once a stream is sent.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_positive_duration)]
    pub scan_timeout: Duration,
    /// Backing store: unset = <data_dir>/store, or s3://bucket[/prefix].
    #[arg(long, value_name = "URL", value_parser = parse_store)]
    pub store: Option<S3Settings>,
    /// S3 endpoint URL; unset = AWS.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub store_endpoint: Option<String>,
    /// S3 region; unset = the SDK's region chain, else us-east-1.
    #[arg(long)]
    pub store_region: Option<String>,
    /// S3 access key; unset = the SDK's credential chain.
    #[arg(long, value_name = "KEY")]
    pub store_access_key: Option<String>,
    /// S3 secret key (set both or neither).
    #[arg(long, value_name = "SECRET", value_parser = parse_secret, hide_default_value = true)]
    pub store_secret_key: Option<Secret>,
    /// Path-style bucket addressing; self-hosted stores usually need it.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub store_path_style: bool,
    /// Request checksums: when_required or when_supported.
    #[arg(long, value_name = "MODE", default_value = "when_required")]
    pub store_checksum: ChecksumMode,
    /// How long one backend attempt may take, body included.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub store_timeout: Duration,
    /// Attempts per backend request (1 = no retries).
    #[arg(long, value_name = "N", default_value = "4", value_parser = RangedU64ValueParser::<u32>::new().range(1..=100))]
    pub store_max_attempts: u32,
    /// Consecutive failed attempts that open the circuit breaker.
    #[arg(long, value_name = "N", default_value = "8", value_parser = RangedU64ValueParser::<u32>::new().range(1..))]
    pub store_breaker_threshold: u32,
    /// How long the breaker stays open.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub store_breaker_cooldown: Duration,
    /// Backend reads in flight per GET; unset = 4 on the local store, 8 on S3.
    #[arg(long, value_name = "N", value_parser = RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub read_ahead: Option<usize>,
    /// Largest coalesced backend read; unset = 1MiB on the local store, 4MiB on S3.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_in(64 << 10, 256 << 20))]
    pub read_coalesce: Option<u64>,
    /// Accept AWS Signature Version 2 (its signatures do not cover bodies). When on, a
    /// SigV2 date must be within 15 minutes and a presigned expiry within 7 days.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub sigv2: bool,
    /// Most S3 connections served at once; further clients wait in the listen backlog.
    /// Unset = 4096, lowered to fit the open-file limit.
    #[arg(long, value_name = "N", value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: Option<usize>,
    /// Time between local index snapshots; 0 = none.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub index_snapshot_interval: Duration,
    /// Index snapshots kept in <data_dir>/index-snapshots.
    #[arg(long, value_name = "N", default_value = "3", value_parser = RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub index_snapshots: usize,
}

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
#[derive(Debug, Clone, Default)]
pub struct Layers {
    values: Vec<(String, String)>,
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

impl Settings {
    /// Checks settings that only make sense together.
    ///
    /// # Errors
    /// [`ConfigError::Conflict`] naming the keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.root_access_key.is_some() != self.root_secret_key.is_some() {
            return Err(ConfigError::Conflict {
                keys: "root_access_key/root_secret_key".into(),
                reason: "set both or neither".into(),
            });
        }
        if self.store_access_key.is_some() != self.store_secret_key.is_some() {
            return Err(ConfigError::Conflict {
                keys: "store_access_key/store_secret_key".into(),
                reason: "set both or neither (neither = the AWS SDK's credential chain)".into(),
            });
        }
        Ok(())
    }

    /// The S3 backing store's settings, `None` for the local directory.
    pub fn s3_settings(&self) -> Option<S3Settings> {
        let mut s = self.store.clone()?;
        s.endpoint.clone_from(&self.store_endpoint);
        s.region.clone_from(&self.store_region);
        s.path_style = self.store_path_style;
        s.credentials = self.store_access_key.clone().zip(
            self.store_secret_key
                .as_ref()
                .map(|s| s.expose().to_owned()),
        );
        s.checksum = self.store_checksum;
        s.attempt_timeout = self.store_timeout;
        s.breaker_cooldown = self.store_breaker_cooldown;
        s.max_attempts = self.store_max_attempts;
        s.breaker_threshold = self.store_breaker_threshold;
        // Packs up to twice the target go out as one PutObject.
        let pack_target = usize::try_from(self.pack_target).unwrap_or(usize::MAX);
        s.single_put_max = s.single_put_max.max(pack_target.saturating_mul(2));
        Some(s)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3dedup.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_alone_load() {
        let s = load_from(["s3dedup"], None, |_| None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.pack_target, 16 << 20);
        assert_eq!(s.scan_timeout, Duration::from_secs(120));
        assert_eq!(s.index_snapshot_interval, Duration::from_secs(3600));
        assert!(s.clamd.is_none() && s.store.is_none() && !s.sigv2);
        assert!(s.s3_settings().is_none());
    }

    /// File < env < flag, for a setting of each kind: address, path, string, duration,
    /// size, enum, bool, optional number.
    #[test]
    fn file_then_env_then_flag_for_every_kind() {
        let (_d, file) = file_with(
            r#"
listen = "127.0.0.1:7001"
data_dir = "/from/file"
region = "file-region"
scan_timeout = "1m"
pack_target = "2MiB"
log_format = "json"
sigv2 = true
read_ahead = 3
"#,
        );
        let file = Some(file.as_path());
        let only_file = load_from(["s3dedup"], file, |_| None).unwrap();
        assert_eq!(only_file.listen, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(only_file.data_dir, PathBuf::from("/from/file"));
        assert_eq!(only_file.region, "file-region");
        assert_eq!(only_file.scan_timeout, Duration::from_secs(60));
        assert_eq!(only_file.pack_target, 2 << 20);
        assert_eq!(only_file.log_format, LogFormat::Json);
        assert!(only_file.sigv2);
        assert_eq!(only_file.read_ahead, Some(3));

        let env = env_of(&[
            ("S3DEDUP_LISTEN", "127.0.0.1:7002"),
            ("S3DEDUP_DATA_DIR", "/from/env"),
            ("S3DEDUP_REGION", "env-region"),
            ("S3DEDUP_SCAN_TIMEOUT", "90"),
            ("S3DEDUP_PACK_TARGET", "4194304"),
            ("S3DEDUP_LOG_FORMAT", "text"),
            ("S3DEDUP_SIGV2", "false"),
            ("S3DEDUP_READ_AHEAD", "5"),
        ]);
        let env_over_file = load_from(["s3dedup"], file, &env).unwrap();
        assert_eq!(env_over_file.listen, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(env_over_file.data_dir, PathBuf::from("/from/env"));
        assert_eq!(env_over_file.region, "env-region");
        assert_eq!(env_over_file.scan_timeout, Duration::from_secs(90));
        assert_eq!(env_over_file.pack_target, 4 << 20);
        assert_eq!(env_over_file.log_format, LogFormat::Text);
        assert!(!env_over_file.sigv2);
        assert_eq!(env_over_file.read_ahead, Some(5));

        let flags = [
            "s3dedup",
            "--listen=127.0.0.1:7003",
            "--data-dir=/from/flag",
            "--region=flag-region",
            "--scan-timeout=5m",
            "--pack-target=8MiB",
            "--log-format=json",
            "--sigv2",
            "--read-ahead=7",
        ];
        let flag_over_env = load_from(flags, file, &env).unwrap();
        assert_eq!(flag_over_env.listen, "127.0.0.1:7003".parse().unwrap());
        assert_eq!(flag_over_env.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(flag_over_env.region, "flag-region");
        assert_eq!(flag_over_env.scan_timeout, Duration::from_secs(300));
        assert_eq!(flag_over_env.pack_target, 8 << 20);
        assert_eq!(flag_over_env.log_format, LogFormat::Json);
        assert!(flag_over_env.sigv2);
        assert_eq!(flag_over_env.read_ahead, Some(7));
    }

    #[test]
    fn an_empty_value_means_unset() {
        let (_d, file) = file_with("clamd = \"tcp://127.0.0.1:3310\"\nregion = \"\"\n");
        let s = load_from(["s3dedup"], Some(&file), env_of(&[])).unwrap();
        assert!(s.clamd.is_some());
        assert_eq!(s.region, "us-east-1");
        // The environment's empty value unsets what the file set.
        let s = load_from(
            ["s3dedup"],
            Some(&file),
            env_of(&[("S3DEDUP_CLAMD", ""), ("S3DEDUP_LISTEN", "")]),
        )
        .unwrap();
        assert!(s.clamd.is_none());
        assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
    }

    #[test]
    fn refusals_name_the_key_and_the_value() {
        let err = |file: Option<&str>, vars: &[(&str, &str)]| -> String {
            let f = file.map(file_with);
            let path = f.as_ref().map(|(_, p)| p.as_path());
            match load_from(["s3dedup"], path, env_of(vars)) {
                Ok(_) => panic!("accepted {file:?} {vars:?}"),
                Err(e) => e.to_string(),
            }
        };
        let e = err(Some("lisen = \"127.0.0.1:1\"\n"), &[]);
        assert!(e.contains("unknown key `lisen`"), "{e}");
        let e = err(Some("scan_timeout_secs = 3\n"), &[]);
        assert!(e.contains("renamed `scan_timeout`"), "{e}");
        let e = err(Some("pack_target = \"16 parsecs\"\n"), &[]);
        assert!(
            e.contains("key `pack_target`") && e.contains("\"16 parsecs\""),
            "{e}"
        );
        let e = err(Some("listen = [1, 2]\n"), &[]);
        assert!(e.contains("key `listen`"), "{e}");
        let e = err(Some("listen = \n"), &[]);
        assert!(e.contains("config file") && e.contains("line 1"), "{e}");
        let e = err(None, &[("S3DEDUP_SCAN_TIMEOUT", "soon")]);
        assert!(
            e.contains("S3DEDUP_SCAN_TIMEOUT") && e.contains("\"soon\""),
            "{e}"
        );
        let e = err(None, &[("S3DEDUP_PACK_TARGET", "1KiB")]);
        assert!(
            e.contains("S3DEDUP_PACK_TARGET") && e.contains("outside"),
            "{e}"
        );
        let e = err(None, &[("S3DEDUP_STORE_MAX_ATTEMPTS", "0")]);
        assert!(e.contains("S3DEDUP_STORE_MAX_ATTEMPTS"), "{e}");
        let e = err(None, &[("S3DEDUP_STORE", "bucket-without-scheme")]);
        assert!(e.contains("S3DEDUP_STORE") && e.contains("s3://"), "{e}");
        let e = err(None, &[("S3DEDUP_STORE_CHECKSUM", "always")]);
        assert!(e.contains("when_required"), "{e}");
        let e = err(None, &[("S3DEDUP_CLAMD", "localhost:3310")]);
        assert!(e.contains("S3DEDUP_CLAMD"), "{e}");
        let e = err(None, &[("S3DEDUP_STORE_TIMEOUT", "0")]);
        assert!(e.contains("S3DEDUP_STORE_TIMEOUT"), "{e}");
        let e = err(None, &[("S3DEDUP_STORE_TIMEOUT", "1e300")]);
        assert!(e.contains("S3DEDUP_STORE_TIMEOUT"), "{e}");
        let e = err(None, &[("S3DEDUP_ROOT_ACCESS_KEY", "ab")]);
        assert!(e.contains("at least 3"), "{e}");
        let e = err(
            None,
            &[
                ("S3DEDUP_ROOT_ACCESS_KEY", "abc"),
                ("S3DEDUP_ROOT_SECRET_KEY", "hunter2"),
            ],
        );
        assert!(e.contains("at least 8") && !e.contains("hunter2"), "{e}");
        let e = err(None, &[("S3DEDUP_ROOT_ACCESS_KEY", "abc")]);
        assert!(e.contains("set both or neither"), "{e}");
        let e = err(
            None,
            &[
                ("S3DEDUP_STORE", "s3://packs"),
                ("S3DEDUP_STORE_ACCESS_KEY", "ak"),
            ],
        );
        assert!(e.contains("store_access_key/store_secret_key"), "{e}");
        let bad_flag = load_from(["s3dedup", "--listen", "nope"], None, |_| None).unwrap_err();
        assert!(bad_flag.to_string().contains("--listen"), "{bad_flag}");
    }

    #[test]
    fn every_setting_has_a_flag_and_an_env_var_named_after_its_key() {
        let cmd = Layers::default().apply(schema());
        for arg in cmd.get_arguments() {
            let key = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(key.replace('_', "-").as_str()));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                help.contains(&format!("[env: {}]", env_name(key))),
                "{help}"
            );
        }
    }

    #[test]
    fn units_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("-1").is_err() && parse_duration("soon").is_err());
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("-1").is_err() && parse_size("lots").is_err());
    }

    #[test]
    fn s3_store_settings() {
        let s = load_from(
            ["s3dedup"],
            None,
            env_of(&[
                ("S3DEDUP_STORE", "s3://packs-bucket/site"),
                ("S3DEDUP_STORE_ENDPOINT", "http://127.0.0.1:9100"),
                ("S3DEDUP_STORE_PATH_STYLE", "true"),
                ("S3DEDUP_STORE_ACCESS_KEY", "ak"),
                ("S3DEDUP_STORE_SECRET_KEY", "sk"),
                ("S3DEDUP_STORE_TIMEOUT", "2.5"),
            ]),
        )
        .unwrap()
        .s3_settings()
        .unwrap();
        assert_eq!(
            (s.bucket.as_str(), s.prefix.as_str()),
            ("packs-bucket", "site/")
        );
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9100"));
        assert!(s.path_style);
        assert_eq!(s.attempt_timeout, Duration::from_millis(2500));
        assert_eq!(s.credentials, Some(("ak".into(), "sk".into())));
    }

    /// `deploy/s3dedup.example.toml` loads, changes nothing, and names every setting.
    #[test]
    fn the_example_config_names_every_setting_at_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/s3dedup.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let mut named: Vec<String> = table.keys().cloned().collect();
        let mut all = keys();
        named.sort();
        all.sort();
        assert_eq!(named, all, "the example must list exactly the settings");
        let from_example = load_from(["s3dedup"], Some(&path), |_| None).unwrap();
        let defaults = load_from(["s3dedup"], None, |_| None).unwrap();
        assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
    }
}
