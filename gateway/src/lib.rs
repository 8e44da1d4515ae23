//! s3dedup S3 gateway: the s3s `S3` implementation over the storage engine, the HTTP
//! servers, configuration and the `s3dedup` command.
//!
//! # Layout
//! - [`config`] — settings: TOML file, `S3DEDUP_*` environment, flags; root credentials.
//! - [`server`] — `run(listeners, shutdown)`: the S3 and admin servers.
//! - [`edge`] — checks on a request's line and headers before s3s sees it.
//! - [`s3`] — the S3 operations over `s3dedup_storage::Store`.
//! - [`checksum`] — `x-amz-checksum-*` computation.
//! - [`error`] — the one mapping of internal errors to S3 errors.
//! - [`metrics`] — metric names and rendering.
//! - [`body`] — response bodies.
//! - [`scan`] — inline virus scanning policy, verdict cache.
//! - [`rescan`] — `s3dedup rescan`: re-scan stored objects, report or quarantine.

pub mod body;
pub mod checksum;
pub mod config;
pub mod edge;
pub mod error;
pub mod metrics;
pub mod rescan;
pub mod s3;
pub mod scan;
pub mod server;
