//! End-to-end tests and benchmarks for s3dedup (see `src/bin/`).
