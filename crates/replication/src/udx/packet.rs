//! The UDX datagram (C libudx `udx_write_header` / `process_packet`, docs/udx-protocol.md
//! section 1): a 20-byte little-endian header `FF 01 type data_offset | id | rwnd | seq |
//! ack`, then SACK blocks (on acks), `data_offset` bytes of padding (MTU probes), then the
//! payload. A datagram that does not start with the magic byte and version is not UDX:
//! it belongs to whatever else shares the socket (the DHT), and [`decode`] says so with
//! `Ok(None)`.

/// Bytes of the header.
pub const HEADER_LEN: usize = 20;
/// First byte of every UDX datagram.
pub const MAGIC: u8 = 0xFF;
/// Second byte: the protocol version.
pub const VERSION: u8 = 1;
/// Most SACK blocks C libudx sends in one ack (`UDX_MAX_SACKS`); we read no more.
pub const MAX_SACKS: usize = 50;
/// Bytes of one SACK block (`start`, `end`: two `u32`).
pub const SACK_LEN: usize = 8;
/// The largest datagram C libudx reads (`UDX_SOCKET_PACKET_BUFFER_SIZE`): never send
/// more; a longer one is refused.
pub const MAX_DATAGRAM: usize = 2048;

/// The packet type: a set of flag bits (none: a pure ack). Bits C does not define are
/// kept and ignored, as C ignores them.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flag: a pure ack.
    pub const ACK: Flags = Flags(0);
    /// The payload is stream bytes; the packet takes one sequence number.
    pub const DATA: Flags = Flags(0x01);
    /// The sender's write side ends at this sequence number (takes one).
    pub const END: Flags = Flags(0x02);
    /// SACK blocks follow the header.
    pub const SACK: Flags = Flags(0x04);
    /// An unreliable datagram: delivered as is, no sequence number taken.
    pub const MESSAGE: Flags = Flags(0x08);
    /// Abortive close.
    pub const DESTROY: Flags = Flags(0x10);
    /// A ping the receiver answers with an ack (keepalive, zero-window probe).
    pub const HEARTBEAT: Flags = Flags(0x20);

    /// The flags of a type byte.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// The type byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set (a pure ack).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("ACK");
        }
        let names = [
            (Flags::DATA, "DATA"),
            (Flags::END, "END"),
            (Flags::SACK, "SACK"),
            (Flags::MESSAGE, "MESSAGE"),
            (Flags::DESTROY, "DESTROY"),
            (Flags::HEARTBEAT, "HEARTBEAT"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.0 & !0x3f;
        if unknown != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{unknown:#04x}")?;
        }
        Ok(())
    }
}

/// The 20-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The packet type.
    pub flags: Flags,
    /// Bytes between the header and the payload: SACK blocks (when set on an ack) or
    /// an MTU probe's padding. 0 on every packet C sends but probes.
    pub data_offset: u8,
    /// The receiver's stream id.
    pub id: u32,
    /// The sender's receive window, in bytes.
    pub rwnd: u32,
    /// The packet's sequence number (DATA / END), or the sender's next one (others).
    pub seq: u32,
    /// Every packet of the receiver's below this was received by the sender.
    pub ack: u32,
}

impl Header {
    /// Appends the 20 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[MAGIC, VERSION, self.flags.bits(), self.data_offset]);
        for word in [self.id, self.rwnd, self.seq, self.ack] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Header {
            flags: Flags(bytes[2]),
            data_offset: bytes[3],
            id: word(4),
            rwnd: word(8),
            seq: word(12),
            ack: word(16),
        }
    }
}

/// A selective ack: the receiver holds packets `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SackBlock {
    /// First sequence number held.
    pub start: u32,
    /// One past the last.
    pub end: u32,
}

/// One UDX datagram, read or to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The header.
    pub header: Header,
    /// SACK blocks (only with [`Flags::SACK`]; at most [`MAX_SACKS`]).
    pub sacks: Vec<SackBlock>,
    /// The payload: stream bytes (DATA), a datagram (MESSAGE), else usually empty.
    pub payload: &'a [u8],
}

/// Why a datagram that starts like UDX cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The padding runs past the datagram (C drops such a packet).
    #[error("UDX data offset {data_offset} runs past the {rest} bytes after the header")]
    DataOffset {
        /// The header's `data_offset`.
        data_offset: u8,
        /// Bytes after the header.
        rest: usize,
    },
    /// Longer than any datagram a UDX peer sends or reads ([`MAX_DATAGRAM`]).
    #[error("UDX datagram of {len} bytes is longer than {MAX_DATAGRAM}")]
    TooLong {
        /// The datagram's length.
        len: usize,
    },
}

/// Whether `datagram` is UDX (at least a header, magic byte and version 1).
pub fn is_udx(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] == MAGIC && datagram[1] == VERSION
}

/// Reads one datagram. `Ok(None)`: not UDX (hand it to whatever else uses the socket).
///
/// As C reads it: the payload starts `data_offset` bytes after the header. On a SACK
/// packet the SACK area is those `data_offset` bytes when `0 < data_offset < rest`, else
/// everything after the header (C writes `data_offset = 0` and puts nothing after its
/// blocks); blocks are read in whole 8-byte pairs, at most [`MAX_SACKS`].
pub fn decode(datagram: &[u8]) -> Result<Option<Packet<'_>>, PacketError> {
    if !is_udx(datagram) {
        return Ok(None);
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(PacketError::TooLong {
            len: datagram.len(),
        });
    }
    let (head, rest) = datagram.split_at(HEADER_LEN);
    let Ok(head) = <&[u8; HEADER_LEN]>::try_from(head) else {
        return Ok(None);
    };
    let header = Header::parse(head);
    let offset = usize::from(header.data_offset);
    if header.flags.contains(Flags::SACK) {
        let area = if 0 < offset && offset < rest.len() {
            offset
        } else {
            rest.len()
        };
        let (blocks, payload) = rest.split_at(area);
        let sacks = blocks
            .chunks_exact(SACK_LEN)
            .take(MAX_SACKS)
            .map(|b| SackBlock {
                start: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                end: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect();
        return Ok(Some(Packet {
            header,
            sacks,
            payload,
        }));
    }
    let Some(payload) = rest.get(offset..) else {
        return Err(PacketError::DataOffset {
            data_offset: header.data_offset,
            rest: rest.len(),
        });
    };
    Ok(Some(Packet {
        header,
        sacks: Vec::new(),
        payload,
    }))
}

impl Packet<'_> {
    /// Appends the datagram: the header, the SACK blocks, zero padding up to
    /// `data_offset` bytes after the header (when it exceeds the blocks), the payload.
    /// A SACK packet with `data_offset` 0 must carry no payload (C's form: the blocks
    /// run to the end).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        self.header.encode_into(out);
        for sack in &self.sacks {
            out.extend_from_slice(&sack.start.to_le_bytes());
            out.extend_from_slice(&sack.end.to_le_bytes());
        }
        let wanted = start + HEADER_LEN + usize::from(self.header.data_offset);
        if out.len() < wanted {
            out.resize(wanted, 0);
        }
        out.extend_from_slice(self.payload);
    }

    /// The encoded datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN
                + self.sacks.len() * SACK_LEN
                + usize::from(self.header.data_offset)
                + self.payload.len(),
        );
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: Flags) -> Header {
        Header {
            flags,
            data_offset: 0,
            id: 0x0403_0201,
            rwnd: 4_194_304,
            seq: 7,
            ack: 9,
        }
    }

    #[test]
    fn the_header_is_twenty_little_endian_bytes() {
        let bytes = Packet {
            header: header(Flags::DATA),
            sacks: vec![],
            payload: b"hi",
        }
        .to_bytes();
        assert_eq!(
            bytes,
            [
                0xff, 1, 1, 0, 1, 2, 3, 4, 0, 0, 0x40, 0, 7, 0, 0, 0, 9, 0, 0, 0, b'h', b'i'
            ]
        );
        let p = decode(&bytes).unwrap().unwrap();
        assert_eq!(p.header, header(Flags::DATA));
        assert_eq!(p.payload, b"hi");
    }

    #[test]
    fn other_protocols_on_the_socket_are_not_udx() {
        assert_eq!(decode(&[]), Ok(None));
        assert_eq!(decode(&[0xff, 1, 0]), Ok(None));
        let mut dht = header(Flags::ACK);
        let mut bytes = Vec::new();
        dht.encode_into(&mut bytes);
        bytes[1] = 2; // another version
        assert_eq!(decode(&bytes), Ok(None));
        bytes[0] = 0x13; // a DHT message
        bytes[1] = 1;
        assert_eq!(decode(&bytes), Ok(None));
        dht.flags = Flags::from_bits(0xc0); // unknown bits are kept, not refused
        assert_eq!(
            decode(
                &Packet {
                    header: dht,
                    sacks: vec![],
                    payload: b""
                }
                .to_bytes()
            )
            .unwrap()
            .unwrap()
            .header
            .flags
            .bits(),
            0xc0
        );
    }

    #[test]
    fn sack_blocks_are_read_as_c_reads_them() {
        let blocks = [
            SackBlock { start: 2, end: 3 },
            SackBlock { start: 5, end: 9 },
        ];
        // C's form: data_offset 0, the blocks run to the end.
        let c_form = Packet {
            header: header(Flags::SACK),
            sacks: blocks.to_vec(),
            payload: b"",
        }
        .to_bytes();
        assert_eq!(c_form.len(), HEADER_LEN + 16);
        let p = decode(&c_form).unwrap().unwrap();
        assert_eq!(p.sacks, blocks);
        assert!(p.payload.is_empty());
        // data_offset = 8: one block, then the rest is payload.
        let mut one = header(Flags::SACK);
        one.data_offset = 8;
        let mut bytes = Vec::new();
        one.encode_into(&mut bytes);
        bytes.extend_from_slice(&c_form[HEADER_LEN..]);
        let p = decode(&bytes).unwrap().unwrap();
        assert_eq!(p.sacks, blocks[..1]);
        assert_eq!(p.payload.len(), 8);
        // data_offset at or past the rest: the whole rest, in whole blocks.
        bytes[3] = 200;
        bytes.push(0xaa);
        let p = decode(&bytes).unwrap().unwrap();
        assert_eq!(p.sacks, blocks);
        // At most 50 blocks are read, however many follow.
        let many = Packet {
            header: header(Flags::SACK),
            sacks: vec![SackBlock { start: 1, end: 2 }; 200],
            payload: b"",
        }
        .to_bytes();
        assert_eq!(decode(&many).unwrap().unwrap().sacks.len(), MAX_SACKS);
    }

    #[test]
    fn padding_is_skipped_and_must_fit() {
        let mut probe = header(Flags::DATA);
        probe.data_offset = 5;
        let bytes = Packet {
            header: probe,
            sacks: vec![],
            payload: b"abc",
        }
        .to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + 5 + 3);
        assert_eq!(decode(&bytes).unwrap().unwrap().payload, b"abc");
        let short = &bytes[..HEADER_LEN + 4];
        assert_eq!(
            decode(short),
            Err(PacketError::DataOffset {
                data_offset: 5,
                rest: 4
            })
        );
        let mut long = bytes.clone();
        long.resize(MAX_DATAGRAM + 1, 0);
        assert_eq!(
            decode(&long),
            Err(PacketError::TooLong {
                len: MAX_DATAGRAM + 1
            })
        );
    }

    #[test]
    fn flags_print_by_name() {
        assert_eq!(format!("{:?}", Flags::ACK), "ACK");
        assert_eq!(format!("{:?}", Flags::DATA | Flags::END), "DATA|END");
        assert_eq!(format!("{:?}", Flags::from_bits(0x84)), "SACK|0x80");
    }
}
