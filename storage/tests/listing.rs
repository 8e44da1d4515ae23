//! Listing against a naive reference: prefix, delimiter, start-after and pagination.

mod common;

use proptest::prelude::*;
use s3dedup_storage::{ListEntry, Store};

/// The whole listing as S3 defines it, computed the slow obvious way.
fn reference(
    keys: &[String],
    prefix: &str,
    delim: Option<&str>,
    after: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        if !k.starts_with(prefix) || after.is_some_and(|a| k.as_str() <= a) {
            continue;
        }
        let entry = match delim
            .filter(|d| !d.is_empty())
            .and_then(|d| k[prefix.len()..].find(d).map(|i| (i, d)))
        {
            Some((i, d)) => {
                let cp = &k[..prefix.len() + i + d.len()];
                if after.is_some_and(|a| cp <= a) {
                    continue;
                }
                format!("P:{cp}")
            }
            None => format!("K:{k}"),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

async fn paged(
    store: &Store,
    prefix: &str,
    delim: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker = after.map(str::to_owned);
    loop {
        let page = store
            .list_objects("b", prefix, delim, marker.as_deref(), max)
            .await
            .unwrap();
        assert!(page.entries.len() <= max);
        for e in &page.entries {
            out.push(match e {
                ListEntry::Object { key, .. } => format!("K:{key}"),
                ListEntry::Prefix(p) => format!("P:{p}"),
            });
        }
        if !page.is_truncated {
            return out;
        }
        assert_eq!(page.entries.len(), max, "a truncated page is full");
        marker = Some(page.entries.last().unwrap().marker().to_owned());
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("/"),
            Just("-"),
            Just("é"),
            Just("//")
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn listing_matches_reference(
        keys in proptest::collection::btree_set(key_strategy(), 1..30),
        prefix in prop_oneof![Just(""), Just("a"), Just("a/"), Just("b")],
        delim in prop_oneof![Just(None), Just(Some("/")), Just(Some("")), Just(Some("a/")), Just(Some("é"))],
        after in proptest::option::of(key_strategy()),
        max in 1usize..5,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = common::open_fs(dir.path(), common::small_config()).await;
            store.create_bucket("b").await.unwrap();
            // A neighbouring bucket whose keys must never leak into the listing.
            store.create_bucket("b0").await.unwrap();
            common::put(&store, "b0", "a", b"x").await;
            let keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
            for k in &keys {
                common::put(&store, "b", k, k.as_bytes()).await;
            }
            let want = reference(&keys, prefix, delim, after.as_deref());
            let got = paged(&store, prefix, delim, after.as_deref(), max).await;
            assert_eq!(got, want, "keys {keys:?} prefix {prefix:?} delim {delim:?} after {after:?} max {max}");
        });
    }
}

#[tokio::test]
async fn thousands_of_keys_page_with_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    store.create_bucket("b").await.unwrap();
    let mut keys = Vec::new();
    for d in 0..20 {
        for f in 0..100 {
            keys.push(format!("dir{d:02}/file{f:03}"));
        }
    }
    keys.push("top-level".into());
    for k in &keys {
        common::put(&store, "b", k, b"").await;
    }
    keys.sort();
    assert_eq!(
        paged(&store, "", Some("/"), None, 7).await,
        reference(&keys, "", Some("/"), None)
    );
    assert_eq!(paged(&store, "", Some("/"), None, 7).await.len(), 21);
    assert_eq!(
        paged(&store, "dir05/", Some("/"), None, 33).await.len(),
        100
    );
    assert_eq!(
        paged(&store, "", None, None, 1000).await,
        reference(&keys, "", None, None)
    );
}
