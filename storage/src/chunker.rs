//! Streaming content-defined chunking (FastCDC v2020).
//!
//! [`Chunker`] is pure: bytes go in through [`Chunker::push`], complete chunks come out.
//! It never holds more than one maximum chunk plus the latest input, whatever the object
//! size, and it cuts exactly where `fastcdc::v2020::FastCDC` would cut the whole object
//! held in memory: a cut is only searched for once a full maximum-size window (or the
//! end of the stream) is available, so every decision sees the same bytes.

use bytes::{Bytes, BytesMut};
use fastcdc::v2020::{Normalization, cut, select_masks};

use crate::error::{Error, Result};

/// FastCDC parameters. They are recorded in the index; changing them only changes how
/// new data is cut (old manifests name their chunks and stay readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes.
    pub min: u32,
    /// Average (target) chunk size in bytes.
    pub avg: u32,
    /// Maximum chunk size in bytes.
    pub max: u32,
    /// Normalization level (0–3).
    pub level: u8,
}

impl Default for ChunkerParams {
    /// 16/64/256 KiB with normalization level 2 (see DESIGN.md for the measurements).
    fn default() -> Self {
        ChunkerParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
            level: 2,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC v2020 accepts.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a bound is out of range, odd, or out of order.
    pub fn validate(&self) -> Result<()> {
        let ok = (64..=1_048_576).contains(&self.min)
            && (256..=4_194_304).contains(&self.avg)
            && (1024..=16_777_216).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.min.is_multiple_of(2)
            && self.avg.is_multiple_of(2)
            && self.max.is_multiple_of(2)
            && self.level <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "chunker parameters out of range: {self:?}"
            )))
        }
    }

    fn normalization(&self) -> Normalization {
        match self.level {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }
}

/// Incremental FastCDC over a byte stream.
#[derive(Debug)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    buf: BytesMut,
}

impl Chunker {
    /// A chunker with validated parameters.
    ///
    /// # Errors
    /// See [`ChunkerParams::validate`].
    pub fn new(params: ChunkerParams) -> Result<Self> {
        params.validate()?;
        let (mask_s, mask_l) = select_masks(params.avg as usize, params.normalization());
        Ok(Chunker {
            params,
            mask_s,
            mask_l,
            buf: BytesMut::new(),
        })
    }

    /// Feeds bytes; appends every chunk that is now complete to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Bytes>) {
        let max = self.params.max as usize;
        if self.buf.capacity() - self.buf.len() < data.len() {
            // Chunks handed out share this allocation; start a fresh one big enough for
            // several chunks so the tail is copied once per few chunks, not per push.
            let mut fresh = BytesMut::with_capacity((4 * max).max(self.buf.len() + data.len()));
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        self.buf.extend_from_slice(data);
        while self.buf.len() >= max {
            let end = self.cut_point();
            out.push(self.buf.split_to(end).freeze());
        }
    }

    /// Cuts a whole buffer at once (what streaming it through `push` and `finish` would
    /// cut; tests and tools).
    ///
    /// # Errors
    /// As [`Chunker::new`].
    pub fn cut_all(params: ChunkerParams, data: &[u8]) -> Result<Vec<Bytes>> {
        let mut c = Chunker::new(params)?;
        let mut out = Vec::new();
        c.push(data, &mut out);
        c.finish(&mut out);
        Ok(out)
    }

    /// Ends the stream; appends the remaining chunks to `out`.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        while !self.buf.is_empty() {
            let end = self.cut_point();
            out.push(self.buf.split_to(end).freeze());
        }
    }

    fn cut_point(&self) -> usize {
        let p = &self.params;
        let (_, end) = cut(
            &self.buf,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastcdc::v2020::FastCDC;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn lengths_streamed(data: &[u8], params: ChunkerParams, step: usize) -> Vec<usize> {
        let mut c = Chunker::new(params).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            c.push(piece, &mut out);
        }
        c.finish(&mut out);
        out.iter().map(|b| b.len()).collect()
    }

    #[test]
    fn streaming_cuts_match_whole_buffer_cuts() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut data = vec![0u8; 3 << 20];
        rng.fill(&mut data[..]);
        let p = ChunkerParams::default();
        let whole: Vec<usize> = FastCDC::with_level(
            &data,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            Normalization::Level2,
        )
        .map(|c| c.length)
        .collect();
        assert!(
            whole.len() > 20,
            "expected many chunks, got {}",
            whole.len()
        );
        for step in [1 << 20, 65_536, 4_097, 1_000_003] {
            assert_eq!(lengths_streamed(&data, p, step), whole, "step {step}");
        }
    }

    #[test]
    fn chunk_sizes_stay_in_bounds_and_cover_input() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut data = vec![0u8; 2 << 20];
        rng.fill(&mut data[..]);
        data.extend(std::iter::repeat_n(0u8, 1 << 20)); // pathological run: max-size cuts
        let p = ChunkerParams::default();
        let lens = lengths_streamed(&data, p, 10_000);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        for &l in &lens[..lens.len() - 1] {
            assert!(l >= p.min as usize && l <= p.max as usize, "{l}");
        }
    }

    #[test]
    fn empty_input_gives_no_chunks() {
        assert!(lengths_streamed(&[], ChunkerParams::default(), 10).is_empty());
    }

    #[test]
    fn rejects_bad_params() {
        let bad = ChunkerParams {
            min: 100,
            avg: 50,
            max: 2000,
            level: 2,
        };
        assert!(Chunker::new(bad).is_err());
    }
}
