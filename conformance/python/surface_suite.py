"""boto3 against a running s3dedup (started by conformance/tests/s3_surface.rs): tagging
and the bucket sub-resources clients probe, written from the AWS S3 API reference.

Prints one line per check; exits non-zero on the first failure.
"""
import http.client
import os
import sys
import urllib.parse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3DEDUP_ENDPOINT"]
KEY = os.environ["S3DEDUP_ACCESS_KEY"]
SECRET = os.environ["S3DEDUP_SECRET_KEY"]


def client():
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"max_attempts": 1})
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
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} succeeded but should have failed")


def tagset(d):
    return [{"Key": k, "Value": v} for k, v in d.items()]


def as_dict(ts):
    return {t["Key"]: t["Value"] for t in ts}


def object_tagging(s3, b):
    s3.put_object(Bucket=b, Key="t", Body=b"tagged", Tagging="team=storage&tier=gold%20plus&bare")
    got = s3.get_object_tagging(Bucket=b, Key="t")["TagSet"]
    check(as_dict(got) == {"team": "storage", "tier": "gold plus", "bare": ""},
          "x-amz-tagging on PutObject (URL query form, a bare key is an empty value)")
    check(s3.get_object(Bucket=b, Key="t")["TagCount"] == 3, "GET answers x-amz-tagging-count")
    s3.put_object_tagging(Bucket=b, Key="t", Tagging={"TagSet": tagset({"a": "1"})})
    check(as_dict(s3.get_object_tagging(Bucket=b, Key="t")["TagSet"]) == {"a": "1"},
          "PutObjectTagging replaces the set")
    r = s3.delete_object_tagging(Bucket=b, Key="t")
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 204
          and s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == []
          and "TagCount" not in s3.get_object(Bucket=b, Key="t"),
          "DeleteObjectTagging: 204, no tags, no count")

    # Limits and malformed input, each refused with nothing changed.
    s3.put_object_tagging(Bucket=b, Key="t", Tagging={"TagSet": tagset({"keep": "me"})})
    eleven = {f"k{i}": "v" for i in range(11)}
    for what, tags, want in [
        ("11 tags", eleven, "BadRequest"),
        ("a 129-character key", {"k" * 129: "v"}, "InvalidTag"),
        ("a 257-character value", {"k": "v" * 257}, "InvalidTag"),
        ("an aws: key", {"aws:x": "v"}, "InvalidTag"),
        ("a key with '<'", {"a<b": "v"}, "InvalidTag"),
    ]:
        code, status = error_of(s3.put_object_tagging, Bucket=b, Key="t", Tagging={"TagSet": tagset(tags)})
        check((code, status) == (want, 400), f"{what}: {code} {status}")
    dup = {"TagSet": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]}
    code, _ = error_of(s3.put_object_tagging, Bucket=b, Key="t", Tagging=dup)
    check(code == "InvalidTag", f"a repeated key: {code}")
    code, _ = error_of(s3.put_object, Bucket=b, Key="t2", Body=b"x", Tagging="k=1&k=2")
    check(code == "InvalidArgument", f"a repeated key in x-amz-tagging: {code}")
    code, _ = error_of(s3.head_object, Bucket=b, Key="t2")
    check(code == "404", "the refused PUT stored nothing")
    check(as_dict(s3.get_object_tagging(Bucket=b, Key="t")["TagSet"]) == {"keep": "me"},
          "refused tag sets changed nothing")
    code, _ = error_of(s3.get_object_tagging, Bucket=b, Key="absent")
    check(code == "NoSuchKey", "tagging of a missing key: NoSuchKey")

    # Copies: the directive decides.
    s3.copy_object(Bucket=b, Key="c1", CopySource={"Bucket": b, "Key": "t"})
    check(as_dict(s3.get_object_tagging(Bucket=b, Key="c1")["TagSet"]) == {"keep": "me"},
          "CopyObject copies the tags by default")
    s3.copy_object(Bucket=b, Key="c2", CopySource={"Bucket": b, "Key": "t"},
                   TaggingDirective="REPLACE", Tagging="new=1")
    check(as_dict(s3.get_object_tagging(Bucket=b, Key="c2")["TagSet"]) == {"new": "1"},
          "TaggingDirective REPLACE takes the request's")
    s3.copy_object(Bucket=b, Key="c3", CopySource={"Bucket": b, "Key": "t"},
                   TaggingDirective="REPLACE")
    check(s3.get_object_tagging(Bucket=b, Key="c3")["TagSet"] == [],
          "REPLACE without x-amz-tagging: no tags")

    # Multipart: the tags given at creation.
    up = s3.create_multipart_upload(Bucket=b, Key="mp", Tagging="from=create")
    e = s3.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    check(as_dict(s3.get_object_tagging(Bucket=b, Key="mp")["TagSet"]) == {"from": "create"},
          "x-amz-tagging on CreateMultipartUpload reaches the object")


def versioned_tagging(s3):
    b = "surface-versions"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one", Tagging="v=1")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two", Tagging="v=2")["VersionId"]
    r = s3.put_object_tagging(Bucket=b, Key="k", VersionId=v1, Tagging={"TagSet": tagset({"v": "one"})})
    check(r["VersionId"] == v1, "PutObjectTagging of a version answers its id")
    check(as_dict(s3.get_object_tagging(Bucket=b, Key="k", VersionId=v1)["TagSet"]) == {"v": "one"}
          and as_dict(s3.get_object_tagging(Bucket=b, Key="k")["TagSet"]) == {"v": "2"},
          "each version keeps its own tags")
    check(s3.get_object_tagging(Bucket=b, Key="k")["VersionId"] == v2, "GetObjectTagging names the version")


def bucket_tagging(s3, b):
    code, status = error_of(s3.get_bucket_tagging, Bucket=b)
    check((code, status) == ("NoSuchTagSet", 404), "an untagged bucket: 404 NoSuchTagSet")
    tags = {"cost-center": "42", "owner": "ops team"}
    s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": tagset(tags)})
    check(as_dict(s3.get_bucket_tagging(Bucket=b)["TagSet"]) == tags, "PutBucketTagging round trip")
    fifty_one = {f"k{i}": "v" for i in range(51)}
    code, _ = error_of(s3.put_bucket_tagging, Bucket=b, Tagging={"TagSet": tagset(fifty_one)})
    check(code == "BadRequest", f"51 bucket tags: {code}")
    fifty = {f"k{i}": "v" for i in range(50)}
    s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": tagset(fifty)})
    check(len(s3.get_bucket_tagging(Bucket=b)["TagSet"]) == 50, "50 bucket tags are fine")
    r = s3.delete_bucket_tagging(Bucket=b)
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 204, "DeleteBucketTagging: 204")
    code, _ = error_of(s3.get_bucket_tagging, Bucket=b)
    check(code == "NoSuchTagSet", "deleted: NoSuchTagSet again")


def raw(method, url, headers=None):
    """One request with nothing added: (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, f"{u.path}?{u.query}" if u.query else u.path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def cors(s3, b):
    rules = {"CORSRules": [
        {"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["PUT", "POST"],
         "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
    ]}
    code, status = error_of(s3.get_bucket_cors, Bucket=b)
    check((code, status) == ("NoSuchCORSConfiguration", 404), "no CORS yet: NoSuchCORSConfiguration")
    s3.put_bucket_cors(Bucket=b, CORSConfiguration=rules)
    got = s3.get_bucket_cors(Bucket=b)["CORSRules"]
    check(got[0]["AllowedOrigins"] == ["https://*.example.com"] and got[0]["MaxAgeSeconds"] == 600
          and got[1]["AllowedMethods"] == ["GET", "HEAD"], "PutBucketCors round trip")
    for what, cfg, want in [
        ("a lower-case method", {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["get"]}]}, "InvalidRequest"),
        ("two wildcards", {"CORSRules": [{"AllowedOrigins": ["*a*"], "AllowedMethods": ["GET"]}]}, "InvalidRequest"),
        ("no rules", {"CORSRules": []}, "MalformedXML"),
    ]:
        code, status = error_of(s3.put_bucket_cors, Bucket=b, CORSConfiguration=cfg)
        check((code, status) == (want, 400), f"CORS with {what}: {code} {status}")
    check(len(s3.get_bucket_cors(Bucket=b)["CORSRules"]) == 2, "refused configurations changed nothing")

    url = f"{ENDPOINT}/{b}/t"
    status, h, _ = raw("OPTIONS", url, {"Origin": "https://app.example.com",
                                        "Access-Control-Request-Method": "PUT",
                                        "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"})
    check(status == 200 and h.get("access-control-allow-origin") == "https://app.example.com"
          and h.get("access-control-allow-methods") == "PUT, POST"
          and h.get("access-control-allow-headers") == "content-type, x-amz-date"
          and h.get("access-control-max-age") == "600"
          and h.get("access-control-expose-headers") == "ETag",
          f"preflight allowed by the first rule: {status} {h}")
    status, h, body = raw("OPTIONS", url, {"Origin": "https://evil.org",
                                           "Access-Control-Request-Method": "PUT"})
    check(status == 403 and b"<Code>AccessForbidden</Code>" in body
          and "access-control-allow-origin" not in h, f"a disallowed preflight: 403 ({status})")
    status, _, body = raw("OPTIONS", url, {"Access-Control-Request-Method": "GET"})
    check(status == 400 and b"BadRequest" in body, f"a preflight without Origin: 400 ({status})")
    # Real requests with an Origin get the matching rule's headers, also through a
    # presigned URL; without a match, none.
    presigned = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "t"}, ExpiresIn=300)
    status, h, _ = raw("GET", presigned, {"Origin": "https://anywhere.net"})
    check(status == 200 and h.get("access-control-allow-origin") == "*",
          f"a presigned GET with an Origin: {status} {h.get('access-control-allow-origin')}")
    status, h, _ = raw("GET", presigned)
    check("access-control-allow-origin" not in h, "no Origin, no CORS headers")
    s3.delete_bucket_cors(Bucket=b)
    status, _, body = raw("OPTIONS", url, {"Origin": "https://app.example.com",
                                           "Access-Control-Request-Method": "GET"})
    check(status == 403 and b"not enabled" in body, "after DeleteBucketCors: CORS not enabled")


def probes(s3, b):
    for name, fn, want in [
        ("website", s3.get_bucket_website, "NoSuchWebsiteConfiguration"),
        ("replication", s3.get_bucket_replication, "ReplicationConfigurationNotFoundError"),
        ("lifecycle", s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
        ("policy", s3.get_bucket_policy, "NoSuchBucketPolicy"),
        ("object-lock", s3.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError"),
    ]:
        code, status = error_of(fn, Bucket=b)
        check((code, status) == (want, 404), f"?{name} of an unconfigured bucket: {code} {status}")
    check("Status" not in s3.get_bucket_versioning(Bucket=b), "?versioning: no Status")
    check("LoggingEnabled" not in s3.get_bucket_logging(Bucket=b), "?logging: not enabled")
    check(s3.get_bucket_request_payment(Bucket=b)["Payer"] == "BucketOwner", "?requestPayment: BucketOwner")
    r = s3.list_objects_v2(Bucket=b, MaxKeys=0)
    check(r["KeyCount"] == 0 and not r["IsTruncated"] and "Contents" not in r,
          "max-keys=0: nothing, not truncated")


def main():
    s3 = client()
    b = "surface"
    s3.create_bucket(Bucket=b)
    print("boto3 surface: object tagging")
    object_tagging(s3, b)
    print("boto3 surface: versioned tagging")
    versioned_tagging(s3)
    print("boto3 surface: bucket tagging")
    bucket_tagging(s3, b)
    print("boto3 surface: CORS")
    cors(s3, b)
    print("boto3 surface: sub-resource probes")
    probes(s3, b)
    print("boto3 surface: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
