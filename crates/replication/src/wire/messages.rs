//! The `hypercore/alpha` channel handshake and its ten messages, field for field as
//! hypercore 11.39's `lib/messages.js` (`wire.*`) writes them; hypercore 10.31 reads
//! every one of them (its decoders stop before the fields 11 added, and protomux hands
//! each decoder only its own message).

use hypercore_schema::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Node, RequestBlock, RequestUpgrade,
};

use super::WireError;
use super::compact::{Reader, put_buffer, put_uint};
use super::manifest;

/// Bytes one tree node takes at least: index, size (one byte each) and its hash.
const NODE_MIN: usize = 1 + 1 + 32;

/// The handshake sent with a channel open (`wire.handshake`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The sender answers seek requests.
    pub seeks: bool,
    /// `blake2b(REPLICATE_{INITIATOR,RESPONDER} ‖ key, key = handshake hash)`: proof
    /// that the sender knows the log's key.
    pub capability: [u8; 32],
}

impl Handshake {
    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_uint(out, u64::from(self.seeks));
        out.extend_from_slice(&self.capability);
    }

    /// Decodes from exactly its own bytes (trailing bytes are ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let flags = r.uint("handshake flags")?;
        Ok(Handshake {
            seeks: flags & 1 != 0,
            capability: r.fixed32("handshake capability")?,
        })
    }
}

/// `sync` (type 0): the sender's length and what it can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synchronize {
    /// Fork id.
    pub fork: u64,
    /// The sender's length.
    pub length: u64,
    /// The receiver's length as the sender knows it (an acknowledgement).
    pub remote_length: u64,
    /// Flag 1: the sender can serve upgrades.
    pub can_upgrade: bool,
    /// Flag 2.
    pub uploading: bool,
    /// Flag 4.
    pub downloading: bool,
    /// Flag 8 (hypercore 11): the sender holds a manifest (a manifest core); a reader
    /// without one asks for it with [`Request::manifest`].
    pub has_manifest: bool,
    /// Flag 16 (hypercore 11): the sender accepts pushed data.
    pub allow_push: bool,
}

/// `request` (type 1): a proof the sender wants.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Matched by the answer's `request`.
    pub id: u64,
    /// Fork id.
    pub fork: u64,
    /// Flag 1: a block and the nodes to verify it.
    pub block: Option<RequestBlock>,
    /// Flag 2: a tree hash.
    pub hash: Option<RequestBlock>,
    /// Flag 4: the block holding a byte offset.
    pub seek: Option<RequestSeek>,
    /// Flag 8: a signed upgrade.
    pub upgrade: Option<RequestUpgrade>,
    /// Flag 16: the sender wants the manifest (it has none yet).
    pub manifest: bool,
    /// Flag 32 (the field is present only when non-zero).
    pub priority: u64,
}

/// The seek part of a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestSeek {
    /// The byte offset.
    pub bytes: u64,
    /// Bytes of padding per block the sender adds to offsets.
    pub padding: u64,
}

/// `cancel` (type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancel {
    /// The request given up.
    pub request: u64,
}

/// `data` (type 3): the answer to a request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Data {
    /// The request answered.
    pub request: u64,
    /// Fork id.
    pub fork: u64,
    /// Flag 1.
    pub block: Option<DataBlock>,
    /// Flag 2.
    pub hash: Option<DataHash>,
    /// Flag 4.
    pub seek: Option<DataSeek>,
    /// Flag 8.
    pub upgrade: Option<DataUpgrade>,
    /// Flag 16: the encoded manifest, exactly as sent (its hash is a manifest core's
    /// key). Structurally checked here; what it says is the core's business.
    pub manifest: Option<Vec<u8>>,
}

/// `noData` (type 4): the sender cannot answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoData {
    /// The request.
    pub request: u64,
    /// Why (hypercore 11; 0 = not given, else [`NoData::NOT_AVAILABLE`] or
    /// [`NoData::INVALID_REQUEST`]).
    pub reason: u64,
}

impl NoData {
    /// Reason: the sender does not have what was asked (hypercore 11 sends it for a
    /// block it does not hold).
    pub const NOT_AVAILABLE: u64 = 1;
    /// Reason: the request cannot be answered as asked (hypercore 11: another fork, or
    /// a proof it cannot build).
    pub const INVALID_REQUEST: u64 = 2;
}

/// `want` (type 5): the sender wants blocks in a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// First block.
    pub start: u64,
    /// Blocks.
    pub length: u64,
    /// Hypercore 11 flag: any block of the range will do.
    pub any: bool,
}

/// `unwant` (type 6): the sender no longer wants them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unwant {
    /// First block.
    pub start: u64,
    /// Blocks.
    pub length: u64,
    /// Hypercore 11 flag, as in [`Want`].
    pub any: bool,
}

/// `bitfield` (type 7): a run of the sender's bitfield.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    /// First block.
    pub start: u64,
    /// Bits, 32 blocks a word.
    pub bitfield: Vec<u32>,
}

/// `range` (type 8): the sender holds (or dropped) blocks `start..start + length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// Flag 1: dropped, not held.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Blocks (flag 2 stands for a length of 1, which is then not written).
    pub length: u64,
}

/// `extension` (type 9): a named message for a protocol extension.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    /// Extension name.
    pub name: String,
    /// Its payload: every byte after the name.
    pub message: Vec<u8>,
}

/// One message on a `hypercore/alpha` channel; the protomux message type is its index.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Type 0.
    Synchronize(Synchronize),
    /// Type 1.
    Request(Request),
    /// Type 2.
    Cancel(Cancel),
    /// Type 3.
    Data(Data),
    /// Type 4.
    NoData(NoData),
    /// Type 5.
    Want(Want),
    /// Type 6.
    Unwant(Unwant),
    /// Type 7.
    Bitfield(Bitfield),
    /// Type 8.
    Range(Range),
    /// Type 9.
    Extension(Extension),
}

/// Message types a `hypercore/alpha` channel has (0..=9); protomux ignores the others.
pub const MESSAGE_TYPES: u64 = 10;

impl Message {
    /// The protomux message type.
    pub fn typ(&self) -> u64 {
        match self {
            Message::Synchronize(_) => 0,
            Message::Request(_) => 1,
            Message::Cancel(_) => 2,
            Message::Data(_) => 3,
            Message::NoData(_) => 4,
            Message::Want(_) => 5,
            Message::Unwant(_) => 6,
            Message::Bitfield(_) => 7,
            Message::Range(_) => 8,
            Message::Extension(_) => 9,
        }
    }

    /// The message's name in `messages.js`.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Synchronize(_) => "sync",
            Message::Request(_) => "request",
            Message::Cancel(_) => "cancel",
            Message::Data(_) => "data",
            Message::NoData(_) => "noData",
            Message::Want(_) => "want",
            Message::Unwant(_) => "unwant",
            Message::Bitfield(_) => "bitfield",
            Message::Range(_) => "range",
            Message::Extension(_) => "extension",
        }
    }

    /// Appends the body (without the type).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Synchronize(m) => {
                let flags = u64::from(m.can_upgrade)
                    | u64::from(m.uploading) << 1
                    | u64::from(m.downloading) << 2
                    | u64::from(m.has_manifest) << 3
                    | u64::from(m.allow_push) << 4;
                put_uint(out, flags);
                put_uint(out, m.fork);
                put_uint(out, m.length);
                put_uint(out, m.remote_length);
            }
            Message::Request(m) => {
                let flags = u64::from(m.block.is_some())
                    | u64::from(m.hash.is_some()) << 1
                    | u64::from(m.seek.is_some()) << 2
                    | u64::from(m.upgrade.is_some()) << 3
                    | u64::from(m.manifest) << 4
                    | u64::from(m.priority != 0) << 5;
                put_uint(out, flags);
                put_uint(out, m.id);
                put_uint(out, m.fork);
                for b in [&m.block, &m.hash].into_iter().flatten() {
                    put_uint(out, b.index);
                    put_uint(out, b.nodes);
                }
                if let Some(s) = &m.seek {
                    put_uint(out, s.bytes);
                    put_uint(out, s.padding);
                }
                if let Some(u) = &m.upgrade {
                    put_uint(out, u.start);
                    put_uint(out, u.length);
                }
                if m.priority != 0 {
                    put_uint(out, m.priority);
                }
            }
            Message::Cancel(m) => put_uint(out, m.request),
            Message::Data(m) => encode_data(m, out),
            Message::NoData(m) => {
                // As hypercore 11: the flags are always written (10 stops before them).
                put_uint(out, m.request);
                put_uint(out, u64::from(m.reason != 0));
                if m.reason != 0 {
                    put_uint(out, m.reason);
                }
            }
            Message::Want(Want { start, length, any })
            | Message::Unwant(Unwant { start, length, any }) => {
                put_uint(out, *start);
                put_uint(out, *length);
                if *any {
                    put_uint(out, 1);
                }
            }
            Message::Bitfield(m) => {
                put_uint(out, m.start);
                put_uint(out, m.bitfield.len() as u64);
                for word in &m.bitfield {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
            Message::Range(m) => {
                put_uint(out, u64::from(m.drop) | u64::from(m.length == 1) << 1);
                put_uint(out, m.start);
                if m.length != 1 {
                    put_uint(out, m.length);
                }
            }
            Message::Extension(m) => {
                put_buffer(out, m.name.as_bytes());
                out.extend_from_slice(&m.message);
            }
        }
    }

    /// Decodes a message of type `typ` from exactly its own bytes `body` (what
    /// protomux delimits). Bytes after the last known field are ignored, as JS does,
    /// so fields a later version appends never spill into the next message.
    pub fn decode(typ: u64, body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let r = &mut r;
        Ok(match typ {
            0 => {
                let flags = r.uint("sync flags")?;
                Message::Synchronize(Synchronize {
                    fork: r.uint("sync fork")?,
                    length: r.uint("sync length")?,
                    remote_length: r.uint("sync remote length")?,
                    can_upgrade: flags & 1 != 0,
                    uploading: flags & 2 != 0,
                    downloading: flags & 4 != 0,
                    has_manifest: flags & 8 != 0,
                    allow_push: flags & 16 != 0,
                })
            }
            1 => {
                let flags = r.uint("request flags")?;
                let id = r.uint("request id")?;
                let fork = r.uint("request fork")?;
                let block = (flags & 1 != 0)
                    .then(|| request_block(r, "request block"))
                    .transpose()?;
                let hash = (flags & 2 != 0)
                    .then(|| request_block(r, "request hash"))
                    .transpose()?;
                let seek = (flags & 4 != 0)
                    .then(|| -> Result<_, WireError> {
                        Ok(RequestSeek {
                            bytes: r.uint("request seek bytes")?,
                            padding: r.uint("request seek padding")?,
                        })
                    })
                    .transpose()?;
                let upgrade = (flags & 8 != 0)
                    .then(|| -> Result<_, WireError> {
                        Ok(RequestUpgrade {
                            start: r.uint("request upgrade start")?,
                            length: r.uint("request upgrade length")?,
                        })
                    })
                    .transpose()?;
                let priority = if flags & 32 != 0 {
                    r.uint("request priority")?
                } else {
                    0
                };
                Message::Request(Request {
                    id,
                    fork,
                    block,
                    hash,
                    seek,
                    upgrade,
                    manifest: flags & 16 != 0,
                    priority,
                })
            }
            2 => Message::Cancel(Cancel {
                request: r.uint("cancel request")?,
            }),
            3 => Message::Data(decode_data(r)?),
            4 => {
                let request = r.uint("noData request")?;
                let flags = if r.is_empty() {
                    0
                } else {
                    r.uint("noData flags")?
                };
                let reason = if flags & 1 != 0 {
                    r.uint("noData reason")?
                } else {
                    0
                };
                Message::NoData(NoData { request, reason })
            }
            5 | 6 => {
                let start = r.uint("want start")?;
                let length = r.uint("want length")?;
                let flags = if r.is_empty() {
                    0
                } else {
                    r.uint("want flags")?
                };
                let any = flags & 1 != 0;
                if typ == 5 {
                    Message::Want(Want { start, length, any })
                } else {
                    Message::Unwant(Unwant { start, length, any })
                }
            }
            7 => Message::Bitfield(Bitfield {
                start: r.uint("bitfield start")?,
                bitfield: r.uint32_array("bitfield words")?,
            }),
            8 => {
                let flags = r.uint("range flags")?;
                let start = r.uint("range start")?;
                let length = if flags & 2 != 0 {
                    1
                } else {
                    r.uint("range length")?
                };
                Message::Range(Range {
                    drop: flags & 1 != 0,
                    start,
                    length,
                })
            }
            9 => Message::Extension(Extension {
                name: r.string("extension name")?.to_string(),
                message: r.take_rest().to_vec(),
            }),
            other => return Err(WireError::UnknownMessageType(other)),
        })
    }

    /// The body's encoding (without the type).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn request_block(r: &mut Reader<'_>, what: &'static str) -> Result<RequestBlock, WireError> {
    Ok(RequestBlock {
        index: r.uint(what)?,
        nodes: r.uint(what)?,
    })
}

fn put_nodes(out: &mut Vec<u8>, nodes: &[Node]) {
    put_uint(out, nodes.len() as u64);
    for n in nodes {
        put_uint(out, n.index);
        put_uint(out, n.length);
        // A node hash is 32 bytes; anything else is written padded or cut, never
        // with a wrong length field.
        let mut hash = [0u8; 32];
        let len = n.hash.len().min(32);
        hash[..len].copy_from_slice(&n.hash[..len]);
        out.extend_from_slice(&hash);
    }
}

/// Largest tree node index taken from a peer: up to it every flat-tree step (depth,
/// offset, parent) stays within u64; past it the parent's shifts overflow (a panic in
/// debug builds, a wrong parent in release; found by fuzzing, at 2^64 - 1 and at
/// 2^62 - 1). A tree of 2^59 blocks fits; JS peers cannot name indexes past 2^53.
pub const MAX_NODE_INDEX: u64 = (1 << 61) - 1;

fn nodes(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<Node>, WireError> {
    let n = r.array_len(NODE_MIN, what)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let index = r.uint(what)?;
        if index > MAX_NODE_INDEX {
            return Err(WireError::TooLarge {
                what,
                len: index,
                limit: MAX_NODE_INDEX,
            });
        }
        let size = r.uint(what)?;
        let hash = r.fixed32(what)?;
        out.push(Node::new(index, hash.to_vec(), size));
    }
    Ok(out)
}

fn encode_data(m: &Data, out: &mut Vec<u8>) {
    let flags = u64::from(m.block.is_some())
        | u64::from(m.hash.is_some()) << 1
        | u64::from(m.seek.is_some()) << 2
        | u64::from(m.upgrade.is_some()) << 3
        | u64::from(m.manifest.is_some()) << 4;
    put_uint(out, flags);
    put_uint(out, m.request);
    put_uint(out, m.fork);
    if let Some(b) = &m.block {
        put_uint(out, b.index);
        put_buffer(out, &b.value);
        put_nodes(out, &b.nodes);
    }
    if let Some(h) = &m.hash {
        put_uint(out, h.index);
        put_nodes(out, &h.nodes);
    }
    if let Some(s) = &m.seek {
        put_uint(out, s.bytes);
        put_nodes(out, &s.nodes);
    }
    if let Some(u) = &m.upgrade {
        put_uint(out, u.start);
        put_uint(out, u.length);
        put_nodes(out, &u.nodes);
        put_nodes(out, &u.additional_nodes);
        // `c.optionalBuffer` (11) / `c.buffer` (10): an empty signature is a 0 length.
        put_buffer(out, &u.signature);
    }
    if let Some(manifest) = &m.manifest {
        out.extend_from_slice(manifest);
    }
}

fn decode_data(r: &mut Reader<'_>) -> Result<Data, WireError> {
    let flags = r.uint("data flags")?;
    let request = r.uint("data request")?;
    let fork = r.uint("data fork")?;
    let block = if flags & 1 != 0 {
        Some(DataBlock {
            index: r.uint("data block index")?,
            value: r.buffer("data block value")?.to_vec(),
            nodes: nodes(r, "data block nodes")?,
        })
    } else {
        None
    };
    let hash = if flags & 2 != 0 {
        Some(DataHash {
            index: r.uint("data hash index")?,
            nodes: nodes(r, "data hash nodes")?,
        })
    } else {
        None
    };
    let seek = if flags & 4 != 0 {
        Some(DataSeek {
            bytes: r.uint("data seek bytes")?,
            nodes: nodes(r, "data seek nodes")?,
        })
    } else {
        None
    };
    let upgrade = if flags & 8 != 0 {
        Some(DataUpgrade {
            start: r.uint("data upgrade start")?,
            length: r.uint("data upgrade length")?,
            nodes: nodes(r, "data upgrade nodes")?,
            additional_nodes: nodes(r, "data upgrade additional nodes")?,
            signature: r.buffer("data upgrade signature")?.to_vec(),
        })
    } else {
        None
    };
    let manifest = if flags & 16 != 0 {
        Some(manifest::read(r)?)
    } else {
        None
    };
    Ok(Data {
        request,
        fork,
        block,
        hash,
        seek,
        upgrade,
        manifest,
    })
}
