//! The compact-encoding primitives hypercore's messages are made of (`compact-encoding`
//! 2.x/3.x, as `hypercore/lib/messages.js` uses them): `uint`, `fixed32`, `buffer`,
//! `array`, `string`, `uint32array`.
//!
//! Every read is checked against the bytes that remain, and an array's element count
//! against the smallest size one element can take, so nothing is allocated for bytes
//! the input does not hold.

use super::WireError;

/// The largest array `compact-encoding` decodes (`Array is too big` above it).
pub const MAX_ARRAY: u64 = 0x10_0000;

/// Reads values from one message's bytes, front to back.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Takes every byte not read yet (`c.raw`).
    pub fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A `c.uint`: one byte up to 0xfc, else a 0xfd / 0xfe / 0xff prefix and 2 / 4 / 8
    /// little-endian bytes (as JS, a longer form than needed is accepted).
    pub fn uint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let first = self.take(1, what)?[0];
        let width = match first {
            0..=0xfc => return Ok(u64::from(first)),
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
        };
        let bytes = self.take(width, what)?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(le))
    }

    /// A `c.uint` that must fit a `usize` and the remaining bytes when each unit takes
    /// at least `unit` bytes (a length or count).
    fn count(&mut self, unit: usize, what: &'static str) -> Result<usize, WireError> {
        let n = self.uint(what)?;
        let needed = n.checked_mul(unit as u64);
        match needed {
            Some(needed) if needed <= self.buf.len() as u64 => {
                usize::try_from(n).map_err(|_| WireError::Truncated { what })
            }
            _ => Err(WireError::Truncated { what }),
        }
    }

    /// A `c.fixed32`.
    pub fn fixed32(&mut self, what: &'static str) -> Result<[u8; 32], WireError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32, what)?);
        Ok(out)
    }

    /// A `c.buffer` (or `c.optionalBuffer`): a length, then that many bytes.
    pub fn buffer(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.count(1, what)?;
        self.take(len, what)
    }

    /// A `c.string`: a UTF-8 `c.buffer`.
    pub fn string(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.buffer(what)?).map_err(|_| WireError::NotUtf8 { what })
    }

    /// The element count of a `c.array` whose elements take at least `min_size` bytes
    /// each: bounded by [`MAX_ARRAY`] and by the bytes that remain.
    pub fn array_len(&mut self, min_size: usize, what: &'static str) -> Result<usize, WireError> {
        let at = *self;
        let n = self.uint(what)?;
        if n > MAX_ARRAY {
            return Err(WireError::TooLarge {
                what,
                len: n,
                limit: MAX_ARRAY,
            });
        }
        *self = at;
        self.count(min_size.max(1), what)
    }

    /// A `c.uint32array`: a count, then that many little-endian u32.
    pub fn uint32_array(&mut self, what: &'static str) -> Result<Vec<u32>, WireError> {
        let n = self.count(4, what)?;
        let bytes = self.take(n * 4, what)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Appends a `c.uint`.
pub fn put_uint(out: &mut Vec<u8>, n: u64) {
    if n <= 0xfc {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xfd);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xfe);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(0xff);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// Bytes a `c.uint` takes.
pub fn uint_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends a `c.buffer` (length, then the bytes).
pub fn put_buffer(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_forms_round_trip_and_long_forms_decode() {
        for n in [
            0,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            1 << 32,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uint(&mut out, n);
            assert_eq!(out.len(), uint_len(n));
            let mut r = Reader::new(&out);
            assert_eq!(r.uint("n").unwrap(), n);
            assert!(r.is_empty());
        }
        // 5 written in the 3-byte form, as a lenient JS encoder may.
        assert_eq!(Reader::new(&[0xfd, 5, 0]).uint("n").unwrap(), 5);
        assert!(Reader::new(&[0xfe, 5, 0]).uint("n").is_err());
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        // A buffer claiming 2^64-1 bytes, an array claiming 2^20 nodes of 34 bytes.
        let mut huge = vec![0xff];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Reader::new(&huge).buffer("b").is_err());
        assert!(
            Reader::new(&[0xfe, 0, 0, 0x10, 0])
                .array_len(34, "a")
                .is_err()
        );
        assert!(matches!(
            Reader::new(&[0xfe, 1, 0, 0x10, 0]).array_len(1, "a"),
            Err(WireError::TooLarge { .. })
        ));
        assert!(
            Reader::new(&[0xfe, 0, 0, 0, 0x40])
                .uint32_array("u")
                .is_err()
        );
    }
}
