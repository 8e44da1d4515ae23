"""S3 bucket versioning through boto3, against a running s3dedup (started by
conformance/tests/versioning.rs).

Every check asserts what Amazon S3 itself does (the API reference and user guide; where
the documentation is silent, what S3 was observed to answer, as noted next to the check).
Prints one line per check and exits non-zero on the first failure; "versioning: ok" at
the very end. Each section works in a bucket of its own.
"""
import hashlib
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3DEDUP_ENDPOINT"]
KEY = os.environ["S3DEDUP_ACCESS_KEY"]
SECRET = os.environ["S3DEDUP_SECRET_KEY"]


def client():
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET, config=cfg)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def headers(resp):
    """Response headers (lower-case names), of a result or of a ClientError's response."""
    return resp["ResponseMetadata"]["HTTPHeaders"]


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def etag(body):
    return '"' + hashlib.md5(body).hexdigest() + '"'


def expect_error(what, http_status, codes, fn, **kwargs):
    """Calls fn(**kwargs), which must fail with `http_status` and one of `codes`; returns
    the error response (headers in ['ResponseMetadata']['HTTPHeaders'])."""
    if isinstance(codes, str):
        codes = (codes,)
    return expect_one_of(what, [(http_status, c) for c in codes], fn, **kwargs)


def expect_one_of(what, answers, fn, **kwargs):
    """Calls fn(**kwargs), which must fail with one of `answers` ((status, code) pairs)."""
    want = " or ".join(f"{s} {c}" for s, c in answers)
    try:
        fn(**kwargs)
    except ClientError as e:
        got = (status(e.response), e.response.get("Error", {}).get("Code"))
        check(got in answers, f"{what}: {want} (got {got[0]} {got[1]})")
        return e.response
    raise AssertionError(f"{what}: succeeded, expected {want}")


def no_version_header(resp, what):
    check("VersionId" not in resp and "x-amz-version-id" not in headers(resp),
          f"{what}: no x-amz-version-id header (got {headers(resp).get('x-amz-version-id')!r})")


def listing(s3, bucket, **kwargs):
    """One unpaginated ListObjectVersions answer, checked not to be truncated."""
    r = s3.list_object_versions(Bucket=bucket, **kwargs)
    if r.get("IsTruncated"):
        raise AssertionError(f"listing of {bucket} unexpectedly truncated")
    return r


def version_ids(resp, key=None):
    return [v["VersionId"] for v in resp.get("Versions", []) if key is None or v["Key"] == key]


def marker_ids(resp, key=None):
    return [m["VersionId"] for m in resp.get("DeleteMarkers", [])
            if key is None or m["Key"] == key]


def set_versioning(s3, bucket, state):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": state})
    got = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    check(got == state, f"{bucket}: put_bucket_versioning {state} -> get says {got}")


def body_of(resp):
    return resp["Body"].read()


# --------------------------------------------------------------------------------------


def unversioned(s3):
    print("unversioned bucket:")
    b = "ver-unversioned"
    s3.create_bucket(Bucket=b)
    r = s3.get_bucket_versioning(Bucket=b)
    check("Status" not in r and "MFADelete" not in r,
          f"new bucket: get_bucket_versioning has no Status ({r.get('Status')!r})")
    body = b"plain object"
    put = s3.put_object(Bucket=b, Key="k", Body=body)
    no_version_header(put, "PUT to an unversioned bucket")
    got = s3.get_object(Bucket=b, Key="k")
    check(body_of(got) == body, "GET from an unversioned bucket")
    no_version_header(got, "GET from an unversioned bucket")
    no_version_header(s3.head_object(Bucket=b, Key="k"), "HEAD in an unversioned bucket")
    lv = listing(s3, b)
    vs = lv.get("Versions", [])
    check(len(vs) == 1 and vs[0]["Key"] == "k" and vs[0]["VersionId"] == "null"
          and vs[0]["IsLatest"] is True,
          f"list_object_versions lists the object as version null, IsLatest ({vs})")
    check(vs[0]["ETag"] == etag(body) and vs[0]["Size"] == len(body),
          "listed null version has the object's ETag and size")
    check(not lv.get("DeleteMarkers"), "no delete markers in an unversioned bucket")
    # versionId=null names the only version an unversioned bucket has.
    got = s3.get_object(Bucket=b, Key="k", VersionId="null")
    check(body_of(got) == body, "GET ?versionId=null in an unversioned bucket")
    d = s3.delete_object(Bucket=b, Key="k")
    check(status(d) == 204 and not d.get("DeleteMarker"),
          "DELETE in an unversioned bucket: 204, no delete marker")
    no_version_header(d, "DELETE in an unversioned bucket")
    lv = listing(s3, b)
    check(not lv.get("Versions") and not lv.get("DeleteMarkers"),
          "DELETE in an unversioned bucket removes the object for good")
    s3.delete_bucket(Bucket=b)


def configuration(s3):
    print("versioning configuration:")
    b = "ver-config"
    s3.create_bucket(Bucket=b)
    # Status is an enumeration (Enabled | Suspended) in S3's schema; a value outside it
    # fails schema validation, which S3 reports as 400 MalformedXML ("The XML you
    # provided was not well-formed or did not validate against our published schema").
    # IllegalVersioningConfigurationException is the code S3 documents for a versioning
    # configuration that is well-formed but invalid; some servers (MinIO) answer an
    # unknown Status with it, so it is accepted too.
    expect_error("put_bucket_versioning Status=Bogus", 400,
                 ("MalformedXML", "IllegalVersioningConfigurationException"),
                 s3.put_bucket_versioning, Bucket=b,
                 VersioningConfiguration={"Status": "Bogus"})
    check("Status" not in s3.get_bucket_versioning(Bucket=b),
          "a refused configuration changes nothing")
    set_versioning(s3, b, "Enabled")
    set_versioning(s3, b, "Suspended")
    set_versioning(s3, b, "Enabled")
    expect_error("put_bucket_versioning Status=Bogus on an enabled bucket", 400,
                 ("MalformedXML", "IllegalVersioningConfigurationException"),
                 s3.put_bucket_versioning, Bucket=b,
                 VersioningConfiguration={"Status": "Bogus"})
    check(s3.get_bucket_versioning(Bucket=b).get("Status") == "Enabled",
          "still Enabled after the refused configuration")
    # A bucket that was never enabled can be suspended straight away (s3-tests
    # test_versioning_bucket_create_suspend); its writes are null versions.
    b2 = "ver-config-suspended"
    s3.create_bucket(Bucket=b2)
    set_versioning(s3, b2, "Suspended")
    no_version_header(s3.put_object(Bucket=b2, Key="k", Body=b"x"),
                      "PUT in a bucket suspended before it was ever enabled")
    check(version_ids(listing(s3, b2)) == ["null"], "  …listed as the null version")
    expect_error("get_bucket_versioning of a missing bucket", 404, "NoSuchBucket",
                 s3.get_bucket_versioning, Bucket="ver-no-such-bucket")
    expect_error("put_bucket_versioning on a missing bucket", 404, "NoSuchBucket",
                 s3.put_bucket_versioning, Bucket="ver-no-such-bucket",
                 VersioningConfiguration={"Status": "Enabled"})


def enabled(s3):
    print("versioning enabled: versions, delete markers, permanent deletes:")
    b = "ver-enabled"
    s3.create_bucket(Bucket=b)
    key = "doc.txt"
    bodies = {}
    v0 = b"version 0, written before versioning was enabled"
    no_version_header(s3.put_object(Bucket=b, Key=key, Body=v0), "PUT before enabling")
    set_versioning(s3, b, "Enabled")
    lv = listing(s3, b)
    check(version_ids(lv) == ["null"] and lv["Versions"][0]["IsLatest"] is True,
          f"object written before enabling keeps version id null ({version_ids(lv)})")
    # Once a bucket has a versioning state, S3 names the null version in GET/HEAD answers.
    h = s3.head_object(Bucket=b, Key=key)
    check(h.get("VersionId") == "null", f"HEAD of the pre-versioning object: VersionId null "
                                        f"({h.get('VersionId')!r})")
    g = s3.get_object(Bucket=b, Key=key, VersionId="null")
    check(body_of(g) == v0 and g.get("VersionId") == "null", "GET ?versionId=null")
    bodies["null"] = v0

    ids = []
    for i in range(1, 4):
        body = f"version {i} of the document ".encode() * (i * 7)
        r = s3.put_object(Bucket=b, Key=key, Body=body)
        vid = r.get("VersionId")
        check(vid and vid != "null" and headers(r).get("x-amz-version-id") == vid,
              f"PUT {i} in an enabled bucket returns a version id ({vid!r})")
        check(r["ETag"] == etag(body), f"PUT {i}: ETag is the body's MD5")
        h = s3.head_object(Bucket=b, Key=key)
        check(h.get("VersionId") == vid, f"HEAD after PUT {i} names the new version")
        g = s3.get_object(Bucket=b, Key=key)
        check(g.get("VersionId") == vid and body_of(g) == body,
              f"GET after PUT {i} returns the new version and its bytes")
        ids.append(vid)
        bodies[vid] = body
    v1, v2, v3 = ids
    check(len(set(ids + ["null"])) == 4, "every PUT got a distinct version id")

    lv = listing(s3, b, Prefix=key)
    vs = lv.get("Versions", [])
    check(version_ids(lv) == [v3, v2, v1, "null"],
          f"4 versions listed, newest first ({version_ids(lv)})")
    check([v["IsLatest"] for v in vs] == [True, False, False, False],
          "exactly one version IsLatest, the newest")
    check(all(v["ETag"] == etag(bodies[v["VersionId"]])
              and v["Size"] == len(bodies[v["VersionId"]]) for v in vs),
          "each listed version has its own ETag and size")
    for vid in [v1, v2, "null", v3]:
        g = s3.get_object(Bucket=b, Key=key, VersionId=vid)
        got = body_of(g)
        check(got == bodies[vid] and g["ETag"] == etag(bodies[vid]) and g.get("VersionId") == vid,
              f"GET ?versionId={vid}: that version's bytes, ETag and id")
        h = s3.head_object(Bucket=b, Key=key, VersionId=vid)
        check(h["ContentLength"] == len(bodies[vid]) and h["ETag"] == etag(bodies[vid])
              and h.get("VersionId") == vid, f"HEAD ?versionId={vid}")
    g = s3.get_object(Bucket=b, Key=key, VersionId=v1, Range="bytes=3-10")
    check(status(g) == 206 and body_of(g) == bodies[v1][3:11] and g.get("VersionId") == v1,
          "ranged GET of an old version")

    # A multipart upload in an enabled bucket creates a version too.
    mp_ids = []
    for i in range(2):
        part = f"multipart body {i} ".encode() * 100
        # The flow s3transfer uses: CRC32 named at create, each part's checksum at complete.
        up = s3.create_multipart_upload(Bucket=b, Key="mpu.bin",
                                        ChecksumAlgorithm="CRC32")["UploadId"]
        p = s3.upload_part(Bucket=b, Key="mpu.bin", UploadId=up, PartNumber=1, Body=part,
                           ChecksumAlgorithm="CRC32")
        c = s3.complete_multipart_upload(
            Bucket=b, Key="mpu.bin", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"],
                                        "ChecksumCRC32": p["ChecksumCRC32"]}]})
        vid = c.get("VersionId")
        check(vid and vid != "null" and vid not in mp_ids,
              f"complete_multipart_upload {i} returns a new version id ({vid!r})")
        mp_ids.append(vid)
        bodies[vid] = part
    g = s3.get_object(Bucket=b, Key="mpu.bin", VersionId=mp_ids[0])
    check(body_of(g) == bodies[mp_ids[0]], "the first multipart version stays readable")
    check(version_ids(listing(s3, b, Prefix="mpu.bin")) == mp_ids[::-1],
          "both multipart versions listed, newest first")

    # A simple DELETE inserts a delete marker.
    d = s3.delete_object(Bucket=b, Key=key)
    marker = d.get("VersionId")
    check(status(d) == 204 and d.get("DeleteMarker") is True and marker
          and marker not in bodies,
          f"DELETE without versionId: 204, DeleteMarker true, the marker's new id ({marker!r})")
    e = expect_error("GET of a key whose current version is a delete marker", 404,
                     "NoSuchKey", s3.get_object, Bucket=b, Key=key)
    check(headers(e).get("x-amz-delete-marker") == "true",
          f"the 404 carries x-amz-delete-marker: true ({headers(e).get('x-amz-delete-marker')!r})")
    if "x-amz-version-id" in headers(e):
        check(headers(e)["x-amz-version-id"] == marker, "the 404 names the marker's version")
    e = expect_error("HEAD of a key whose current version is a delete marker", 404,
                     ("404", "NoSuchKey"), s3.head_object, Bucket=b, Key=key)
    check(headers(e).get("x-amz-delete-marker") == "true",
          "the HEAD 404 carries x-amz-delete-marker: true")
    # GetObject: "If the specified version in the request is a delete marker, the
    # response returns a 405 Method Not Allowed error and the Last-Modified: timestamp
    # response header."
    e = expect_error("GET ?versionId=<delete marker>", 405, "MethodNotAllowed",
                     s3.get_object, Bucket=b, Key=key, VersionId=marker)
    check(headers(e).get("x-amz-delete-marker") == "true" and "last-modified" in headers(e),
          f"the 405 carries x-amz-delete-marker: true and Last-Modified ({headers(e)})")
    expect_error("HEAD ?versionId=<delete marker>", 405, ("405", "MethodNotAllowed"),
                 s3.head_object, Bucket=b, Key=key, VersionId=marker)
    g = s3.get_object(Bucket=b, Key=key, VersionId=v1)
    check(body_of(g) == bodies[v1], "an older version is still readable byte-exact by id")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]
    check(key not in listed and "mpu.bin" in listed,
          f"list_objects_v2 no longer lists the deleted key ({listed})")
    listed = [o["Key"] for o in s3.list_objects(Bucket=b).get("Contents", [])]
    check(key not in listed, "list_objects (v1) no longer lists it either")
    lv = listing(s3, b, Prefix=key)
    dms = lv.get("DeleteMarkers", [])
    check(len(dms) == 1 and dms[0]["Key"] == key and dms[0]["VersionId"] == marker
          and dms[0]["IsLatest"] is True, f"the marker is listed in DeleteMarkers, IsLatest ({dms})")
    check(version_ids(lv) == [v3, v2, v1, "null"]
          and not any(v["IsLatest"] for v in lv["Versions"]),
          "the versions stay, none of them latest")
    # Copying: a current delete marker hides the source (404 NoSuchKey); naming a delete
    # marker by id as copy source is refused with 400 InvalidRequest.
    expect_error("copy from a key whose current version is a delete marker", 404, "NoSuchKey",
                 s3.copy_object, Bucket=b, Key="copy.txt",
                 CopySource={"Bucket": b, "Key": key})
    expect_error("copy from a delete marker named by version id", 400, "InvalidRequest",
                 s3.copy_object, Bucket=b, Key="copy.txt",
                 CopySource={"Bucket": b, "Key": key, "VersionId": marker})

    # Delete markers stack; removing them by id uncovers the newest version again.
    d2 = s3.delete_object(Bucket=b, Key=key)
    marker2 = d2.get("VersionId")
    check(d2.get("DeleteMarker") is True and marker2 and marker2 != marker,
          "a second simple DELETE adds a second marker")
    check(marker_ids(listing(s3, b, Prefix=key)) == [marker2, marker],
          "two markers listed, newest first")
    for m in (marker2, marker):
        r = s3.delete_object(Bucket=b, Key=key, VersionId=m)
        check(status(r) == 204 and r.get("DeleteMarker") is True and r.get("VersionId") == m,
              f"DELETE ?versionId=<marker>: DeleteMarker true, VersionId the marker's ({r.get('VersionId')!r})")
    g = s3.get_object(Bucket=b, Key=key)
    check(body_of(g) == bodies[v3] and g.get("VersionId") == v3,
          "with the markers gone the newest version is current again")
    lv = listing(s3, b, Prefix=key)
    check(not lv.get("DeleteMarkers") and lv["Versions"][0]["IsLatest"] is True,
          "no markers left; the newest version IsLatest again")

    # Deleting a version by id removes it for good.
    r = s3.delete_object(Bucket=b, Key=key, VersionId=v1)
    check(status(r) == 204 and r.get("VersionId") == v1 and not r.get("DeleteMarker"),
          "DELETE ?versionId=<noncurrent version>: 204, names the version, no marker")
    expect_error("GET of a permanently deleted version", 404, "NoSuchVersion",
                 s3.get_object, Bucket=b, Key=key, VersionId=v1)
    expect_error("HEAD of a permanently deleted version", 404, ("404", "NoSuchVersion"),
                 s3.head_object, Bucket=b, Key=key, VersionId=v1)
    check(version_ids(listing(s3, b, Prefix=key)) == [v3, v2, "null"],
          "the deleted version is gone from the listing, the others stay")
    # S3 answers a DELETE of a version that does not exist with success (DeleteObject
    # is idempotent), echoing the id.
    r = s3.delete_object(Bucket=b, Key=key, VersionId=v1)
    check(status(r) == 204, "deleting the same version again succeeds (204)")
    r = s3.delete_object(Bucket=b, Key=key, VersionId=v3)
    check(r.get("VersionId") == v3 and not r.get("DeleteMarker"),
          "DELETE ?versionId=<current version>")
    g = s3.get_object(Bucket=b, Key=key)
    check(body_of(g) == bodies[v2] and g.get("VersionId") == v2,
          "deleting the current version by id makes the previous one current")
    lv = listing(s3, b, Prefix=key)
    check(version_ids(lv) == [v2, "null"] and lv["Versions"][0]["IsLatest"] is True
          and not lv.get("DeleteMarkers"),
          "the previous version is listed IsLatest, and no marker was created")
    s3.delete_object(Bucket=b, Key=key, VersionId="null")
    expect_error("GET ?versionId=null after deleting the null version", 404, "NoSuchVersion",
                 s3.get_object, Bucket=b, Key=key, VersionId="null")
    check(version_ids(listing(s3, b, Prefix=key)) == [v2], "the null version deleted by id")

    # Unknown version ids. S3 answers 400 InvalidArgument ("Invalid version id
    # specified") for an id that is not of its format and 404 NoSuchVersion for a
    # well-formed id it does not hold; ids are opaque to clients, so either is accepted
    # for nonsense, while an id this server issued and then deleted must be NoSuchVersion.
    expect_one_of("GET ?versionId=not-a-version",
                  [(400, "InvalidArgument"), (404, "NoSuchVersion")],
                  s3.get_object, Bucket=b, Key=key, VersionId="not-a-version")
    expect_error("GET ?versionId=<issued, then deleted>", 404, "NoSuchVersion",
                 s3.get_object, Bucket=b, Key=key, VersionId=v3)


def listing_pagination(s3):
    print("list_object_versions: prefix, delimiter, pagination:")
    b = "ver-listing"
    s3.create_bucket(Bucket=b)
    expected = {}  # key -> list of ("v"|"m", id), newest first
    s3.put_object(Bucket=b, Key="top", Body=b"top null")
    expected["top"] = [("v", "null")]
    set_versioning(s3, b, "Enabled")
    for key in ["a/1", "a/2", "b/1", "top", "a/3"]:
        for i in range(3):
            r = s3.put_object(Bucket=b, Key=key, Body=f"{key} #{i}".encode())
            expected.setdefault(key, []).insert(0, ("v", r["VersionId"]))
    d = s3.delete_object(Bucket=b, Key="a/2")
    expected["a/2"].insert(0, ("m", d["VersionId"]))
    d = s3.delete_object(Bucket=b, Key="b/1")
    expected["b/1"].insert(0, ("m", d["VersionId"]))

    def want(keys):
        vs = [(k, i) for k in keys for (t, i) in expected[k] if t == "v"]
        ms = [(k, i) for k in keys for (t, i) in expected[k] if t == "m"]
        return vs, ms

    def got(resp):
        return ([(v["Key"], v["VersionId"]) for v in resp.get("Versions", [])],
                [(m["Key"], m["VersionId"]) for m in resp.get("DeleteMarkers", [])])

    all_keys = sorted(expected)
    full = listing(s3, b)
    check(got(full) == want(all_keys),
          "full listing: keys in order, each key's versions newest first, markers listed")
    latest = {v["Key"]: v["VersionId"] for v in full["Versions"] if v["IsLatest"]}
    latest.update({m["Key"]: m["VersionId"] for m in full.get("DeleteMarkers", [])
                   if m["IsLatest"]})
    check(latest == {k: expected[k][0][1] for k in all_keys},
          "exactly the newest entry of each key IsLatest")
    check(sum(v["IsLatest"] for v in full["Versions"])
          + sum(m["IsLatest"] for m in full.get("DeleteMarkers", [])) == len(all_keys),
          "one IsLatest per key")

    r = listing(s3, b, Prefix="a/")
    check(got(r) == want(["a/1", "a/2", "a/3"]) and r.get("Prefix") == "a/",
          "Prefix=a/ lists only a/ keys")
    r = listing(s3, b, Delimiter="/")
    check([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["a/", "b/"]
          and got(r) == want(["top"]),
          f"Delimiter=/ rolls a/ and b/ into CommonPrefixes ({r.get('CommonPrefixes')})")
    r = listing(s3, b, Prefix="a/", Delimiter="/")
    check(got(r) == want(["a/1", "a/2", "a/3"]) and not r.get("CommonPrefixes"),
          "Prefix=a/ Delimiter=/ lists a/ keys, no common prefixes")
    r = listing(s3, b, KeyMarker="a/3")
    check(got(r) == want(["b/1", "top"]), "KeyMarker alone starts after that key")

    # MaxKeys=1, by hand through NextKeyMarker / NextVersionIdMarker.
    pages, vs, ms = 0, [], []
    kwargs = {}
    while True:
        r = s3.list_object_versions(Bucket=b, MaxKeys=1, **kwargs)
        pages += 1
        pv, pm = got(r)
        if len(pv) + len(pm) != 1:
            raise AssertionError(f"page {pages} holds {len(pv) + len(pm)} entries, MaxKeys=1")
        if kwargs and (r.get("KeyMarker") != kwargs["KeyMarker"]
                       or r.get("VersionIdMarker") != kwargs["VersionIdMarker"]):
            raise AssertionError(f"page {pages} does not echo its markers: {r}")
        vs += pv
        ms += pm
        if not r["IsTruncated"]:
            if r.get("NextKeyMarker") or r.get("NextVersionIdMarker"):
                raise AssertionError(f"last page carries next markers: {r}")
            break
        if not r.get("NextKeyMarker") or not r.get("NextVersionIdMarker"):
            raise AssertionError(f"truncated page {pages} without next markers: {r}")
        kwargs = {"KeyMarker": r["NextKeyMarker"], "VersionIdMarker": r["NextVersionIdMarker"]}
        if pages > 100:
            raise AssertionError("pagination does not end")
    total = sum(len(v) for v in expected.values())
    check(pages == total, f"MaxKeys=1: one page per version or marker ({pages} of {total})")
    check((vs, ms) == got(full), "MaxKeys=1 pages add up to the unpaginated listing, in order")

    vs, ms = [], []
    for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=b, PaginationConfig={"PageSize": 2}):
        pv, pm = got(page)
        vs += pv
        ms += pm
    check((vs, ms) == got(full), "boto3's paginator (PageSize 2) yields the same listing")
    vs, ms = [], []
    for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=b, Prefix="a/", PaginationConfig={"PageSize": 1}):
        pv, pm = got(page)
        vs += pv
        ms += pm
    check((vs, ms) == want(["a/1", "a/2", "a/3"]), "paginated with a prefix")


def multi_delete(s3):
    print("delete_objects with version ids:")
    b = "ver-multidelete"
    s3.create_bucket(Bucket=b)
    set_versioning(s3, b, "Enabled")
    xs = [s3.put_object(Bucket=b, Key="x", Body=f"x{i}".encode())["VersionId"] for i in range(3)]
    ys = [s3.put_object(Bucket=b, Key="y", Body=b"y0")["VersionId"]]
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "x", "VersionId": xs[0]},
        {"Key": "x", "VersionId": xs[1]},
        {"Key": "y"},
    ]})
    check(not r.get("Errors") and len(r.get("Deleted", [])) == 3,
          f"3 entries deleted, no errors ({r.get('Errors')})")
    by = {(d["Key"], d.get("VersionId")): d for d in r["Deleted"]}
    check(("x", xs[0]) in by and ("x", xs[1]) in by
          and not by[("x", xs[0])].get("DeleteMarker"),
          "versions deleted by id are reported with their ids, not as markers")
    ydel = [d for d in r["Deleted"] if d["Key"] == "y"]
    check(len(ydel) == 1 and ydel[0].get("DeleteMarker") is True
          and ydel[0].get("DeleteMarkerVersionId"),
          f"a key without VersionId gets a delete marker: DeleteMarker, DeleteMarkerVersionId ({ydel})")
    ymarker = ydel[0]["DeleteMarkerVersionId"]
    lv = listing(s3, b)
    check(version_ids(lv, "x") == [xs[2]], "only the third version of x is left")
    check(version_ids(lv, "y") == ys and marker_ids(lv, "y") == [ymarker],
          "y keeps its version under the new marker")
    expect_error("GET of a version removed by delete_objects", 404, "NoSuchVersion",
                 s3.get_object, Bucket=b, Key="x", VersionId=xs[0])
    expect_error("GET of y under its marker", 404, "NoSuchKey", s3.get_object, Bucket=b, Key="y")
    check(body_of(s3.get_object(Bucket=b, Key="x")) == b"x2", "x reads its remaining version")
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "y", "VersionId": ymarker}]})
    dd = r.get("Deleted", [])
    check(not r.get("Errors") and len(dd) == 1 and dd[0].get("VersionId") == ymarker
          and dd[0].get("DeleteMarker") is True,
          f"deleting the marker by id: reported as a delete marker ({dd})")
    check(body_of(s3.get_object(Bucket=b, Key="y")) == b"y0", "y readable again")
    # Deleting versions that are already gone succeeds (s3-tests, checked against S3).
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "x", "VersionId": xs[0]}, {"Key": "x", "VersionId": xs[1]}]})
    check(not r.get("Errors") and len(r.get("Deleted", [])) == 2,
          "deleting the same versions again: reported deleted, no errors")
    check(version_ids(listing(s3, b), "x") == [xs[2]], "and nothing else changed")


def copy_versions(s3):
    print("copy_object from a version:")
    b = "ver-copy"
    s3.create_bucket(Bucket=b)
    set_versioning(s3, b, "Enabled")
    s1b, s2b = b"source, first version" * 50, b"source, second version" * 40
    s1 = s3.put_object(Bucket=b, Key="src", Body=s1b)["VersionId"]
    s2 = s3.put_object(Bucket=b, Key="src", Body=s2b)["VersionId"]
    r = s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src", "VersionId": s1})
    new = r.get("VersionId")
    check(r.get("CopySourceVersionId") == s1,
          f"CopySourceVersionId is the old version ({r.get('CopySourceVersionId')!r})")
    check(new and new not in ("null", s1, s2), f"the copy is a new version ({new!r})")
    check(r["CopyObjectResult"]["ETag"] == etag(s1b), "the copy has the old version's ETag")
    g = s3.get_object(Bucket=b, Key="dst")
    check(body_of(g) == s1b and g.get("VersionId") == new, "the copy holds the old version's bytes")
    r = s3.copy_object(Bucket=b, Key="dst2", CopySource={"Bucket": b, "Key": "src"})
    check(r.get("CopySourceVersionId") == s2, "a copy without versionId copies the current version")
    check(body_of(s3.get_object(Bucket=b, Key="dst2")) == s2b, "  …with its bytes")
    # Restoring an old version: copy it onto its own key.
    r = s3.copy_object(Bucket=b, Key="src", CopySource={"Bucket": b, "Key": "src", "VersionId": s1})
    s3v = r.get("VersionId")
    check(s3v not in (s1, s2) and body_of(s3.get_object(Bucket=b, Key="src")) == s1b,
          "copying an old version onto its key makes it current as a new version")
    check(version_ids(listing(s3, b, Prefix="src")) == [s3v, s2, s1], "src now has 3 versions")
    plain = "ver-copy-plain"
    s3.create_bucket(Bucket=plain)
    r = s3.copy_object(Bucket=plain, Key="k", CopySource={"Bucket": b, "Key": "src", "VersionId": s2})
    check(r.get("CopySourceVersionId") == s2 and "VersionId" not in r,
          "copy of a version into an unversioned bucket: source id echoed, no new version id")
    check(body_of(s3.get_object(Bucket=plain, Key="k")) == s2b, "  …and the right bytes")


def suspended(s3):
    print("versioning suspended:")
    b = "ver-suspended"
    s3.create_bucket(Bucket=b)
    set_versioning(s3, b, "Enabled")
    e1 = s3.put_object(Bucket=b, Key="k", Body=b"enabled 1")["VersionId"]
    e2 = s3.put_object(Bucket=b, Key="k", Body=b"enabled 2")["VersionId"]
    set_versioning(s3, b, "Suspended")
    # S3 stores a write into a suspended bucket as the null version and answers the PUT
    # without x-amz-version-id (the PutObject reference's "versioning suspended" sample
    # response has none; s3-tests test_versioning_bucket_atomic_upload_return_version_id).
    r = s3.put_object(Bucket=b, Key="k", Body=b"null 1")
    no_version_header(r, "PUT in a suspended bucket")
    lv = listing(s3, b)
    check(version_ids(lv) == ["null", e2, e1] and lv["Versions"][0]["IsLatest"] is True,
          f"the PUT made the null version, current; the enabled-era versions stay ({version_ids(lv)})")
    h = s3.head_object(Bucket=b, Key="k")
    check(h.get("VersionId") == "null", f"HEAD names the null version ({h.get('VersionId')!r})")
    s3.put_object(Bucket=b, Key="k", Body=b"null 2")
    lv = listing(s3, b)
    check(version_ids(lv) == ["null", e2, e1],
          f"a second PUT replaces the null version (one null version, {version_ids(lv)})")
    check(body_of(s3.get_object(Bucket=b, Key="k", VersionId="null")) == b"null 2"
          and body_of(s3.get_object(Bucket=b, Key="k")) == b"null 2",
          "the null version holds the second PUT's bytes")
    check(body_of(s3.get_object(Bucket=b, Key="k", VersionId=e1)) == b"enabled 1",
          "an enabled-era version is still readable")
    s3.put_object(Bucket=b, Key="fresh", Body=b"only null")
    check(version_ids(listing(s3, b, Prefix="fresh")) == ["null"],
          "a key first written while suspended has only the null version")

    # A simple DELETE removes the null version and puts a null delete marker in its place.
    d = s3.delete_object(Bucket=b, Key="k")
    check(d.get("DeleteMarker") is True and d.get("VersionId") in (None, "null"),
          f"DELETE in a suspended bucket: DeleteMarker true, version null ({d.get('VersionId')!r})")
    lv = listing(s3, b, Prefix="k")
    dms = lv.get("DeleteMarkers", [])
    check(len(dms) == 1 and dms[0]["VersionId"] == "null" and dms[0]["IsLatest"] is True,
          f"the marker's VersionId is null, IsLatest ({dms})")
    check(version_ids(lv) == [e2, e1], "the null version was replaced by the marker")
    e = expect_error("GET under the null marker", 404, "NoSuchKey",
                     s3.get_object, Bucket=b, Key="k")
    check(headers(e).get("x-amz-delete-marker") == "true", "  …with x-amz-delete-marker: true")
    s3.delete_object(Bucket=b, Key="k")
    check(marker_ids(listing(s3, b, Prefix="k")) == ["null"],
          "a second DELETE replaces the null marker (still one marker)")
    s3.put_object(Bucket=b, Key="k", Body=b"null 3")
    lv = listing(s3, b, Prefix="k")
    check(version_ids(lv) == ["null", e2, e1] and not lv.get("DeleteMarkers"),
          "a PUT replaces the null marker with a null version")
    check(body_of(s3.get_object(Bucket=b, Key="k")) == b"null 3", "  …which is current")

    set_versioning(s3, b, "Enabled")
    e3 = s3.put_object(Bucket=b, Key="k", Body=b"enabled 3")["VersionId"]
    check(e3 and e3 != "null", "enabled again: a PUT gets a real version id")
    check(version_ids(listing(s3, b, Prefix="k")) == [e3, "null", e2, e1],
          "the null version stays under the new one")


def bucket_not_empty(s3):
    print("deleting a bucket with versions:")
    b = "ver-nonempty"
    s3.create_bucket(Bucket=b)
    set_versioning(s3, b, "Enabled")
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"v1")["VersionId"]
    m = s3.delete_object(Bucket=b, Key="k")["VersionId"]
    check(s3.list_objects_v2(Bucket=b)["KeyCount"] == 0, "no current objects")
    expect_error("delete_bucket with only a noncurrent version and a marker", 409,
                 "BucketNotEmpty", s3.delete_bucket, Bucket=b)
    s3.delete_object(Bucket=b, Key="k", VersionId=v1)
    expect_error("delete_bucket with only a delete marker", 409, "BucketNotEmpty",
                 s3.delete_bucket, Bucket=b)
    s3.delete_object(Bucket=b, Key="k", VersionId=m)
    lv = listing(s3, b)
    check(not lv.get("Versions") and not lv.get("DeleteMarkers"), "every version and marker gone")
    s3.delete_bucket(Bucket=b)
    expect_error("the bucket is gone", 404, ("404", "NoSuchBucket"), s3.head_bucket, Bucket=b)

    b = "ver-nonempty-suspended"
    s3.create_bucket(Bucket=b)
    set_versioning(s3, b, "Enabled")
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"v1")["VersionId"]
    set_versioning(s3, b, "Suspended")
    s3.delete_object(Bucket=b, Key="k")
    expect_error("delete_bucket (suspended) with a version under a null marker", 409,
                 "BucketNotEmpty", s3.delete_bucket, Bucket=b)
    s3.delete_object(Bucket=b, Key="k", VersionId=v1)
    s3.delete_object(Bucket=b, Key="k", VersionId="null")
    s3.delete_bucket(Bucket=b)
    check(True, "suspended bucket deleted once its version and null marker are")


def object_lock(s3):
    """Object lock as boto3 sees it (the Rust SDK drill is conformance/tests/object_lock.rs)."""
    import datetime
    print("object lock:")
    b = "ver-lock"
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="ver-plain-mp-lock")
    check(s3.get_bucket_versioning(Bucket=b).get("Status") == "Enabled",
          "a bucket created with object lock has versioning enabled")
    cfg = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    check(cfg.get("ObjectLockEnabled") == "Enabled" and "Rule" not in cfg,
          f"get_object_lock_configuration: Enabled, no rule ({cfg})")
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    r = s3.put_object(Bucket=b, Key="c", Body=b"kept", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=until)
    vc = r["VersionId"]
    h = s3.head_object(Bucket=b, Key="c")
    check(h.get("ObjectLockMode") == "COMPLIANCE"
          and abs((h["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1,
          "HEAD shows the retention")
    for bypass in (False, True):
        expect_error(f"delete a COMPLIANCE version (bypass={bypass})", 403, "AccessDenied",
                     s3.delete_object, Bucket=b, Key="c", VersionId=vc,
                     BypassGovernanceRetention=bypass)
    expect_error("shorten COMPLIANCE retention", 403, "AccessDenied",
                 s3.put_object_retention, Bucket=b, Key="c", VersionId=vc,
                 Retention={"Mode": "COMPLIANCE",
                            "RetainUntilDate": until - datetime.timedelta(minutes=30)},
                 BypassGovernanceRetention=True)
    got = s3.get_object_retention(Bucket=b, Key="c", VersionId=vc)["Retention"]
    check(got["Mode"] == "COMPLIANCE", f"get_object_retention ({got})")
    r = s3.put_object(Bucket=b, Key="g", Body=b"gov", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=until)
    expect_error("delete a GOVERNANCE version without the bypass", 403, "AccessDenied",
                 s3.delete_object, Bucket=b, Key="g", VersionId=r["VersionId"])
    s3.delete_object(Bucket=b, Key="g", VersionId=r["VersionId"],
                     BypassGovernanceRetention=True)
    check(True, "a GOVERNANCE version goes with BypassGovernanceRetention")
    r = s3.put_object(Bucket=b, Key="h", Body=b"held", ObjectLockLegalHoldStatus="ON")
    check(s3.get_object_legal_hold(Bucket=b, Key="h")["LegalHold"]["Status"] == "ON",
          "legal hold ON")
    expect_error("delete a version under legal hold", 403, "AccessDenied",
                 s3.delete_object, Bucket=b, Key="h", VersionId=r["VersionId"],
                 BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=b, Key="h", LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=b, Key="h", VersionId=r["VersionId"])
    check(True, "deleted once the legal hold is off")
    expect_error("suspend versioning with object lock", 409, "InvalidBucketState",
                 s3.put_bucket_versioning, Bucket=b,
                 VersioningConfiguration={"Status": "Suspended"})
    expect_error("unknown lock mode", 400, "InvalidArgument", s3.put_object, Bucket=b,
                 Key="x", Body=b"x", ObjectLockMode="FOREVER", ObjectLockRetainUntilDate=until)
    up = s3.create_multipart_upload(Bucket=b, Key="mp", ObjectLockMode="GOVERNANCE",
                                    ObjectLockRetainUntilDate=until)
    part = s3.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                          Body=b"multipart under lock")
    r = s3.complete_multipart_upload(
        Bucket=b, Key="mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    h = s3.head_object(Bucket=b, Key="mp", VersionId=r["VersionId"])
    check(h.get("ObjectLockMode") == "GOVERNANCE"
          and abs((h["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1,
          "a multipart object gets the retention asked for at create_multipart_upload")
    expect_error("delete a GOVERNANCE multipart version without the bypass", 403,
                 "AccessDenied", s3.delete_object, Bucket=b, Key="mp",
                 VersionId=r["VersionId"])
    expect_error("lock headers on create_multipart_upload without object lock", 400,
                 "InvalidRequest", s3.create_multipart_upload, Bucket="ver-plain-mp-lock",
                 Key="k", ObjectLockLegalHoldStatus="ON")


def lifecycle(s3):
    """Put/Get/DeleteBucketLifecycleConfiguration: what is stored comes back, every bad
    configuration is refused with S3's code and leaves the stored one as it was.
    (Expiry itself runs in the gateway's worker: conformance/tests/lifecycle.rs.)"""
    print("lifecycle configuration:")
    b = "lc-config"
    s3.create_bucket(Bucket=b)
    expect_error("get without a configuration", 404, "NoSuchLifecycleConfiguration",
                 s3.get_bucket_lifecycle_configuration, Bucket=b)
    expect_error("put on a missing bucket", 404, "NoSuchBucket",
                 s3.put_bucket_lifecycle_configuration, Bucket="lc-missing",
                 LifecycleConfiguration={"Rules": [
                     {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
                      "Expiration": {"Days": 1}}]})
    import datetime
    midnight = datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)
    rules = [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
         "Expiration": {"Days": 30},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
        {"ID": "markers", "Status": "Enabled", "Filter": {},
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
        {"ID": "big-tagged", "Status": "Disabled",
         "Filter": {"And": {"Prefix": "data/", "Tags": [{"Key": "tier", "Value": "tmp"}],
                            "ObjectSizeGreaterThan": 1024, "ObjectSizeLessThan": 1048576}},
         "Expiration": {"Date": midnight}},
        {"ID": "size", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 10},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    ]
    r = s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": rules})
    check(status(r) == 200, "put: 200")
    got = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    by_id = {x["ID"]: x for x in got}
    check([x["ID"] for x in got] == ["logs", "markers", "big-tagged", "size"],
          f"get: the rules in order ({[x['ID'] for x in got]})")
    check(by_id["logs"]["Filter"] == {"Prefix": "logs/"}
          and by_id["logs"]["Expiration"] == {"Days": 30}
          and by_id["logs"]["NoncurrentVersionExpiration"]
          == {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3}
          and by_id["logs"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2},
          f"get: prefix rule with its three actions ({by_id['logs']})")
    check(by_id["markers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
          and by_id["markers"]["Filter"] in ({}, {"Prefix": ""}),
          f"get: expired-object-delete-marker rule ({by_id['markers']})")
    tagged = by_id["big-tagged"]
    check(tagged["Status"] == "Disabled"
          and tagged["Filter"] == {"And": {"Prefix": "data/",
                                           "Tags": [{"Key": "tier", "Value": "tmp"}],
                                           "ObjectSizeGreaterThan": 1024,
                                           "ObjectSizeLessThan": 1048576}}
          and tagged["Expiration"]["Date"] == midnight,
          f"get: And filter, disabled, date ({tagged})")
    check(by_id["size"]["Filter"] == {"ObjectSizeGreaterThan": 10},
          f"get: size filter ({by_id['size']})")

    def bad(what, code, rule, http_status=400):
        expect_error(what, http_status, code, s3.put_bucket_lifecycle_configuration, Bucket=b,
                     LifecycleConfiguration={"Rules": [rule]})

    base = {"ID": "bad", "Status": "Enabled", "Filter": {"Prefix": ""}}
    bad("Days 0", "InvalidArgument", {**base, "Expiration": {"Days": 0}})
    bad("negative NoncurrentDays", "InvalidArgument",
        {**base, "NoncurrentVersionExpiration": {"NoncurrentDays": -1}})
    bad("NewerNoncurrentVersions 101", "InvalidArgument",
        {**base, "NoncurrentVersionExpiration": {"NoncurrentDays": 1,
                                                 "NewerNoncurrentVersions": 101}})
    bad("a Date not at midnight", "InvalidArgument",
        {**base, "Expiration": {"Date": datetime.datetime(2031, 1, 1, 12,
                                                          tzinfo=datetime.timezone.utc)}})
    bad("Days with ExpiredObjectDeleteMarker", "MalformedXML",
        {**base, "Expiration": {"Days": 1, "ExpiredObjectDeleteMarker": True}})
    bad("no action", "InvalidRequest", base)
    bad("unknown Status", "MalformedXML", {**base, "Status": "Sometimes",
                                           "Expiration": {"Days": 1}})
    bad("Filter with Prefix and Tag", "MalformedXML",
        {**base, "Filter": {"Prefix": "a", "Tag": {"Key": "k", "Value": "v"}},
         "Expiration": {"Days": 1}})
    bad("size range empty", "InvalidArgument",
        {**base, "Filter": {"And": {"ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 50}},
         "Expiration": {"Days": 1}})
    bad("abort uploads with a tag filter", "InvalidRequest",
        {**base, "Filter": {"Tag": {"Key": "k", "Value": "v"}},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})
    bad("ID over 255 characters", "InvalidArgument",
        {**base, "ID": "x" * 256, "Expiration": {"Days": 1}})
    bad("a transition to another storage class", "NotImplemented",
        {**base, "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}, http_status=501)
    expect_error("two rules with one ID", 400, "InvalidArgument",
                 s3.put_bucket_lifecycle_configuration, Bucket=b,
                 LifecycleConfiguration={"Rules": [{**base, "Expiration": {"Days": 1}},
                                                   {**base, "Expiration": {"Days": 2}}]})
    got = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    check([x["ID"] for x in got] == ["logs", "markers", "big-tagged", "size"],
          "every refused configuration left the stored one as it was")

    # The older form: Prefix on the rule instead of a Filter; and put replaces.
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "legacy", "Status": "Enabled", "Prefix": "old/", "Expiration": {"Days": 5}}]})
    got = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    check(len(got) == 1 and got[0]["ID"] == "legacy"
          and (got[0].get("Filter") == {"Prefix": "old/"} or got[0].get("Prefix") == "old/"),
          f"put replaces the configuration; a rule Prefix is kept ({got})")
    r = s3.delete_bucket_lifecycle(Bucket=b)
    check(status(r) == 204, "delete: 204")
    expect_error("get after delete", 404, "NoSuchLifecycleConfiguration",
                 s3.get_bucket_lifecycle_configuration, Bucket=b)
    check(status(s3.delete_bucket_lifecycle(Bucket=b)) == 204,
          "delete without a configuration: 204")
    s3.delete_bucket(Bucket=b)


def main():
    print(f"boto3 {boto3.__version__}:")
    s3 = client()
    unversioned(s3)
    configuration(s3)
    enabled(s3)
    listing_pagination(s3)
    multi_delete(s3)
    copy_versions(s3)
    suspended(s3)
    bucket_not_empty(s3)
    object_lock(s3)
    lifecycle(s3)
    print("versioning: ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report and fail
        print(f"versioning: FAILED: {e!r}")
        sys.exit(1)
