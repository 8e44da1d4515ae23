#!/usr/bin/env python3
"""Successive releases of one source tree as tar files with normalised headers.

Fetches the releases from a package registry the test machine can reach (crates.io's
static host for crates, registry.npmjs.org for npm packages), decompresses them and
rewrites each as a plain tar whose headers carry no time, owner or pax extras and whose
top directory is the package name without the version (`tokio-1.39.0/src/…` becomes
`tokio/src/…`), so that two releases differ only where their files differ.

    releases.py --crate tokio 1.39.0 1.40.0 ... --out DIR [--cache DIR]
    releases.py --npm typescript 5.0.2 5.0.3 ... --out DIR [--cache DIR]

Prints one line per release: its tar file and size.
"""

import argparse
import gzip
import io
import os
import sys
import tarfile
import time
import urllib.request


def fetch(url, cache):
    path = os.path.join(cache, url.rsplit("/", 1)[1]) if cache else None
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    last = None
    for attempt in range(4):
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                data = r.read()
            break
        except OSError as e:  # network hiccup: retry with backoff
            last = e
            time.sleep(1 + 2 * attempt)
    else:
        sys.exit(f"releases.py: cannot fetch {url}: {last}")
    if path:
        os.makedirs(cache, exist_ok=True)
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return data


def normalise(archive, out_path, top):
    src = tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:")
    tmp = out_path + ".part"
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as dst:
        for m in src.getmembers():
            if not (m.isfile() or m.isdir()):
                continue
            first, sep, rest = m.name.partition("/")
            m.name = top + sep + rest
            m.mtime = 0
            m.uid = m.gid = 0
            m.uname = m.gname = ""
            m.pax_headers = {}
            m.mode = 0o755 if m.isdir() else 0o644
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    os.replace(tmp, out_path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--crate")
    kind.add_argument("--npm")
    p.add_argument("versions", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--cache")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for v in a.versions:
        if a.crate:
            name = a.crate
            url = f"https://static.crates.io/crates/{name}/{name}-{v}.crate"
        else:
            name = a.npm
            base = name.rsplit("/", 1)[-1]
            url = f"https://registry.npmjs.org/{name}/-/{base}-{v}.tgz"
        out = os.path.join(a.out, f"{name.replace('/', '_')}-{v}.tar")
        if not os.path.exists(out):
            normalise(fetch(url, a.cache), out, name.rsplit("/", 1)[-1])
        print(out, os.path.getsize(out))


if __name__ == "__main__":
    main()
