//! Tenants, users and access keys in the index: the rules of their life cycle, their
//! journal (rebuild from the store restores them exactly), secrets sealed at rest with
//! encryption and resealed when the active key changes, and the v1 record fixtures.

mod common;

use std::path::Path;
use std::sync::Arc;

use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::identity::{AccessKey, DedupDomain, KeyStatus, StoredSecret, Tenant, User};
use s3dedup_storage::journal::rebuild::rebuild_index;
use s3dedup_storage::{Error, Store, StoreConfig};

use common::{K1, K2, keyed};

/// Everything identity-related a store holds, secrets revealed.
async fn dump(
    store: &Store,
) -> (
    Vec<Tenant>,
    Vec<User>,
    Vec<(AccessKey, String)>,
    Vec<(String, String)>,
) {
    let tenants = store.tenants().await.unwrap();
    let users = store.users(None).await.unwrap();
    let mut keys = Vec::new();
    for k in store.access_keys(None).await.unwrap() {
        let (rec, secret) = store
            .access_key_secret(&k.access_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec, k);
        keys.push((rec, secret));
    }
    let owners = store
        .buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|(n, r)| (n, r.owner))
        .collect();
    (tenants, users, keys, owners)
}

#[tokio::test]
async fn life_cycle_rules() {
    let (_dir, store) = common::fresh_store().await;
    let acme = store.create_tenant("acme").await.unwrap();
    assert_eq!(acme.canonical_id.len(), 64);
    assert!(matches!(
        store.create_tenant("acme").await,
        Err(Error::IdentityExists(_))
    ));
    for bad in ["root", "AB", "a_b", "-ab"] {
        assert!(
            matches!(
                store.create_tenant(bad).await,
                Err(Error::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
    store.create_user("acme", "alice").await.unwrap();
    assert!(matches!(
        store.create_user("acme", "alice").await,
        Err(Error::IdentityExists(_))
    ));
    assert!(matches!(
        store.create_user("nope", "bob").await,
        Err(Error::NoSuchIdentity(_))
    ));
    assert!(matches!(
        store.create_user("acme", "a/b").await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        store.create_key("nope", None, None).await,
        Err(Error::NoSuchIdentity(_))
    ));
    assert!(matches!(
        store.create_key("acme", Some("bob"), None).await,
        Err(Error::NoSuchIdentity(_))
    ));
    let tenant_key = store.create_key("acme", None, None).await.unwrap();
    let alice_key = store
        .create_key("acme", Some("alice"), Some(u64::MAX))
        .await
        .unwrap();
    assert_eq!(tenant_key.key.access_key.len(), 20);
    assert_eq!(tenant_key.secret.len(), 40);
    assert_ne!(tenant_key.key.access_key, alice_key.key.access_key);

    // Status changes are kept; an unknown key is named.
    let k = store
        .set_key_status(&tenant_key.key.access_key, KeyStatus::Disabled)
        .await
        .unwrap();
    assert_eq!(k.status, KeyStatus::Disabled);
    let (rec, secret) = store
        .access_key_secret(&k.access_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.status, secret.as_str()),
        (KeyStatus::Disabled, tenant_key.secret.as_str())
    );
    assert!(matches!(
        store.set_key_status("NOPE", KeyStatus::Active).await,
        Err(Error::NoSuchIdentity(_))
    ));
    assert!(matches!(
        store.delete_key("NOPE").await,
        Err(Error::NoSuchIdentity(_))
    ));

    // Deleting a user deletes its keys, not the tenant's.
    store.delete_user("acme", "alice").await.unwrap();
    assert!(
        store
            .access_key(&alice_key.key.access_key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .access_key(&tenant_key.key.access_key)
            .await
            .unwrap()
            .is_some()
    );

    // A tenant that owns a bucket stays; without it, it goes with its users and keys.
    store
        .create_bucket_owned("acme-data", "acme", false)
        .await
        .unwrap();
    store.create_user("acme", "carol").await.unwrap();
    match store.delete_tenant("acme").await {
        Err(Error::IdentityInUse(m)) => assert!(m.contains("acme-data"), "{m}"),
        other => panic!("deleted a tenant owning a bucket: {other:?}"),
    }
    store.delete_bucket("acme-data").await.unwrap();
    store.delete_tenant("acme").await.unwrap();
    assert!(store.tenants().await.unwrap().is_empty());
    assert!(store.users(None).await.unwrap().is_empty());
    assert!(store.access_keys(None).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_tenant("acme").await,
        Err(Error::NoSuchIdentity(_))
    ));
    assert!(matches!(
        store.users(Some("acme")).await,
        Err(Error::NoSuchIdentity(_))
    ));
    // A deleted tenant's name is never given to a new tenant (a bucket policy that
    // still names it must not grant the newcomer anything).
    match store.create_tenant("acme").await {
        Err(Error::IdentityExists(m)) => assert!(m.contains("never reused"), "{m}"),
        other => panic!("a deleted tenant's name was reused: {other:?}"),
    }
}

async fn rebuild(dir: &Path, blobs: &Arc<MemoryBlobStore>, cfg: &StoreConfig) {
    let blobs = Arc::clone(blobs) as Arc<dyn BlobStore>;
    let report = rebuild_index(&dir.join("index.redb"), blobs, cfg)
        .await
        .expect("rebuild");
    assert!(report.complete(), "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_journaled_and_rebuilt_exactly() {
    let (old_dir, new_dir, third) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let blobs = Arc::new(MemoryBlobStore::new());
    let cfg = keyed(&[K1]);
    let store = common::open_mem(old_dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_tenant("acme").await.unwrap();
    store.create_tenant("beta").await.unwrap();
    store.create_user("beta", "bob").await.unwrap();
    store
        .create_bucket_owned("acme-data", "acme", false)
        .await
        .unwrap();
    store.create_bucket("root-data").await.unwrap();
    let bob = store.create_key("beta", Some("bob"), None).await.unwrap();
    let k = store
        .create_key("acme", None, Some(4_000_000_000_000))
        .await
        .unwrap();
    // The first shipment is a snapshot; what follows goes to the journal only.
    store.ship_journal().await.unwrap();
    store
        .set_key_status(&k.key.access_key, KeyStatus::Disabled)
        .await
        .unwrap();
    store.create_tenant("gamma").await.unwrap();
    store.create_key("gamma", None, None).await.unwrap();
    store.delete_tenant("gamma").await.unwrap();
    store.delete_user("beta", "bob").await.unwrap();
    store.create_key("beta", None, None).await.unwrap();
    store.ship_journal().await.unwrap();
    let before = dump(&store).await;
    assert_eq!(before.0.len(), 2);
    assert_eq!(before.2.len(), 2, "{:?}", before.2);
    assert!(
        before
            .2
            .iter()
            .all(|(k, _)| k.access_key != bob.key.access_key)
    );
    assert!(before.3.contains(&("acme-data".into(), "acme".into())));
    assert!(before.3.contains(&("root-data".into(), String::new())));
    drop(store);

    rebuild(new_dir.path(), &blobs, &cfg).await;
    let rebuilt = common::open_mem(new_dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    assert_eq!(dump(&rebuilt).await, before, "journal replay");
    assert!(
        matches!(
            rebuilt.create_tenant("gamma").await,
            Err(Error::IdentityExists(_))
        ),
        "the retired name came back with the journal"
    );
    // From a snapshot alone, too.
    rebuilt.snapshot_journal().await.unwrap();
    drop(rebuilt);
    rebuild(third.path(), &blobs, &cfg).await;
    let again = common::open_mem(third.path(), blobs, cfg).await;
    assert_eq!(dump(&again).await, before, "snapshot");
    assert!(
        matches!(
            again.create_tenant("gamma").await,
            Err(Error::IdentityExists(_))
        ),
        "the retired name came back with the snapshot"
    );
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_resealed_under_a_new_active_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), keyed(&[K1])).await;
    store.create_tenant("acme").await.unwrap();
    let k = store.create_key("acme", None, None).await.unwrap();
    let id = k.key.access_key.clone();
    let rec = store.access_key(&id).await.unwrap().unwrap();
    assert!(
        matches!(rec.secret, StoredSecret::Sealed { key: 1, .. }),
        "{:?}",
        rec.secret
    );
    drop(store);
    // The secret is nowhere in the index file in the clear.
    let index = std::fs::read(dir.path().join("index.redb")).unwrap();
    assert!(
        !index
            .windows(k.secret.len())
            .any(|w| w == k.secret.as_bytes()),
        "plaintext secret in the index"
    );
    // A new active key: resealed at open, then the old key is not needed any more.
    let store = common::open_fs(dir.path(), keyed(&[K1, K2])).await;
    let rec = store.access_key(&id).await.unwrap().unwrap();
    assert!(
        matches!(rec.secret, StoredSecret::Sealed { key: 2, .. }),
        "{:?}",
        rec.secret
    );
    drop(store);
    let store = common::open_fs(dir.path(), keyed(&[K2])).await;
    let (_, secret) = store.access_key_secret(&id).await.unwrap().unwrap();
    assert_eq!(secret, k.secret);
    drop(store);

    // Without encryption a secret is kept as given (as the root key's file is), and
    // sealed the first time the store opens with a key.
    let plain_dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(plain_dir.path(), common::small_config()).await;
    store.create_tenant("acme").await.unwrap();
    let k = store.create_key("acme", None, None).await.unwrap();
    let rec = store.access_key(&k.key.access_key).await.unwrap().unwrap();
    assert_eq!(rec.secret, StoredSecret::Plain(k.secret.clone()));
    drop(store);
    let store = common::open_fs(plain_dir.path(), keyed(&[K1])).await;
    let rec = store.access_key(&k.key.access_key).await.unwrap().unwrap();
    assert!(matches!(rec.secret, StoredSecret::Sealed { key: 1, .. }));
    let (_, secret) = store
        .access_key_secret(&k.key.access_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret, k.secret);
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity-v1")
}

/// The v1 encodings: fixed bytes that must keep decoding to the same values (and that
/// today's encoder still writes). `S3DEDUP_WRITE_FIXTURES=1` writes missing ones.
#[test]
fn v1_identity_records_decode_to_the_same_values() {
    let tenant = Tenant {
        name: "acme".into(),
        canonical_id: "ab".repeat(32),
        created_ms: 1_764_000_000_000,
    };
    let user = User {
        tenant: "acme".into(),
        name: "alice".into(),
        created_ms: 1_764_000_000_001,
    };
    let plain = AccessKey {
        access_key: "S3DKAAAAAAAAAAAAAAAA".into(),
        tenant: "acme".into(),
        user: Some("alice".into()),
        status: KeyStatus::Disabled,
        created_ms: 1_764_000_000_002,
        expires_ms: Some(1_765_000_000_000),
        secret: StoredSecret::Plain("secret-of-the-fixture".into()),
    };
    let sealed = AccessKey {
        user: None,
        status: KeyStatus::Active,
        expires_ms: None,
        secret: StoredSecret::Sealed {
            key: 7,
            sealed: (0u8..44).collect(),
        },
        ..plain.clone()
    };
    let domain = DedupDomain {
        canonical_id: "ab".repeat(32),
        created_ms: 1_764_000_000_003,
        secret: StoredSecret::Sealed {
            key: 3,
            sealed: (100u8..192).collect(),
        },
    };
    let write = std::env::var("S3DEDUP_WRITE_FIXTURES").is_ok_and(|v| v == "1");
    let document = br#"{"Version":"2012-10-17","Statement":[]}"#;
    let cases: [(&str, Vec<u8>); 6] = [
        ("tenant.bin", tenant.encode()),
        ("user.bin", user.encode()),
        ("key-plain.bin", plain.encode()),
        ("key-sealed.bin", sealed.encode()),
        // A tenant's dedup domain (index format 9).
        ("domain.bin", domain.encode()),
        // A bucket document (bucket policy, public access block) as stored.
        (
            "bucket-document.bin",
            s3dedup_storage::store::seal_document(document),
        ),
    ];
    for (name, encoded) in &cases {
        let path = fixtures().join(name);
        if write && !path.exists() {
            std::fs::create_dir_all(fixtures()).unwrap();
            std::fs::write(&path, encoded).unwrap();
        }
        let fixture = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&fixture, encoded, "{name}: v1 encoding changed");
    }
    let read = |n: &str| std::fs::read(fixtures().join(n)).unwrap();
    assert_eq!(Tenant::decode(&read("tenant.bin")).unwrap(), tenant);
    assert_eq!(User::decode(&read("user.bin")).unwrap(), user);
    assert_eq!(AccessKey::decode(&read("key-plain.bin")).unwrap(), plain);
    assert_eq!(AccessKey::decode(&read("key-sealed.bin")).unwrap(), sealed);
    assert_eq!(DedupDomain::decode(&read("domain.bin")).unwrap(), domain);
    let doc = read("bucket-document.bin");
    assert_eq!(
        s3dedup_storage::store::unseal_document(&doc).unwrap(),
        document
    );
    // One flipped byte is an error, never a panic or another value.
    let mut bad = read("key-plain.bin");
    bad[10] ^= 0x40;
    assert!(AccessKey::decode(&bad).is_err());
    let mut bad = read("domain.bin");
    bad[12] ^= 0x01;
    assert!(DedupDomain::decode(&bad).is_err());
    let mut bad = doc.clone();
    bad[5] ^= 0x40;
    assert!(s3dedup_storage::store::unseal_document(&bad).is_err());
    assert!(s3dedup_storage::store::unseal_document(&doc[..3]).is_err());
}
