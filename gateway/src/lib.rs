//! s3dedup S3 gateway: the s3s `S3` implementation over the storage engine, the server,
//! configuration and the `s3dedup` command.
//!
//! Not built yet: planned by the gateway issue. It exists now so the workspace has its
//! final shape and the dependency direction (gateway → storage, scanner) is fixed.
