//! Settings: a TOML file, overridden by `S3DEDUP_*` environment variables, overridden by
//! command-line flags. Every setting has a default, so `s3dedup serve` alone runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use s3dedup_storage::blob::S3Settings;

use crate::scan::{FailurePolicy, OversizePolicy};

/// Errors reading or validating configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// An environment variable or flag has an invalid value.
    #[error("{name}: invalid value {value:?}: {reason}")]
    Invalid {
        /// Variable or flag name.
        name: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Root credentials could not be read or persisted.
    #[error("root credentials at {path}: {source}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// All settings of `s3dedup serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the index and the local chunk store live (`S3DEDUP_DATA_DIR`).
    pub data_dir: PathBuf,
    /// S3 API address (`S3DEDUP_LISTEN`).
    pub listen: SocketAddr,
    /// Admin address: metrics and health (`S3DEDUP_ADMIN_LISTEN`).
    pub admin_listen: SocketAddr,
    /// Region reported and accepted in signatures (`S3DEDUP_REGION`).
    pub region: String,
    /// Base domain for virtual-hosted-style requests (`S3DEDUP_DOMAIN`); path style
    /// always works.
    pub domain: Option<String>,
    /// Root access key (`S3DEDUP_ROOT_ACCESS_KEY`); generated on first start if unset.
    pub root_access_key: Option<String>,
    /// Root secret key (`S3DEDUP_ROOT_SECRET_KEY`).
    pub root_secret_key: Option<String>,
    /// Log format (`S3DEDUP_LOG_FORMAT`: `text` or `json`).
    pub log_format: LogFormat,
    /// Minimum size of every multipart part but the last (`S3DEDUP_MIN_PART_SIZE`).
    pub min_part_size: u64,
    /// Target pack size in bytes (`S3DEDUP_PACK_TARGET`).
    pub pack_target: usize,
    /// Index page cache in bytes (`S3DEDUP_INDEX_CACHE`).
    pub index_cache: usize,
    /// clamd address, `tcp://host:port` or `unix:///path` (`S3DEDUP_CLAMD`); unset =
    /// uploads are not scanned.
    pub clamd: Option<String>,
    /// On scanner failure: `fail-closed` or `fail-open` (`S3DEDUP_SCAN_ON_FAILURE`).
    pub scan_on_failure: FailurePolicy,
    /// Largest object scanned, bytes (`S3DEDUP_SCAN_MAX_SIZE`); keep it at or below
    /// clamd's StreamMaxLength.
    pub scan_max_size: u64,
    /// Above the limit: `reject` or `allow-unscanned` (`S3DEDUP_SCAN_OVERSIZE`).
    pub scan_oversize: OversizePolicy,
    /// Seconds to wait for a verdict once a stream is sent (`S3DEDUP_SCAN_TIMEOUT`).
    pub scan_timeout_secs: u64,
    /// Backing store (`S3DEDUP_STORE`): unset = `<data_dir>/store`, or
    /// `s3://bucket[/prefix]`.
    pub store: Option<String>,
    /// S3 endpoint URL (`S3DEDUP_STORE_ENDPOINT`); unset = AWS.
    pub store_endpoint: Option<String>,
    /// S3 region (`S3DEDUP_STORE_REGION`); unset = the SDK's region chain, else us-east-1.
    pub store_region: Option<String>,
    /// S3 access key (`S3DEDUP_STORE_ACCESS_KEY`); unset = the SDK's credential chain.
    pub store_access_key: Option<String>,
    /// S3 secret key (`S3DEDUP_STORE_SECRET_KEY`).
    pub store_secret_key: Option<String>,
    /// Path-style bucket addressing (`S3DEDUP_STORE_PATH_STYLE`); self-hosted stores
    /// usually need it.
    pub store_path_style: bool,
    /// Request checksums (`S3DEDUP_STORE_CHECKSUM`: `when_required` | `when_supported`).
    pub store_checksum: String,
    /// Seconds one backend attempt may take, body included (`S3DEDUP_STORE_TIMEOUT`).
    pub store_timeout_secs: f64,
    /// Attempts per backend request (`S3DEDUP_STORE_MAX_ATTEMPTS`; 1 = no retries).
    pub store_max_attempts: u32,
    /// Consecutive failed attempts that open the circuit breaker
    /// (`S3DEDUP_STORE_BREAKER_THRESHOLD`).
    pub store_breaker_threshold: u32,
    /// Seconds the breaker stays open (`S3DEDUP_STORE_BREAKER_COOLDOWN`).
    pub store_breaker_cooldown_secs: f64,
    /// Backend reads in flight per GET (`S3DEDUP_READ_AHEAD`); unset = 4 on the local
    /// store, 8 on S3 (longer round trips).
    pub read_ahead: Option<usize>,
    /// Largest coalesced backend read in bytes (`S3DEDUP_READ_COALESCE`); unset = 1 MiB
    /// on the local store, 4 MiB on S3.
    pub read_coalesce: Option<usize>,
    /// Accept AWS Signature Version 2 (`S3DEDUP_SIGV2`); off by default. When on, a
    /// SigV2 request's date must be within 15 minutes and a presigned URL's expiry within
    /// 7 days.
    pub sigv2: bool,
    /// Most S3 connections served at once (`S3DEDUP_MAX_CONNECTIONS`); further clients
    /// wait in the listen backlog. Unset = 4096, lowered to fit the open-file limit.
    pub max_connections: Option<usize>,
    /// Seconds between local index snapshots (`S3DEDUP_INDEX_SNAPSHOT_INTERVAL`); 0 = none.
    pub index_snapshot_interval_secs: u64,
    /// Index snapshots kept in `<data_dir>/index-snapshots` (`S3DEDUP_INDEX_SNAPSHOTS`).
    pub index_snapshots: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./s3dedup-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            region: "us-east-1".into(),
            domain: None,
            root_access_key: None,
            root_secret_key: None,
            log_format: LogFormat::Text,
            min_part_size: 5 << 20,
            pack_target: 16 << 20,
            index_cache: 64 << 20,
            clamd: None,
            scan_on_failure: FailurePolicy::FailClosed,
            scan_max_size: 100 << 20,
            scan_oversize: OversizePolicy::Reject,
            scan_timeout_secs: 120,
            store: None,
            store_endpoint: None,
            store_region: None,
            store_access_key: None,
            store_secret_key: None,
            store_path_style: false,
            store_checksum: "when_required".into(),
            store_timeout_secs: 60.0,
            store_max_attempts: 4,
            store_breaker_threshold: 8,
            store_breaker_cooldown_secs: 5.0,
            read_ahead: None,
            read_coalesce: None,
            sigv2: false,
            max_connections: None,
            index_snapshot_interval_secs: 3600,
            index_snapshots: 3,
        }
    }
}

/// Overrides given on the command line (`None` = not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `--region`.
    pub region: Option<String>,
    /// `--domain`.
    pub domain: Option<String>,
}

fn parse<T: std::str::FromStr>(name: &str, value: String) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name: name.to_owned(),
        reason: e.to_string(),
        value,
    })
}

impl Config {
    /// Loads the file (if any), then applies `env` (a lookup such as `std::env::var`),
    /// then `flags`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, variable or flag at fault.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut c = match file {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(e),
                })?
            }
        };
        if let Some(v) = env("S3DEDUP_DATA_DIR") {
            c.data_dir = v.into();
        }
        if let Some(v) = env("S3DEDUP_LISTEN") {
            c.listen = parse("S3DEDUP_LISTEN", v)?;
        }
        if let Some(v) = env("S3DEDUP_ADMIN_LISTEN") {
            c.admin_listen = parse("S3DEDUP_ADMIN_LISTEN", v)?;
        }
        if let Some(v) = env("S3DEDUP_REGION") {
            c.region = v;
        }
        if let Some(v) = env("S3DEDUP_DOMAIN") {
            c.domain = Some(v);
        }
        if let Some(v) = env("S3DEDUP_ROOT_ACCESS_KEY") {
            c.root_access_key = Some(v);
        }
        if let Some(v) = env("S3DEDUP_ROOT_SECRET_KEY") {
            c.root_secret_key = Some(v);
        }
        if let Some(v) = env("S3DEDUP_LOG_FORMAT") {
            c.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "S3DEDUP_LOG_FORMAT".into(),
                        value: v,
                        reason: "expected text or json".into(),
                    });
                }
            };
        }
        if let Some(v) = env("S3DEDUP_MIN_PART_SIZE") {
            c.min_part_size = parse("S3DEDUP_MIN_PART_SIZE", v)?;
        }
        if let Some(v) = env("S3DEDUP_PACK_TARGET") {
            c.pack_target = parse("S3DEDUP_PACK_TARGET", v)?;
        }
        if let Some(v) = env("S3DEDUP_INDEX_CACHE") {
            c.index_cache = parse("S3DEDUP_INDEX_CACHE", v)?;
        }
        if let Some(v) = env("S3DEDUP_CLAMD") {
            c.clamd = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = env("S3DEDUP_SCAN_ON_FAILURE") {
            c.scan_on_failure = parse("S3DEDUP_SCAN_ON_FAILURE", v)?;
        }
        if let Some(v) = env("S3DEDUP_SCAN_MAX_SIZE") {
            c.scan_max_size = parse("S3DEDUP_SCAN_MAX_SIZE", v)?;
        }
        if let Some(v) = env("S3DEDUP_SCAN_OVERSIZE") {
            c.scan_oversize = parse("S3DEDUP_SCAN_OVERSIZE", v)?;
        }
        if let Some(v) = env("S3DEDUP_SCAN_TIMEOUT") {
            c.scan_timeout_secs = parse("S3DEDUP_SCAN_TIMEOUT", v)?;
        }
        let opt = |v: String| (!v.is_empty()).then_some(v);
        if let Some(v) = env("S3DEDUP_STORE") {
            c.store = opt(v);
        }
        if let Some(v) = env("S3DEDUP_STORE_ENDPOINT") {
            c.store_endpoint = opt(v);
        }
        if let Some(v) = env("S3DEDUP_STORE_REGION") {
            c.store_region = opt(v);
        }
        if let Some(v) = env("S3DEDUP_STORE_ACCESS_KEY") {
            c.store_access_key = opt(v);
        }
        if let Some(v) = env("S3DEDUP_STORE_SECRET_KEY") {
            c.store_secret_key = opt(v);
        }
        if let Some(v) = env("S3DEDUP_STORE_PATH_STYLE") {
            c.store_path_style = parse("S3DEDUP_STORE_PATH_STYLE", v)?;
        }
        if let Some(v) = env("S3DEDUP_STORE_CHECKSUM") {
            c.store_checksum = v;
        }
        if let Some(v) = env("S3DEDUP_STORE_TIMEOUT") {
            c.store_timeout_secs = parse("S3DEDUP_STORE_TIMEOUT", v)?;
        }
        if let Some(v) = env("S3DEDUP_STORE_MAX_ATTEMPTS") {
            c.store_max_attempts = parse("S3DEDUP_STORE_MAX_ATTEMPTS", v)?;
        }
        if let Some(v) = env("S3DEDUP_STORE_BREAKER_THRESHOLD") {
            c.store_breaker_threshold = parse("S3DEDUP_STORE_BREAKER_THRESHOLD", v)?;
        }
        if let Some(v) = env("S3DEDUP_STORE_BREAKER_COOLDOWN") {
            c.store_breaker_cooldown_secs = parse("S3DEDUP_STORE_BREAKER_COOLDOWN", v)?;
        }
        if let Some(v) = env("S3DEDUP_READ_AHEAD") {
            c.read_ahead = Some(parse("S3DEDUP_READ_AHEAD", v)?);
        }
        if let Some(v) = env("S3DEDUP_READ_COALESCE") {
            c.read_coalesce = Some(parse("S3DEDUP_READ_COALESCE", v)?);
        }
        if let Some(v) = env("S3DEDUP_SIGV2") {
            c.sigv2 = parse("S3DEDUP_SIGV2", v)?;
        }
        if let Some(v) = env("S3DEDUP_MAX_CONNECTIONS").and_then(opt) {
            c.max_connections = Some(parse("S3DEDUP_MAX_CONNECTIONS", v)?);
        }
        if let Some(v) = env("S3DEDUP_INDEX_SNAPSHOT_INTERVAL") {
            c.index_snapshot_interval_secs = parse("S3DEDUP_INDEX_SNAPSHOT_INTERVAL", v)?;
        }
        if let Some(v) = env("S3DEDUP_INDEX_SNAPSHOTS") {
            c.index_snapshots = parse("S3DEDUP_INDEX_SNAPSHOTS", v)?;
        }
        if c.max_connections == Some(0) || c.index_snapshots == 0 {
            return Err(ConfigError::Invalid {
                name: "S3DEDUP_MAX_CONNECTIONS/S3DEDUP_INDEX_SNAPSHOTS".into(),
                value: "0".into(),
                reason: "expected ≥ 1".into(),
            });
        }
        c.s3_settings()?;
        if let Some(c_addr) = &c.clamd
            && let Err(reason) = c_addr.parse::<s3dedup_scanner::ClamdAddress>()
        {
            return Err(ConfigError::Invalid {
                name: "S3DEDUP_CLAMD".into(),
                value: c_addr.clone(),
                reason,
            });
        }
        if let Some(v) = &flags.data_dir {
            c.data_dir.clone_from(v);
        }
        if let Some(v) = flags.listen {
            c.listen = v;
        }
        if let Some(v) = flags.admin_listen {
            c.admin_listen = v;
        }
        if let Some(v) = &flags.region {
            c.region.clone_from(v);
        }
        if let Some(v) = &flags.domain {
            c.domain = Some(v.clone());
        }
        if c.root_access_key.is_some() != c.root_secret_key.is_some() {
            return Err(ConfigError::Invalid {
                name: "S3DEDUP_ROOT_ACCESS_KEY/S3DEDUP_ROOT_SECRET_KEY".into(),
                value: String::new(),
                reason: "set both or neither".into(),
            });
        }
        Ok(c)
    }
}

impl Config {
    /// The S3 backing store's settings, `None` for the local directory.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting at fault.
    pub fn s3_settings(&self) -> Result<Option<S3Settings>, ConfigError> {
        let invalid = |name: &str, value: &str, reason: &str| ConfigError::Invalid {
            name: name.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let Some(url) = &self.store else {
            return Ok(None);
        };
        let mut s = S3Settings::from_url(url).map_err(|r| invalid("S3DEDUP_STORE", url, &r))?;
        s.endpoint.clone_from(&self.store_endpoint);
        s.region.clone_from(&self.store_region);
        s.path_style = self.store_path_style;
        s.credentials = match (&self.store_access_key, &self.store_secret_key) {
            (Some(a), Some(k)) => Some((a.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "S3DEDUP_STORE_ACCESS_KEY/S3DEDUP_STORE_SECRET_KEY",
                    "",
                    "set both or neither (neither = the AWS SDK's credential chain)",
                ));
            }
        };
        s.checksum = self
            .store_checksum
            .parse()
            .map_err(|r: String| invalid("S3DEDUP_STORE_CHECKSUM", &self.store_checksum, &r))?;
        let secs = |name: &str, v: f64| {
            std::time::Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| invalid(name, &v.to_string(), "expected seconds > 0"))
        };
        s.attempt_timeout = secs("S3DEDUP_STORE_TIMEOUT", self.store_timeout_secs)?;
        s.breaker_cooldown = secs(
            "S3DEDUP_STORE_BREAKER_COOLDOWN",
            self.store_breaker_cooldown_secs,
        )?;
        if self.store_max_attempts == 0 {
            return Err(invalid("S3DEDUP_STORE_MAX_ATTEMPTS", "0", "expected ≥ 1"));
        }
        s.max_attempts = self.store_max_attempts;
        s.breaker_threshold = self.store_breaker_threshold.max(1);
        // Packs up to twice the target go out as one PutObject.
        s.single_put_max = s.single_put_max.max(self.pack_target.saturating_mul(2));
        Ok(Some(s))
    }
}

/// Root credentials and whether they were just created (to be shown once).
#[derive(Debug, Clone)]
pub struct RootCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// True when generated by this start.
    pub created: bool,
}

const CREDENTIALS_FILE: &str = "root-credentials";

/// The configured root credentials, or those persisted in the data directory, or new
/// ones (persisted there with mode 0600).
///
/// # Errors
/// [`ConfigError::Credentials`] if the file cannot be read or written.
pub fn root_credentials(c: &Config) -> Result<RootCredentials, ConfigError> {
    if let (Some(a), Some(s)) = (&c.root_access_key, &c.root_secret_key) {
        return Ok(RootCredentials {
            access_key: a.clone(),
            secret_key: s.clone(),
            created: false,
        });
    }
    let path = c.data_dir.join(CREDENTIALS_FILE);
    let err = |source| ConfigError::Credentials {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut lines = text.lines();
            match (lines.next(), lines.next()) {
                (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(RootCredentials {
                    access_key: a.to_owned(),
                    secret_key: s.to_owned(),
                    created: false,
                }),
                _ => Err(err(std::io::Error::other(
                    "expected two lines: access key, secret key",
                ))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::Rng;
            const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut rng = rand::rng();
            let mut pick = |set: &[u8], n| -> String {
                (0..n)
                    .map(|_| char::from(set[rng.random_range(0..set.len())]))
                    .collect()
            };
            let creds = RootCredentials {
                access_key: format!("S3DD{}", pick(UPPER, 16)),
                secret_key: pick(ANY, 40),
                created: true,
            };
            std::fs::create_dir_all(&c.data_dir).map_err(err)?;
            write_private(
                &path,
                format!("{}\n{}\n", creds.access_key, creds.secret_key).as_bytes(),
            )
            .map_err(err)?;
            Ok(creds)
        }
        Err(e) => Err(err(e)),
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\nregion = \"eu-west-1\"\ndata_dir = \"/from/file\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "S3DEDUP_REGION" => Some("eu-central-1".to_owned()),
            "S3DEDUP_DATA_DIR" => Some("/from/env".to_owned()),
            _ => None,
        };
        let flags = Overrides {
            data_dir: Some("/from/flag".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), env, &flags).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.region, "eu-central-1");
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.admin_listen, "127.0.0.1:9001".parse().unwrap());
    }

    #[test]
    fn bad_values_are_named() {
        let env = |k: &str| (k == "S3DEDUP_LISTEN").then(|| "nope".to_owned());
        let e = Config::load(None, env, &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("S3DEDUP_LISTEN"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = 1\n").unwrap();
        assert!(matches!(
            Config::load(Some(&file), |_| None, &Overrides::default()),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn root_credentials_are_generated_once_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let first = root_credentials(&c).unwrap();
        assert!(first.created);
        let again = root_credentials(&c).unwrap();
        assert!(!again.created);
        assert_eq!(
            (first.access_key, first.secret_key),
            (again.access_key, again.secret_key)
        );
    }
    #[test]
    fn s3_store_settings() {
        let load = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Config::load(
                None,
                |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
                &Overrides::default(),
            )
        };
        assert!(load(&[]).unwrap().s3_settings().unwrap().is_none());
        let c = load(&[
            ("S3DEDUP_STORE", "s3://packs-bucket/site"),
            ("S3DEDUP_STORE_ENDPOINT", "http://127.0.0.1:9100"),
            ("S3DEDUP_STORE_PATH_STYLE", "true"),
            ("S3DEDUP_STORE_ACCESS_KEY", "ak"),
            ("S3DEDUP_STORE_SECRET_KEY", "sk"),
            ("S3DEDUP_STORE_TIMEOUT", "2.5"),
        ])
        .unwrap();
        let s = c.s3_settings().unwrap().unwrap();
        assert_eq!(
            (s.bucket.as_str(), s.prefix.as_str()),
            ("packs-bucket", "site/")
        );
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9100"));
        assert!(s.path_style);
        assert_eq!(s.attempt_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(s.credentials, Some(("ak".into(), "sk".into())));
        for bad in [
            vec![("S3DEDUP_STORE", "bucket-without-scheme")],
            vec![
                ("S3DEDUP_STORE", "s3://packs"),
                ("S3DEDUP_STORE_ACCESS_KEY", "ak"),
            ],
            vec![
                ("S3DEDUP_STORE", "s3://packs"),
                ("S3DEDUP_STORE_CHECKSUM", "always"),
            ],
            vec![
                ("S3DEDUP_STORE", "s3://packs"),
                ("S3DEDUP_STORE_TIMEOUT", "0"),
            ],
            vec![
                ("S3DEDUP_STORE", "s3://packs"),
                ("S3DEDUP_STORE_TIMEOUT", "1e300"),
            ],
            vec![
                ("S3DEDUP_STORE", "s3://packs"),
                ("S3DEDUP_STORE_MAX_ATTEMPTS", "0"),
            ],
        ] {
            assert!(load(&bad).is_err(), "{bad:?}");
        }
    }
}
