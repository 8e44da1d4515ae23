//! The S3 checksum model end to end: boto3 (conformance/python/checksums_suite.py) and
//! the Rust SDK against the real gateway, then `s3dedup fsck` at zero drift.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes,
};
use s3dedup_conformance::{Gateway, error_code, run_python_suite, sdk_client};

#[test]
fn boto3_checksum_model() {
    let mut g = Gateway::start().unwrap();
    run_python_suite(&g, "checksums_suite.py", "boto3 checksums: ok");
    g.stop().unwrap();
    g.assert_fsck("after the boto3 checksum suite");
}

fn data(seed: u8, n: usize) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// CRC64NVME FULL_OBJECT multipart with the Rust SDK: the SDK computes each part's
/// CRC64NVME and validates the GET's; the object's value is the CRC of all its bytes
/// (checked against a single PUT of the same bytes), and parts read back by number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_full_object_crc64nvme() {
    let mut g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("sdk-sums").send().await.unwrap();
    let body = data(5, 13 << 20);
    let whole = c
        .put_object()
        .bucket("sdk-sums")
        .key("whole")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let want = whole.checksum_crc64_nvme().unwrap().to_owned();
    assert_eq!(whole.checksum_type(), Some(&ChecksumType::FullObject));

    let up = c
        .create_multipart_upload()
        .bucket("sdk-sums")
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, piece) in body.chunks(5 << 20).enumerate() {
        let n = n as i32 + 1;
        let r = c
            .upload_part()
            .bucket("sdk-sums")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(piece.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .checksum_crc64_nvme(r.checksum_crc64_nvme().unwrap())
                .build(),
        );
    }
    let done = c
        .complete_multipart_upload()
        .bucket("sdk-sums")
        .key("mp")
        .upload_id(id)
        .checksum_crc64_nvme(&want)
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(done.checksum_crc64_nvme(), Some(want.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));

    // The SDK validates the CRC64NVME of what it reads (checksum mode on).
    let got = c
        .get_object()
        .bucket("sdk-sums")
        .key("mp")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.checksum_crc64_nvme(), Some(want.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        body
    );

    for (n, piece) in body.chunks(5 << 20).enumerate() {
        let got = c
            .get_object()
            .bucket("sdk-sums")
            .key("mp")
            .part_number(n as i32 + 1)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(got.parts_count(), Some(3));
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            piece,
            "part {}",
            n + 1
        );
    }
    let attrs = c
        .get_object_attributes()
        .bucket("sdk-sums")
        .key("mp")
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(attrs.object_size(), Some(body.len() as i64));
    let sum = attrs.checksum().unwrap();
    assert_eq!(sum.checksum_crc64_nvme(), Some(want.as_str()));
    assert_eq!(sum.checksum_type(), Some(&ChecksumType::FullObject));
    let op = attrs.object_parts().unwrap();
    assert_eq!(op.total_parts_count(), Some(3));
    let sizes: Vec<i64> = op.parts().iter().filter_map(|p| p.size()).collect();
    assert_eq!(sizes, vec![5 << 20, 5 << 20, 3 << 20]);

    // The same type asked of an algorithm that cannot have it is refused.
    let e = c
        .create_multipart_upload()
        .bucket("sdk-sums")
        .key("bad")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), "InvalidRequest", "{e:?}");
    g.stop().unwrap();
    g.assert_fsck("after the SDK checksum test");
}
