//! HTTPS on both ports: real clients (aws CLI, boto3, rclone, restic, the admin CLI)
//! trusting a test CA, a certificate swapped on SIGHUP without dropping connections,
//! old protocol versions and plain HTTP refused, and the S3 backing store reached over
//! HTTPS with a private CA bundle.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use s3dedup_conformance::s3server::S3Server;
use s3dedup_conformance::testca::{ServerCert, TestCa};
use s3dedup_conformance::{ACCESS_KEY, Gateway, SECRET_KEY, TEST_BUCKET, TEST_PREFIX};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_gateway(dir: &Path, cert: &ServerCert, extra: &[(&str, &str)]) -> Gateway {
    let (c, k) = (
        cert.chain_file.to_str().unwrap(),
        cert.key_file.to_str().unwrap(),
    );
    let mut env = vec![("S3DEDUP_TLS_CERT", c), ("S3DEDUP_TLS_KEY", k)];
    env.extend_from_slice(extra);
    Gateway::start_with(&dir.join("gw"), &env).unwrap()
}

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn client_config(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: &str, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

fn leaf(s: &Tls) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One keep-alive `GET path` on `s`; returns the status (the body is read by length).
async fn get(s: &mut Tls, path: &str) -> u16 {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn real_clients_work_over_https_with_a_private_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ca = TestCa::new(t, "one").unwrap();
    let cert = ca.issue(t, "server").unwrap();
    let g = tls_gateway(t, &cert, &[]);
    assert!(g.s3_url.starts_with("https://"), "{}", g.s3_url);
    let ca_file = ca.ca_file.to_str().unwrap();
    let data = t.join("data.bin");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&data, &payload).unwrap();

    // aws CLI v2 (Debian's): bucket, multipart upload, download.
    let aws = |args: &[&str]| {
        let mut c = s3dedup_conformance::aws_command("aws", &g, t);
        c.args(["--ca-bundle", ca_file]).args(args);
        run(&mut c)
    };
    aws(&["s3", "mb", "s3://tls"]);
    aws(&["s3", "cp", data.to_str().unwrap(), "s3://tls/aws.bin"]);
    aws(&[
        "s3",
        "cp",
        "s3://tls/aws.bin",
        t.join("aws.out").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(t.join("aws.out")).unwrap(), payload);

    // boto3, verifying against the CA.
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python");
    let script = r#"
import boto3, os, sys
c = boto3.client("s3", endpoint_url=os.environ["EP"], region_name="us-east-1",
    aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"],
    verify=os.environ["CA"])
c.put_object(Bucket="tls", Key="boto3.txt", Body=b"hello over tls")
assert c.get_object(Bucket="tls", Key="boto3.txt")["Body"].read() == b"hello over tls"
print("boto3 tls: ok")
"#;
    let out = run(Command::new(python)
        .args(["-c", script])
        .env("EP", &g.s3_url)
        .env("AK", ACCESS_KEY)
        .env("SK", SECRET_KEY)
        .env("CA", ca_file)
        .env_remove("AWS_CA_BUNDLE"));
    assert!(out.contains("boto3 tls: ok"), "{out}");

    // rclone.
    let mut rc = s3dedup_conformance::rclone(&g, t);
    run(rc.args([
        "--ca-cert",
        ca_file,
        "copyto",
        data.to_str().unwrap(),
        "s3d:tls/rclone.bin",
    ]));
    let mut rc = s3dedup_conformance::rclone(&g, t);
    let listed = run(rc.args(["--ca-cert", ca_file, "lsl", "s3d:tls"]));
    assert!(listed.contains("rclone.bin"), "{listed}");

    // restic: a repository over HTTPS, backed up and checked.
    let rs = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.args(["--cacert", ca_file])
            .args(args)
            .env("RESTIC_REPOSITORY", format!("s3:{}/restic-tls", g.s3_url))
            .env("RESTIC_PASSWORD", "s3dedup-test")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("RESTIC_CACHE_DIR", t.join("restic-cache"));
        run(&mut c)
    };
    rs(&["init"]);
    rs(&["backup", data.to_str().unwrap()]);
    rs(&["check", "--read-data"]);

    // Without the CA, clients refuse the gateway's certificate.
    let mut c = s3dedup_conformance::aws_command("aws", &g, t);
    let out = c.args(["s3", "ls", "s3://tls"]).output().unwrap();
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );

    // The admin CLI beside the server trusts the certificate file the server recorded.
    let admin = Command::new(s3dedup_conformance::binary().unwrap())
        .args(["admin", "mode", "--data-dir"])
        .arg(&g.data_dir)
        .env_remove("S3DEDUP_ADMIN_URL")
        .output()
        .unwrap();
    assert!(
        admin.status.success(),
        "admin over https: {}",
        String::from_utf8_lossy(&admin.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&admin.stdout).trim(), "read-write");
    // Metrics and health over https (curl with the CA).
    let health = run(Command::new("curl").args([
        "-sS",
        "--cacert",
        ca_file,
        &format!("https://{}/health/ready", g.admin_addr),
    ]));
    assert_eq!(health.trim(), "ready");
}

#[tokio::test]
async fn a_certificate_swapped_on_sighup_reaches_new_connections_and_open_ones_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ca1 = TestCa::new(t, "one").unwrap();
    let ca2 = TestCa::new(t, "two").unwrap();
    let first = ca1.issue(t, "first").unwrap();
    let second = ca2.issue(t, "second").unwrap();
    let live = ca1.issue(t, "live").unwrap();
    let g = tls_gateway(t, &live, &[]);
    let addr = g.s3_addr().to_owned();
    let trust_both = {
        let both = t.join("both.pem");
        let pem = std::fs::read_to_string(&ca1.ca_file).unwrap()
            + &std::fs::read_to_string(&ca2.ca_file).unwrap();
        std::fs::write(&both, pem).unwrap();
        client_config(&both, rustls::DEFAULT_VERSIONS)
    };
    let mut held = connect(&addr, Arc::clone(&trust_both)).await.unwrap();
    assert_eq!(leaf(&held), live.leaf_der);
    assert_eq!(get(&mut held, "/").await, 403);

    // A broken file on SIGHUP keeps the old certificate (and the server).
    std::fs::write(&live.chain_file, "garbage").unwrap();
    Command::new("kill")
        .args(["-HUP", &g.pid().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = connect(&addr, Arc::clone(&trust_both)).await.unwrap();
    assert_eq!(
        leaf(&s),
        live.leaf_der,
        "a bad file replaced the certificate"
    );

    // The operator renews: new files from another CA, then SIGHUP.
    std::fs::copy(&second.chain_file, &live.chain_file).unwrap();
    std::fs::copy(&second.key_file, &live.key_file).unwrap();
    Command::new("kill")
        .args(["-HUP", &g.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = connect(&addr, Arc::clone(&trust_both)).await.unwrap();
        if leaf(&s) == second.leaf_der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A client trusting only the old CA now fails; the held connection still works.
    assert!(
        connect(&addr, client_config(&ca1.ca_file, rustls::DEFAULT_VERSIONS))
            .await
            .is_err()
    );
    assert_eq!(
        get(&mut held, "/").await,
        403,
        "the open connection was dropped"
    );
    let _ = first;
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_served_older_versions_and_plain_http_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ca = TestCa::new(t, "one").unwrap();
    let cert = ca.issue(t, "server").unwrap();
    let g = tls_gateway(t, &cert, &[]);
    let addr = g.s3_addr().to_owned();
    for (name, v) in [
        ("1.2", &rustls::version::TLS12),
        ("1.3", &rustls::version::TLS13),
    ] {
        let mut s = connect(&addr, client_config(&ca.ca_file, &[v]))
            .await
            .unwrap();
        assert_eq!(
            s.get_ref().1.protocol_version(),
            Some(v.version),
            "TLS {name}"
        );
        assert_eq!(get(&mut s, "/").await, 403, "TLS {name}");
    }
    for admin in [false, true] {
        let target = if admin {
            g.admin_addr.clone()
        } else {
            addr.clone()
        };
        // A TLS 1.1 ClientHello: answered with a fatal alert, never a ServerHello.
        let mut s = TcpStream::connect(&target).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&tls11_client_hello()).unwrap();
        let mut reply = [0u8; 7];
        let n = s.read(&mut reply).unwrap_or(0);
        assert!(
            n >= 7 && reply[0] == 0x15,
            "TLS 1.1 hello answered {:?}",
            &reply[..n]
        );
        assert_eq!(reply[5], 2, "alert level must be fatal");
        assert!(
            reply[6] == 70 || reply[6] == 40,
            "alert {} (want protocol_version or handshake_failure)",
            reply[6]
        );
        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut s = TcpStream::connect(&target).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(
            !String::from_utf8_lossy(&buf).contains("HTTP/1."),
            "plain HTTP was answered on a TLS port ({})",
            if admin { "admin" } else { "s3" }
        );
    }
}

/// A minimal TLS 1.1 ClientHello (record and handshake version 3.2, no
/// supported_versions extension) offering common TLS 1.0/1.1 suites.
fn tls11_client_hello() -> Vec<u8> {
    let suites: [u16; 4] = [0xc013, 0xc014, 0x002f, 0x0035];
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    // extensions: supported groups (x25519, secp256r1), ec point formats.
    let ext: Vec<u8> = vec![
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, //
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,
    ];
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x02];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn the_s3_store_over_https_with_a_private_ca_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ca = TestCa::new(t, "backend").unwrap();
    let cert = ca.issue(t, "backend").unwrap();
    let server = S3Server::start_tls(
        &t.join("s3"),
        None,
        Some((&cert.chain_file, &cert.key_file)),
    )
    .unwrap();
    server.create_bucket(TEST_BUCKET).unwrap();
    assert!(server.url.starts_with("https://"));
    let env: Vec<(String, String)> = server.gateway_env(TEST_BUCKET, TEST_PREFIX);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // Without the bundle the backend's certificate is not trusted: no start.
    let refused = Gateway::start_with(&t.join("untrusted"), &env);
    let err = match refused {
        Ok(_) => panic!("an untrusted backend was used"),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("dispatch failure"),
        "{err}"
    );

    env.push(("S3DEDUP_STORE_CA_BUNDLE", ca.ca_file.to_str().unwrap()));
    let g = Gateway::start_with(&t.join("trusted"), &env).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = s3dedup_conformance::sdk_client(&g.s3_url);
        c.create_bucket().bucket("bkt").send().await.unwrap();
        let body = vec![42u8; 1 << 20];
        c.put_object()
            .bucket("bkt")
            .key("k")
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
        assert_eq!(s3dedup_conformance::get_bytes(&c, "bkt", "k").await, body);
    });
    assert!(
        !server.objects(TEST_BUCKET, TEST_PREFIX).unwrap().is_empty(),
        "no pack reached the HTTPS backend"
    );
}

#[test]
fn a_sighup_without_tls_is_logged_and_the_gateway_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_in(tmp.path()).unwrap();
    Command::new("kill")
        .args(["-HUP", &g.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = tmp.path().join("gateway.log");
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("nothing to reload")
    {
        assert!(Instant::now() < deadline, "SIGHUP was not handled");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(g.admin_get("/health/live").unwrap().0, 200);
}
