//! The `BlobStore` contract (see the module docs), as one suite every implementation
//! runs: `storage/tests/blobstore.rs` for the fs and memory stores, the conformance
//! tests for the S3 store against a real S3 server. Not part of the API proper.

use std::sync::Arc;

use bytes::Bytes;

use super::{BlobInfo, BlobStore};
use crate::error::Error;

/// Runs the contract against `store`, which must start empty; panics on a violation.
#[allow(clippy::too_many_lines)]
pub async fn contract(store: Arc<dyn BlobStore>) {
    let data = Bytes::from((0..10_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());

    // Missing blobs.
    assert!(matches!(
        store.get("packs/00/a.pack").await,
        Err(Error::BlobNotFound(_))
    ));
    assert!(matches!(
        store.get_range("packs/00/a.pack", 0, 1).await,
        Err(Error::BlobNotFound(_))
    ));
    store
        .delete("packs/00/a.pack")
        .await
        .expect("delete of a missing blob is ok");

    // Put, whole and ranged reads.
    store.put("packs/00/a.pack", data.clone()).await.unwrap();
    assert_eq!(store.get("packs/00/a.pack").await.unwrap(), data);
    assert_eq!(
        store.get_range("packs/00/a.pack", 1234, 100).await.unwrap(),
        data.slice(1234..1334)
    );
    assert_eq!(
        store
            .get_range("packs/00/a.pack", 0, 0)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        store.get_range("packs/00/a.pack", 9_990, 10).await.unwrap(),
        data.slice(9_990..)
    );

    // Reads past the end are truncation errors, never short data.
    match store.get_range("packs/00/a.pack", 9_990, 11).await {
        Err(Error::Truncated {
            wanted: 11,
            got: 10,
            ..
        }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(matches!(
        store.get_range("packs/00/a.pack", 20_000, 1).await,
        Err(Error::Truncated { .. })
    ));

    // Overwrite replaces the whole blob.
    store
        .put("packs/00/a.pack", Bytes::from_static(b"short"))
        .await
        .unwrap();
    assert_eq!(&store.get("packs/00/a.pack").await.unwrap()[..], b"short");

    // Listing: by prefix, sorted, with sizes.
    store
        .put("packs/01/b.pack", Bytes::from_static(b"bb"))
        .await
        .unwrap();
    store
        .put("packs/00/c.pack", Bytes::from_static(b"c"))
        .await
        .unwrap();
    store
        .put("other/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let names = |v: Vec<BlobInfo>| v.into_iter().map(|b| (b.name, b.size)).collect::<Vec<_>>();
    assert_eq!(
        names(store.list("packs/").await.unwrap()),
        vec![
            ("packs/00/a.pack".into(), 5),
            ("packs/00/c.pack".into(), 1),
            ("packs/01/b.pack".into(), 2)
        ]
    );
    assert_eq!(
        names(store.list("packs/00/").await.unwrap()),
        vec![("packs/00/a.pack".into(), 5), ("packs/00/c.pack".into(), 1)]
    );
    assert_eq!(store.list("").await.unwrap().len(), 4);
    assert!(store.list("nothing/").await.unwrap().is_empty());

    // Delete, then idempotent delete.
    store.delete("packs/00/a.pack").await.unwrap();
    store.delete("packs/00/a.pack").await.unwrap();
    assert!(matches!(
        store.get("packs/00/a.pack").await,
        Err(Error::BlobNotFound(_))
    ));
    assert_eq!(store.list("packs/00/").await.unwrap().len(), 1);

    // Names are validated: nothing can escape the store's namespace.
    for bad in ["../escape", "/abs", "a//b", "UPPER", "a/../b", ""] {
        assert!(
            matches!(
                store.put(bad, Bytes::new()).await,
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
        assert!(store.get(bad).await.is_err(), "{bad:?}");
    }

    // Streamed writes: invisible until finished, then exactly the concatenated pieces,
    // however the pieces are sized (tiny, and larger than any internal buffer).
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(31) % 253) as u8)
        .collect();
    let mut w = store.writer("packs/02/w.pack").await.unwrap();
    let mut expect = Vec::new();
    for (i, piece) in [
        &b"x"[..],
        &big[..1_500_000],
        &b""[..],
        &big[1_500_000..],
        &b"yz"[..],
    ]
    .into_iter()
    .enumerate()
    {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        expect.extend_from_slice(piece);
        assert!(
            matches!(
                store.get("packs/02/w.pack").await,
                Err(Error::BlobNotFound(_))
            ),
            "visible before finish (after piece {i})"
        );
        assert!(store.list("packs/02/").await.unwrap().is_empty());
    }
    w.finish().await.unwrap();
    assert_eq!(
        store.get("packs/02/w.pack").await.unwrap(),
        Bytes::from(expect)
    );
    assert_eq!(
        store
            .get_range("packs/02/w.pack", 1_000_000, 7)
            .await
            .unwrap(),
        Bytes::copy_from_slice(&big[999_999..1_000_006])
    );
    // A writer over an existing name replaces it only at finish; one dropped
    // unfinished publishes nothing.
    let mut w = store.writer("packs/02/w.pack").await.unwrap();
    w.write(Bytes::from_static(b"new")).await.unwrap();
    assert_eq!(
        store.get("packs/02/w.pack").await.unwrap().len(),
        big.len() + 3
    );
    w.finish().await.unwrap();
    assert_eq!(&store.get("packs/02/w.pack").await.unwrap()[..], b"new");
    let mut w = store.writer("packs/02/dropped.pack").await.unwrap();
    w.write(Bytes::from(vec![1u8; 2_000_000])).await.unwrap();
    drop(w);
    assert!(matches!(
        store.get("packs/02/dropped.pack").await,
        Err(Error::BlobNotFound(_))
    ));
    assert!(store.writer("../escape").await.is_err());
    store.delete("packs/02/w.pack").await.unwrap();

    // Concurrent puts of distinct names all land.
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.put(
                &format!("packs/{i:02x}/p{i}.pack"),
                Bytes::from(vec![i; 1000 + usize::from(i)]),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for i in 0..32u8 {
        let got = store
            .get(&format!("packs/{i:02x}/p{i}.pack"))
            .await
            .unwrap();
        assert_eq!(got, Bytes::from(vec![i; 1000 + usize::from(i)]));
    }
}
