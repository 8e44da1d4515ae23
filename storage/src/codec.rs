//! Little-endian binary encoding shared by every stored record.
//!
//! Records are written field by field with fixed-width integers and `u32`-length-prefixed
//! byte strings. Each record type starts with its own version byte (see `records`), so
//! a reader always knows which layout follows.

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
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
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
    /// Reads a version byte and fails unless it is `expected`.
    pub(crate) fn version(&mut self, expected: u8) -> Result<()> {
        let v = self.u8()?;
        if v == expected {
            Ok(())
        } else {
            Err(Error::UnsupportedFormat {
                what: self.what,
                version: v.into(),
            })
        }
    }
}
