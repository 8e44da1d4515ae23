//! The `s3dedup admin …` commands (online, through the admin API) and `s3dedup gc`
//! (offline, on a stopped server's data dir).

use std::path::PathBuf;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::Value;

use s3dedup_storage::Store;
use s3dedup_storage::gc::{GcOptions, GcReport};

use super::client::{AdminClient, Answer};
pub use super::target::Target;
use crate::config::parse_duration;

/// `s3dedup admin` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Start garbage collection on the running server; exits non-zero if it fails.
    Gc {
        /// Grace period for this run (default: the server's gc_grace); "0s" removes
        /// everything unreferenced now.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Option<Duration>,
        /// Wait for the run to finish, showing its progress.
        #[arg(long)]
        wait: bool,
        /// Report what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Start (or resume) a scrub on the running server: every pack re-read, every
    /// chunk's id re-derived (SHA-256, or HMAC-SHA256 with encryption), damaged chunks
    /// marked. With --wait, exits 3 when damage was found, 1 when the scrub failed.
    Scrub {
        /// Wait for the scrub to finish, showing its progress.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Apply every bucket's lifecycle rules now on the running server (as the
    /// background worker does every lifecycle_interval). Versions under object lock are
    /// kept and counted; the space of what expired is freed by the next GC.
    Lifecycle {
        /// Wait for the run to finish (a run already in progress is waited for, then a
        /// new one started).
        #[arg(long)]
        wait: bool,
        /// Print the final run as JSON (with --wait).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Rewrite everything not sealed under the active encryption key (after a key was
    /// added to the key file, or encryption turned on for a store with plaintext data).
    /// When it reports no stale packs and no stale inline chunks left, older keys may
    /// be removed from the key file.
    Rekey {
        /// Wait for the run to finish, showing its progress.
        #[arg(long)]
        wait: bool,
        /// Print the final run as JSON (with --wait).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Write a consistent copy of the running server's index to FILE (a redb file; to
    /// restore, stop the server and put it in place of <data_dir>/index.redb).
    BackupIndex {
        /// Where to write it (replaced atomically if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// The metadata journal in the backing store: `flush` ships every change not yet
    /// there, `snapshot` also writes a snapshot of the whole index (what
    /// `s3dedup rebuild-index` starts from).
    Journal {
        /// `flush` or `snapshot`.
        #[arg(value_enum)]
        action: JournalAction,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Tenants: `create|list|delete NAME`.
    Tenant {
        #[command(subcommand)]
        action: super::identity_cli::TenantAction,
    },
    /// Users of a tenant: `create|list|delete --tenant T NAME`.
    User {
        #[command(subcommand)]
        action: super::identity_cli::UserAction,
    },
    /// Access keys: `create --tenant T [--user U] [--expires 30d] [--json]`,
    /// `list|disable|enable|delete`.
    Key {
        #[command(subcommand)]
        action: super::identity_cli::KeyAction,
    },
    /// Quotas: `set|clear|show --tenant T|--bucket B [--bytes SIZE] [--objects N]`.
    Quota {
        #[command(subcommand)]
        action: super::quota_cli::QuotaAction,
    },
    /// A tenant's own per-key rate limits: `set|clear|show --tenant T [--requests N]
    /// [--bytes SIZE]`.
    RateLimit {
        #[command(subcommand)]
        action: super::quota_cli::RateAction,
    },
    /// GC and scrub state: runs in progress, last runs, garbage bytes.
    Status {
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show or set the gateway's mode: read-only refuses every S3 write with 503 (reads
    /// continue) and pauses GC, lifecycle and rekey; kept across restarts until
    /// read-write. Without an argument, prints the mode.
    Mode {
        /// read-only or read-write.
        #[arg(value_parser = ["read-only", "read-write"])]
        mode: Option<String>,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Logical, unique, stored, garbage and saved bytes, ratio, per bucket.
    Usage {
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// What `s3dedup admin journal` does.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalAction {
    /// Ship every change not yet in the store.
    Flush,
    /// Ship, then write a snapshot of the whole index.
    Snapshot,
}

fn expect(a: Answer, want: StatusCode) -> anyhow::Result<Value> {
    if a.status == want {
        Ok(a.body)
    } else {
        anyhow::bail!("admin API answered {}: {}", a.status, a.message())
    }
}

/// GET `path` on the target's admin API; the JSON body of a 200.
async fn get_json(target: &Target, path: &str) -> anyhow::Result<Value> {
    expect(
        target.client()?.request(Method::GET, path).await?,
        StatusCode::OK,
    )
}

fn human(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// One line for a run's report (JSON from the API).
fn run_line(run: &Value) -> String {
    let r = &run["report"];
    format!(
        "removed {} chunks, deleted {} packs + {} orphan + {} unknown, expired {} uploads; reclaimed {}",
        u(r, "chunks_removed"),
        u(r, "packs_deleted"),
        u(r, "orphans_deleted"),
        u(r, "unknown_deleted"),
        u(r, "uploads_expired"),
        human(u(r, "reclaimed_bytes"))
    )
}

/// One line for a scrub run's report.
fn scrub_line(run: &Value) -> String {
    let r = &run["report"];
    format!(
        "{}/{} packs, {} chunks checked ({}), {} damaged",
        u(r, "packs_done"),
        u(r, "packs_total"),
        u(r, "chunks_checked"),
        human(u(r, "bytes_read")),
        u(r, "damaged_chunks")
    )
}

/// Polls run `kind`/`id` until it is no longer running; returns its final state.
async fn wait_for(
    client: &AdminClient,
    kind: &str,
    id: u64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Value> {
    loop {
        let run = expect(
            client
                .request(Method::GET, &format!("/admin/v1/{kind}/runs/{id}"))
                .await?,
            StatusCode::OK,
        )?;
        if run["result"] != "running" {
            return Ok(run);
        }
        let line = if kind == "rekey" {
            let r = &run["report"];
            format!(
                "{} of {} packs stale, {} chunks re-encoded",
                u(r, "packs_stale"),
                u(r, "packs_checked"),
                u(r, "chunks_reencoded")
            )
        } else if kind == "lifecycle" {
            lifecycle_line(&run["report"])
        } else if kind == "gc" {
            format!(
                "{}: {}",
                run["phase"].as_str().unwrap_or(""),
                run_line(&run)
            )
        } else {
            // Scrub knows how many packs there are: a real bar.
            let r = &run["report"];
            if u(r, "packs_total") > 0 {
                if bar.length().is_none() {
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} packs {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                }
                bar.set_length(u(r, "packs_total"));
                bar.set_position(u(r, "packs_done"));
            }
            scrub_line(&run)
        };
        bar.set_message(format!("{kind} run {id}: {line}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts a run of `kind` with `POST path`. With `wait`, a run of that kind already in
/// progress is waited for first and then ours is started (it may have begun before
/// what the caller wants it to see); without, it is an error.
async fn start_own_run(
    client: &AdminClient,
    kind: &str,
    path: &str,
    wait: bool,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Value> {
    loop {
        let answer = client.request(Method::POST, path).await?;
        if answer.status != StatusCode::CONFLICT {
            return expect(answer, StatusCode::ACCEPTED);
        }
        if !wait {
            anyhow::bail!("{}", answer.message());
        }
        let other = u(&answer.body["run"], "id");
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(format!(
            "waiting for {kind} run {other}, already in progress"
        ));
        wait_for(client, kind, other, bar).await?;
    }
}

/// Waits for run `kind`/`id` to end, showing its progress on `bar`; its final state,
/// or an error when it failed.
async fn run_to_end(
    client: &AdminClient,
    kind: &str,
    id: u64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Value> {
    bar.enable_steady_tick(Duration::from_millis(120));
    let done = wait_for(client, kind, id, bar).await?;
    bar.finish_and_clear();
    if done["result"] != "ok" {
        anyhow::bail!(
            "{kind} run {id} failed: {}",
            done["error"].as_str().unwrap_or("unknown error")
        );
    }
    Ok(done)
}

fn lifecycle_line(r: &Value) -> String {
    format!(
        "{} buckets, {} current versions expired ({} delete markers added), {} noncurrent \
         versions and {} delete markers removed, {} released, {} uploads aborted, {} locked \
         versions kept",
        u(r, "buckets"),
        u(r, "current_expired"),
        u(r, "markers_added"),
        u(r, "versions_removed"),
        u(r, "markers_removed"),
        human(u(r, "bytes_released")),
        u(r, "uploads_aborted"),
        u(r, "locked_kept"),
    )
}

/// Runs an `s3dedup admin` command.
///
/// # Errors
/// When the server cannot be reached, refuses, or the run fails.
pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Tenant { action } => super::identity_cli::tenant(action).await,
        AdminCommand::User { action } => super::identity_cli::user(action).await,
        AdminCommand::Key { action } => super::identity_cli::key(action).await,
        AdminCommand::Quota { action } => super::quota_cli::quota(action).await,
        AdminCommand::RateLimit { action } => super::quota_cli::rate_limit(action).await,
        AdminCommand::Gc {
            grace,
            wait,
            dry_run,
            target,
        } => {
            let client = target.client()?;
            let mut path = String::from("/admin/v1/gc?");
            if let Some(g) = grace {
                path.push_str(&format!("grace={}s&", g.as_secs()));
            }
            if dry_run {
                path.push_str("dry_run=true");
            }
            let bar = indicatif::ProgressBar::new_spinner();
            let run = start_own_run(&client, "gc", &path, wait, &bar).await?;
            let id = u(&run, "id");
            if !wait {
                println!("gc run {id} started (s3dedup admin status shows its progress)");
                return Ok(());
            }
            let done = run_to_end(&client, "gc", id, &bar).await?;
            let what = if dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            };
            println!("gc run {id} finished{what}: {}", run_line(&done));
            Ok(())
        }
        AdminCommand::Lifecycle { wait, json, target } => {
            let client = target.client()?;
            let bar = indicatif::ProgressBar::new_spinner();
            let run =
                start_own_run(&client, "lifecycle", "/admin/v1/lifecycle", wait, &bar).await?;
            let id = u(&run, "id");
            if !wait {
                println!("lifecycle run {id} started (s3dedup admin status shows its progress)");
                return Ok(());
            }
            let done = run_to_end(&client, "lifecycle", id, &bar).await?;
            if json {
                println!("{done}");
            } else {
                println!(
                    "lifecycle run {id} finished: {}",
                    lifecycle_line(&done["report"])
                );
            }
            Ok(())
        }
        AdminCommand::Rekey { wait, json, target } => {
            let client = target.client()?;
            let answer = client.request(Method::POST, "/admin/v1/rekey").await?;
            let run = expect(answer, StatusCode::ACCEPTED)?;
            let id = u(&run, "id");
            if !wait {
                println!("rekey run {id} started (s3dedup admin status shows its progress)");
                return Ok(());
            }
            let bar = indicatif::ProgressBar::new_spinner();
            let done = run_to_end(&client, "rekey", id, &bar).await?;
            let r = &done["report"];
            if json {
                println!("{done}");
            } else {
                println!(
                    "rekey run {id} finished: {} packs rewritten, {} chunks and {} inline chunks \
                     re-encoded under key {}; {} stale packs and {} stale inline chunks left",
                    u(r, "packs_stale"),
                    u(r, "chunks_reencoded"),
                    u(r, "inline_reencoded"),
                    r["active_key"],
                    u(r, "stale_packs_left"),
                    u(r, "stale_inline_left"),
                );
            }
            if u(r, "stale_packs_left") + u(r, "stale_inline_left") > 0 {
                anyhow::bail!(
                    "data under older keys is left (see the server log); keep those keys"
                );
            }
            Ok(())
        }
        AdminCommand::Journal {
            action,
            json,
            target,
        } => {
            let path = match action {
                JournalAction::Flush => "/admin/v1/journal/flush",
                JournalAction::Snapshot => "/admin/v1/journal/snapshot",
            };
            let answer = target.client()?.request(Method::POST, path).await?;
            let r = expect(answer, StatusCode::OK)?;
            if json {
                println!("{r}");
            } else if action == JournalAction::Flush {
                println!(
                    "journal: {} entries shipped in {} segments ({})",
                    u(&r, "entries"),
                    u(&r, "segments"),
                    human(u(&r, "bytes"))
                );
            } else if r["seq"].is_null() {
                println!("journal snapshot: nothing changed since the last one");
            } else {
                println!(
                    "journal snapshot at seq {}: {} records in {} parts ({}); {} old blobs pruned",
                    u(&r, "seq"),
                    u(&r, "entries"),
                    u(&r, "parts"),
                    human(u(&r, "bytes")),
                    u(&r, "pruned")
                );
            }
            Ok(())
        }
        AdminCommand::BackupIndex { out, target } => {
            let client = target.client()?;
            let n = client.download("/admin/v1/backup-index", &out).await?;
            println!("index backup written to {} ({n} bytes)", out.display());
            Ok(())
        }
        AdminCommand::Scrub { wait, target } => {
            let client = target.client()?;
            let answer = client.request(Method::POST, "/admin/v1/scrub").await?;
            let run = if answer.status == StatusCode::CONFLICT && wait {
                // Join the scrub in progress.
                answer.body["run"].clone()
            } else if answer.status == StatusCode::CONFLICT {
                anyhow::bail!("{}", answer.message());
            } else {
                expect(answer, StatusCode::ACCEPTED)?
            };
            let id = u(&run, "id");
            if !wait {
                println!("scrub run {id} started (s3dedup admin status shows its progress)");
                return Ok(());
            }
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            let done = wait_for(&client, "scrub", id, &bar).await?;
            bar.finish_and_clear();
            if done["result"] != "ok" {
                anyhow::bail!(
                    "scrub run {id} failed: {}",
                    done["error"].as_str().unwrap_or("unknown error")
                );
            }
            println!("scrub run {id} finished: {}", scrub_line(&done));
            let damaged = &done["report"]["damaged"];
            if u(&done["report"], "damaged_chunks") > 0 {
                if let Some(ids) = damaged.as_array() {
                    for c in ids {
                        println!("damaged chunk {}", c.as_str().unwrap_or(""));
                    }
                }
                std::process::exit(3);
            }
            Ok(())
        }
        AdminCommand::Status { json, target } => {
            let s = get_json(&target, "/admin/v1/status").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            let gc = &s["gc"];
            match gc["running"].as_object() {
                Some(_) => println!(
                    "gc: running (run {}, phase {}): {}",
                    u(&gc["running"], "id"),
                    gc["running"]["phase"].as_str().unwrap_or(""),
                    run_line(&gc["running"])
                ),
                None => println!("gc: idle"),
            }
            if gc["last"].is_object() {
                let last = &gc["last"];
                println!(
                    "last run: {} ({}, {}): {}",
                    u(last, "id"),
                    last["result"].as_str().unwrap_or(""),
                    last["trigger"].as_str().unwrap_or(""),
                    last["error"]
                        .as_str()
                        .map_or_else(|| run_line(last), str::to_owned)
                );
            } else {
                println!("last run: none since the server started");
            }
            let sc = &s["scrub"];
            match (sc["running"].as_object(), sc["last_finished"].as_object()) {
                (Some(_), _) => println!("scrub: running: {}", scrub_line(&sc["running"])),
                (None, Some(_)) => println!(
                    "scrub: idle; last finished at {} ms: {} chunks checked, {} damaged",
                    u(&sc["last_finished"], "finished_ms"),
                    u(&sc["last_finished"], "chunks_checked"),
                    u(&sc["last_finished"], "damaged_chunks")
                ),
                (None, None) => println!("scrub: never run"),
            }
            println!(
                "garbage: {} of {} stored; grace {}s, interval {}s",
                human(u(&s, "garbage_bytes")),
                human(u(&s, "stored_bytes")),
                u(gc, "grace_seconds"),
                u(gc, "interval_seconds")
            );
            Ok(())
        }
        AdminCommand::Mode { mode, json, target } => {
            let m = match mode {
                None => get_json(&target, "/admin/v1/mode").await?,
                Some(m) => expect(
                    target
                        .client()?
                        .request(Method::PUT, &format!("/admin/v1/mode?mode={m}"))
                        .await?,
                    StatusCode::OK,
                )?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                let ro = m["read_only"].as_bool().unwrap_or(false);
                let forced = m["forced_by_setting"].as_bool().unwrap_or(false);
                println!(
                    "{}{}",
                    if ro { "read-only" } else { "read-write" },
                    if forced {
                        " (set by the read_only setting)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        AdminCommand::Usage { json, target } => {
            let s = get_json(&target, "/admin/v1/usage").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let report: crate::stats::StatsReport = serde_json::from_value(s)?;
                print!("{}", report.table());
            }
            Ok(())
        }
    }
}

/// Prints a report as `s3dedup gc` and `admin gc` describe a run.
pub fn print_report(r: &GcReport) {
    let what = if r.dry_run { "would be" } else { "were" };
    println!("multipart uploads expired:   {}", r.uploads_expired);
    println!(
        "chunks removed:              {} ({} stored){}",
        r.chunks_removed,
        human(r.chunk_bytes),
        if r.chunks_pinned > 0 {
            format!(", {} in use by uploads kept", r.chunks_pinned)
        } else {
            String::new()
        }
    );
    println!(
        "empty packs deleted:         {} ({})",
        r.packs_deleted,
        human(r.pack_bytes)
    );
    println!(
        "orphan packs deleted:        {} ({})",
        r.orphans_deleted,
        human(r.orphan_bytes)
    );
    println!(
        "unknown packs deleted:       {} ({})",
        r.unknown_deleted,
        human(r.unknown_bytes)
    );
    if r.unknown_kept > 0 {
        println!(
            "unknown packs kept:          {} (newer than the snapshot this index was restored from)",
            r.unknown_kept
        );
    }
    println!(
        "reclaimed:                   {} {what} freed",
        human(r.reclaimed_bytes())
    );
}

/// `s3dedup gc`: one run on a stopped server's store.
///
/// # Errors
/// The run's error.
pub async fn offline_gc(store: &Store, opts: GcOptions) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = |phase: s3dedup_storage::gc::GcPhase, r: &GcReport| {
        bar.set_message(format!(
            "gc: {}: {} chunks removed, {} packs deleted",
            phase.name(),
            r.chunks_removed,
            r.packs_deleted + r.orphans_deleted + r.unknown_deleted
        ));
    };
    let r = store.gc(opts, &progress).await;
    bar.finish_and_clear();
    let r = r?;
    print_report(&r);
    Ok(())
}
