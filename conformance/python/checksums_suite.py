"""The S3 checksum model with boto3 against a running s3dedup (started by
conformance/tests/checksums.rs), written from the AWS S3 API reference:

- boto3's own upload defaults (CRC32 COMPOSITE multipart) and CRC64NVME FULL_OBJECT
  round-trip with response validation on, for 0 B, 1 B, 5 MiB - 1, 5 MiB and 100 MiB;
  expected values are computed here with independent implementations (zlib, awscrt);
- COMPOSITE and FULL_OBJECT uploads by hand: part checksums in ListParts, completion
  claims (BadDigest, InvalidPart, InvalidRequest), the checksum type in answers;
- GET/HEAD partNumber, GetObjectAttributes with part pagination;
- metadata-only CopyObject and UploadPartCopy keep checksums correct;
- malformed versus wrong digests, re-uploading part 1 after later parts.

Prints one line per check; exits non-zero on the first failure.
"""
import base64
import hashlib
import os
import sys
import tempfile
import zlib

import boto3
from awscrt import checksums as crt
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3DEDUP_ENDPOINT"]
KEY = os.environ["S3DEDUP_ACCESS_KEY"]
SECRET = os.environ["S3DEDUP_SECRET_KEY"]
MIB = 1 << 20


def client(mode="when_supported"):
    cfg = Config(
        request_checksum_calculation=mode,
        response_checksum_validation=mode,
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
    )
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET, config=cfg)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def error_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], \
            e.response["Error"].get("Message", "")
    raise AssertionError(f"{fn.__name__} succeeded but should have failed")


def b64(raw):
    return base64.b64encode(raw).decode()


def crc32(data):
    return zlib.crc32(data).to_bytes(4, "big")


def crc32c(data):
    return crt.crc32c(data).to_bytes(4, "big")


def crc64nvme(data):
    return crt.crc64nvme(data).to_bytes(8, "big")


def sha256(data):
    return hashlib.sha256(data).digest()


def composite(fn, parts):
    return b64(fn(b"".join(fn(p) for p in parts))) + f"-{len(parts)}"


def pieces(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def defaults_round_trip(s3, bucket):
    """upload_file / download_file as applications call them, validation on."""
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    sizes = [0, 1, 5 * MIB - 1, 5 * MIB, 100 * MIB]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            data = os.urandom(size)
            src = os.path.join(tmp, "src")
            with open(src, "wb") as f:
                f.write(data)
            multipart = size >= 5 * MIB
            for algo, extra in [("CRC32", {}), ("CRC64NVME", {"ChecksumAlgorithm": "CRC64NVME"})]:
                key = f"{algo}-{size}"
                s3.upload_file(src, bucket, key, ExtraArgs=extra, Config=cfg)
                h = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
                if algo == "CRC64NVME":
                    want, kind = b64(crc64nvme(data)), "FULL_OBJECT"
                elif multipart:
                    want, kind = composite(crc32, pieces(data, 5 * MIB)), "COMPOSITE"
                else:
                    want, kind = b64(crc32(data)), "FULL_OBJECT"
                check(h.get(f"Checksum{algo}") == want and h.get("ChecksumType") == kind,
                      f"{size} B via upload_file ({algo}): {kind} {want}, got {h.get(f'Checksum{algo}')} {h.get('ChecksumType')}")
                # GetObject with validation on: botocore checks a FULL_OBJECT value
                # against the bytes (a composite value is skipped by design).
                got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["Body"].read()
                check(got == data, f"{size} B ({algo}) reads back, validated")
                dst = os.path.join(tmp, "dst")
                s3.download_file(bucket, key, dst, Config=cfg)
                with open(dst, "rb") as f:
                    check(f.read() == data, f"{size} B ({algo}) download_file")


def composite_by_hand(s3, bucket):
    part1, part2 = os.urandom(5 * MIB), os.urandom(12345)
    up = s3.create_multipart_upload(Bucket=bucket, Key="sha", ChecksumAlgorithm="SHA256")
    check(up.get("ChecksumAlgorithm") == "SHA256" and up.get("ChecksumType") == "COMPOSITE",
          "SHA256 upload defaults to COMPOSITE")
    uid = up["UploadId"]
    # A part without its checksum, or with another algorithm's, is refused.
    code, status, msg = error_of(s3.upload_part, Bucket=bucket, Key="sha", UploadId=uid,
                                 PartNumber=1, Body=part1, ChecksumAlgorithm="CRC32")
    check(code == "InvalidRequest" and "expected checksum Type: sha256" in msg,
          f"another algorithm's part checksum: {code} {msg}")
    p1 = s3.upload_part(Bucket=bucket, Key="sha", UploadId=uid, PartNumber=1, Body=part1,
                        ChecksumSHA256=b64(sha256(part1)))
    p2 = s3.upload_part(Bucket=bucket, Key="sha", UploadId=uid, PartNumber=2, Body=part2,
                        ChecksumAlgorithm="SHA256")
    check(p2.get("ChecksumSHA256") == b64(sha256(part2)), "UploadPart answers the part's SHA256")
    lp = s3.list_parts(Bucket=bucket, Key="sha", UploadId=uid)
    check(lp.get("ChecksumAlgorithm") == "SHA256" and lp.get("ChecksumType") == "COMPOSITE"
          and [p.get("ChecksumSHA256") for p in lp["Parts"]] == [b64(sha256(part1)), b64(sha256(part2))],
          "ListParts: algorithm, type and each part's checksum")
    parts = [{"PartNumber": 1, "ETag": p1["ETag"], "ChecksumSHA256": b64(sha256(part1))},
             {"PartNumber": 2, "ETag": p2["ETag"], "ChecksumSHA256": b64(sha256(part2))}]
    missing = [dict(parts[0]), {"PartNumber": 2, "ETag": p2["ETag"]}]
    code, _, msg = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="sha", UploadId=uid,
                            MultipartUpload={"Parts": missing})
    check(code == "InvalidRequest" and "missing for part 2" in msg,
          f"COMPOSITE completion without a part checksum: {code} {msg}")
    wrong = [dict(parts[0]), dict(parts[1], ChecksumSHA256=b64(sha256(b"other")))]
    code, _, _ = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="sha", UploadId=uid,
                          MultipartUpload={"Parts": wrong})
    check(code == "InvalidPart", f"a wrong part checksum at completion: {code}")
    code, _, _ = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="sha", UploadId=uid,
                          MultipartUpload={"Parts": parts}, ChecksumType="FULL_OBJECT")
    check(code == "InvalidRequest", f"completion with another checksum type: {code}")
    want = composite(sha256, [part1, part2])
    code, _, _ = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="sha", UploadId=uid,
                          MultipartUpload={"Parts": parts}, ChecksumSHA256=b64(sha256(b"x")) + "-2")
    check(code == "BadDigest", f"a wrong whole-object claim: {code}")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="sha", UploadId=uid,
                                        MultipartUpload={"Parts": parts}, ChecksumSHA256=want)
    check(done.get("ChecksumSHA256") == want and done.get("ChecksumType") == "COMPOSITE",
          f"completion answers the COMPOSITE checksum {want}")
    h = s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    check(h.get("ChecksumSHA256") == want and h.get("ChecksumType") == "COMPOSITE",
          "HEAD with checksum mode: COMPOSITE value and type")
    check("ChecksumSHA256" not in s3.head_object(Bucket=bucket, Key="sha"),
          "no checksum without checksum mode")
    return part1, part2


def full_object_by_hand(s3, bucket):
    data = os.urandom(11 * MIB + 7)
    chunks = pieces(data, 5 * MIB)
    up = s3.create_multipart_upload(Bucket=bucket, Key="full", ChecksumAlgorithm="CRC32C",
                                    ChecksumType="FULL_OBJECT")
    check(up.get("ChecksumType") == "FULL_OBJECT", "CRC32C FULL_OBJECT upload created")
    uid = up["UploadId"]
    parts = []
    # boto3 adds a CRC32 to a part unless told to send none (when_required).
    bare = client("when_required")
    for n, c in enumerate(chunks, 1):
        # FULL_OBJECT: a part without a checksum is accepted and its CRC32C computed.
        r = bare.upload_part(Bucket=bucket, Key="full", UploadId=uid, PartNumber=n, Body=c)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    lp = s3.list_parts(Bucket=bucket, Key="full", UploadId=uid)
    check([p.get("ChecksumCRC32C") for p in lp["Parts"]] == [b64(crc32c(c)) for c in chunks],
          "parts sent without a checksum got their CRC32C")
    want = b64(crc32c(data))
    code, _, _ = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="full", UploadId=uid,
                          MultipartUpload={"Parts": parts}, ChecksumCRC32C=b64(crc32c(b"no")))
    check(code == "BadDigest", f"a wrong FULL_OBJECT claim at completion: {code}")
    code, _, _ = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="full", UploadId=uid,
                          MultipartUpload={"Parts": parts}, MpuObjectSize=len(data) + 1)
    check(code == "InvalidRequest", f"a wrong x-amz-mp-object-size: {code}")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=uid,
                                        MultipartUpload={"Parts": parts}, ChecksumCRC32C=want,
                                        ChecksumType="FULL_OBJECT", MpuObjectSize=len(data))
    check(done.get("ChecksumCRC32C") == want and done.get("ChecksumType") == "FULL_OBJECT",
          f"CRC32C of the whole object combined from the parts: {want}")
    got = s3.get_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    check(got.get("ChecksumCRC32C") == want and got["Body"].read() == data,
          "GET validates the FULL_OBJECT CRC32C")
    return data, chunks


def part_reads(s3, bucket, data, chunks):
    for n, c in enumerate(chunks, 1):
        r = s3.get_object(Bucket=bucket, Key="full", PartNumber=n, ChecksumMode="ENABLED")
        start = sum(len(x) for x in chunks[:n - 1])
        body = r["Body"].read()
        check(r["ResponseMetadata"]["HTTPStatusCode"] == 206 and body == c
              and r["ContentRange"] == f"bytes {start}-{start + len(c) - 1}/{len(data)}"
              and r["PartsCount"] == len(chunks) and r.get("ChecksumCRC32C") == b64(crc32c(c)),
              f"GET partNumber={n}: 206, its bytes, Content-Range, PartsCount, its CRC32C")
        h = s3.head_object(Bucket=bucket, Key="full", PartNumber=n)
        check(h["ResponseMetadata"]["HTTPStatusCode"] == 206 and h["ContentLength"] == len(c)
              and h["PartsCount"] == len(chunks),
              f"HEAD partNumber={n}: 206, its length and the part count")
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="full", PartNumber=len(chunks) + 1)
    check((code, status) == ("InvalidPartNumber", 416), f"a part past the last: {code} {status}")
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="full", PartNumber=1, Range="bytes=0-1")
    check((code, status) == ("InvalidRequest", 400), f"partNumber with a Range: {code} {status}")
    # An empty last part is no bytes, not the whole object.
    first = os.urandom(5 * MIB)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="empty-tail", ChecksumAlgorithm="CRC32C")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="empty-tail", UploadId=uid, PartNumber=1, Body=first,
                        ChecksumAlgorithm="CRC32C")
    e2 = s3.upload_part(Bucket=bucket, Key="empty-tail", UploadId=uid, PartNumber=2, Body=b"",
                        ChecksumAlgorithm="CRC32C")
    s3.complete_multipart_upload(Bucket=bucket, Key="empty-tail", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1["ETag"], "ChecksumCRC32C": e1["ChecksumCRC32C"]},
        {"PartNumber": 2, "ETag": e2["ETag"], "ChecksumCRC32C": e2["ChecksumCRC32C"]}]})
    r = s3.get_object(Bucket=bucket, Key="empty-tail", PartNumber=2, ChecksumMode="ENABLED")
    check(r["Body"].read() == b"" and r["ContentLength"] == 0 and r["PartsCount"] == 2,
          "GET partNumber of an empty part: no bytes, validated")
    h = s3.head_object(Bucket=bucket, Key="empty-tail", PartNumber=2)
    check(h["ContentLength"] == 0, "HEAD partNumber of an empty part: length 0")
    r = s3.get_object(Bucket=bucket, Key="empty-tail", PartNumber=1, ChecksumMode="ENABLED")
    check(r["Body"].read() == first, "and its part 1 is the first part")
    s3.put_object(Bucket=bucket, Key="single", Body=b"single object")
    r = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 206 and r["Body"].read() == b"single object"
          and "PartsCount" not in r, "partNumber=1 of a single PUT: the whole object, 206")
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="single", PartNumber=2)
    check((code, status) == ("InvalidPartNumber", 416), "partNumber=2 of a single PUT: 416")


def attributes(s3, bucket, data, chunks):
    a = s3.get_object_attributes(Bucket=bucket, Key="full",
                                 ObjectAttributes=["ETag", "Checksum", "ObjectParts",
                                                   "StorageClass", "ObjectSize"], MaxParts=1)
    head = s3.head_object(Bucket=bucket, Key="full")
    check(a["ETag"].strip('"') == head["ETag"].strip('"') and a["ObjectSize"] == len(data)
          and a["StorageClass"] == "STANDARD"
          and a["Checksum"] == {"ChecksumCRC32C": b64(crc32c(data)), "ChecksumType": "FULL_OBJECT"},
          "GetObjectAttributes: ETag, size, storage class, checksum and type")
    p = a["ObjectParts"]
    check(p["TotalPartsCount"] == len(chunks) and p["IsTruncated"] and p["NextPartNumberMarker"] == 1
          and p["Parts"] == [{"PartNumber": 1, "Size": len(chunks[0]),
                              "ChecksumCRC32C": b64(crc32c(chunks[0]))}],
          "GetObjectAttributes: first page of one part")
    a = s3.get_object_attributes(Bucket=bucket, Key="full", ObjectAttributes=["ObjectParts"],
                                 MaxParts=5, PartNumberMarker=1)
    got = [x["PartNumber"] for x in a["ObjectParts"]["Parts"]]
    check(got == list(range(2, len(chunks) + 1)) and not a["ObjectParts"]["IsTruncated"],
          f"GetObjectAttributes: the rest after marker 1 ({got})")
    a = s3.get_object_attributes(Bucket=bucket, Key="single", ObjectAttributes=["ObjectParts", "ObjectSize"])
    check("ObjectParts" not in a and a["ObjectSize"] == len(b"single object"),
          "GetObjectAttributes of a single PUT: no ObjectParts")


def copies(s3, bucket, part1, part2):
    # Metadata-only CopyObject of a multipart object: same checksum, same part table.
    s3.copy_object(Bucket=bucket, Key="sha-copy", CopySource={"Bucket": bucket, "Key": "sha"})
    h = s3.head_object(Bucket=bucket, Key="sha-copy", ChecksumMode="ENABLED")
    want = composite(sha256, [part1, part2])
    check(h.get("ChecksumSHA256") == want, "CopyObject keeps the COMPOSITE checksum")
    r = s3.get_object(Bucket=bucket, Key="sha-copy", PartNumber=2, ChecksumMode="ENABLED")
    check(r["Body"].read() == part2 and r.get("ChecksumSHA256") == b64(sha256(part2)),
          "the copy keeps its part table: partNumber=2 and its SHA256")
    # UploadPartCopy into a CRC32C upload from a single-PUT SHA256 source: the part's
    # CRC32C is computed (the source has none), and a CRC64NVME source is copied by
    # reference into an upload without an algorithm.
    src = os.urandom(5 * MIB)
    s3.put_object(Bucket=bucket, Key="src-sha", Body=src, ChecksumAlgorithm="SHA256")
    up = s3.create_multipart_upload(Bucket=bucket, Key="pc", ChecksumAlgorithm="CRC32C")
    uid = up["UploadId"]
    c1 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src-sha"})["CopyPartResult"]
    check(c1.get("ChecksumCRC32C") == b64(crc32c(src)), "UploadPartCopy answers the upload's algorithm")
    c2 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src-sha"},
                             CopySourceRange="bytes=0-99")["CopyPartResult"]
    check(c2.get("ChecksumCRC32C") == b64(crc32c(src[:100])), "a ranged UploadPartCopy too")
    code, _, _ = error_of(s3.upload_part_copy, Bucket=bucket, Key="pc", UploadId=uid, PartNumber=3,
                          CopySource={"Bucket": bucket, "Key": "src-sha"},
                          CopySourceRange=f"bytes=0-{len(src)}")
    check(code in ("InvalidArgument", "InvalidRange"), f"a copy range past the source: {code}")
    code, _, _ = error_of(s3.upload_part_copy, Bucket=bucket, Key="pc", UploadId=uid, PartNumber=3,
                          CopySource={"Bucket": bucket, "Key": "src-sha"},
                          CopySourceRange="bytes=10-")
    check(code == "InvalidArgument", f"an open copy range: {code}")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="pc", UploadId=uid,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": c1["ETag"], "ChecksumCRC32C": c1["ChecksumCRC32C"]},
            {"PartNumber": 2, "ETag": c2["ETag"], "ChecksumCRC32C": c2["ChecksumCRC32C"]}]})
    check(done.get("ChecksumCRC32C") == composite(crc32c, [src, src[:100]]),
          "the copied parts complete to the right COMPOSITE value")


def digests_and_parts(s3, bucket):
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="d", Body=b"abc", ChecksumCRC32="not-base64")
    check((code, status) == ("InvalidRequest", 400), f"a malformed checksum: {code}")
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="d", Body=b"abc",
                               ChecksumCRC32=b64(crc32(b"abd")))
    check((code, status) == ("BadDigest", 400), f"a well-formed wrong checksum: {code}")
    # boto3 drops an empty parameter: set the header itself, before signing.
    empty = client("when_required")
    empty.meta.events.register("before-sign.s3.PutObject",
                               lambda request, **kw: request.headers.__setitem__("Content-MD5", ""))
    code, status, _ = error_of(empty.put_object, Bucket=bucket, Key="d", Body=b"abc")
    check((code, status) == ("InvalidDigest", 400), f"an empty Content-MD5: {code}")
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="d", Body=b"abc",
                               ContentMD5=b64(hashlib.md5(b"abd").digest()))
    check(code == "BadDigest", f"a wrong Content-MD5: {code}")
    code, _, _ = error_of(s3.head_object, Bucket=bucket, Key="d")
    check(code == "404", "nothing stored by refused PUTs")
    r = client("when_required").put_object(Bucket=bucket, Key="plain", Body=b"no checksum asked")
    check(r.get("ChecksumCRC64NVME") == b64(crc64nvme(b"no checksum asked"))
          and r.get("ChecksumType") == "FULL_OBJECT",
          "a PUT naming no checksum gets S3's default CRC64NVME")
    # Part 1 uploaded again after part 2, then completed.
    a, b, a2 = os.urandom(5 * MIB), os.urandom(100), os.urandom(5 * MIB)
    bare = client("when_required")
    uid = bare.create_multipart_upload(Bucket=bucket, Key="again")["UploadId"]
    bare.upload_part(Bucket=bucket, Key="again", UploadId=uid, PartNumber=1, Body=a)
    e2 = bare.upload_part(Bucket=bucket, Key="again", UploadId=uid, PartNumber=2, Body=b)["ETag"]
    e1 = bare.upload_part(Bucket=bucket, Key="again", UploadId=uid, PartNumber=1, Body=a2)["ETag"]
    done = bare.complete_multipart_upload(Bucket=bucket, Key="again", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    got = s3.get_object(Bucket=bucket, Key="again", ChecksumMode="ENABLED")
    check(got["Body"].read() == a2 + b, "part 1 uploaded again after part 2 completes")
    check(done.get("ChecksumCRC64NVME") == b64(crc64nvme(a2 + b))
          and got.get("ChecksumType") == "FULL_OBJECT",
          "an upload naming no checksum gets a FULL_OBJECT CRC64NVME")
    # Parts that send their own CRC32 (SDK defaults) to an upload naming no algorithm:
    # the object still gets S3's default CRC64NVME.
    uid = bare.create_multipart_upload(Bucket=bucket, Key="crc32-parts")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="crc32-parts", UploadId=uid, PartNumber=1, Body=a,
                        ChecksumAlgorithm="CRC32")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="crc32-parts", UploadId=uid, PartNumber=2, Body=b,
                        ChecksumAlgorithm="CRC32")["ETag"]
    done = bare.complete_multipart_upload(Bucket=bucket, Key="crc32-parts", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    check(done.get("ChecksumCRC64NVME") == b64(crc64nvme(a + b)),
          "parts with their own CRC32 still give the object S3's default CRC64NVME")


def main():
    s3 = client()
    bucket = "checksums"
    s3.create_bucket(Bucket=bucket)
    print("boto3 checksums: defaults round trip")
    defaults_round_trip(s3, bucket)
    print("boto3 checksums: COMPOSITE by hand")
    part1, part2 = composite_by_hand(s3, bucket)
    print("boto3 checksums: FULL_OBJECT by hand")
    data, chunks = full_object_by_hand(s3, bucket)
    print("boto3 checksums: part reads")
    part_reads(s3, bucket, data, chunks)
    print("boto3 checksums: GetObjectAttributes")
    attributes(s3, bucket, data, chunks)
    print("boto3 checksums: copies")
    copies(s3, bucket, part1, part2)
    print("boto3 checksums: digests and parts")
    digests_and_parts(s3, bucket)
    print("boto3 checksums: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
