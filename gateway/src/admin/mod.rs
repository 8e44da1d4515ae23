//! The admin API (`/admin/v1/…` on the admin port, JSON) and the `s3dedup admin` CLI
//! that talks to it.
//!
//! Every `/admin/v1` request needs `Authorization: Bearer <token>` (see [`token`]);
//! without it, or with a wrong one, the answer is 401 and nothing is done. `/metrics`
//! and `/health/*` stay open (bind the admin port privately).
//!
//! | method, path | what |
//! |---|---|
//! | `GET /admin/v1/status` | GC state (run in progress, last run), garbage, in-flight work |
//! | `POST /admin/v1/gc?grace=0s&dry_run=true` | starts a GC run: 202 with the run; 409 while one runs |
//! | `GET /admin/v1/gc/runs/{id}` | one run (the current or the last) |
//! | `POST /admin/v1/scrub` | starts (or resumes) a scrub: 202 with the run; 409 while one runs |
//! | `GET /admin/v1/scrub/runs/{id}` | one scrub run (the current or the last) |
//! | `POST /admin/v1/rekey` | starts a rekey (everything not sealed under the active key is rewritten): 202 with the run; 409 while a GC or rekey runs |
//! | `GET /admin/v1/rekey/runs/{id}` | one rekey run |
//! | `GET /admin/v1/backup-index` | a consistent copy of the live index (a redb file), streamed |
//! | `POST /admin/v1/journal/flush` | ships every metadata change not yet in the store's journal: 200 with what was written |
//! | `POST /admin/v1/journal/snapshot` | ships, then writes a snapshot of the whole index to the store: 200 with it |
//! | `GET /admin/v1/mode`, `PUT /admin/v1/mode?mode=read-only\|read-write` | read-only mode (see [`crate::write_gate`]): `{"read_only", "forced_by_setting"}`; 409 when the setting forces it |
//! | `GET /admin/v1/usage` | logical, unique, stored, garbage, saved bytes, ratio, per bucket |
//!
//! Tenants, users and access keys: see [`identity`]; quotas: see `quota`.

pub mod backup;
pub mod cli;
pub mod client;
pub mod identity;
pub mod identity_cli;
pub mod journal;
mod quota;
pub mod quota_cli;
pub mod target;
pub mod token;
pub mod worker;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use s3dedup_storage::Store;
use s3dedup_storage::gc::GcOptions;

use crate::config::Secret;
use worker::Worker;

/// What the admin API needs.
#[derive(Debug, Clone)]
pub struct AdminApi {
    /// The store.
    pub store: Store,
    /// The bearer token.
    pub token: Secret,
    /// The background worker.
    pub worker: Arc<Worker>,
    /// The journal shipper.
    pub journal: Arc<journal::Journal>,
    /// Interval of scheduled GC runs (0 = none), for status.
    pub gc_interval: std::time::Duration,
    /// Interval of scheduled scrubs (0 = none), for status.
    pub scrub_interval: std::time::Duration,
    /// Interval of scheduled lifecycle runs (0 = none), for status.
    pub lifecycle_interval: std::time::Duration,
    /// The data dir (index backups are written there before they are streamed).
    pub data_dir: std::path::PathBuf,
    /// Rate limits: tenants' own rates are set here as well as in the index.
    pub rates: Arc<crate::limits::Limits>,
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_default();
    text.push('\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_default()
}

/// 409 naming the run in progress.
fn conflict(running: &worker::Run) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::CONFLICT,
        &json!({
            "error": "conflict",
            "message": format!(
                "{} run {} is in progress; wait for it (GET /admin/v1/{}/runs/{})",
                running.kind, running.id, running.kind, running.id
            ),
            "run": running,
        }),
    )
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, &json!({"error": code, "message": message.into()}))
}

/// Query parameter `name` of `query`, percent-decoded.
fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn flag(query: Option<&str>, name: &str) -> Result<bool, String> {
    match param(query, name).as_deref() {
        None => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(format!("{name}={v}: expected true or false")),
    }
}

impl AdminApi {
    /// Answers one `/admin/v1` request.
    pub async fn serve(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        authorization: Option<&str>,
    ) -> Response<backup::AdminBody> {
        let presented = authorization.and_then(|h| h.strip_prefix("Bearer "));
        let authorized = presented.is_some_and(|t| token::token_matches(&self.token, t.trim()));
        if authorized && path == "/admin/v1/backup-index" {
            if method == Method::GET {
                return backup::backup_index(&self.store, &self.data_dir).await;
            }
            return backup::boxed(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            ));
        }
        backup::boxed(self.serve_json(method, path, query, authorization).await)
    }

    async fn serve_json(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        authorization: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let presented = authorization.and_then(|h| h.strip_prefix("Bearer "));
        if !presented.is_some_and(|t| token::token_matches(&self.token, t.trim())) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin token is required: Authorization: Bearer <token> (the token is in \
                 <data_dir>/admin-token, or S3DEDUP_ADMIN_TOKEN)",
            );
            r.headers_mut().insert(
                "www-authenticate",
                http::HeaderValue::from_static("Bearer realm=\"s3dedup-admin\""),
            );
            return r;
        }
        let rest = path.trim_start_matches("/admin/v1");
        if let Some(r) = self.serve_identity(method, rest, query).await {
            return r;
        }
        if let Some(r) = self.serve_quota(method, rest, query).await {
            return r;
        }
        if let Some(r) = self.serve_rates(method, rest, query).await {
            return r;
        }
        let moves_data = matches!(rest, "/gc" | "/rekey" | "/lifecycle") && method == Method::POST;
        if moves_data && self.worker.read_only() {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "read_only",
                "the gateway is in read-only mode: GC, lifecycle and rekey runs wait until \
                 `s3dedup admin mode read-write`",
            );
        }
        match (method, rest) {
            (&Method::GET, "/status") => self.status().await,
            (&Method::GET, "/mode") => self.mode(None),
            (&Method::PUT, "/mode") => self.mode(Some(query)),
            (&Method::POST, "/gc") => self.start_gc(query),
            (&Method::POST, "/rekey") => match self.worker.start_rekey() {
                Ok(run) => json_response(StatusCode::ACCEPTED, &json!(run)),
                Err(running) => conflict(&running),
            },
            (&Method::POST, "/scrub") => match self.worker.start_scrub("admin") {
                Ok(run) => json_response(StatusCode::ACCEPTED, &json!(run)),
                Err(running) => conflict(&running),
            },
            (&Method::POST, "/lifecycle") => match self.worker.start_lifecycle("admin") {
                Ok(run) => json_response(StatusCode::ACCEPTED, &json!(run)),
                Err(running) => conflict(&running),
            },
            (&Method::GET, "/usage") => self.usage().await,
            (&Method::POST, "/journal/flush") => match self.journal.flush().await {
                Ok(r) => json_response(StatusCode::OK, &journal::ship_json(&r)),
                Err(e) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "journal_failed",
                    e.to_string(),
                ),
            },
            (&Method::POST, "/journal/snapshot") => match self.journal.snapshot().await {
                Ok(r) => json_response(StatusCode::OK, &journal::snapshot_json(&r)),
                Err(e) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "journal_failed",
                    e.to_string(),
                ),
            },
            (&Method::GET, r)
                if r.starts_with("/gc/runs/")
                    || r.starts_with("/scrub/runs/")
                    || r.starts_with("/rekey/runs/")
                    || r.starts_with("/lifecycle/runs/") =>
            {
                let (kind, id) = r[1..].split_once("/runs/").unwrap_or_default();
                match id.parse::<u64>() {
                    Ok(id) => match self.worker.run_by_id(kind, id) {
                        Some(run) => json_response(StatusCode::OK, &json!(run)),
                        None => error(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            format!("no {kind} run {id} (only the current and the last are kept)"),
                        ),
                    },
                    Err(_) => error(StatusCode::BAD_REQUEST, "bad_request", "bad run id"),
                }
            }
            (
                _,
                "/status" | "/gc" | "/scrub" | "/rekey" | "/lifecycle" | "/usage" | "/mode"
                | "/journal/flush" | "/journal/snapshot",
            ) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no admin endpoint {path}"),
            ),
        }
    }

    fn start_gc(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let mut opts: GcOptions = self.worker.defaults();
        if let Some(g) = param(query, "grace") {
            match crate::config::parse_duration(&g) {
                Ok(d) => opts.grace = d,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("grace={g}: {e}"),
                    );
                }
            }
        }
        match flag(query, "dry_run") {
            Ok(d) => opts.dry_run = d,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
        }
        match self.worker.start(opts, "admin") {
            Ok(run) => json_response(StatusCode::ACCEPTED, &json!(run)),
            Err(running) => conflict(&running),
        }
    }

    async fn status(&self) -> Response<Full<Bytes>> {
        let (current, last) = self.worker.status();
        let (scrub_current, scrub_last) = self.worker.scrub_status();
        let (cursor, finished) = match self.store.scrub_state() {
            Ok(s) => s,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        };
        let stats = match self.store.stats().await {
            Ok(s) => s,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        };
        let (pinned, reads) = self.store.inflight_counts();
        let backlog = match self.store.gc_backlog() {
            Ok(b) => b,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        };
        let d = self.worker.defaults();
        let (lc_current, lc_last) = self.worker.lifecycle_status();
        let enc = self.store.encryption();
        json_response(
            StatusCode::OK,
            &json!({
                "gc": {
                    "running": current,
                    "last": last,
                    "interval_seconds": self.gc_interval.as_secs(),
                    "grace_seconds": d.grace.as_secs(),
                    "multipart_expiry_seconds": d.multipart_expiry.as_secs(),
                },
                "scrub": {
                    "running": scrub_current,
                    "last": scrub_last,
                    "interval_seconds": self.scrub_interval.as_secs(),
                    "rate_bytes_per_second": self.worker.scrub_options().rate,
                    "interrupted": cursor.map(|c| json!({
                        "started_ms": c.started_ms,
                        "packs_done": c.totals.packs,
                        "damaged_chunks": c.totals.damaged,
                    })),
                    "last_finished": finished.map(|l| json!({
                        "started_ms": l.started_ms,
                        "finished_ms": l.finished_ms,
                        "packs": l.totals.packs,
                        "chunks_checked": l.totals.chunks,
                        "bytes_read": l.totals.bytes,
                        "damaged_chunks": l.totals.damaged,
                    })),
                },
                "lifecycle": {
                    "running": lc_current,
                    "last": lc_last,
                    "interval_seconds": self.lifecycle_interval.as_secs(),
                },
                "journal": self.journal.status_json(),
                "encryption": {
                    "active_key": enc.active_key,
                    "keys": enc.keys,
                    "id_scheme": enc.id_scheme,
                },
                "stored_bytes": stats.stored_bytes,
                "live_stored_bytes": stats.live_stored_bytes,
                "garbage_bytes": stats.garbage_bytes(),
                "backlog": {
                    "zero_ref_chunks": backlog.zero_ref_chunks,
                    "empty_packs": backlog.empty_packs,
                    "deleting_packs": backlog.deleting_packs,
                    "orphan_packs": backlog.orphan_packs,
                },
                "packs": backlog.packs,
                "inflight": {"pinned_chunks": pinned, "reads": reads},
            }),
        )
    }

    /// `GET /mode`, or `PUT /mode?mode=read-only|read-write`.
    fn mode(&self, set: Option<Option<&str>>) -> Response<Full<Bytes>> {
        let Some(gate) = self.worker.write_gate() else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no write gate on this server",
            );
        };
        let Some(query) = set else {
            return json_response(StatusCode::OK, &json!(gate.mode()));
        };
        let on = match param(query, "mode").as_deref() {
            Some("read-only") => true,
            Some("read-write") => false,
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "mode={}: expected read-only or read-write",
                        other.unwrap_or("")
                    ),
                );
            }
        };
        match gate.set_read_only(on) {
            Ok(m) => json_response(StatusCode::OK, &json!(m)),
            Err(e) => error(StatusCode::CONFLICT, "conflict", e),
        }
    }

    async fn usage(&self) -> Response<Full<Bytes>> {
        match crate::stats::collect(&self.store).await {
            Ok(r) => json_response(StatusCode::OK, &json!(r)),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}
