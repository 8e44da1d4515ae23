//! The background worker: GC every `gc_interval`, scrub every `scrub_interval` (an
//! interrupted scrub resumes at once), the buckets' lifecycle rules every
//! `lifecycle_interval`, and runs of each on demand from the admin API. One run of each
//! kind at a time; the run in progress and the last one are kept for `admin status`
//! and counted in the metrics.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use s3dedup_storage::Store;
use s3dedup_storage::gc::{GcOptions, GcPhase, GcReport};
use s3dedup_storage::lifecycle::Clock;
use s3dedup_storage::scrub::{ScrubOptions, ScrubReport};
use s3dedup_storage::store::LifecycleReport;

use crate::clock::now_ms;
use crate::metrics as m;

/// A GC or scrub run as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    /// Run number of its kind since the server started (1, 2 …).
    pub id: u64,
    /// `gc` or `scrub`.
    pub kind: &'static str,
    /// What started it: `schedule` or `admin`.
    pub trigger: &'static str,
    /// A dry run changes nothing (GC only).
    pub dry_run: bool,
    /// The grace period a GC run used, in seconds.
    pub grace_seconds: Option<u64>,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    /// End; `None` while running.
    pub finished_ms: Option<u64>,
    /// `running`, `ok` or `error`.
    pub result: &'static str,
    /// The phase it is in (or ended in).
    pub phase: &'static str,
    /// The error of a failed run.
    pub error: Option<String>,
    /// What it did so far (GC: [`gc_json`]; scrub: [`scrub_json`]).
    pub report: Value,
}

/// A lifecycle report as JSON.
pub fn lifecycle_json(r: &LifecycleReport) -> Value {
    json!({
        "buckets": r.buckets,
        "keys_due": r.keys_due,
        "current_expired": r.current_expired,
        "markers_added": r.markers_added,
        "versions_removed": r.versions_removed,
        "markers_removed": r.markers_removed,
        "bytes_released": r.bytes_released,
        "locked_kept": r.locked,
        "uploads_aborted": r.uploads_aborted,
    })
}

/// A GC report as JSON (byte counts in bytes).
pub fn gc_json(r: &GcReport) -> Value {
    json!({
        "uploads_expired": r.uploads_expired,
        "chunks_removed": r.chunks_removed,
        "chunk_bytes": r.chunk_bytes,
        "chunks_pinned": r.chunks_pinned,
        "packs_deleted": r.packs_deleted,
        "pack_bytes": r.pack_bytes,
        "packs_waiting": r.packs_waiting,
        "orphans_deleted": r.orphans_deleted,
        "orphan_bytes": r.orphan_bytes,
        "unknown_deleted": r.unknown_deleted,
        "unknown_bytes": r.unknown_bytes,
        "unknown_kept": r.unknown_kept,
        "backend_deletes": r.backend_deletes,
        "packs_compacted": r.packs_compacted,
        "compaction_new_packs": r.compaction_new_packs,
        "compaction_rewritten_bytes": r.compaction_rewritten_bytes,
        "damaged_chunks": r.damaged_chunks,
        "damaged_packs": r.damaged_packs,
        "reclaimed_bytes": r.reclaimed_bytes(),
    })
}

/// A rekey report as JSON.
pub fn rekey_json(r: &s3dedup_storage::rekey::RekeyReport) -> Value {
    json!({
        "active_key": r.active_key,
        "packs_checked": r.packs_checked,
        "packs_stale": r.packs_stale,
        "chunks_reencoded": r.chunks_reencoded,
        "new_packs": r.new_packs,
        "inline_reencoded": r.inline_reencoded,
        "packs_deleted": r.packs_deleted,
        "damaged_chunks": r.damaged_chunks,
        "stale_packs_left": r.stale_packs_left,
        "stale_inline_left": r.stale_inline_left,
        "journal_pruned": r.journal_pruned,
    })
}

/// Scrub progress or a scrub report as JSON.
pub fn scrub_json(done: u64, total: u64, t: &s3dedup_storage::ScrubTotals) -> Value {
    json!({
        "packs_done": done,
        "packs_total": total,
        "chunks_checked": t.chunks,
        "bytes_read": t.bytes,
        "damaged_chunks": t.damaged,
    })
}

fn scrub_report_json(r: &ScrubReport) -> Value {
    let mut v = scrub_json(r.totals.packs, r.totals.packs, &r.totals);
    v["resumed"] = json!(r.resumed);
    v["missing_packs"] = json!(r.missing_packs);
    v["damaged"] = json!(r.damaged);
    v
}

#[derive(Debug, Default)]
struct Slot {
    runs: u64,
    current: Option<Run>,
    last: Option<Run>,
}

/// The worker (shared by the schedulers and the admin API).
#[derive(Debug)]
pub struct Worker {
    store: Store,
    defaults: GcOptions,
    scrub: ScrubOptions,
    gc_slot: Mutex<Slot>,
    scrub_slot: Mutex<Slot>,
    lifecycle_slot: Mutex<Slot>,
    /// The length of a lifecycle day.
    lifecycle_day: Duration,
    /// Read-only mode: scheduled GC and lifecycle runs are skipped while it is on.
    gate: std::sync::OnceLock<Arc<crate::write_gate::WriteGate>>,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Run {
    /// A run that has just started (not a dry run, no grace period).
    fn started(
        id: u64,
        kind: &'static str,
        trigger: &'static str,
        phase: &'static str,
        report: Value,
    ) -> Self {
        Run {
            id,
            kind,
            trigger,
            dry_run: false,
            grace_seconds: None,
            started_ms: now_ms(),
            finished_ms: None,
            result: "running",
            phase,
            error: None,
            report,
        }
    }
}

/// Claims `slot` for a new run; `Err` with the run in progress.
fn claim(slot: &Mutex<Slot>, make: impl FnOnce(u64) -> Run) -> Result<Run, Box<Run>> {
    let mut st = lock(slot);
    if let Some(cur) = &st.current {
        return Err(Box::new(cur.clone()));
    }
    st.runs += 1;
    let run = make(st.runs);
    st.current = Some(run.clone());
    Ok(run)
}

/// Ends the run in `slot` with `outcome` (its final report, or the error).
fn finish(slot: &Mutex<Slot>, kind: &'static str, outcome: Result<Value, String>) -> Option<Run> {
    let mut st = lock(slot);
    let mut run = st.current.take()?;
    run.finished_ms = Some(now_ms());
    match outcome {
        Ok(report) => {
            run.result = "ok";
            run.phase = "done";
            run.report = report;
        }
        Err(e) => {
            run.result = "error";
            run.error = Some(e);
        }
    }
    let metric = match kind {
        "gc" => m::GC_RUNS,
        "rekey" => m::REKEY_RUNS,
        "lifecycle" => m::LIFECYCLE_RUNS,
        _ => m::SCRUB_RUNS,
    };
    metrics::counter!(metric, "result" => run.result).increment(1);
    st.last = Some(run.clone());
    Some(run)
}

impl Worker {
    /// A worker over `store`; `defaults` carries the configured GC options.
    /// `lifecycle_day` is the length of a day for lifecycle rules.
    pub fn new(
        store: Store,
        defaults: GcOptions,
        scrub: ScrubOptions,
        lifecycle_day: Duration,
    ) -> Arc<Self> {
        Arc::new(Worker {
            store,
            defaults,
            scrub,
            gc_slot: Mutex::default(),
            scrub_slot: Mutex::default(),
            lifecycle_slot: Mutex::default(),
            lifecycle_day,
            gate: std::sync::OnceLock::new(),
        })
    }

    /// Sets the write gate (once) whose read-only mode pauses runs that move data.
    pub fn set_write_gate(&self, gate: Arc<crate::write_gate::WriteGate>) {
        let _ = self.gate.set(gate);
    }

    /// The write gate, when one is set.
    pub fn write_gate(&self) -> Option<&Arc<crate::write_gate::WriteGate>> {
        self.gate.get()
    }

    /// In read-only mode (nothing may move stored bytes or records).
    pub fn read_only(&self) -> bool {
        self.gate.get().is_some_and(|g| g.read_only())
    }

    /// The configured GC options.
    pub fn defaults(&self) -> GcOptions {
        self.defaults
    }

    /// The configured scrub options.
    pub fn scrub_options(&self) -> ScrubOptions {
        self.scrub
    }

    /// Starts a GC run in the background; `Err` with the running one if a GC run is in
    /// progress (one at a time).
    ///
    /// # Errors
    /// The run in progress.
    pub fn start(
        self: &Arc<Self>,
        opts: GcOptions,
        trigger: &'static str,
    ) -> Result<Run, Box<Run>> {
        let run = claim(&self.gc_slot, |id| Run {
            dry_run: opts.dry_run,
            grace_seconds: Some(opts.grace.as_secs()),
            ..Run::started(
                id,
                "gc",
                trigger,
                GcPhase::Uploads.name(),
                gc_json(&GcReport::default()),
            )
        })?;
        metrics::gauge!(m::GC_RUNNING).set(1.0);
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run_gc(opts).await });
        Ok(run)
    }

    async fn run_gc(self: Arc<Self>, opts: GcOptions) {
        let progress = |phase: GcPhase, r: &GcReport| {
            if let Some(cur) = &mut lock(&self.gc_slot).current {
                cur.phase = phase.name();
                cur.report = gc_json(r);
            }
        };
        let outcome = self.store.gc(opts, &progress).await;
        if let Ok(r) = &outcome
            && !r.dry_run
        {
            metrics::counter!(m::GC_RECLAIMED).increment(r.reclaimed_bytes());
            metrics::counter!(m::GC_DELETED_PACKS)
                .increment(r.packs_deleted + r.orphans_deleted + r.unknown_deleted);
            metrics::counter!(m::GC_REMOVED_CHUNKS).increment(r.chunks_removed);
            metrics::counter!(m::GC_BACKEND_DELETES).increment(r.backend_deletes);
            metrics::counter!(m::COMPACTION_REWRITTEN).increment(r.compaction_rewritten_bytes);
            metrics::counter!(m::COMPACTED_PACKS).increment(r.packs_compacted);
            metrics::counter!(m::GC_DAMAGED_CHUNKS).increment(r.damaged_chunks);
        }
        let run = finish(
            &self.gc_slot,
            "gc",
            outcome.as_ref().map(gc_json).map_err(ToString::to_string),
        );
        metrics::gauge!(m::GC_RUNNING).set(0.0);
        match (outcome, run) {
            (Ok(r), Some(run)) => tracing::info!(
                run = run.id,
                dry_run = r.dry_run,
                chunks_removed = r.chunks_removed,
                packs_deleted = r.packs_deleted,
                orphans_deleted = r.orphans_deleted,
                unknown_deleted = r.unknown_deleted,
                uploads_expired = r.uploads_expired,
                packs_compacted = r.packs_compacted,
                damaged_chunks = r.damaged_chunks,
                reclaimed_bytes = r.reclaimed_bytes(),
                "gc run finished"
            ),
            (Err(e), run) => tracing::error!(
                run = run.map(|r| r.id),
                error = %e,
                "gc run failed; the next run resumes"
            ),
            (Ok(_), None) => {}
        }
    }

    /// Starts a rekey (`Store::rekey`) in the background. It takes GC's slot: both move
    /// chunks between packs, so they never run at once. `Err` with the running one.
    ///
    /// # Errors
    /// The GC or rekey run in progress.
    pub fn start_rekey(self: &Arc<Self>) -> Result<Run, Box<Run>> {
        let run = claim(&self.gc_slot, |id| {
            Run::started(
                id,
                "rekey",
                "admin",
                "packs",
                rekey_json(&Default::default()),
            )
        })?;
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let progress = |r: &s3dedup_storage::rekey::RekeyReport| {
                if let Some(cur) = &mut lock(&me.gc_slot).current {
                    cur.report = rekey_json(r);
                }
            };
            let outcome = me.store.rekey(&progress).await;
            match &outcome {
                Ok(r) => tracing::info!(
                    active_key = ?r.active_key,
                    packs_rewritten = r.packs_stale,
                    chunks_reencoded = r.chunks_reencoded,
                    inline_reencoded = r.inline_reencoded,
                    stale_packs_left = r.stale_packs_left,
                    "rekey finished"
                ),
                Err(e) => tracing::error!(error = %e, "rekey failed; running it again continues"),
            }
            finish(
                &me.gc_slot,
                "rekey",
                outcome
                    .as_ref()
                    .map(rekey_json)
                    .map_err(ToString::to_string),
            );
        });
        Ok(run)
    }

    /// Starts (or resumes) a scrub in the background; `Err` with the running one.
    ///
    /// # Errors
    /// The run in progress.
    pub fn start_scrub(self: &Arc<Self>, trigger: &'static str) -> Result<Run, Box<Run>> {
        let run = claim(&self.scrub_slot, |id| {
            Run::started(
                id,
                "scrub",
                trigger,
                "packs",
                scrub_json(0, 0, &Default::default()),
            )
        })?;
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run_scrub().await });
        Ok(run)
    }

    async fn run_scrub(self: Arc<Self>) {
        let progress = |done: u64, total: u64, t: &s3dedup_storage::ScrubTotals| {
            if let Some(cur) = &mut lock(&self.scrub_slot).current {
                cur.report = scrub_json(done, total, t);
            }
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(m::SCRUB_PROGRESS).set(done as f64 / total.max(1) as f64);
        };
        let outcome = self.store.scrub(self.scrub, &progress).await;
        if let Ok(r) = &outcome {
            metrics::counter!(m::SCRUB_CHUNKS).increment(r.totals.chunks);
            metrics::counter!(m::SCRUB_DAMAGED).increment(r.totals.damaged);
            metrics::gauge!(m::SCRUB_PROGRESS).set(1.0);
            tracing::info!(
                packs = r.totals.packs,
                chunks = r.totals.chunks,
                damaged = r.totals.damaged,
                missing_packs = r.missing_packs,
                resumed = r.resumed,
                "scrub finished"
            );
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "scrub failed; the next run resumes where it stopped");
        }
        finish(
            &self.scrub_slot,
            "scrub",
            outcome
                .as_ref()
                .map(scrub_report_json)
                .map_err(ToString::to_string),
        );
    }

    /// GC runs: the one in progress and the last finished one.
    pub fn status(&self) -> (Option<Run>, Option<Run>) {
        let st = lock(&self.gc_slot);
        (st.current.clone(), st.last.clone())
    }

    /// Scrub runs: the one in progress and the last finished one.
    pub fn scrub_status(&self) -> (Option<Run>, Option<Run>) {
        let st = lock(&self.scrub_slot);
        (st.current.clone(), st.last.clone())
    }

    /// Lifecycle runs: the one in progress and the last finished one.
    pub fn lifecycle_status(&self) -> (Option<Run>, Option<Run>) {
        let st = lock(&self.lifecycle_slot);
        (st.current.clone(), st.last.clone())
    }

    /// Starts a run of every bucket's lifecycle rules in the background; `Err` with
    /// the running one.
    ///
    /// # Errors
    /// The run in progress.
    pub fn start_lifecycle(self: &Arc<Self>, trigger: &'static str) -> Result<Run, Box<Run>> {
        let run = claim(&self.lifecycle_slot, |id| {
            Run::started(
                id,
                "lifecycle",
                trigger,
                "buckets",
                lifecycle_json(&LifecycleReport::default()),
            )
        })?;
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let clock = Clock {
                now_ms: now_ms(),
                day_ms: u64::try_from(me.lifecycle_day.as_millis()).unwrap_or(u64::MAX),
            };
            let progress = |r: &LifecycleReport| {
                if let Some(cur) = &mut lock(&me.lifecycle_slot).current {
                    cur.report = lifecycle_json(r);
                }
            };
            let outcome = me.store.lifecycle(clock, &progress).await;
            match &outcome {
                Ok(r) => {
                    metrics::counter!(m::LIFECYCLE_EXPIRED, "action" => "current")
                        .increment(r.current_expired);
                    metrics::counter!(m::LIFECYCLE_EXPIRED, "action" => "noncurrent")
                        .increment(r.versions_removed);
                    metrics::counter!(m::LIFECYCLE_EXPIRED, "action" => "delete_marker")
                        .increment(r.markers_removed);
                    metrics::counter!(m::LIFECYCLE_EXPIRED, "action" => "upload")
                        .increment(r.uploads_aborted);
                    metrics::counter!(m::LIFECYCLE_LOCKED).increment(r.locked);
                    tracing::info!(
                        buckets = r.buckets,
                        current_expired = r.current_expired,
                        versions_removed = r.versions_removed,
                        markers_removed = r.markers_removed,
                        uploads_aborted = r.uploads_aborted,
                        locked_kept = r.locked,
                        bytes_released = r.bytes_released,
                        "lifecycle run finished"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "lifecycle run failed; the next run continues")
                }
            }
            finish(
                &me.lifecycle_slot,
                "lifecycle",
                outcome
                    .as_ref()
                    .map(lifecycle_json)
                    .map_err(ToString::to_string),
            );
        });
        Ok(run)
    }

    /// Applies the lifecycle rules every `every` (0 = only on demand).
    pub async fn schedule_lifecycle(self: Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            if self.read_only() {
                tracing::info!("read-only mode: the scheduled lifecycle run is skipped");
                continue;
            }
            let _ = self.start_lifecycle("schedule");
        }
    }

    /// The run of `kind` with this id, if it is the current or the last one.
    pub fn run_by_id(&self, kind: &str, id: u64) -> Option<Run> {
        let (cur, last) = match kind {
            "scrub" => self.scrub_status(),
            "lifecycle" => self.lifecycle_status(),
            _ => self.status(),
        };
        cur.into_iter()
            .chain(last)
            .find(|r| r.id == id && r.kind == kind)
    }

    /// Runs GC every `every` (a run still in progress is not doubled).
    pub async fn schedule(self: Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            if self.read_only() {
                tracing::info!("read-only mode: the scheduled GC run is skipped");
                continue;
            }
            let _ = self.start(self.defaults, "schedule");
        }
    }

    /// Scrubs every `every` after the last finished scrub (the first one `every` after
    /// the first start); resumes an interrupted scrub soon after a start.
    pub async fn schedule_scrub(self: Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let first_seen = now_ms();
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let due = match self.store.scrub_state() {
                Ok((Some(_), _)) => true,
                Ok((None, Some(last))) => {
                    now_ms().saturating_sub(last.finished_ms) >= every.as_millis() as u64
                }
                Ok((None, None)) => now_ms().saturating_sub(first_seen) >= every.as_millis() as u64,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the scrub state");
                    false
                }
            };
            if due {
                let _ = self.start_scrub("schedule");
            }
        }
    }
}
