#!/usr/bin/env python3
"""Medians of s3dedup-bench JSON lines, label A against label B (ratio = A / B).

usage: medians.py RESULTS.jsonl LABEL_A LABEL_B
"""
import json
import statistics
import sys

results, a_label, b_label = sys.argv[1:4]
rows = [json.loads(line) for line in open(results)]


def key(r):
    if r["mode"] == "small":
        return f'small {r["count"]}x{r["size_kib"]}KiB c{r["concurrency"]}'
    return f'{r["streams"]}x{r["size_mib"]}MiB dup{r["dup"]}'


groups = {}
for r in rows:
    groups.setdefault(key(r), {}).setdefault(r["label"], []).append(r)
print(f"\nmedians (ratio = {a_label} / {b_label})")
for k, by in groups.items():
    small = k.startswith("small")
    metrics = ["put_ops", "p50_ms", "p99_ms"] if small else ["put_mbs", "get_mbs", "put_p50_ms", "get_p50_ms"]
    for metric in metrics:
        a = statistics.median(r[metric] for r in by.get(a_label, []))
        b = statistics.median(r[metric] for r in by.get(b_label, []))
        ratio = a / b if b else float("nan")
        print(f"{k:28} {metric:11} {a_label} {a:10.1f}   {b_label} {b:10.1f}   ratio {ratio:5.2f}")
