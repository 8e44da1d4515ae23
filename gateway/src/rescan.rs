//! `s3dedup rescan`: re-scans stored objects (after a signature update) and reports or
//! quarantines those now detected. Runs offline, on the data directory (the index allows
//! one process at a time), and bypasses the verdict cache.

use std::io::Write;
use std::time::Instant;

use s3dedup_scanner::{Scanner, Verdict};
use s3dedup_storage::{ListEntry, ObjectMeta, Store, WriteCondition};

/// Bucket that quarantined objects move to, under `<bucket>/<key>`.
pub const QUARANTINE_BUCKET: &str = "s3dedup-quarantine";

/// What to do with an object that is now detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Only report it.
    Report,
    /// Move it to the quarantine bucket (a metadata-only copy, then a delete).
    Quarantine,
}

/// Totals of a rescan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Objects scanned.
    pub objects: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Objects detected, with the signature: (bucket, key, signature).
    pub infected: Vec<(String, String, String)>,
    /// Objects that could not be scanned: (bucket, key, error).
    pub errors: Vec<(String, String, String)>,
}

/// Rescans every object of `bucket` (or of every bucket but the quarantine one), writing
/// one progress line per object to `out`.
///
/// # Errors
/// Index errors while listing; per-object scan and read errors are collected in the
/// report instead.
pub async fn rescan(
    store: &Store,
    scanner: &dyn Scanner,
    bucket: Option<&str>,
    action: Action,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    let buckets: Vec<String> = match bucket {
        Some(b) => vec![b.to_owned()],
        None => store
            .buckets()
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name != QUARANTINE_BUCKET)
            .collect(),
    };
    let started = Instant::now();
    let mut report = Report::default();
    for b in &buckets {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_objects(b, "", None, after.as_deref(), 1000)
                .await?;
            for entry in &page.entries {
                let ListEntry::Object { key, record } = entry else {
                    continue; // no delimiter: only objects come back
                };
                // The version listed is the one scanned and, if infected, removed for
                // good (a delete marker would leave its bytes readable by version id).
                let version = record.version.id();
                let verdict = scan_object(store, scanner, b, key, &version).await;
                report.objects += 1;
                let line = match verdict {
                    Ok((size, Verdict::Clean)) => {
                        report.bytes += size;
                        "clean".to_owned()
                    }
                    Ok((size, Verdict::Infected(sig))) => {
                        report.bytes += size;
                        let done = match action {
                            Action::Report => "reported".to_owned(),
                            Action::Quarantine => match quarantine(store, b, key, &version).await {
                                Ok(()) => format!("moved to {QUARANTINE_BUCKET}/{b}/{key}"),
                                Err(e) => format!("quarantine FAILED: {e:#}"),
                            },
                        };
                        tracing::warn!(
                            target: "audit",
                            event = "rescan_detected",
                            bucket = %b,
                            key = %key,
                            signature = %sig,
                            action = %done,
                            "stored object detected by rescan"
                        );
                        let line = format!("INFECTED {sig} ({done})");
                        report.infected.push((b.clone(), key.clone(), sig));
                        line
                    }
                    Err(e) => {
                        let line = format!("ERROR {e:#}");
                        report
                            .errors
                            .push((b.clone(), key.clone(), format!("{e:#}")));
                        line
                    }
                };
                writeln!(
                    out,
                    "[{n} objects, {mib} MiB, {s:.0}s] {b}/{key}: {line}",
                    n = report.objects,
                    mib = report.bytes >> 20,
                    s = started.elapsed().as_secs_f64()
                )?;
            }
            match page.entries.last() {
                Some(last) if page.is_truncated => after = Some(last.marker().to_owned()),
                _ => break,
            }
        }
    }
    Ok(report)
}

async fn scan_object(
    store: &Store,
    scanner: &dyn Scanner,
    bucket: &str,
    key: &str,
    version: &str,
) -> anyhow::Result<(u64, Verdict)> {
    let reader = store.get_version(bucket, key, Some(version), None).await?;
    let verdict = s3dedup_scanner::scan_stream(scanner, reader.body).await??;
    Ok((reader.record.size, verdict))
}

async fn quarantine(store: &Store, bucket: &str, key: &str, version: &str) -> anyhow::Result<()> {
    if store.bucket(QUARANTINE_BUCKET).await?.is_none() {
        match store.create_bucket(QUARANTINE_BUCKET).await {
            Ok(()) | Err(s3dedup_storage::Error::BucketExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    store
        .copy_version(
            (bucket, key),
            Some(version),
            (QUARANTINE_BUCKET, &format!("{bucket}/{key}")),
            None::<ObjectMeta>,
            WriteCondition::default(),
        )
        .await?;
    // Object lock binds this too: a locked version stays (and the failure is reported).
    store
        .delete_version(bucket, key, Some(version), Default::default())
        .await?;
    Ok(())
}
