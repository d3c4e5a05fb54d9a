//! compact-encoding (JS `compact-encoding` 2.x) for the oplog: a bounds-checked [`Reader`]
//! and an appending [`Writer`].
//!
//! Owns: the primitive wire forms hypercore 10's `lib/messages.js` builds on:
//! - `uint`: one byte if < 0xfd, else a marker byte 0xfd / 0xfe / 0xff followed by a
//!   little-endian u16 / u32 / u64 (non-minimal forms are accepted on read, as JS does);
//! - fixed-width little-endian u32 / u64, and fixed 32-byte strings (`fixed32`);
//! - `buffer`: `uint` length then the bytes; length 0 is JS `null` (so an empty buffer
//!   and a missing one encode alike);
//! - `string`: like `buffer`, UTF-8 (strict here; JS would replace invalid sequences);
//! - `array`: `uint` count then the items; JS refuses counts above 0x100000, so do we.
//!
//! Every read is bounds-checked and returns a [`DecodeError`], never panics, and never
//! allocates more than the remaining input could describe (an array count is checked
//! against the remaining bytes before the vector is allocated).
//!
//! Used by `oplog` (headers and entries of the `oplog` file). No I/O.

use thiserror::Error;

/// JS `compact-encoding` refuses arrays longer than this (`Array is too big`).
pub(crate) const MAX_ARRAY_LEN: u64 = 0x10_0000;

/// Why bytes could not be decoded. `at` is the reader position where the failing read
/// started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum DecodeError {
    /// The input ends before the value does.
    #[error("truncated input at byte {at}: wanted {wanted} more bytes, {available} left")]
    Truncated {
        /// Position of the read.
        at: usize,
        /// Bytes the value needs.
        wanted: u64,
        /// Bytes that were left.
        available: usize,
    },
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in string at byte {at}")]
    InvalidUtf8 {
        /// Position of the string's bytes.
        at: usize,
    },
    /// A count or length exceeds what the format allows.
    #[error("{what} too long at byte {at}: {len} > {limit}")]
    TooLong {
        /// What was being read.
        what: &'static str,
        /// Position of the read.
        at: usize,
        /// The length found.
        len: u64,
        /// The largest allowed.
        limit: u64,
    },
    /// A value is out of its domain (unknown id, bad version, ...).
    #[error("invalid {what}: {value}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
}

/// A cursor over compact-encoded bytes. Reads past the end fail with
/// [`DecodeError::Truncated`] and leave the position where the failing read started.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[cfg(test)]
    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes, raw.
    pub(crate) fn bytes(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        let truncated = DecodeError::Truncated {
            at: self.pos,
            wanted: n,
            available,
        };
        let n = usize::try_from(n).map_err(|_| truncated.clone())?;
        if n > available {
            return Err(truncated);
        }
        let end = self.pos + n;
        let out = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// `N` raw bytes as an array.
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let at = self.pos;
        let bytes = self.bytes(N as u64)?;
        bytes.try_into().map_err(|_| DecodeError::Truncated {
            at,
            wanted: N as u64,
            available: bytes.len(),
        })
    }

    /// `fixed32`: 32 raw bytes (keys, hashes, namespaces).
    pub(crate) fn fixed32(&mut self) -> Result<[u8; 32], DecodeError> {
        self.fixed::<32>()
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.fixed::<1>()?;
        Ok(b)
    }

    /// Fixed-width little-endian u16.
    pub(crate) fn u16_le(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.fixed::<2>()?))
    }

    /// Fixed-width little-endian u32.
    pub(crate) fn u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.fixed::<4>()?))
    }

    /// Fixed-width little-endian u64.
    pub(crate) fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.fixed::<8>()?))
    }

    /// A compact `uint` (varint with 0xfd/0xfe/0xff markers). On failure the position is
    /// back at the marker byte.
    pub(crate) fn uint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let result = match self.u8()? {
            a @ 0..=0xfc => Ok(u64::from(a)),
            0xfd => self.u16_le().map(u64::from),
            0xfe => self.u32_le().map(u64::from),
            0xff => self.u64_le(),
        };
        if result.is_err() {
            self.pos = start;
        }
        result
    }

    /// A compact `uint` that must fit `usize` (lengths, counts).
    fn length(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let len = self.uint()?;
        if usize::try_from(len).is_err() {
            self.pos = at;
            return Err(DecodeError::TooLong {
                what,
                at,
                len,
                limit: usize::MAX as u64,
            });
        }
        Ok(len)
    }

    /// `buffer`: a length-prefixed byte string. Length 0 (JS `null`) gives an empty slice.
    pub(crate) fn buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.length("buffer")?;
        self.bytes(len).inspect_err(|_| self.pos = start)
    }

    #[cfg(test)]
    /// `buffer` as JS sees it: `None` for length 0.
    pub(crate) fn buffer_opt(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let b = self.buffer()?;
        Ok(if b.is_empty() { None } else { Some(b) })
    }

    /// `string`: a length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let bytes = self.buffer()?;
        std::str::from_utf8(bytes).map_err(|_| {
            let at = self.pos - bytes.len();
            self.pos = start;
            DecodeError::InvalidUtf8 { at }
        })
    }

    /// `bool`: a `uint` that must be 0 or 1.
    #[cfg(test)]
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        let start = self.pos;
        match self.uint()? {
            0 => Ok(false),
            1 => Ok(true),
            v => {
                self.pos = start;
                Err(DecodeError::Invalid {
                    what: "bool",
                    value: v,
                })
            }
        }
    }

    /// `array`: a `uint` count then `count` items read by `item`. Each item takes at
    /// least `min_item_len` (≥ 1) bytes: a count the remaining input cannot hold, or one
    /// above [`MAX_ARRAY_LEN`], fails before anything is allocated.
    pub(crate) fn array<T>(
        &mut self,
        min_item_len: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let at = self.pos;
        let count = self.length("array")?;
        if count > MAX_ARRAY_LEN {
            self.pos = at;
            return Err(DecodeError::TooLong {
                what: "array",
                at,
                len: count,
                limit: MAX_ARRAY_LEN,
            });
        }
        let needed = count.saturating_mul(min_item_len.max(1) as u64);
        if needed > self.remaining() as u64 {
            let available = self.remaining();
            self.pos = at;
            return Err(DecodeError::Truncated {
                at,
                wanted: needed,
                available,
            });
        }
        // count ≤ remaining bytes, so this allocation is bounded by the input size.
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            out.push(item(self)?);
        }
        Ok(out)
    }
}

/// An appending compact-encoding writer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub(crate) fn new() -> Self {
        Writer::default()
    }

    /// Appends to an existing buffer.
    pub(crate) fn from_vec(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    #[cfg(test)]
    /// The bytes written so far.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The written bytes.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Raw bytes, no length prefix.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// `fixed32`: 32 raw bytes.
    pub(crate) fn fixed32(&mut self, b: &[u8; 32]) {
        self.bytes(b);
    }

    /// One byte.
    pub(crate) fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Fixed-width little-endian u32.
    pub(crate) fn u32_le(&mut self, n: u32) {
        self.bytes(&n.to_le_bytes());
    }

    /// Fixed-width little-endian u64.
    pub(crate) fn u64_le(&mut self, n: u64) {
        self.bytes(&n.to_le_bytes());
    }

    /// A compact `uint` in its shortest form (as JS writes it).
    pub(crate) fn uint(&mut self, n: u64) {
        if n <= 0xfc {
            self.u8(n as u8);
        } else if let Ok(n) = u16::try_from(n) {
            self.u8(0xfd);
            self.bytes(&n.to_le_bytes());
        } else if let Ok(n) = u32::try_from(n) {
            self.u8(0xfe);
            self.u32_le(n);
        } else {
            self.u8(0xff);
            self.u64_le(n);
        }
    }

    /// `buffer`: length then bytes (empty = JS `null`).
    pub(crate) fn buffer(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.bytes(b);
    }

    /// `string`: UTF-8 length then bytes.
    pub(crate) fn string(&mut self, s: &str) {
        self.buffer(s.as_bytes());
    }

    /// `bool` as a one-byte `uint`.
    #[cfg(test)]
    pub(crate) fn bool(&mut self, b: bool) {
        self.u8(u8::from(b));
    }

    /// `array`: count then each item written by `item`.
    pub(crate) fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.uint(items.len() as u64);
        for i in items {
            item(self, i);
        }
    }
}

#[cfg(test)]
/// The encoded size of `n` as a compact `uint`.
pub(crate) fn uint_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uint_forms_match_compact_encoding() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (0xfc, &[0xfc]),
            (0xfd, &[0xfd, 0xfd, 0x00]),
            (0xffff, &[0xfd, 0xff, 0xff]),
            (0x1_0000, &[0xfe, 0x00, 0x00, 0x01, 0x00]),
            (0xffff_ffff, &[0xfe, 0xff, 0xff, 0xff, 0xff]),
            (0x1_0000_0000, &[0xff, 0, 0, 0, 0, 1, 0, 0, 0]),
        ];
        for (n, bytes) in cases {
            let mut w = Writer::new();
            w.uint(*n);
            assert_eq!(w.as_slice(), *bytes, "encode {n:#x}");
            assert_eq!(uint_len(*n), bytes.len());
            let mut r = Reader::new(bytes);
            assert_eq!(r.uint(), Ok(*n));
            assert!(r.is_empty());
        }
        // non-minimal forms decode (JS accepts them too)
        assert_eq!(Reader::new(&[0xfd, 0x05, 0x00]).uint(), Ok(5));
    }

    #[test]
    fn truncated_reads_are_typed_errors_and_keep_position() {
        let mut r = Reader::new(&[0xfe, 1, 2]);
        assert_eq!(
            r.uint(),
            Err(DecodeError::Truncated {
                at: 1,
                wanted: 4,
                available: 2
            })
        );
        assert_eq!(r.position(), 0);
        let mut r = Reader::new(&[5, 1, 2]);
        assert!(matches!(r.buffer(), Err(DecodeError::Truncated { .. })));
        assert_eq!(r.position(), 0);
        let mut r = Reader::new(&[]);
        assert!(matches!(r.fixed32(), Err(DecodeError::Truncated { .. })));
        // a huge length does not allocate or overflow
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.buffer().is_err());
    }

    #[test]
    fn strings_and_buffers() {
        let mut w = Writer::new();
        w.string("héllo");
        w.buffer(&[]);
        w.buffer(&[1, 2, 3]);
        w.bool(true);
        let bytes = w.into_vec();
        assert_eq!(bytes[0], 6);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.string(), Ok("héllo"));
        assert_eq!(r.buffer_opt(), Ok(None));
        assert_eq!(r.buffer_opt(), Ok(Some(&[1u8, 2, 3][..])));
        assert_eq!(r.bool(), Ok(true));
        assert!(r.is_empty());

        let mut r = Reader::new(&[2, 0xc3, 0x28]);
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8 { at: 1 }));
        assert_eq!(r.position(), 0);
        assert!(matches!(
            Reader::new(&[2]).bool(),
            Err(DecodeError::Invalid { what: "bool", .. })
        ));
    }

    #[test]
    fn array_count_is_checked_before_allocating() {
        // claims 2^32-1 items of ≥ 34 bytes with 3 bytes left
        let mut r = Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(matches!(
            r.array(34, |r| r.u8()),
            Err(DecodeError::TooLong { what: "array", .. })
        ));
        assert_eq!(r.position(), 0);
        // within the JS limit but more than the input holds
        let mut r = Reader::new(&[10, 1, 2, 3]);
        assert!(matches!(
            r.array(1, |r| r.u8()),
            Err(DecodeError::Truncated { wanted: 10, .. })
        ));
        let mut r = Reader::new(&[3, 1, 2, 3]);
        assert_eq!(r.array(1, |r| r.u8()), Ok(vec![1, 2, 3]));
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Item {
        Uint(u64),
        U32(u32),
        U64(u64),
        Fixed([u8; 32]),
        Buffer(Vec<u8>),
        Str(String),
        Bool(bool),
        Array(Vec<u64>),
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            any::<u64>().prop_map(Item::Uint),
            (0u64..0x2_0000).prop_map(Item::Uint),
            any::<u32>().prop_map(Item::U32),
            any::<u64>().prop_map(Item::U64),
            any::<[u8; 32]>().prop_map(Item::Fixed),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Item::Buffer),
            ".{0,40}".prop_map(Item::Str),
            any::<bool>().prop_map(Item::Bool),
            proptest::collection::vec(any::<u64>(), 0..20).prop_map(Item::Array),
        ]
    }

    fn write(w: &mut Writer, i: &Item) {
        match i {
            Item::Uint(n) => w.uint(*n),
            Item::U32(n) => w.u32_le(*n),
            Item::U64(n) => w.u64_le(*n),
            Item::Fixed(b) => w.fixed32(b),
            Item::Buffer(b) => w.buffer(b),
            Item::Str(s) => w.string(s),
            Item::Bool(b) => w.bool(*b),
            Item::Array(a) => w.array(a, |w, n| w.uint(*n)),
        }
    }

    fn read(r: &mut Reader<'_>, like: &Item) -> Result<Item, DecodeError> {
        Ok(match like {
            Item::Uint(_) => Item::Uint(r.uint()?),
            Item::U32(_) => Item::U32(r.u32_le()?),
            Item::U64(_) => Item::U64(r.u64_le()?),
            Item::Fixed(_) => Item::Fixed(r.fixed32()?),
            Item::Buffer(_) => Item::Buffer(r.buffer()?.to_vec()),
            Item::Str(_) => Item::Str(r.string()?.to_owned()),
            Item::Bool(_) => Item::Bool(r.bool()?),
            Item::Array(_) => Item::Array(r.array(1, |r| r.uint())?),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encode_decode_round_trips(items in proptest::collection::vec(item(), 0..12)) {
            let mut w = Writer::new();
            for i in &items {
                write(&mut w, i);
            }
            let bytes = w.into_vec();
            let mut r = Reader::new(&bytes);
            for i in &items {
                prop_assert_eq!(&read(&mut r, i)?, i);
            }
            prop_assert!(r.is_empty());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                    ops in proptest::collection::vec(0u8..10, 0..30)) {
            let mut r = Reader::new(&bytes);
            for op in ops {
                let before = r.position();
                let ok = match op {
                    0 => r.uint().is_ok(),
                    1 => r.u32_le().is_ok(),
                    2 => r.u64_le().is_ok(),
                    3 => r.fixed32().is_ok(),
                    4 => r.buffer().is_ok(),
                    5 => r.string().is_ok(),
                    6 => r.bool().is_ok(),
                    7 => r.array(1, |r| r.uint()).is_ok(),
                    8 => r.array(34, |r| r.fixed32()).is_ok(),
                    _ => r.buffer_opt().is_ok(),
                };
                prop_assert!(r.position() <= bytes.len());
                if !ok && op != 7 && op != 8 {
                    // failed scalar reads leave the cursor alone
                    prop_assert_eq!(r.position(), before);
                }
            }
        }
    }
}
