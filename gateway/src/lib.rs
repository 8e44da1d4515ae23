//! s3dedup S3 gateway: the s3s `S3` implementation over the storage engine, the HTTP
//! servers, configuration and the `s3dedup` command.
//!
//! # Layout
//! - [`config`] — settings: one typed struct; TOML file < `S3DEDUP_*` environment < flags.
//! - [`credentials`] — root credentials: from settings, or kept in the data directory.
//! - [`admin`] — the admin API (`/admin/v1`), its token, the GC worker, `s3dedup admin`.
//! - [`stats`] — `s3dedup stats`: stored vs logical bytes, overall and per bucket.
//! - [`access`] — tenant keys for s3s, the access check, what a request resolved to.
//! - [`authz`] — the one authorization function (principal, operation, bucket → decision).
//! - [`server`] — `run(listeners, shutdown)`: the S3 and admin servers.
//! - [`edge`] — checks on a request's line and headers before s3s sees it.
//! - [`conn`] — connection hygiene: idle, silent and slow-body limits; TLS streams.
//! - [`tls`] — rustls on both ports, certificate reload on SIGHUP.
//! - [`audit`] — the tamper-evident audit log and `s3dedup audit verify`.
//! - [`limits`] — rate limits (per key, per IP) and the failed-authentication lockout.
//! - [`write_gate`] — read-only mode and the capacity guard (`min_free_space`).
//! - [`s3`] — the S3 operations over `s3dedup_storage::Store`.
//! - [`checksum`] — `x-amz-checksum-*` computation and multipart combination.
//! - [`cors`] — CORS rules, preflights and `Access-Control-*` headers.
//! - `clock` — the wall clock in ms since the epoch.
//! - [`error`] — the one mapping of internal errors to S3 errors.
//! - [`metrics`] — metric names and rendering.
//! - [`bucket_name`] — S3's bucket naming rules.
//! - [`body`] — response bodies.
//! - [`scan`] — inline virus scanning policy, verdict cache.
//! - [`request_log`] — the one log line and count per request, when its body has been sent.
//! - [`rescan`] — `s3dedup rescan`: re-scan stored objects, report or quarantine.

pub mod access;
pub mod acl;
pub mod admin;
pub mod audit;
pub mod authz;
pub mod body;
pub mod bucket_name;
pub mod checksum;
mod clock;
pub mod config;
pub mod conn;
pub mod cors;
pub mod credentials;
pub mod edge;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod rebuild;
pub mod request_log;
pub mod rescan;
pub mod s3;
pub mod scan;
pub mod server;
pub mod stats;
pub mod tls;
pub mod write_gate;
