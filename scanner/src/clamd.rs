//! clamd over TCP or a unix socket.
//!
//! Connections come from `clamav-client` (its transports, `PING` and `VERSION`); the
//! `INSTREAM` session is driven here because a scan is fed while the upload arrives and
//! because clamd's early replies (size limit) must be read, not lost to a broken pipe.
//! Every step has a deadline: connect, each write, and the verdict after the stream ends.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use clamav_client::tokio::{Socket, Tcp, TransportProtocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::time::timeout;

use crate::{ScanError, ScanStream, Scanner, Verdict, parse_reply};

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    /// `tcp://host:port`
    Tcp(String),
    /// `unix:///path/to/clamd.sock`
    Unix(PathBuf),
}

impl FromStr for ClamdAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(hp) = s.strip_prefix("tcp://") {
            let hp = hp.trim_end_matches('/');
            match hp.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                    Ok(ClamdAddress::Tcp(hp.to_owned()))
                }
                _ => Err(format!("expected tcp://host:port, got {s:?}")),
            }
        } else if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                Ok(ClamdAddress::Unix(PathBuf::from(path)))
            } else {
                Err(format!("expected unix:///absolute/path, got {s:?}"))
            }
        } else {
            Err(format!(
                "clamd address must be tcp://host:port or unix:///path, got {s:?}"
            ))
        }
    }
}

impl std::fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddress::Tcp(hp) => write!(f, "tcp://{hp}"),
            ClamdAddress::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// How to talk to clamd.
#[derive(Debug, Clone)]
pub struct ClamdSettings {
    /// Where it listens.
    pub address: ClamdAddress,
    /// Deadline for connecting.
    pub connect_timeout: Duration,
    /// Deadline for each write (clamd stalled or gone).
    pub io_timeout: Duration,
    /// Deadline for the verdict once the whole stream is sent.
    pub scan_timeout: Duration,
}

impl ClamdSettings {
    /// Defaults for `address`: connect 5 s, each write 30 s, verdict 120 s.
    pub fn new(address: ClamdAddress) -> Self {
        ClamdSettings {
            address,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            scan_timeout: Duration::from_secs(120),
        }
    }
}

/// Largest `INSTREAM` frame sent (clamd refuses frames above its StreamMaxLength).
const MAX_FRAME: usize = 1 << 20;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A [`Scanner`] backed by clamd.
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    settings: ClamdSettings,
}

impl ClamdScanner {
    /// A scanner for `settings` (connects per scan; nothing is opened here).
    pub fn new(settings: ClamdSettings) -> Self {
        ClamdScanner { settings }
    }

    /// The settings in use.
    pub fn settings(&self) -> &ClamdSettings {
        &self.settings
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> ScanError {
        ScanError::Unavailable(format!("clamd at {}: {e}", self.settings.address))
    }

    async fn within<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = std::io::Result<T>>,
    ) -> Result<T, ScanError> {
        match timeout(limit, fut).await {
            Err(_) => Err(ScanError::Timeout(limit)),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Io>, ScanError> {
        let limit = self.settings.connect_timeout;
        Ok(match &self.settings.address {
            ClamdAddress::Tcp(hp) => {
                let s = self
                    .within(
                        limit,
                        Tcp {
                            host_address: hp.as_str(),
                        }
                        .connect(),
                    )
                    .await?;
                // Frames are written whole; do not let Nagle hold the last one back.
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            ClamdAddress::Unix(p) => Box::new(
                self.within(
                    limit,
                    Socket {
                        socket_path: p.as_path(),
                    }
                    .connect(),
                )
                .await?,
            ),
        })
    }

    /// Sends a one-word command and returns the reply (connect and reply deadlines).
    async fn command(&self, which: Command) -> Result<Vec<u8>, ScanError> {
        async fn send<T: TransportProtocol>(t: T, which: Command) -> std::io::Result<Vec<u8>> {
            match which {
                Command::Ping => clamav_client::tokio::ping(t).await,
                Command::Version => clamav_client::tokio::get_version(t).await,
            }
        }
        let limit = self.settings.connect_timeout + self.settings.io_timeout;
        match &self.settings.address {
            ClamdAddress::Tcp(hp) => {
                let t = Tcp {
                    host_address: hp.as_str(),
                };
                self.within(limit, send(t, which)).await
            }
            ClamdAddress::Unix(p) => {
                let s = Socket {
                    socket_path: p.as_path(),
                };
                self.within(limit, send(s, which)).await
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Command {
    Ping,
    Version,
}

#[async_trait]
impl Scanner for ClamdScanner {
    async fn open(&self) -> Result<Box<dyn ScanStream>, ScanError> {
        let mut conn = BufWriter::with_capacity(256 * 1024, self.connect().await?);
        self.within(self.settings.io_timeout, conn.write_all(b"zINSTREAM\0"))
            .await?;
        Ok(Box::new(ClamdStream {
            scanner: self.clone(),
            conn,
        }))
    }

    async fn version(&self) -> Result<String, ScanError> {
        let raw = self.command(Command::Version).await?;
        let v = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\0', '\n'])
            .to_owned();
        if v.starts_with("ClamAV ") {
            Ok(v)
        } else {
            Err(ScanError::Protocol(v))
        }
    }

    async fn ping(&self) -> Result<(), ScanError> {
        let raw = self.command(Command::Ping).await?;
        if raw.as_slice() == clamav_client::PONG || raw.as_slice() == b"PONG\n" {
            Ok(())
        } else {
            Err(ScanError::Protocol(
                String::from_utf8_lossy(&raw).into_owned(),
            ))
        }
    }
}

struct ClamdStream {
    scanner: ClamdScanner,
    conn: BufWriter<Box<dyn Io>>,
}

impl ClamdStream {
    /// After a failed write: clamd may have closed the stream with a reason (size limit);
    /// read it briefly so the caller learns the reason, not just "broken pipe".
    async fn explain(&mut self, err: ScanError) -> ScanError {
        let mut reply = Vec::new();
        let read = timeout(
            Duration::from_secs(2),
            self.conn.get_mut().read_to_end(&mut reply),
        )
        .await;
        match (read, parse_reply(&reply)) {
            (Ok(_), Err(e @ (ScanError::TooLarge(_) | ScanError::Scanner(_)))) => e,
            _ => err,
        }
    }
}

#[async_trait]
impl ScanStream for ClamdStream {
    async fn write(&mut self, data: Bytes) -> Result<(), ScanError> {
        let limit = self.scanner.settings.io_timeout;
        for frame in data.chunks(MAX_FRAME) {
            let len = u32::try_from(frame.len()).expect("frames are at most 1 MiB");
            let sent = self
                .scanner
                .within(limit, async {
                    self.conn.write_all(&len.to_be_bytes()).await?;
                    self.conn.write_all(frame).await
                })
                .await;
            if let Err(e) = sent {
                return Err(self.explain(e).await);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Verdict, ScanError> {
        let s = self.scanner.clone();
        let ended = s
            .within(s.settings.io_timeout, async {
                self.conn.write_all(&0u32.to_be_bytes()).await?;
                self.conn.flush().await
            })
            .await;
        if let Err(e) = ended {
            return Err(self.explain(e).await);
        }
        let mut reply = Vec::with_capacity(64);
        s.within(
            s.settings.scan_timeout,
            self.conn.get_mut().read_to_end(&mut reply),
        )
        .await?;
        parse_reply(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            "tcp://127.0.0.1:3310".parse(),
            Ok(ClamdAddress::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(
            "tcp://clamd:3310/".parse(),
            Ok(ClamdAddress::Tcp("clamd:3310".into()))
        );
        assert_eq!(
            "unix:///run/clamav/clamd.ctl".parse(),
            Ok(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
        for bad in [
            "127.0.0.1:3310",
            "tcp://host",
            "tcp://:3310",
            "tcp://h:99999",
            "unix://relative",
            "http://x:1",
        ] {
            assert!(bad.parse::<ClamdAddress>().is_err(), "{bad}");
        }
        assert_eq!(
            ClamdAddress::Tcp("h:1".into()).to_string(),
            "tcp://h:1".to_owned()
        );
    }
}

/// Behaviour against misbehaving peers (a stalled or confused clamd); the real clamd is
/// exercised by the gateway's scanning suite.
#[cfg(test)]
mod peer_tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A peer that reads everything and then answers `reply` (or stalls if `None`).
    async fn peer(reply: Option<&'static [u8]>) -> ClamdSettings {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut seen = Vec::new();
                    // Read until the zero-length terminator frame.
                    while !seen.ends_with(&[0, 0, 0, 0]) {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    match reply {
                        Some(r) => {
                            let _ = s.write_all(r).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        let mut s = ClamdSettings::new(ClamdAddress::Tcp(addr.to_string()));
        s.scan_timeout = Duration::from_millis(300);
        s.io_timeout = Duration::from_millis(300);
        s
    }

    async fn scan(settings: ClamdSettings) -> Result<Verdict, ScanError> {
        let scanner = ClamdScanner::new(settings);
        let mut s = scanner.open().await?;
        s.write(Bytes::from_static(b"some bytes")).await?;
        s.finish().await
    }

    #[tokio::test]
    async fn a_stalled_clamd_times_out() {
        let r = scan(peer(None).await).await;
        assert_eq!(r, Err(ScanError::Timeout(Duration::from_millis(300))));
    }

    #[tokio::test]
    async fn replies_are_parsed_strictly() {
        assert_eq!(
            scan(peer(Some(b"stream: OK\0")).await).await,
            Ok(Verdict::Clean)
        );
        assert_eq!(
            scan(peer(Some(b"stream: Foo.Bar FOUND\0")).await).await,
            Ok(Verdict::Infected("Foo.Bar".into()))
        );
        assert!(matches!(
            scan(peer(Some(b"PONG\0")).await).await,
            Err(ScanError::Protocol(_))
        ));
        // Closing without a reply is not a verdict either.
        assert!(matches!(
            scan(peer(Some(b"")).await).await,
            Err(ScanError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn nobody_listening_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = ClamdScanner::new(ClamdSettings::new(ClamdAddress::Tcp(format!(
            "127.0.0.1:{port}"
        ))));
        assert!(matches!(
            s.open().await.err(),
            Some(ScanError::Unavailable(_))
        ));
        assert!(matches!(s.ping().await, Err(ScanError::Unavailable(_))));
        assert!(matches!(s.version().await, Err(ScanError::Unavailable(_))));
    }
}
