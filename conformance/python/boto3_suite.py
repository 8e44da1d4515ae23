"""boto3 against a running s3dedup (started by conformance/tests/boto3.rs).

Runs once with the SDK's default checksum behaviour (when_supported) and once with
when_required; prints one line per check and exits non-zero on the first failure.
"""
import hashlib
import os
import sys
import tempfile
import http.client
import urllib.parse

import boto3
from botocore.config import Config

ENDPOINT = os.environ["S3DEDUP_ENDPOINT"]
KEY = os.environ["S3DEDUP_ACCESS_KEY"]
SECRET = os.environ["S3DEDUP_SECRET_KEY"]


def client(mode):
    cfg = Config(
        request_checksum_calculation=mode,
        response_checksum_validation=mode,
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2},
    )
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET, config=cfg)


def client_v4(mode):
    cfg = Config(signature_version="s3v4", request_checksum_calculation=mode,
                 s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET, config=cfg)


def plain_http(method, url, body=None):
    """One request with nothing added (urllib would add a Content-Type to a PUT)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request(method, f"{u.path}?{u.query}", body=body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def suite(mode):
    s3 = client(mode)
    bucket = f"boto3-{mode.replace('_', '-')}"
    s3.create_bucket(Bucket=bucket)

    # upload_file / download_file of 100 MiB (the transfer manager goes multipart).
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "big.bin")
        data = os.urandom(100 << 20)
        with open(src, "wb") as f:
            f.write(data)
        s3.upload_file(src, bucket, "big.bin")
        dst = os.path.join(tmp, "back.bin")
        s3.download_file(bucket, "big.bin", dst)
        with open(dst, "rb") as f:
            check(hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest(),
                  "100 MiB upload_file/download_file round trip")
        etag = s3.head_object(Bucket=bucket, Key="big.bin")["ETag"]
        check(etag.strip('"').count("-") == 1, f"multipart ETag {etag}")

    # put/get with every checksum algorithm.
    body = os.urandom(300_000)
    for algo in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]:
        s3.put_object(Bucket=bucket, Key=f"ck-{algo}", Body=body, ChecksumAlgorithm=algo)
        got = s3.get_object(Bucket=bucket, Key=f"ck-{algo}", ChecksumMode="ENABLED")
        check(got["Body"].read() == body, f"{algo} put/get")
        check(f"Checksum{algo}" in got, f"{algo} checksum returned")

    # Presigned GET and PUT used with a plain HTTP client. boto3's default presign
    # signature with a custom endpoint is SigV2 query auth, which the gateway refuses
    # unless `sigv2` is enabled (its signatures do not cover the body); SigV4 works.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "x"},
                                    ExpiresIn=300)
    check("Signature=" in url and "X-Amz-" not in url, "boto3's default presign is SigV2")
    status, got = plain_http("GET", url)
    check(status == 400 and b"<Code>InvalidRequest</Code>" in got, "SigV2 presigned GET refused")
    signer = client_v4(mode)
    url = signer.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"},
                                        ExpiresIn=300)
    status, _ = plain_http("PUT", url, b"presigned body")
    check(status == 200, "presigned PUT (SigV4)")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned"},
                                        ExpiresIn=300)
    status, got = plain_http("GET", url)
    check(status == 200 and got == b"presigned body", "presigned GET (SigV4)")

    # List pagination (v2 and v1 paginators), copy, delete_objects.
    for i in range(250):
        s3.put_object(Bucket=bucket, Key=f"list/{i:04d}", Body=b"x")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/",
                                                             PaginationConfig={"PageSize": 60}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    check(keys == [f"list/{i:04d}" for i in range(250)], "list_objects_v2 pagination")
    keys = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="list/",
                                                          PaginationConfig={"PageSize": 70}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    check(len(keys) == 250, "list_objects (v1) pagination")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "ck-CRC32"})
    check(s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == body, "copy_object")
    r = s3.delete_objects(Bucket=bucket,
                          Delete={"Objects": [{"Key": f"list/{i:04d}"} for i in range(250)]})
    check(len(r.get("Deleted", [])) == 250 and not r.get("Errors"), "delete_objects")
    check(s3.list_objects_v2(Bucket=bucket, Prefix="list/")["KeyCount"] == 0, "deleted keys gone")


def main():
    for mode in ["when_supported", "when_required"]:
        print(f"boto3 {boto3.__version__} ({mode}):")
        suite(mode)
    print("boto3: ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report and fail
        print(f"boto3: FAILED: {e!r}")
        sys.exit(1)
