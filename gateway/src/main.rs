//! `s3dedup`: the gateway's command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use s3dedup_gateway::admin;
use s3dedup_gateway::config::{self, LogFormat, Settings};
use s3dedup_gateway::credentials;
use s3dedup_gateway::edge::EdgePolicy;
use s3dedup_gateway::rescan;
use s3dedup_gateway::s3::GatewaySettings;
use s3dedup_gateway::scan::{ScanPolicy, ScanService};
use s3dedup_gateway::server::{self, Credentials, ServeOptions};
use s3dedup_gateway::stats;
use s3dedup_gateway::tls;
use s3dedup_gateway::write_gate::WriteGate;
use s3dedup_scanner::{ClamdScanner, ClamdSettings, NoopScanner, Scanner};
use s3dedup_storage::SnapshotSettings;
use s3dedup_storage::blob::{BlobStore, S3BlobStore};
use s3dedup_storage::{Store, StoreConfig};

#[derive(Parser, Debug)]
#[command(
    name = "s3dedup",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("S3DEDUP_COMMIT"), ")"),
    about = "Deduplicating, virus-scanning S3 gateway",
    after_help = "Every setting is a TOML key, an S3DEDUP_<KEY> environment variable and a --key flag \
                  (file < environment < flag); see deploy/s3dedup.example.toml."
)]
struct Cli {
    /// TOML configuration file (environment variables and flags override it)
    /// [env: S3DEDUP_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the S3 API and the admin endpoints.
    Serve {
        #[command(flatten)]
        settings: Settings,
    },
    /// Recount every reference and report drift, verify the index file's page checksums
    /// and report damaged records by key (the gateway must not be running). Exits 1 when
    /// anything is wrong.
    Fsck {
        /// Also read every pack and verify every stored chunk (CRC32C and SHA-256).
        #[arg(long)]
        read_data: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Print what is stored and what dedup saves, overall and per bucket (the gateway
    /// must not be running).
    Stats {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Garbage-collect a stopped server's data dir: chunks unreferenced for longer than
    /// the grace period, empty and orphan packs, stale multipart uploads. A running
    /// server does this itself (and on `s3dedup admin gc`).
    Gc {
        /// Grace period for this run (default: gc_grace); "0s" removes everything
        /// unreferenced now.
        #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
        grace: Option<std::time::Duration>,
        /// Report what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Rebuild a lost index from the backing store alone: the newest snapshot of the
    /// index in the store, the metadata journal after it, reconciled with the packs
    /// present; then fsck. --data-dir names the new (empty) data dir, --store the
    /// backing store (for the local store: the data dir whose index.redb is lost).
    /// Exits 1 when something could not be restored (the report says what).
    RebuildIndex {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Talk to a running server's admin API: gc, scrub, rekey, backup-index, journal,
    /// status, usage.
    Admin {
        #[command(subcommand)]
        command: admin::cli::AdminCommand,
    },
    /// The audit log: `verify FILE…` checks its hash chain and HMAC checkpoints.
    Audit {
        #[command(subcommand)]
        command: s3dedup_gateway::audit::AuditCommand,
    },
    /// Re-scan stored objects with clamd (S3DEDUP_CLAMD), e.g. after a signature
    /// update; the gateway must not be running. Exits 3 when something was detected,
    /// 1 when objects could not be scanned.
    Rescan {
        /// Only this bucket (default: every bucket but the quarantine bucket).
        #[arg(long)]
        bucket: Option<String>,
        /// What to do with detected objects.
        #[arg(long, value_enum, default_value = "report")]
        action: rescan::Action,
        #[command(flatten)]
        settings: Settings,
    },
}

/// Subcommands that take the settings.
const WITH_SETTINGS: &[&str] = &["serve", "fsck", "stats", "rescan", "gc", "rebuild-index"];

/// `--config FILE` / `--config=FILE` anywhere before `--`, else `S3DEDUP_CONFIG`. Read
/// before clap parses, because the file supplies the settings' defaults.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("S3DEDUP_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A configuration error: one line naming the key and value, exit status 2 (as clap
/// does for a bad flag), before anything touches the data directory.
fn refuse(e: impl std::fmt::Display) -> ! {
    eprintln!("s3dedup: {e}");
    std::process::exit(2)
}

fn parse_cli() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    let layers = config::Layers::load(config_path(&args).as_deref(), |k| std::env::var(k).ok())
        .unwrap_or_else(|e| refuse(e));
    let mut cmd = Cli::command();
    for sub in WITH_SETTINGS {
        cmd = cmd.mut_subcommand(sub, |s| layers.apply(s));
    }
    let matches = cmd.get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(s) = cli.command.settings() {
        s.validate().unwrap_or_else(|e| refuse(e));
    }
    cli
}

impl Command {
    fn settings(&self) -> Option<&Settings> {
        match self {
            Command::Serve { settings }
            | Command::Fsck { settings, .. }
            | Command::Stats { settings, .. }
            | Command::Gc { settings, .. }
            | Command::Rescan { settings, .. }
            | Command::RebuildIndex { settings, .. } => Some(settings),
            Command::Admin { .. } | Command::Audit { .. } => None,
        }
    }
}

fn init_logging(s: Option<&Settings>) {
    use std::io::IsTerminal;
    let Some(s) = s else {
        // The admin CLI: warnings only.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .init();
        return;
    };
    // s3s logs every error response at ERROR, with its whole source (a malformed XML
    // body, up to its size limit): the request line already says what happened, once.
    let filter = if s.log.contains("s3s") {
        tracing_subscriber::EnvFilter::new(&s.log)
    } else {
        tracing_subscriber::EnvFilter::new(format!("{},s3s=off", s.log))
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match s.log_format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn scan_service(s: &Settings) -> Arc<ScanService> {
    let scanner: Arc<dyn Scanner> = match &s.clamd {
        None => Arc::new(NoopScanner),
        Some(address) => {
            let mut settings = ClamdSettings::new(address.clone());
            settings.scan_timeout = s.scan_timeout;
            Arc::new(ClamdScanner::new(settings))
        }
    };
    Arc::new(ScanService::new(
        scanner,
        ScanPolicy {
            on_failure: s.scan_on_failure,
            max_size: s.scan_max_size,
            oversize: s.scan_oversize,
        },
    ))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The pid file a serving gateway keeps in its data directory, so an offline command
/// that finds the index locked can say who holds it.
const PID_FILE: &str = "s3dedup.pid";

/// The engine settings, the backing store and its location name, from the settings.
async fn store_parts(s: &Settings) -> anyhow::Result<(StoreConfig, Arc<dyn BlobStore>, String)> {
    let s3 = s.s3_settings();
    // An S3 round trip costs far more than a local read: fetch more, in bigger pieces
    // (measured: a 512 MiB GET over s3s-fs, 83 MB/s at 4 × 1 MiB, 257 MB/s at 8 × 4 MiB).
    let (ahead, coalesce) = if s3.is_some() {
        (8, 4 << 20)
    } else {
        (4, 1 << 20)
    };
    let store_cfg = StoreConfig {
        pack_target: to_usize(s.pack_target),
        index_cache: to_usize(s.index_cache),
        compression: s.compression(),
        dedup_scope: s.dedup_scope,
        keys: s.encryption_keys()?,
        read_ahead: s.read_ahead.unwrap_or(ahead),
        coalesce_max: s.read_coalesce.map_or(coalesce, to_usize),
        ..StoreConfig::default()
    };
    match s3 {
        None => {
            std::fs::create_dir_all(&s.data_dir)?;
            let blobs = s3dedup_storage::blob::FsBlobStore::open(s.data_dir.join("store"))?;
            Ok((store_cfg, Arc::new(blobs), "local".into()))
        }
        Some(s3) => {
            let location = s3.url();
            let blobs = S3BlobStore::connect(s3)
                .await
                .with_context(|| format!("configuring backing store {location}"))?;
            // Reachability is /health/ready's to report; an unreachable bucket at start is
            // not fatal (the gateway recovers when it comes back), but say so at once.
            if let Err(e) = blobs.check().await {
                tracing::warn!(store = %location, error = %e, "backing store not reachable yet");
            } else {
                tracing::info!(store = %location, "backing store reachable");
            }
            Ok((store_cfg, Arc::new(blobs), location))
        }
    }
}

async fn open_store(s: &Settings) -> anyhow::Result<Store> {
    let damaged = "(a damaged index: see the README, \"Index integrity and restoring the index\")";
    let (store_cfg, blobs, location) = store_parts(s).await?;
    check_store_location(s, &location)?;
    let opened = Store::open(&s.data_dir.join("index.redb"), blobs, store_cfg).await;
    match opened {
        Ok(store) => Ok(store),
        Err(s3dedup_storage::Error::IndexLocked { .. }) => {
            let holder = std::fs::read_to_string(s.data_dir.join(PID_FILE)).unwrap_or_default();
            let mut lines = holder.lines();
            let pid = lines.next().unwrap_or("unknown");
            let admin = lines.next().unwrap_or("the admin port");
            anyhow::bail!(
                "the gateway is running (pid {pid}) on {}; use the admin port ({admin}) or stop it first",
                s.data_dir.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("opening {} {damaged}", s.data_dir.display())),
    }
}

/// The index names packs in one backing store; opening it over another would make
/// every object unreadable and let GC's sweep delete the other store's packs. The data
/// directory remembers where its packs live, and a mismatch stops the start.
fn check_store_location(s: &Settings, location: &str) -> anyhow::Result<()> {
    let path = s.data_dir.join("store-location");
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == location => Ok(()),
        Ok(found) => anyhow::bail!(
            "{} was created with backing store {:?}, not {location:?}: set S3DEDUP_STORE to \
             match (or move the packs and edit {})",
            s.data_dir.display(),
            found.trim(),
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&s.data_dir)?;
            // A data directory from before this file existed used the local store.
            let previous = s.data_dir.join("index.redb").exists();
            if previous && location != "local" {
                anyhow::bail!(
                    "{} holds an index over the local store; it cannot switch to {location}",
                    s.data_dir.display()
                );
            }
            std::fs::write(&path, format!("{location}\n"))
                .with_context(|| format!("writing {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn main() -> std::process::ExitCode {
    let cli = parse_cli();
    init_logging(cli.command.settings());
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli.command)));
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes joined: what went wrong and why.
            eprintln!("s3dedup: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { settings } => serve(settings).await,
        Command::Fsck {
            read_data,
            settings,
        } => fsck(&settings, read_data).await,
        Command::Rescan {
            bucket,
            action,
            settings,
        } => {
            let scan = scan_service(&settings);
            if !scan.enabled() {
                anyhow::bail!("rescan needs a scanner: set S3DEDUP_CLAMD (or clamd in the config)");
            }
            require_index(&settings)?;
            let store = open_store(&settings).await?;
            let mut out = std::io::stdout().lock();
            let report = rescan::rescan(
                &store,
                scan.scanner().as_ref(),
                bucket.as_deref(),
                action,
                &mut out,
            )
            .await?;
            println!(
                "rescan: {} objects, {} bytes scanned, {} detected, {} not scanned",
                report.objects,
                report.bytes,
                report.infected.len(),
                report.errors.len()
            );
            if !report.infected.is_empty() {
                std::process::exit(3);
            }
            if !report.errors.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Gc {
            grace,
            dry_run,
            settings,
        } => {
            require_index(&settings)?;
            let store = open_store(&settings).await?;
            let mut opts = gc_options(&settings);
            opts.grace = grace.unwrap_or(opts.grace);
            opts.dry_run = dry_run;
            admin::cli::offline_gc(&store, opts).await
        }
        Command::Admin { command } => admin::cli::run(command).await,
        Command::Audit { command } => s3dedup_gateway::audit::run_cli(command),
        Command::RebuildIndex { json, settings } => {
            let (cfg, blobs, location) = store_parts(&settings).await?;
            check_store_location(&settings, &location)?;
            let index = settings.data_dir.join("index.redb");
            if !s3dedup_gateway::rebuild::run(&index, blobs, cfg, json).await? {
                eprintln!(
                    "s3dedup: rebuild-index: not everything could be restored, or fsck found \
                     drift (see the report); the rebuilt index is at {}",
                    index.display()
                );
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Stats { json, settings } => {
            require_index(&settings)?;
            let store = open_store(&settings).await?;
            let report = stats::collect(&store).await?;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.table());
            }
            Ok(())
        }
    }
}

/// GC options from the settings.
fn gc_options(s: &Settings) -> s3dedup_storage::gc::GcOptions {
    s3dedup_storage::gc::GcOptions {
        grace: s.gc_grace,
        multipart_expiry: s.multipart_expiry,
        compact_threshold: s.compact_threshold,
        ..Default::default()
    }
}

/// Offline commands work on an existing data directory and never create one.
fn require_index(s: &Settings) -> anyhow::Result<PathBuf> {
    if !s.data_dir.is_dir() {
        anyhow::bail!(
            "data directory {} does not exist (is --data-dir / S3DEDUP_DATA_DIR right?)",
            s.data_dir.display()
        );
    }
    let index = s.data_dir.join("index.redb");
    match std::fs::metadata(&index) {
        Ok(m) if m.len() > 0 => Ok(index),
        _ => anyhow::bail!(
            "no index at {} (is --data-dir / S3DEDUP_DATA_DIR right?)",
            index.display()
        ),
    }
}

async fn fsck(cfg: &Settings, read_data: bool) -> anyhow::Result<()> {
    let index = require_index(cfg)?;
    // redb verifies page checksums only when asked: walk the whole file first.
    let file_ok = match s3dedup_storage::Store::verify_index_file(&index) {
        Ok(true) => {
            println!("index file: every page checksum verifies");
            true
        }
        Ok(false) => {
            println!("index file: an interrupted commit was rolled back; pages verify");
            true
        }
        // A running gateway holds it: say so (open_store names the pid), not "damaged".
        Err(s3dedup_storage::Error::IndexLocked { .. }) => {
            open_store(cfg).await?;
            anyhow::bail!("the index is in use")
        }
        Err(e) => {
            println!("index file: DAMAGED: {e}");
            println!(
                "  (records are still checked below; see README \"Index integrity and restoring the index\")"
            );
            false
        }
    };
    let store = open_store(cfg).await?;
    let report = store.fsck().await?;
    println!("{report:#?}");
    let mut clean = file_ok && report.is_clean();
    if read_data {
        let data = store
            .verify_data(|done, total| {
                if done == total || done % 100 == 0 {
                    eprintln!("fsck --read-data: {done}/{total} packs");
                }
            })
            .await?;
        println!("{data:#?}");
        clean &= data.is_clean();
    }
    if clean {
        println!("fsck: clean (0 drift)");
        Ok(())
    } else {
        anyhow::bail!("fsck found problems")
    }
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    let max_connections = server::connection_limit(s.max_connections);
    // Bind first: a start that cannot listen leaves nothing behind in the data directory.
    let s3 = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("binding {} (listen)", s.listen))?;
    let admin = tokio::net::TcpListener::bind(s.admin_listen)
        .await
        .with_context(|| format!("binding {} (admin_listen)", s.admin_listen))?;
    // Certificates are checked before anything is opened: a bad file is a start error.
    let tls = s.tls_files().map(tls::CertStore::open).transpose()?;
    let store = open_store(&s).await?;
    let creds = credentials::root_credentials(&s)?;
    let gate = WriteGate::open(&s.data_dir, s.read_only, s.min_free_space);
    if let Some(path) = &s.audit_log {
        let key = s3dedup_gateway::audit::load_key(s.audit_key_file.as_deref(), &s.data_dir)
            .context("audit key")?;
        s3dedup_gateway::audit::open(path, s.audit_log_max_size, key)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
    }
    if gate.read_only() {
        tracing::warn!(
            "read-only mode: writes are refused (s3dedup admin mode read-write lifts a run-time mode)"
        );
    }
    let admin_token = admin::token::server_token(s.admin_token.as_ref(), &s.data_dir)?;
    let worker = admin::worker::Worker::new(
        store.clone(),
        gc_options(&s),
        s3dedup_storage::scrub::ScrubOptions { rate: s.scrub_rate },
        s.lifecycle_day,
    );
    worker.set_write_gate(Arc::clone(&gate));
    tokio::spawn(Arc::clone(&worker).schedule(s.gc_interval));
    tokio::spawn(Arc::clone(&worker).schedule_lifecycle(s.lifecycle_interval));
    tokio::spawn(Arc::clone(&worker).schedule_scrub(s.scrub_interval));
    let journal = Arc::new(admin::journal::Journal::new(
        store.clone(),
        s.journal_interval,
        s.journal_snapshot_interval,
    ));
    tokio::spawn(Arc::clone(&journal).schedule());
    let (s3_addr, admin_addr) = (s3.local_addr()?, admin.local_addr()?);
    let pid_file = s.data_dir.join(PID_FILE);
    std::fs::write(
        &pid_file,
        format!(
            "{}\n{}://{admin_addr}\n{}\n",
            std::process::id(),
            if tls.is_some() { "https" } else { "http" },
            // Absolute: `s3dedup admin` beside the server trusts this file.
            s.tls_cert
                .as_ref()
                .and_then(|c| c.canonicalize().ok())
                .map(|c| c.display().to_string())
                .unwrap_or_default()
        ),
    )
    .with_context(|| format!("writing {}", pid_file.display()))?;
    let scan = scan_service(&s);
    scan.report_start(s.scan_on_failure);
    match (&creds.kept_in, creds.created) {
        (Some(path), true) => println!(
            "root credentials created (shown once; kept in {}):\n  access key: {}\n  secret key: {}",
            path.display(),
            creds.access_key,
            creds.secret_key.expose()
        ),
        (Some(path), false) => println!(
            "root credentials: access key {} (kept in {})",
            creds.access_key,
            path.display()
        ),
        (None, _) => println!(
            "root credentials: access key {} (from the settings: root_access_key / S3DEDUP_ROOT_ACCESS_KEY)",
            creds.access_key
        ),
    }
    // SIGHUP is listened for before anyone can know the process is up: a reload sent
    // right after the line below must not meet SIGHUP's default action (exit).
    tls::handle_sighup(tls.clone());
    // Tests and scripts read the real addresses from this line.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "s3dedup listening: s3={scheme}://{s3_addr} admin={scheme}://{admin_addr} data={}",
        s.data_dir.display()
    );
    let rates = Arc::new(s3dedup_gateway::limits::Limits::new(s.limit_settings()));
    for (tenant, r) in store.tenant_rates().await? {
        rates.set_tenant(&tenant, Some(r));
    }
    let opts = ServeOptions {
        settings: GatewaySettings {
            region: s.region.clone(),
            min_part_size: s.min_part_size,
            scan,
        },
        credentials: Credentials {
            access_key: creds.access_key,
            secret_key: creds.secret_key.expose().to_owned(),
        },
        domain: s.domain.clone(),
        edge: EdgePolicy {
            sigv2: s.sigv2,
            // One per process, for the edge's Copy policy.
            region: Box::leak(s.region.clone().into_boxed_str()),
        },
        max_connections,
        tls,
        limits: s.conn_limits(),
        gate: Arc::clone(&gate),
        rates: Arc::clone(&rates),
        admin: Some(admin::AdminApi {
            store: store.clone(),
            token: admin_token,
            worker,
            journal: Arc::clone(&journal),
            gc_interval: s.gc_interval,
            scrub_interval: s.scrub_interval,
            lifecycle_interval: s.lifecycle_interval,
            data_dir: s.data_dir.clone(),
            rates: Arc::clone(&rates),
        }),
        snapshots: (!s.index_snapshot_interval.is_zero()).then(|| {
            (
                s3dedup_storage::snapshot_dir(&s.data_dir),
                SnapshotSettings {
                    interval: Some(s.index_snapshot_interval),
                    keep: s.index_snapshots,
                },
            )
        }),
    };
    if s.sigv2 {
        tracing::warn!("SigV2 is enabled: its signatures do not cover request bodies");
    }
    let served = server::run(store, opts, s3, admin, server::shutdown_signal()).await;
    // The audit log's tail gets a checkpoint.
    s3dedup_gateway::audit::flush();
    // A clean stop leaves nothing unshipped (bounded: the store may be down).
    match tokio::time::timeout(std::time::Duration::from_secs(30), journal.flush()).await {
        Ok(Ok(r)) => tracing::info!(entries = r.entries, "journal shipped at shutdown"),
        Ok(Err(_)) => {} // logged by flush; the outbox keeps it for the next start
        Err(_) => tracing::warn!("journal shipment at shutdown timed out; the next start ships it"),
    }
    let _ = std::fs::remove_file(&pid_file);
    served?;
    tracing::info!("stopped");
    Ok(())
}
