//! The background worker: GC every `gc_interval`, and runs on demand from the admin
//! API. One run at a time; its progress and the last run's outcome are kept for
//! `admin status` and counted in the metrics.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use s3dedup_storage::Store;
use s3dedup_storage::gc::{GcOptions, GcPhase, GcReport};

use crate::metrics as m;

/// A GC run as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GcRun {
    /// Run number since the server started (1, 2 …).
    pub id: u64,
    /// What started it: `schedule` or `admin`.
    pub trigger: &'static str,
    /// A dry run changes nothing.
    pub dry_run: bool,
    /// The grace period it used, in seconds.
    pub grace_seconds: u64,
    /// Start and end, ms since the epoch.
    pub started_ms: u64,
    /// `None` while running.
    pub finished_ms: Option<u64>,
    /// `running`, `ok` or `error`.
    pub result: &'static str,
    /// The phase it is in (or ended in).
    pub phase: &'static str,
    /// The error of a failed run.
    pub error: Option<String>,
    /// What it did so far.
    pub report: RunReport,
}

/// [`GcReport`] as JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RunReport {
    pub uploads_expired: u64,
    pub chunks_removed: u64,
    pub chunk_bytes: u64,
    pub chunks_pinned: u64,
    pub packs_deleted: u64,
    pub pack_bytes: u64,
    pub packs_waiting: u64,
    pub orphans_deleted: u64,
    pub orphan_bytes: u64,
    pub unknown_deleted: u64,
    pub unknown_bytes: u64,
    pub unknown_kept: u64,
    pub backend_deletes: u64,
    pub packs_compacted: u64,
    pub compaction_new_packs: u64,
    pub compaction_rewritten_bytes: u64,
    pub damaged_chunks: u64,
    pub damaged_packs: u64,
    pub reclaimed_bytes: u64,
}

impl From<&GcReport> for RunReport {
    fn from(r: &GcReport) -> Self {
        RunReport {
            uploads_expired: r.uploads_expired,
            chunks_removed: r.chunks_removed,
            chunk_bytes: r.chunk_bytes,
            chunks_pinned: r.chunks_pinned,
            packs_deleted: r.packs_deleted,
            pack_bytes: r.pack_bytes,
            packs_waiting: r.packs_waiting,
            orphans_deleted: r.orphans_deleted,
            orphan_bytes: r.orphan_bytes,
            unknown_deleted: r.unknown_deleted,
            unknown_bytes: r.unknown_bytes,
            unknown_kept: r.unknown_kept,
            backend_deletes: r.backend_deletes,
            packs_compacted: r.packs_compacted,
            compaction_new_packs: r.compaction_new_packs,
            compaction_rewritten_bytes: r.compaction_rewritten_bytes,
            damaged_chunks: r.damaged_chunks,
            damaged_packs: r.damaged_packs,
            reclaimed_bytes: r.reclaimed_bytes(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    runs: u64,
    current: Option<GcRun>,
    last: Option<GcRun>,
}

/// The worker (shared by the scheduler and the admin API).
#[derive(Debug)]
pub struct Worker {
    store: Store,
    defaults: GcOptions,
    state: Mutex<State>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Worker {
    /// A worker over `store`; `defaults` carries the configured grace and expiry.
    pub fn new(store: Store, defaults: GcOptions) -> Arc<Self> {
        Arc::new(Worker {
            store,
            defaults,
            state: Mutex::default(),
        })
    }

    /// The configured options.
    pub fn defaults(&self) -> GcOptions {
        self.defaults
    }

    /// Starts a run in the background; `Err` with the running one if a run is in
    /// progress (one at a time).
    ///
    /// # Errors
    /// The run in progress.
    pub fn start(self: &Arc<Self>, opts: GcOptions, trigger: &'static str) -> Result<GcRun, GcRun> {
        let run = {
            let mut st = lock(&self.state);
            if let Some(cur) = &st.current {
                return Err(cur.clone());
            }
            st.runs += 1;
            let run = GcRun {
                id: st.runs,
                trigger,
                dry_run: opts.dry_run,
                grace_seconds: opts.grace.as_secs(),
                started_ms: now_ms(),
                finished_ms: None,
                result: "running",
                phase: GcPhase::Uploads.name(),
                error: None,
                report: RunReport::default(),
            };
            st.current = Some(run.clone());
            run
        };
        metrics::gauge!(m::GC_RUNNING).set(1.0);
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run(opts).await });
        Ok(run)
    }

    async fn run(self: Arc<Self>, opts: GcOptions) {
        let progress = |phase: GcPhase, r: &GcReport| {
            if let Some(cur) = &mut lock(&self.state).current {
                cur.phase = phase.name();
                cur.report = RunReport::from(r);
            }
        };
        let outcome = self.store.gc(opts, &progress).await;
        let mut st = lock(&self.state);
        let Some(mut run) = st.current.take() else {
            return;
        };
        run.finished_ms = Some(now_ms());
        match outcome {
            Ok(r) => {
                run.result = "ok";
                run.phase = GcPhase::Done.name();
                run.report = RunReport::from(&r);
                metrics::counter!(m::GC_RUNS, "result" => "ok").increment(1);
                if !r.dry_run {
                    metrics::counter!(m::GC_RECLAIMED).increment(r.reclaimed_bytes());
                    metrics::counter!(m::GC_DELETED_PACKS)
                        .increment(r.packs_deleted + r.orphans_deleted + r.unknown_deleted);
                    metrics::counter!(m::GC_REMOVED_CHUNKS).increment(r.chunks_removed);
                    metrics::counter!(m::GC_BACKEND_DELETES).increment(r.backend_deletes);
                    metrics::counter!(m::COMPACTION_REWRITTEN)
                        .increment(r.compaction_rewritten_bytes);
                    metrics::counter!(m::COMPACTED_PACKS).increment(r.packs_compacted);
                    metrics::counter!(m::GC_DAMAGED_CHUNKS).increment(r.damaged_chunks);
                }
                tracing::info!(
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
                );
            }
            Err(e) => {
                run.result = "error";
                run.error = Some(e.to_string());
                metrics::counter!(m::GC_RUNS, "result" => "error").increment(1);
                tracing::error!(run = run.id, error = %e, "gc run failed; the next run resumes");
            }
        }
        st.last = Some(run);
        metrics::gauge!(m::GC_RUNNING).set(0.0);
    }

    /// The run in progress and the last finished one.
    pub fn status(&self) -> (Option<GcRun>, Option<GcRun>) {
        let st = lock(&self.state);
        (st.current.clone(), st.last.clone())
    }

    /// The run with this id, if it is the current or the last one.
    pub fn run_by_id(&self, id: u64) -> Option<GcRun> {
        let (cur, last) = self.status();
        cur.into_iter().chain(last).find(|r| r.id == id)
    }

    /// Runs GC every `every` (a run still in progress is not doubled).
    pub async fn schedule(self: Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            let _ = self.start(self.defaults, "schedule");
        }
    }
}
