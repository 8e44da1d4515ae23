//! s3dedup virus scanning: the `Scanner` trait and its clamd implementation.
//!
//! Not built yet: this crate is planned by the inline-scanning issue (DESIGN.md
//! invariant 2). It exists now so the workspace has its final shape.
