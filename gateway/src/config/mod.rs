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
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, RangedU64ValueParser};
use clap::{ArgAction, Args};

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

/// The `compression` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionSetting {
    /// zstd, at `compression_level`.
    #[default]
    Zstd,
    /// Chunks stored raw.
    Off,
}

impl std::str::FromStr for CompressionSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zstd" => Ok(CompressionSetting::Zstd),
            "off" => Ok(CompressionSetting::Off),
            _ => Err("expected zstd or off".into()),
        }
    }
}

/// The `encryption` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionSetting {
    /// Nothing is encrypted.
    #[default]
    Off,
    /// AEAD per chunk and pack table.
    Aead,
}

impl std::str::FromStr for EncryptionSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(EncryptionSetting::Off),
            "aead" => Ok(EncryptionSetting::Aead),
            _ => Err("expected off or aead".into()),
        }
    }
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
/// there are the built-in ones, or the file's and environment's values when they set one.
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
    /// Region reported and accepted in signatures; a client signing for a region that is
    /// not one (s3cmd's default `US`) is told to use this one.
    #[arg(long, default_value = "us-east-1", value_parser = parse_region)]
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
    /// How new chunks are stored: zstd (compressed when that saves at least ~3 %) or off.
    #[arg(long, value_name = "zstd|off", default_value = "zstd")]
    pub compression: CompressionSetting,
    /// Dedup scope of tenants created from now on (fixed per tenant): global (identical
    /// content is stored once across all tenants) or tenant (each tenant's chunk ids are
    /// keyed with its own secret: no dedup, and no timing or usage signal, across
    /// tenants). The root tenant always uses the store's ids.
    #[arg(long, value_name = "global|tenant", default_value = "global")]
    pub dedup_scope: s3dedup_storage::identity::DedupScope,
    /// zstd level for new chunks (1 = fastest, 19 = smallest; 3 is zstd's default).
    #[arg(long, value_name = "N", default_value = "3", value_parser = RangedU64ValueParser::<u8>::new().range(1..=19))]
    pub compression_level: u8,
    /// Encryption at rest: off, or aead (AES-256-GCM-SIV per chunk and pack table, keyed
    /// chunk ids for a new store). Needs encryption_key_file or encryption_key.
    #[arg(long, value_name = "off|aead", default_value = "off")]
    pub encryption: EncryptionSetting,
    /// File with the encryption key(s): lines `ID:HEX` (64 hex digits, ID 1..=65535) or
    /// one `HEX`; the highest id seals new data, all listed ones decrypt. Never inside
    /// the data dir.
    #[arg(long, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// The key(s) themselves, in the key file's format (`;` may separate lines); set it
    /// through S3DEDUP_ENCRYPTION_KEY rather than a flag or a file.
    #[arg(long, value_name = "KEYS", value_parser = parse_secret, hide_default_value = true)]
    pub encryption_key: Option<Secret>,
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
    /// Most time between a change and its arrival in the store's metadata journal
    /// (the recovery point of `rebuild-index` when the data dir is lost).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub journal_interval: Duration,
    /// Time between snapshots of the whole index in the store (they bound how much
    /// journal a rebuild replays); 0 = only on demand and at the first shipment.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub journal_snapshot_interval: Duration,
    /// How long unreferenced data is kept before GC may remove it: a chunk from the
    /// moment its last reference went, an orphan pack from its creation. 0s is allowed.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub gc_grace: Duration,
    /// Time between background GC runs in `serve`; 0 = only on demand.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub gc_interval: Duration,
    /// Packs whose live fraction falls below this are compacted by GC (their live
    /// chunks rewritten into a new pack); 0% = never.
    #[arg(long, value_name = "PERCENT", default_value = "50%", value_parser = parse_fraction)]
    pub compact_threshold: f64,
    /// Time between scrubs (every pack re-read, every chunk's SHA-256 re-derived);
    /// 0 = only on demand.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_duration)]
    pub scrub_interval: Duration,
    /// How fast scrub reads from the backing store, per second; 0 = unlimited.
    #[arg(long, value_name = "SIZE", default_value = "50MiB", value_parser = parse_size)]
    pub scrub_rate: u64,
    /// Time between background runs of the buckets' lifecycle rules in `serve`;
    /// 0 = only on demand (`s3dedup admin lifecycle`).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub lifecycle_interval: Duration,
    /// The length of a day for lifecycle rules (`Days`, `NoncurrentDays`,
    /// `DaysAfterInitiation` count in these, rounded up to a day boundary). Only tests
    /// shorten it (like Ceph's rgw_lc_debug_interval); object lock keeps real time.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_positive_duration)]
    pub lifecycle_day: Duration,
    /// Multipart uploads not completed or aborted after this long are aborted by GC.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_positive_duration)]
    pub multipart_expiry: Duration,
    /// PEM certificate chain (leaf first): set with tls_key to serve HTTPS on both the
    /// S3 and the admin port (TLS 1.2 and 1.3). Re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of tls_cert. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates trusted (besides the system's) for the S3 backing store's
    /// HTTPS endpoint.
    #[arg(long, value_name = "FILE")]
    pub store_ca_bundle: Option<PathBuf>,
    /// How long a new connection may stay silent (TLS handshake included), and how long
    /// a request's headers may take once started.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay idle between requests, and how long a
    /// response may wait for a client that does not read it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,
    /// A request body is cut (400 RequestTimeout) when a window this long brings less
    /// than body_min_rate per second on average, or nothing at all.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub body_idle_timeout: Duration,
    /// Least upload rate per second, judged over each body_idle_timeout window; 0 = only
    /// a complete stall is cut.
    #[arg(long, value_name = "SIZE", default_value = "1KiB", value_parser = parse_size)]
    pub body_min_rate: u64,
    /// Largest request head (request line and headers); larger gets 431.
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_size_in(8 << 10, 1 << 20))]
    pub max_header_size: u64,
    /// Uploads are refused (503) while the data dir's file system has less free space
    /// than this; the index lives there and must never be starved. 0 = no guard.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub min_free_space: u64,
    /// Requests per second per access key (0 = unlimited); over it: 503 SlowDown.
    #[arg(long, value_name = "N", default_value = "0", value_parser = RangedU64ValueParser::<u64>::new())]
    pub rate_limit_key_requests: u64,
    /// Request bytes per second per access key (0 = unlimited).
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub rate_limit_key_bytes: u64,
    /// Requests per second per client IP (0 = unlimited), checked before authentication.
    #[arg(long, value_name = "N", default_value = "0", value_parser = RangedU64ValueParser::<u64>::new())]
    pub rate_limit_ip_requests: u64,
    /// Request bytes per second per client IP (0 = unlimited).
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub rate_limit_ip_bytes: u64,
    /// How much of a rate may come at once, in time: 1s = one second's worth.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration)]
    pub rate_limit_burst: Duration,
    /// Failed authentications (bad signature, unknown/disabled/expired key) from one IP
    /// within auth_failure_window that lock the IP out (0 = never).
    #[arg(long, value_name = "N", default_value = "20", value_parser = RangedU64ValueParser::<u32>::new())]
    pub auth_failure_limit: u32,
    /// The window failed authentications are counted in.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_positive_duration)]
    pub auth_failure_window: Duration,
    /// How long a locked-out IP is refused (403).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_positive_duration)]
    pub auth_lockout: Duration,
    /// Tamper-evident audit log (JSON lines, hash-chained, HMAC checkpoints): every
    /// mutating, denied or unauthenticated S3 request, admin action and virus rejection.
    /// Unset = none.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// The audit log is rotated (to FILE.<next seq>) when it reaches this size.
    #[arg(long, value_name = "SIZE", default_value = "100MiB", value_parser = parse_size_in(4 << 10, 1 << 40))]
    pub audit_log_max_size: u64,
    /// The audit checkpoints' HMAC key (64+ hex digits); unset = <data_dir>/audit-key,
    /// created at first start. Keep it where whoever can edit the log cannot read it.
    #[arg(long, value_name = "FILE")]
    pub audit_key_file: Option<PathBuf>,
    /// Start in read-only mode: writes get 503, reads continue (`s3dedup admin mode`
    /// switches at run time, but cannot lift this setting).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub read_only: bool,
    /// Bearer token of the admin API (/admin/v1); unset = the one kept in
    /// <data_dir>/admin-token (created at first start). At least 16 characters.
    #[arg(long, value_name = "TOKEN", value_parser = parse_secret, hide_default_value = true)]
    pub admin_token: Option<Secret>,
}

impl Settings {
    /// Checks settings that only make sense together.
    ///
    /// # Errors
    /// [`ConfigError::Conflict`] naming the keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Checked here, not by the flag's parser, so the value is never quoted.
        if self
            .root_secret_key
            .as_ref()
            .is_some_and(|k| k.expose().chars().count() < 8)
        {
            return Err(ConfigError::Invalid {
                origin: "root_secret_key (S3DEDUP_ROOT_SECRET_KEY, --root-secret-key)".into(),
                value: "(hidden)".into(),
                reason: "a secret key needs at least 8 characters".into(),
            });
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|k| k.expose().chars().count() < 16)
        {
            return Err(ConfigError::Invalid {
                origin: "admin_token (S3DEDUP_ADMIN_TOKEN, --admin-token)".into(),
                value: "(hidden)".into(),
                reason: "an admin token needs at least 16 characters".into(),
            });
        }
        let key_sources =
            u8::from(self.encryption_key_file.is_some()) + u8::from(self.encryption_key.is_some());
        match (self.encryption, key_sources) {
            (EncryptionSetting::Aead, 0) => {
                return Err(ConfigError::Conflict {
                    keys: "encryption/encryption_key_file/encryption_key".into(),
                    reason: "encryption = \"aead\" needs encryption_key_file or \
                             S3DEDUP_ENCRYPTION_KEY"
                        .into(),
                });
            }
            (_, 2) => {
                return Err(ConfigError::Conflict {
                    keys: "encryption_key_file/encryption_key".into(),
                    reason: "set one of them, not both".into(),
                });
            }
            (EncryptionSetting::Off, 1) => {
                return Err(ConfigError::Conflict {
                    keys: "encryption/encryption_key_file/encryption_key".into(),
                    reason: "a key is set but encryption is off; set encryption = \"aead\"".into(),
                });
            }
            _ => {}
        }
        if let Some(f) = &self.encryption_key_file
            && let (Ok(file), Ok(data)) = (f.canonicalize(), self.data_dir.canonicalize())
            && file.starts_with(&data)
        {
            return Err(ConfigError::Invalid {
                origin: "encryption_key_file".into(),
                value: format!("{:?}", f.display().to_string()),
                reason: "the key must not live in the data dir (whoever has the data would \
                         have the key)"
                    .into(),
            });
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Conflict {
                keys: "tls_cert/tls_key".into(),
                reason: "set both (HTTPS on both ports) or neither (plain HTTP)".into(),
            });
        }
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

    /// The engine's compression for new chunks.
    pub fn compression(&self) -> s3dedup_storage::chunk::Compression {
        use s3dedup_storage::chunk::Compression;
        match self.compression {
            CompressionSetting::Zstd => Compression::Zstd {
                level: i32::from(self.compression_level),
            },
            CompressionSetting::Off => Compression::Off,
        }
    }

    /// The encryption keys (`None` when encryption is off), read from the key file or
    /// the `encryption_key` setting.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file (or the setting) and the bad line, never
    /// a key.
    pub fn encryption_keys(
        &self,
    ) -> Result<Option<std::sync::Arc<s3dedup_storage::crypto::Keyring>>, ConfigError> {
        if self.encryption == EncryptionSetting::Off {
            return Ok(None);
        }
        let (text, origin) = match (&self.encryption_key_file, &self.encryption_key) {
            (Some(f), _) => {
                #[cfg(unix)]
                if let Ok(m) = std::fs::metadata(f) {
                    use std::os::unix::fs::PermissionsExt;
                    if m.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(
                            file = %f.display(),
                            "the encryption key file is readable by group or others; chmod 600 it"
                        );
                    }
                }
                let text = std::fs::read_to_string(f).map_err(|e| ConfigError::Invalid {
                    origin: "encryption_key_file".into(),
                    value: format!("{:?}", f.display().to_string()),
                    reason: e.to_string(),
                })?;
                (text, format!("encryption_key_file {}", f.display()))
            }
            (None, Some(k)) => (
                k.expose().replace(';', "\n"),
                "encryption_key (S3DEDUP_ENCRYPTION_KEY, --encryption-key)".to_owned(),
            ),
            (None, None) => return Ok(None),
        };
        s3dedup_storage::crypto::Keyring::parse(&text)
            .map(|k| Some(std::sync::Arc::new(k)))
            .map_err(|e| ConfigError::Invalid {
                origin,
                value: "(hidden)".into(),
                reason: e.to_string(),
            })
    }

    /// The certificate files, when TLS is on.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// Rate limits and the lockout.
    pub fn limit_settings(&self) -> crate::limits::LimitSettings {
        crate::limits::LimitSettings {
            key_requests: self.rate_limit_key_requests,
            key_bytes: self.rate_limit_key_bytes,
            ip_requests: self.rate_limit_ip_requests,
            ip_bytes: self.rate_limit_ip_bytes,
            burst: self.rate_limit_burst,
            auth_failure_limit: self.auth_failure_limit,
            auth_failure_window: self.auth_failure_window,
            auth_lockout: self.auth_lockout,
        }
    }

    /// What one connection may cost.
    pub fn conn_limits(&self) -> crate::conn::ConnLimits {
        crate::conn::ConnLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_idle_timeout: self.body_idle_timeout,
            body_min_rate: self.body_min_rate,
            max_header_size: usize::try_from(self.max_header_size).unwrap_or(1 << 20),
        }
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
        s.ca_bundle.clone_from(&self.store_ca_bundle);
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

mod layers;
mod parse;
#[cfg(test)]
mod tests;

pub use layers::{Layers, LoadError, env_name, keys, load_from, schema};
use parse::{
    parse_access_key, parse_endpoint, parse_fraction, parse_log_filter, parse_positive_duration,
    parse_region, parse_secret, parse_secret_key, parse_size_in, parse_store,
};
pub use parse::{parse_duration, parse_size};
