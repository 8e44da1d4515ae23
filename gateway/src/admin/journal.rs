//! The journal shipper in `serve`: the outbox goes to the store every
//! `journal_interval`, a snapshot every `journal_snapshot_interval`, and both on demand
//! (`POST /admin/v1/journal/flush`, `POST /admin/v1/journal/snapshot`). A failed
//! shipment is retried at the next tick; nothing is lost meanwhile (the outbox keeps
//! it) and GC collects nothing the store's journal does not reflect yet.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use s3dedup_storage::Store;
use s3dedup_storage::journal::{ShipReport, SnapshotReport};

use crate::clock::now_ms;
use crate::metrics as m;

/// The shipper (shared by its schedule and the admin API).
#[derive(Debug)]
pub struct Journal {
    store: Store,
    /// Time between shipments.
    pub interval: Duration,
    /// Time between snapshots (0 = on demand only).
    pub snapshot_interval: Duration,
    last_error: Mutex<Option<String>>,
}

impl Journal {
    /// A shipper for `store`.
    pub fn new(store: Store, interval: Duration, snapshot_interval: Duration) -> Self {
        Journal {
            store,
            interval,
            snapshot_interval,
            last_error: Mutex::new(None),
        }
    }

    fn note(&self, outcome: Result<(), String>) {
        let mut e = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *e = outcome.err();
    }

    /// Ships the outbox now.
    ///
    /// # Errors
    /// What [`Store::ship_journal`] returns.
    pub async fn flush(&self) -> s3dedup_storage::Result<ShipReport> {
        let r = self.store.ship_journal().await;
        match &r {
            Ok(rep) => {
                metrics::counter!(m::JOURNAL_SHIPPED).increment(rep.entries);
                self.note(Ok(()));
            }
            Err(e) => {
                metrics::counter!(m::JOURNAL_ERRORS, "step" => "ship").increment(1);
                tracing::warn!(error = %e, "journal shipment failed; retried at the next tick");
                self.note(Err(e.to_string()));
            }
        }
        r
    }

    /// Ships the outbox and writes a snapshot now.
    ///
    /// # Errors
    /// What [`Store::snapshot_journal`] returns.
    pub async fn snapshot(&self) -> s3dedup_storage::Result<SnapshotReport> {
        let r = self.store.snapshot_journal().await;
        match &r {
            Ok(rep) => {
                if rep.seq.is_some() {
                    metrics::counter!(m::JOURNAL_SNAPSHOTS).increment(1);
                    tracing::info!(seq = ?rep.seq, entries = rep.entries, bytes = rep.bytes,
                        pruned = rep.pruned, "journal snapshot written");
                }
                self.note(Ok(()));
            }
            Err(e) => {
                metrics::counter!(m::JOURNAL_ERRORS, "step" => "snapshot").increment(1);
                tracing::warn!(error = %e, "journal snapshot failed; retried later");
                self.note(Err(e.to_string()));
            }
        }
        r
    }

    /// Ships every `interval`, snapshots every `snapshot_interval`.
    pub async fn schedule(self: std::sync::Arc<Self>) {
        let mut last_snapshot = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.interval).await;
            let due = !self.snapshot_interval.is_zero()
                && last_snapshot.elapsed() >= self.snapshot_interval;
            if due {
                if self.snapshot().await.is_ok() {
                    last_snapshot = std::time::Instant::now();
                }
            } else {
                let _ = self.flush().await;
            }
        }
    }

    /// The journal block of `GET /admin/v1/status`.
    pub fn status_json(&self) -> Value {
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match self.store.journal_status() {
            Ok(s) => json!({
                "interval_seconds": self.interval.as_secs(),
                "snapshot_interval_seconds": self.snapshot_interval.as_secs(),
                "next_seq": s.next_seq,
                "pending_entries": s.pending_entries,
                "pending_bytes": s.pending_bytes,
                "lag_seconds": s.oldest_pending_ms.map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0),
                "snapshot_seq": s.snapshot_seq,
                "snapshot_age_seconds": s.snapshot_ms.map(|t| now_ms().saturating_sub(t) / 1000),
                "last_error": last_error,
            }),
            Err(e) => json!({"error": e.to_string()}),
        }
    }
}

/// A shipment as JSON.
pub fn ship_json(r: &ShipReport) -> Value {
    json!({"segments": r.segments, "entries": r.entries, "bytes": r.bytes})
}

/// A snapshot as JSON.
pub fn snapshot_json(r: &SnapshotReport) -> Value {
    json!({
        "seq": r.seq,
        "entries": r.entries,
        "parts": r.parts,
        "bytes": r.bytes,
        "pruned": r.pruned,
    })
}
