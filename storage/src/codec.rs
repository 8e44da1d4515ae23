//! Little-endian binary encoding shared by every stored record.
//!
//! Records are written field by field with fixed-width integers and `u32`-length-prefixed
//! byte strings. Each record type starts with its own version byte (see `records`), so
//! a reader always knows which layout follows. From version 2 on every record ends with
//! a CRC32C of all the bytes before it ([`Writer::seal`], [`Reader::open`]): redb does
//! not verify page checksums on a clean open, so one flipped byte in the index file
//! would otherwise decode as a plausible wrong value (a shorter size, another time).

use crate::error::{Error, Result};

/// Appends fields to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u128(&mut self, v: u128) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("field shorter than 4 GiB");
        self.u32(len).raw(v)
    }
    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub(crate) fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(s) => self.u8(1).str(s),
        }
    }
    /// Ends a checksummed record: appends the CRC32C of everything written so far.
    pub(crate) fn seal(mut self) -> Vec<u8> {
        let crc = crc32c::crc32c(&self.0);
        self.0.extend_from_slice(&crc.to_le_bytes());
        self.0
    }
    pub(crate) fn pairs(&mut self, v: &[(String, String)]) -> &mut Self {
        self.u32(u32::try_from(v.len()).expect("fewer than 4G pairs"));
        for (k, val) in v {
            self.str(k).str(val);
        }
        self
    }
}

/// Reads fields back, failing with [`Error::Corrupt`] on any short or malformed input.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Opens a record whose version is `legacy` (no checksum) or `sealed` (ends with a
    /// CRC32C of the bytes before it, checked here and stripped). Returns the version
    /// found and a reader positioned after the version byte.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an empty record or a checksum mismatch,
    /// [`Error::UnsupportedFormat`] for any other version.
    pub(crate) fn open(
        buf: &'a [u8],
        what: &'static str,
        legacy: u8,
        sealed: u8,
    ) -> Result<(u8, Self)> {
        Self::open_versions(buf, what, legacy, sealed..=sealed)
    }

    /// [`Reader::open`] for a record with several sealed layouts (`sealed`).
    pub(crate) fn open_versions(
        buf: &'a [u8],
        what: &'static str,
        legacy: u8,
        sealed: std::ops::RangeInclusive<u8>,
    ) -> Result<(u8, Self)> {
        let Some(&version) = buf.first() else {
            return Err(Error::corrupt(what, "record is empty"));
        };
        let body = if sealed.contains(&version) {
            let Some(split) = buf.len().checked_sub(4).filter(|&n| n >= 1) else {
                return Err(Error::corrupt(what, "record is truncated"));
            };
            let (body, crc) = buf.split_at(split);
            let want = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
            let got = crc32c::crc32c(body);
            if got != want {
                return Err(Error::corrupt(
                    what,
                    format!("checksum mismatch (stored {want:08x}, computed {got:08x})"),
                ));
            }
            body
        } else if version == legacy {
            buf
        } else {
            return Err(Error::UnsupportedFormat {
                what,
                version: version.into(),
            });
        };
        Ok((
            version,
            Reader {
                buf: &body[1..],
                what,
            },
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::corrupt(self.what, "record is truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::corrupt(self.what, "string is not UTF-8"))
    }
    pub(crate) fn opt_string(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            t => Err(Error::corrupt(self.what, format!("bad option tag {t}"))),
        }
    }
    pub(crate) fn pairs(&mut self) -> Result<Vec<(String, String)>> {
        let n = self.u32()? as usize;
        // Each pair needs at least 8 bytes; refuse counts the buffer cannot hold.
        if n > self.buf.len() / 8 {
            return Err(Error::corrupt(self.what, "pair count exceeds record"));
        }
        (0..n)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect()
    }
    /// What is being read (for error messages).
    pub(crate) fn what(&self) -> &'static str {
        self.what
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// Fails unless every byte was consumed: trailing garbage means a layout mismatch.
    pub(crate) fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::corrupt(
                self.what,
                format!("{} trailing bytes", self.buf.len()),
            ))
        }
    }
}

/// A record of two optional limits (quotas, rates): version 1, flags, both values,
/// sealed.
pub(crate) fn encode_limits(a: Option<u64>, b: Option<u64>) -> Vec<u8> {
    let mut w = Writer::default();
    let flags = u8::from(a.is_some()) | (u8::from(b.is_some()) << 1);
    w.u8(1).u8(flags).u64(a.unwrap_or(0)).u64(b.unwrap_or(0));
    w.seal()
}

/// Decodes [`encode_limits`].
///
/// # Errors
/// [`Error::Corrupt`] for a damaged record.
pub(crate) fn decode_limits(buf: &[u8], what: &'static str) -> Result<(Option<u64>, Option<u64>)> {
    let (_, mut r) = Reader::open(buf, what, 1, 1)?;
    let flags = r.u8()?;
    let (a, b) = (r.u64()?, r.u64()?);
    r.finish()?;
    if flags & !3 != 0 {
        return Err(Error::corrupt(what, format!("unknown flags {flags:#x}")));
    }
    Ok(((flags & 1 != 0).then_some(a), (flags & 2 != 0).then_some(b)))
}
