//! Where `s3dedup admin …` finds the running server and its token.

use std::path::PathBuf;

use super::client::{AdminClient, CA_ENV, URL_ENV};
use super::token;

/// Where the running server is, and where its token is.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Admin API URL [env: S3DEDUP_ADMIN_URL]; unset = the URL the server running on the
    /// data dir recorded, else http://<S3DEDUP_ADMIN_LISTEN>, else http://127.0.0.1:9001.
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// Data dir of the server, for its admin-token [env: S3DEDUP_DATA_DIR; default
    /// ./s3dedup-data]. S3DEDUP_ADMIN_TOKEN, when set, is used instead.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Target {
    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| env("S3DEDUP_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./s3dedup-data"))
    }

    fn url(&self) -> String {
        if let Some(u) = self.admin.clone().or_else(|| env(URL_ENV)) {
            return u;
        }
        // `serve` writes its pid and admin URL into the data dir.
        let recorded = self
            .recorded_line(1)
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        recorded
            .or_else(|| env("S3DEDUP_ADMIN_LISTEN").map(|a| format!("http://{a}")))
            .unwrap_or_else(|| "http://127.0.0.1:9001".into())
    }

    /// Line `n` of the pid file of the server running on the data dir.
    fn recorded_line(&self, n: usize) -> Option<String> {
        std::fs::read_to_string(self.data_dir().join("s3dedup.pid"))
            .ok()
            .and_then(|t| t.lines().nth(n).map(str::to_owned))
            .filter(|l| !l.is_empty())
    }

    pub(super) fn client(&self) -> anyhow::Result<AdminClient> {
        let token = token::client_token(&self.data_dir()).map_err(|e| {
            anyhow::anyhow!("{e} (set S3DEDUP_ADMIN_TOKEN, or --data-dir to the server's data dir)")
        })?;
        // For https: S3DEDUP_ADMIN_CA, and the certificate file of the server beside us
        // (its chain, self-signed or ending in its CA, is what it presents).
        let trust: Vec<PathBuf> = env(CA_ENV)
            .map(PathBuf::from)
            .into_iter()
            .chain(self.recorded_line(2).map(PathBuf::from))
            .collect();
        AdminClient::new(&self.url(), token, &trust)
    }
}
