//! `s3dedup`: the gateway's command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use s3dedup_gateway::config::{self, Config, LogFormat, Overrides};
use s3dedup_gateway::edge::EdgePolicy;
use s3dedup_gateway::rescan;
use s3dedup_gateway::s3::GatewaySettings;
use s3dedup_gateway::scan::{FailurePolicy, ScanPolicy, ScanService};
use s3dedup_gateway::server::{self, Credentials, ServeOptions};
use s3dedup_scanner::{ClamdScanner, ClamdSettings, NoopScanner, Scanner};
use s3dedup_storage::blob::{BlobStore, S3BlobStore};
use s3dedup_storage::index::SnapshotSettings;
use s3dedup_storage::{Store, StoreConfig};

#[derive(Parser, Debug)]
#[command(
    name = "s3dedup",
    version,
    about = "Deduplicating, virus-scanning S3 gateway"
)]
struct Cli {
    /// TOML configuration file (environment variables and flags override it).
    #[arg(long, global = true, env = "S3DEDUP_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (index and local chunk store).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the S3 API and the admin endpoints.
    Serve {
        /// S3 API address, e.g. 127.0.0.1:9000 (port 0 picks a free one).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Admin address (metrics, health).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// Region.
        #[arg(long)]
        region: Option<String>,
        /// Base domain for virtual-hosted-style requests.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Recount every reference and report drift, verify the index file's page checksums
    /// and report damaged records by key (the gateway must not be running). Exits 1 when
    /// anything is wrong.
    Fsck {
        /// Also read every pack and verify every stored chunk (CRC32C and SHA-256).
        #[arg(long)]
        read_data: bool,
    },
    /// Print storage counters (the gateway must not be running).
    Stats,
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
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("S3DEDUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn scan_service(cfg: &Config) -> Arc<ScanService> {
    let scanner: Arc<dyn Scanner> = match &cfg.clamd {
        None => Arc::new(NoopScanner),
        Some(addr) => {
            let address = addr.parse().expect("validated when the config was loaded");
            let mut settings = ClamdSettings::new(address);
            settings.scan_timeout = std::time::Duration::from_secs(cfg.scan_timeout_secs);
            Arc::new(ClamdScanner::new(settings))
        }
    };
    Arc::new(ScanService::new(
        scanner,
        ScanPolicy {
            on_failure: cfg.scan_on_failure,
            max_size: cfg.scan_max_size,
            oversize: cfg.scan_oversize,
        },
    ))
}

async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let s3 = cfg.s3_settings()?;
    // An S3 round trip costs far more than a local read: fetch more, in bigger pieces
    // (measured: a 512 MiB GET over s3s-fs, 83 MB/s at 4 × 1 MiB, 257 MB/s at 8 × 4 MiB).
    let (ahead, coalesce) = if s3.is_some() {
        (8, 4 << 20)
    } else {
        (4, 1 << 20)
    };
    let store_cfg = StoreConfig {
        pack_target: cfg.pack_target,
        index_cache: cfg.index_cache,
        read_ahead: cfg.read_ahead.unwrap_or(ahead).max(1),
        coalesce_max: cfg.read_coalesce.unwrap_or(coalesce).max(64 << 10),
        ..StoreConfig::default()
    };
    let Some(s3) = s3 else {
        check_store_location(cfg, "local")?;
        return Store::open_dir(&cfg.data_dir, store_cfg)
            .await
            .with_context(|| format!("opening data directory {} (a damaged index: see the README, \"Index integrity and restoring the index\")", cfg.data_dir.display()));
    };
    let location = s3.url();
    check_store_location(cfg, &location)?;
    let blobs = S3BlobStore::connect(s3)
        .await
        .with_context(|| format!("configuring backing store {location}"))?;
    // Reachability is /health/ready's to report; an unreachable bucket at start is not
    // fatal (the gateway recovers when it comes back), but say so at once.
    if let Err(e) = blobs.check().await {
        tracing::warn!(store = %location, error = %e, "backing store not reachable yet");
    } else {
        tracing::info!(store = %location, "backing store reachable");
    }
    Store::open(&cfg.data_dir.join("index.redb"), Arc::new(blobs), store_cfg)
        .await
        .with_context(|| {
            format!(
                "opening index in {} (a damaged index: see the README, \"Index integrity and restoring the index\")",
                cfg.data_dir.display()
            )
        })
}

/// The index names packs in one backing store; opening it over another would make
/// every object unreadable and let GC's sweep delete the other store's packs. The data
/// directory remembers where its packs live, and a mismatch stops the start.
fn check_store_location(cfg: &Config, location: &str) -> anyhow::Result<()> {
    let path = cfg.data_dir.join("store-location");
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == location => Ok(()),
        Ok(found) => anyhow::bail!(
            "{} was created with backing store {:?}, not {location:?}: set S3DEDUP_STORE to \
             match (or move the packs and edit {})",
            cfg.data_dir.display(),
            found.trim(),
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            // A data directory from before this file existed used the local store.
            let previous = cfg.data_dir.join("index.redb").exists();
            if previous && location != "local" {
                anyhow::bail!(
                    "{} holds an index over the local store; it cannot switch to {location}",
                    cfg.data_dir.display()
                );
            }
            std::fs::write(&path, format!("{location}\n"))
                .with_context(|| format!("writing {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut flags = Overrides {
        data_dir: cli.data_dir.clone(),
        ..Default::default()
    };
    if let Command::Serve {
        listen,
        admin_listen,
        region,
        domain,
    } = &cli.command
    {
        flags.listen = *listen;
        flags.admin_listen = *admin_listen;
        flags.region.clone_from(region);
        flags.domain.clone_from(domain);
    }
    let cfg = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok(), &flags)?;
    init_logging(cfg.log_format);
    match cli.command {
        Command::Serve { .. } => serve(cfg).await,
        Command::Fsck { read_data } => fsck(&cfg, read_data).await,
        Command::Rescan { bucket, action } => {
            let scan = scan_service(&cfg);
            if !scan.enabled() {
                anyhow::bail!("rescan needs a scanner: set S3DEDUP_CLAMD (or clamd in the config)");
            }
            require_index(&cfg)?;
            let store = open_store(&cfg).await?;
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
        Command::Stats => {
            require_index(&cfg)?;
            let store = open_store(&cfg).await?;
            println!("{:#?}", store.stats().await?);
            Ok(())
        }
    }
}

/// Offline commands work on an existing data directory and never create one.
fn require_index(cfg: &Config) -> anyhow::Result<std::path::PathBuf> {
    let index = cfg.data_dir.join("index.redb");
    match std::fs::metadata(&index) {
        Ok(m) if m.len() > 0 => Ok(index),
        _ => anyhow::bail!(
            "no index at {} (is --data-dir / S3DEDUP_DATA_DIR right?)",
            index.display()
        ),
    }
}

async fn fsck(cfg: &Config, read_data: bool) -> anyhow::Result<()> {
    let index = require_index(cfg)?;
    // redb verifies page checksums only when asked: walk the whole file first.
    let file_ok = match s3dedup_storage::index::Index::verify_file(&index) {
        Ok(true) => {
            println!("index file: every page checksum verifies");
            true
        }
        Ok(false) => {
            println!("index file: an interrupted commit was rolled back; pages verify");
            true
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

/// Raises the soft open-file limit to the hard limit and fits the connection limit
/// under it (each connection holds a descriptor; the index, packs being written, clamd
/// and backend connections need some too).
fn connection_limit(cfg: &Config) -> usize {
    const RESERVED_FDS: u64 = 256;
    const DEFAULT_MAX: usize = 4096;
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-file limit");
            1024
        }
    };
    let fits = usize::try_from(nofile.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
    match cfg.max_connections {
        Some(n) => {
            if n > fits {
                tracing::warn!(
                    max_connections = n,
                    nofile,
                    "max_connections exceeds what the open-file limit leaves room for; accepts will fail (and back off) when descriptors run out"
                );
            }
            n
        }
        None => {
            if fits < DEFAULT_MAX {
                tracing::warn!(
                    nofile,
                    max_connections = fits,
                    "open-file limit is low; serving fewer connections at once (raise LimitNOFILE)"
                );
            }
            DEFAULT_MAX.min(fits)
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let creds = config::root_credentials(&cfg)?;
    let max_connections = connection_limit(&cfg);
    let store = open_store(&cfg).await?;
    let s3 = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let admin = tokio::net::TcpListener::bind(cfg.admin_listen)
        .await
        .with_context(|| format!("binding {}", cfg.admin_listen))?;
    let scan = scan_service(&cfg);
    if scan.enabled() {
        // Report clamd's state without holding up start-up (an unreachable clamd can take
        // the whole connect + reply deadline to say so).
        let scanner = Arc::clone(scan.scanner());
        let (addr, policy) = (cfg.clamd.clone().unwrap_or_default(), cfg.scan_on_failure);
        tokio::spawn(async move {
            match scanner.version().await {
                Ok(v) => tracing::info!(clamd = %addr, version = %v, "virus scanning enabled"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "virus scanning enabled but clamd does not answer yet; uploads fail until it does ({policy:?})"
                ),
            }
        });
        if cfg.scan_on_failure == FailurePolicy::FailOpen {
            tracing::warn!(
                "scan policy is fail-open: when clamd fails, uploads are published UNSCANNED"
            );
        }
    } else {
        tracing::warn!(
            "virus scanning is not enabled (set S3DEDUP_CLAMD): uploads are NOT scanned"
        );
    }
    if creds.created {
        println!(
            "root credentials created (shown once; kept in {}):\n  access key: {}\n  secret key: {}",
            cfg.data_dir.join("root-credentials").display(),
            creds.access_key,
            creds.secret_key
        );
    }
    // Tests and scripts read the real addresses from this line.
    println!(
        "s3dedup listening: s3=http://{} admin=http://{} data={}",
        s3.local_addr()?,
        admin.local_addr()?,
        cfg.data_dir.display()
    );
    let opts = ServeOptions {
        settings: GatewaySettings {
            region: cfg.region.clone(),
            min_part_size: cfg.min_part_size,
            scan,
        },
        credentials: Credentials {
            access_key: creds.access_key,
            secret_key: creds.secret_key,
        },
        domain: cfg.domain.clone(),
        edge: EdgePolicy { sigv2: cfg.sigv2 },
        max_connections,
        snapshots: (cfg.index_snapshot_interval_secs > 0).then(|| {
            (
                s3dedup_storage::index::snapshot_dir(&cfg.data_dir),
                SnapshotSettings {
                    interval: Some(std::time::Duration::from_secs(
                        cfg.index_snapshot_interval_secs,
                    )),
                    keep: cfg.index_snapshots,
                },
            )
        }),
    };
    if cfg.sigv2 {
        tracing::warn!("SigV2 is enabled: its signatures do not cover request bodies");
    }
    server::run(store, opts, s3, admin, server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
