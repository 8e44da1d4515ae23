//! Settings: layering, refusals, units, the example file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3dedup.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn defaults_alone_load() {
    let s = load_from(["s3dedup"], None, |_| None).unwrap();
    assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(s.pack_target, 16 << 20);
    assert_eq!(s.scan_timeout, Duration::from_secs(120));
    assert_eq!(s.index_snapshot_interval, Duration::from_secs(3600));
    assert!(s.clamd.is_none() && s.store.is_none() && !s.sigv2);
    assert!(s.s3_settings().is_none());
}

/// File < env < flag, for a setting of each kind: address, path, string, duration,
/// size, enum, bool, optional number.
#[test]
fn file_then_env_then_flag_for_every_kind() {
    let (_d, file) = file_with(
        r#"
listen = "127.0.0.1:7001"
data_dir = "/from/file"
region = "file-region"
scan_timeout = "1m"
pack_target = "2MiB"
log_format = "json"
sigv2 = true
read_ahead = 3
"#,
    );
    let file = Some(file.as_path());
    let only_file = load_from(["s3dedup"], file, |_| None).unwrap();
    assert_eq!(only_file.listen, "127.0.0.1:7001".parse().unwrap());
    assert_eq!(only_file.data_dir, PathBuf::from("/from/file"));
    assert_eq!(only_file.region, "file-region");
    assert_eq!(only_file.scan_timeout, Duration::from_secs(60));
    assert_eq!(only_file.pack_target, 2 << 20);
    assert_eq!(only_file.log_format, LogFormat::Json);
    assert!(only_file.sigv2);
    assert_eq!(only_file.read_ahead, Some(3));

    let env = env_of(&[
        ("S3DEDUP_LISTEN", "127.0.0.1:7002"),
        ("S3DEDUP_DATA_DIR", "/from/env"),
        ("S3DEDUP_REGION", "env-region"),
        ("S3DEDUP_SCAN_TIMEOUT", "90"),
        ("S3DEDUP_PACK_TARGET", "4194304"),
        ("S3DEDUP_LOG_FORMAT", "text"),
        ("S3DEDUP_SIGV2", "false"),
        ("S3DEDUP_READ_AHEAD", "5"),
    ]);
    let env_over_file = load_from(["s3dedup"], file, &env).unwrap();
    assert_eq!(env_over_file.listen, "127.0.0.1:7002".parse().unwrap());
    assert_eq!(env_over_file.data_dir, PathBuf::from("/from/env"));
    assert_eq!(env_over_file.region, "env-region");
    assert_eq!(env_over_file.scan_timeout, Duration::from_secs(90));
    assert_eq!(env_over_file.pack_target, 4 << 20);
    assert_eq!(env_over_file.log_format, LogFormat::Text);
    assert!(!env_over_file.sigv2);
    assert_eq!(env_over_file.read_ahead, Some(5));

    let flags = [
        "s3dedup",
        "--listen=127.0.0.1:7003",
        "--data-dir=/from/flag",
        "--region=flag-region",
        "--scan-timeout=5m",
        "--pack-target=8MiB",
        "--log-format=json",
        "--sigv2",
        "--read-ahead=7",
    ];
    let flag_over_env = load_from(flags, file, &env).unwrap();
    assert_eq!(flag_over_env.listen, "127.0.0.1:7003".parse().unwrap());
    assert_eq!(flag_over_env.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(flag_over_env.region, "flag-region");
    assert_eq!(flag_over_env.scan_timeout, Duration::from_secs(300));
    assert_eq!(flag_over_env.pack_target, 8 << 20);
    assert_eq!(flag_over_env.log_format, LogFormat::Json);
    assert!(flag_over_env.sigv2);
    assert_eq!(flag_over_env.read_ahead, Some(7));
}

#[test]
fn an_empty_value_means_unset() {
    let (_d, file) = file_with("clamd = \"tcp://127.0.0.1:3310\"\nregion = \"\"\n");
    let s = load_from(["s3dedup"], Some(&file), env_of(&[])).unwrap();
    assert!(s.clamd.is_some());
    assert_eq!(s.region, "us-east-1");
    // The environment's empty value unsets what the file set.
    let s = load_from(
        ["s3dedup"],
        Some(&file),
        env_of(&[("S3DEDUP_CLAMD", ""), ("S3DEDUP_LISTEN", "")]),
    )
    .unwrap();
    assert!(s.clamd.is_none());
    assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
}

#[test]
fn refusals_name_the_key_and_the_value() {
    let err = |file: Option<&str>, vars: &[(&str, &str)]| -> String {
        let f = file.map(file_with);
        let path = f.as_ref().map(|(_, p)| p.as_path());
        match load_from(["s3dedup"], path, env_of(vars)) {
            Ok(_) => panic!("accepted {file:?} {vars:?}"),
            Err(e) => e.to_string(),
        }
    };
    let e = err(Some("lisen = \"127.0.0.1:1\"\n"), &[]);
    assert!(e.contains("unknown key `lisen`"), "{e}");
    let e = err(Some("scan_timeout_secs = 3\n"), &[]);
    assert!(e.contains("renamed `scan_timeout`"), "{e}");
    let e = err(Some("pack_target = \"16 parsecs\"\n"), &[]);
    assert!(
        e.contains("key `pack_target`") && e.contains("\"16 parsecs\""),
        "{e}"
    );
    let e = err(Some("listen = [1, 2]\n"), &[]);
    assert!(e.contains("key `listen`"), "{e}");
    let e = err(Some("listen = \n"), &[]);
    assert!(e.contains("config file") && e.contains("line 1"), "{e}");
    let e = err(None, &[("S3DEDUP_SCAN_TIMEOUT", "soon")]);
    assert!(
        e.contains("S3DEDUP_SCAN_TIMEOUT") && e.contains("\"soon\""),
        "{e}"
    );
    let e = err(None, &[("S3DEDUP_PACK_TARGET", "1KiB")]);
    assert!(
        e.contains("S3DEDUP_PACK_TARGET") && e.contains("outside"),
        "{e}"
    );
    let e = err(None, &[("S3DEDUP_STORE_MAX_ATTEMPTS", "0")]);
    assert!(e.contains("S3DEDUP_STORE_MAX_ATTEMPTS"), "{e}");
    let e = err(None, &[("S3DEDUP_STORE", "bucket-without-scheme")]);
    assert!(e.contains("S3DEDUP_STORE") && e.contains("s3://"), "{e}");
    let e = err(None, &[("S3DEDUP_STORE_CHECKSUM", "always")]);
    assert!(e.contains("when_required"), "{e}");
    let e = err(None, &[("S3DEDUP_CLAMD", "localhost:3310")]);
    assert!(e.contains("S3DEDUP_CLAMD"), "{e}");
    let e = err(None, &[("S3DEDUP_STORE_TIMEOUT", "0")]);
    assert!(e.contains("S3DEDUP_STORE_TIMEOUT"), "{e}");
    let e = err(None, &[("S3DEDUP_STORE_TIMEOUT", "1e300")]);
    assert!(e.contains("S3DEDUP_STORE_TIMEOUT"), "{e}");
    let e = err(None, &[("S3DEDUP_ROOT_ACCESS_KEY", "ab")]);
    assert!(e.contains("at least 3"), "{e}");
    let e = err(
        None,
        &[
            ("S3DEDUP_ROOT_ACCESS_KEY", "abc"),
            ("S3DEDUP_ROOT_SECRET_KEY", "hunter2"),
        ],
    );
    assert!(e.contains("at least 8") && !e.contains("hunter2"), "{e}");
    let e = err(None, &[("S3DEDUP_ROOT_ACCESS_KEY", "abc")]);
    assert!(e.contains("set both or neither"), "{e}");
    let e = err(
        None,
        &[
            ("S3DEDUP_STORE", "s3://packs"),
            ("S3DEDUP_STORE_ACCESS_KEY", "ak"),
        ],
    );
    assert!(e.contains("store_access_key/store_secret_key"), "{e}");
    let e = err(None, &[("S3DEDUP_REGION", "US")]);
    assert!(
        e.contains("S3DEDUP_REGION") && e.contains("lowercase"),
        "{e}"
    );
    // A secret given as a flag is not quoted back either.
    let short = load_from(
        [
            "s3dedup",
            "--root-access-key=abc",
            "--root-secret-key=hunter2",
        ],
        None,
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        short.contains("at least 8") && !short.contains("hunter2"),
        "{short}"
    );
    let bad_flag = load_from(["s3dedup", "--listen", "nope"], None, |_| None).unwrap_err();
    assert!(bad_flag.to_string().contains("--listen"), "{bad_flag}");
}

#[test]
fn every_setting_has_a_flag_and_an_env_var_named_after_its_key() {
    let cmd = Layers::default().apply(schema());
    for arg in cmd.get_arguments() {
        let key = arg.get_id().as_str();
        assert_eq!(arg.get_long(), Some(key.replace('_', "-").as_str()));
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(
            help.contains(&format!("[env: {}]", env_name(key))),
            "{help}"
        );
    }
}

#[test]
fn units_parse() {
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
    assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
    assert!(parse_duration("-1").is_err() && parse_duration("soon").is_err());
    assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
    assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert!(parse_size("-1").is_err() && parse_size("lots").is_err());
}

#[test]
fn s3_store_settings() {
    let s = load_from(
        ["s3dedup"],
        None,
        env_of(&[
            ("S3DEDUP_STORE", "s3://packs-bucket/site"),
            ("S3DEDUP_STORE_ENDPOINT", "http://127.0.0.1:9100"),
            ("S3DEDUP_STORE_PATH_STYLE", "true"),
            ("S3DEDUP_STORE_ACCESS_KEY", "ak"),
            ("S3DEDUP_STORE_SECRET_KEY", "sk"),
            ("S3DEDUP_STORE_TIMEOUT", "2.5"),
        ]),
    )
    .unwrap()
    .s3_settings()
    .unwrap();
    assert_eq!(
        (s.bucket.as_str(), s.prefix.as_str()),
        ("packs-bucket", "site/")
    );
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9100"));
    assert!(s.path_style);
    assert_eq!(s.attempt_timeout, Duration::from_millis(2500));
    assert_eq!(s.credentials, Some(("ak".into(), "sk".into())));
}

/// `deploy/s3dedup.example.toml` loads, changes nothing, and names every setting.
#[test]
fn the_example_config_names_every_setting_at_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/s3dedup.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let mut named: Vec<String> = table.keys().cloned().collect();
    let mut all = keys();
    named.sort();
    all.sort();
    assert_eq!(named, all, "the example must list exactly the settings");
    let from_example = load_from(["s3dedup"], Some(&path), |_| None).unwrap();
    let defaults = load_from(["s3dedup"], None, |_| None).unwrap();
    assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
}
