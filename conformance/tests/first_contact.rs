//! What a newcomer meets first, through the real binary: configuration refusals that
//! name the key and write nothing, offline commands that refuse a missing data directory
//! or a running gateway, `stats` for people and machines, error bodies that say what is
//! wrong, and `/metrics` that `promtool` accepts.

use std::path::Path;
use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use s3dedup_conformance::{
    ACCESS_KEY, Gateway, binary, error_code, error_message, http_request, sdk_client,
    sdk_client_with,
};

fn s3dedup(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary().unwrap());
    cmd.args(args);
    // Only what the test sets: no S3DEDUP_* leaking in from the caller.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("S3DEDUP_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_configuration_is_one_line_naming_key_and_value_exit_2_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let conf = tmp.path().join("s3dedup.toml");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        ("listen = \n", &[], &["line 1", "s3dedup.toml"]),
        ("lisen = \"127.0.0.1:1\"\n", &[], &["unknown key `lisen`"]),
        (
            "scan_timeout_secs = 5\n",
            &[],
            &["scan_timeout_secs", "renamed `scan_timeout`"],
        ),
        (
            "pack_target = \"16 parsecs\"\n",
            &[],
            &["key `pack_target`", "\"16 parsecs\""],
        ),
        (
            "store_max_attempts = 0\n",
            &[],
            &["key `store_max_attempts`", "\"0\""],
        ),
        (
            "",
            &[("S3DEDUP_SCAN_TIMEOUT", "soon")],
            &["S3DEDUP_SCAN_TIMEOUT", "\"soon\""],
        ),
        (
            "",
            &[("S3DEDUP_PACK_TARGET", "1KiB")],
            &["S3DEDUP_PACK_TARGET", "\"1KiB\"", "outside"],
        ),
        (
            "",
            &[
                ("S3DEDUP_ROOT_ACCESS_KEY", "ab"),
                ("S3DEDUP_ROOT_SECRET_KEY", "long-enough-secret"),
            ],
            &["S3DEDUP_ROOT_ACCESS_KEY", "at least 3"],
        ),
        (
            "",
            &[
                ("S3DEDUP_ROOT_ACCESS_KEY", "abc"),
                ("S3DEDUP_ROOT_SECRET_KEY", "short"),
            ],
            &["S3DEDUP_ROOT_SECRET_KEY", "at least 8"],
        ),
    ];
    for (file, env, wanted) in cases {
        std::fs::write(&conf, file).unwrap();
        let o = s3dedup(
            &[
                "serve",
                "--config",
                conf.to_str().unwrap(),
                "--data-dir",
                data_s,
            ],
            env,
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{file:?} {env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        for w in *wanted {
            assert!(err.contains(w), "{file:?} {env:?}: {w:?} not in {err}");
        }
        assert!(!err.contains("short\""), "a secret was printed: {err}");
        assert!(!data.exists(), "{file:?} {env:?} created the data dir");
    }
    // A bad flag: clap's refusal, also exit 2.
    let o = s3dedup(&["serve", "--data-dir", data_s, "--listen", "nope"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--listen"), "{}", stderr(&o));
    assert!(!data.exists());
}

#[test]
fn serve_help_shows_every_setting_with_its_env_var() {
    let o = s3dedup(&["serve", "--help"], &[]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/s3dedup.example.toml"),
    )
    .unwrap();
    let keys: Vec<&str> = example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        let flag = format!("--{}", key.replace('_', "-"));
        let env = format!("[env: S3DEDUP_{}]", key.to_uppercase());
        assert!(help.contains(&flag), "{flag} missing from serve --help");
        assert!(help.contains(&env), "{env} missing from serve --help");
    }
    assert!(help.contains("[default: 16MiB]") && help.contains("[default: 120s]"));
}

#[test]
fn offline_commands_refuse_a_missing_data_dir_and_a_running_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    for cmd in [&["stats"][..], &["fsck"], &["rescan"]] {
        let mut args = cmd.to_vec();
        args.extend(["--data-dir", missing.to_str().unwrap()]);
        let env: &[(&str, &str)] = if cmd[0] == "rescan" {
            &[("S3DEDUP_CLAMD", "tcp://127.0.0.1:1")]
        } else {
            &[]
        };
        let o = s3dedup(&args, env);
        assert!(!o.status.success(), "{cmd:?}");
        assert!(
            stderr(&o).contains("does not exist"),
            "{cmd:?}: {}",
            stderr(&o)
        );
        assert!(!missing.exists(), "{cmd:?} created the data dir");
    }
    let g = Gateway::start().unwrap();
    let mut args = vec!["stats", "--data-dir", g.data_dir.to_str().unwrap()];
    let store_env = g.store_env();
    let env: Vec<(&str, &str)> = store_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let o = s3dedup(&args, &env);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("the gateway is running (pid {})", g.pid()))
            && err.contains(&g.admin_addr),
        "{err}"
    );
    args[0] = "fsck";
    let o = s3dedup(&args, &env);
    assert!(
        stderr(&o).contains("the gateway is running"),
        "{}",
        stderr(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("DAMAGED"),
        "a held index reported as damaged: {out}"
    );
}

#[test]
fn stats_prints_a_table_and_json_per_bucket() {
    let mut g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client(&g.s3_url);
    // Random bytes: incompressible, so stored bytes are the unique bytes plus framing.
    let mut body = vec![0u8; 3 << 20];
    rand::Rng::fill(
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3),
        &mut body[..],
    );
    rt.block_on(async {
        for b in ["alpha", "beta"] {
            c.create_bucket().bucket(b).send().await.unwrap();
        }
        // The same 3 MiB three times: stored once.
        for (b, k) in [("alpha", "a"), ("alpha", "b"), ("beta", "c")] {
            c.put_object()
                .bucket(b)
                .key(k)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
        }
    });
    g.stop().unwrap();
    let store_env = g.store_env();
    let env: Vec<(&str, &str)> = store_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let dir = g.data_dir.to_str().unwrap().to_owned();
    let o = s3dedup(&["stats", "--json", "--data-dir", &dir], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["objects"], 3);
    assert_eq!(j["logical_bytes"], 9u64 << 20);
    assert_eq!(j["unique_bytes"], 3u64 << 20);
    let stored = j["stored_bytes"].as_u64().unwrap();
    assert!((3 << 20..4 << 20).contains(&stored), "{stored}");
    assert_eq!(j["saved_bytes"].as_u64().unwrap(), (9 << 20) - stored);
    assert!(j["dedup_ratio"].as_f64().unwrap() > 2.5);
    assert!(j["compression_ratio"].as_f64().unwrap() <= 1.0, "{j}");
    let buckets = j["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["name"], "alpha");
    assert_eq!(buckets[0]["objects"], 2);
    assert_eq!(buckets[0]["logical_bytes"], 6u64 << 20);
    assert_eq!(buckets[1]["name"], "beta");
    assert_eq!(buckets[1]["objects"], 1);

    let o = s3dedup(&["stats", "--data-dir", &dir], &env);
    assert!(o.status.success());
    let table = String::from_utf8_lossy(&o.stdout);
    for want in [
        "logical", "9.0 MiB", "unique", "3.0 MiB", "saved", "ratio", "alpha", "beta",
    ] {
        assert!(table.contains(want), "{want:?} not in\n{table}");
    }
}

#[test]
fn error_bodies_say_what_is_wrong_and_carry_the_request_id() {
    let g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // A wrong secret: s3s's own refusal, completed with a message.
        let bad = sdk_client_with(&g.s3_url, |b| {
            b.credentials_provider(aws_credential_types::Credentials::from_keys(
                ACCESS_KEY,
                "not-the-secret-key",
                None,
            ))
        });
        let e = bad.list_buckets().send().await.unwrap_err();
        assert_eq!(error_code(&e), "SignatureDoesNotMatch");
        let m = error_message(&e);
        assert!(m.contains("signature"), "{m:?}");
        let c = sdk_client(&g.s3_url);
        let e = c.head_bucket().bucket("absent").send().await.unwrap_err();
        assert_eq!(s3dedup_conformance::error_status(&e), 404);
        c.create_bucket().bucket("versions").send().await.unwrap();
        let v = c
            .get_bucket_versioning()
            .bucket("versions")
            .send()
            .await
            .unwrap();
        assert!(v.status().is_none(), "unversioned: {v:?}");
        let e = c
            .get_bucket_versioning()
            .bucket("absent")
            .send()
            .await
            .unwrap_err();
        assert_eq!(error_code(&e), "NoSuchBucket");
    });
    // Raw requests s3s refuses before our code runs.
    let (status, body) = http_request(g.s3_addr(), "GET", "/", &[], &[]).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 403);
    assert!(
        body.contains("<Message>") && body.contains("<RequestId>"),
        "{body}"
    );
    let signed = signed_headers(&g, "PUT", "/Bad_Bucket");
    let (status, body) = http_request(g.s3_addr(), "PUT", "/Bad_Bucket", &signed, &[]).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("<Code>InvalidBucketName</Code>")
            && body.contains("lowercase letters")
            && body.contains("<RequestId>"),
        "{body}"
    );
}

/// SigV4 headers for an empty-bodied request with the harness's root key.
fn signed_headers(g: &Gateway, method: &str, path: &str) -> Vec<(&'static str, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        ACCESS_KEY,
        s3dedup_conformance::SECRET_KEY,
        None,
        None,
        "t",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{}{path}", g.s3_url);
    let host = g.s3_addr().to_owned();
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        [("host", host.as_str())].into_iter(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut out = vec![("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned())];
    for (k, v) in instructions.headers() {
        match k {
            "authorization" => out.push(("authorization", v.to_owned())),
            "x-amz-date" => out.push(("x-amz-date", v.to_owned())),
            _ => {}
        }
    }
    out
}

#[test]
fn metrics_pass_promtool_and_count_refused_requests() {
    let g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = sdk_client(&g.s3_url);
        c.create_bucket().bucket("metered").send().await.unwrap();
        c.put_object()
            .bucket("metered")
            .key("k")
            .body(ByteStream::from_static(b"hello"))
            .send()
            .await
            .unwrap();
        c.get_object()
            .bucket("metered")
            .key("k")
            .send()
            .await
            .unwrap();
        // Not implemented here: counted, under its own name.
        let e = c
            .get_bucket_analytics_configuration()
            .bucket("metered")
            .id("a")
            .send()
            .await
            .unwrap_err();
        assert_eq!(error_code(&e), "NotImplemented");
    });
    // Refused before routing (no signature).
    let (status, _) = http_request(&g.admin_addr, "GET", "/health/live", &[], &[]).unwrap();
    assert_eq!(status, 200);
    let (status, _) = http_request(g.s3_addr(), "GET", "/metered", &[], &[]).unwrap();
    assert_eq!(status, 403);
    let (_, text) = g.admin_get("/metrics").unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("promtool (Debian package prometheus) must be installed");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every family has HELP and TYPE.
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(families.len() > 10, "{families:?}");
    for f in &families {
        assert!(text.contains(&format!("# HELP {f} ")), "no HELP for {f}");
    }
    let count = |labels: &[&str]| g.metric_sum("s3dedup_requests_total", labels).unwrap();
    assert_eq!(count(&["operation=\"PutObject\"", "status=\"200\""]), 1.0);
    assert_eq!(
        count(&[
            "operation=\"GetBucketAnalyticsConfiguration\"",
            "status=\"501\""
        ]),
        1.0
    );
    assert!(count(&["status=\"403\""]) >= 1.0);
    assert!(
        text.lines().any(|l| l.starts_with("s3dedup_build_info{")
            && l.contains("version=\"")
            && l.contains("commit=\"")
            && l.contains("encryption=\"off\"")
            && l.ends_with(" 1")),
        "no build_info"
    );
}

#[test]
fn one_log_line_per_request_without_bodies_secrets_or_colours() {
    let g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = sdk_client(&g.s3_url);
        c.create_bucket().bucket("logged").send().await.unwrap();
        c.put_object()
            .bucket("logged")
            .key("mib")
            .body(ByteStream::from(vec![7u8; 1 << 20]))
            .send()
            .await
            .unwrap();
        let got = c
            .get_object()
            .bucket("logged")
            .key("mib")
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().len(),
            1 << 20
        );
    });
    // A malformed DeleteObjects body: s3s used to log it whole at ERROR.
    let marker = "MARKER-BODY-4f1c9e";
    let body = format!("<Delete><Object><Key>{marker}</Key></Object><<<not xml");
    let headers = signed_headers(&g, "POST", "/logged?delete");
    let (status, _) = http_request(
        g.s3_addr(),
        "POST",
        "/logged?delete",
        &[
            headers.as_slice(),
            &[("content-md5", {
                use base64::Engine as _;
                use md5::Digest as _;
                base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
            })],
        ]
        .concat(),
        body.as_bytes(),
    )
    .unwrap();
    assert!((400..500).contains(&status), "{status}");
    let log = std::fs::read_to_string(g.data_dir.join("gateway.log")).unwrap();
    assert!(!log.contains(marker), "the request body was logged:\n{log}");
    assert!(
        !log.contains(s3dedup_conformance::SECRET_KEY),
        "the secret key was logged"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI colours in a non-terminal log"
    );
    assert!(
        !log.contains("ERROR"),
        "client errors logged at ERROR:\n{log}"
    );
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" request ")).collect();
    let create: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("operation=\"CreateBucket\""))
        .collect();
    assert_eq!(create.len(), 1, "{lines:#?}");
    for field in [
        "status=200",
        "bytes_in=",
        "bytes_out=",
        "ms=",
        "request_id=",
    ] {
        assert!(create[0].contains(field), "{field} missing: {}", create[0]);
    }
    // Written when the body has been sent: the bytes actually sent.
    let get: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("operation=\"GetObject\""))
        .collect();
    assert_eq!(get.len(), 1, "{lines:#?}");
    assert!(
        get[0].contains("bytes_out=1048576") && !get[0].contains("aborted"),
        "{}",
        get[0]
    );
    let refused: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("operation=\"DeleteObjects\""))
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(
        refused[0].contains(&format!("status={status}")),
        "{}",
        refused[0]
    );
}
