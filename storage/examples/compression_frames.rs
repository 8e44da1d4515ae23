//! What chunk size and compression framing would store for a set of files.
//!
//! Measures the trade-off behind issue 14's restic target (docs/BENCHMARKS.md): the files
//! are cut with the store's own chunker at several average sizes, duplicates dropped, and
//! the unique chunks compressed with zstd either one by one (what the store does) or in
//! frames of consecutive new chunks (256 KiB, 1 MiB, 4 MiB raw). With a part size, each
//! file is cut in parts of that many bytes first, as a multipart upload is.
//!
//!     cargo run --release -p s3dedup-storage --example compression_frames -- DIR LEVEL [PART_BYTES]

use std::collections::HashSet;

use s3dedup_storage::chunker::{Chunker, ChunkerParams};
use sha2::{Digest, Sha256};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: compression_frames DIR LEVEL [PART_BYTES]";
    let dir = args.next().expect(usage);
    let level: i32 = args.next().expect(usage).parse().expect(usage);
    let part: usize = args.next().map_or(0, |p| p.parse().expect(usage));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read DIR")
        .map(|e| e.expect("read DIR").path())
        .collect();
    files.sort();
    let data: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read file"))
        .collect();
    for avg in [65536u32, 32768, 16384, 8192] {
        let params = ChunkerParams {
            min: avg / 4,
            avg,
            max: avg * 4,
            level: 2,
        };
        let mut seen = HashSet::new();
        // New chunks in upload order; each upload unit (file or part) starts a new frame.
        let mut units: Vec<Vec<Vec<u8>>> = Vec::new();
        for file in &data {
            let step = if part > 0 { part } else { file.len().max(1) };
            for piece in file.chunks(step) {
                let fresh = Chunker::cut_all(params, piece)
                    .expect("chunker")
                    .into_iter()
                    .filter(|c| seen.insert(Sha256::digest(c)))
                    .map(|c| c.to_vec())
                    .collect();
                units.push(fresh);
            }
        }
        let chunks: usize = units.iter().map(Vec::len).sum();
        let unique: usize = units.iter().flatten().map(Vec::len).sum();
        let mut row = format!(
            "avg {avg:>6}  unique {:6.2} MB  chunks {chunks:>5}",
            mb(unique)
        );
        for frame in [0usize, 256 << 10, 1 << 20, 4 << 20] {
            let stored: usize = units.iter().map(|u| framed(u, frame, level)).sum();
            let name = if frame == 0 {
                "per chunk".to_owned()
            } else {
                format!("{} KiB", frame >> 10)
            };
            row += &format!("  {name}: {:.2} MB", mb(stored));
        }
        println!("{row}");
    }
}

/// Compressed size of `chunks`, one by one (`frame == 0`, stored raw when that is smaller)
/// or packed into frames of at most `frame` raw bytes.
fn framed(chunks: &[Vec<u8>], frame: usize, level: i32) -> usize {
    let zstd = |b: &[u8]| zstd::bulk::compress(b, level).expect("zstd").len();
    if frame == 0 {
        return chunks.iter().map(|c| zstd(c).min(c.len())).sum();
    }
    let (mut total, mut buf) = (0, Vec::new());
    for c in chunks {
        if !buf.is_empty() && buf.len() + c.len() > frame {
            total += zstd(&buf);
            buf.clear();
        }
        buf.extend_from_slice(c);
    }
    if !buf.is_empty() {
        total += zstd(&buf);
    }
    total
}

fn mb(n: usize) -> f64 {
    n as f64 / 1e6
}
