//! The nat suite's cases: where each peer sits ([`Place`], [`Topology`]) and every
//! pair that runs, with what is expected of it today ([`PAIRS`]).

use super::Runtime;
use Expect::{KnownBoundary, Pass};
use Runtime::{Js, Rust};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Nat {
    /// MASQUERADE: the same public port for a socket whoever it sends to.
    Consistent,
    /// MASQUERADE `--random-fully`: a random public port per destination.
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    Behind(Nat),
    Internet,
    /// On the internet, and the peer is told so (`firewalled: false`: a public host):
    /// its DHT handshakes say OPEN, and a Rust peer's streams run on its DHT socket,
    /// through the tap (docs/udx-socket-seam.md §5(e)).
    Open,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Topology {
    pub(super) name: &'static str,
    pub(super) writer: Place,
    pub(super) reader: Place,
}

impl Topology {
    /// Whether a side is behind a random NAT.
    pub(super) fn random(&self) -> bool {
        [self.writer, self.reader].contains(&Place::Behind(Nat::Random))
    }
}

pub(super) const TWO_NATS: Topology = Topology {
    name: "two NATs",
    writer: Place::Behind(Nat::Consistent),
    reader: Place::Behind(Nat::Consistent),
};
pub(super) const ONE_NAT: Topology = Topology {
    name: "one NAT (writer behind it, reader on the internet)",
    writer: Place::Behind(Nat::Consistent),
    reader: Place::Internet,
};
pub(super) const OPEN_WRITER: Topology = Topology {
    name: "one NAT (reader behind it, writer public, not firewalled)",
    writer: Place::Open,
    reader: Place::Behind(Nat::Consistent),
};
pub(super) const OPEN_READER: Topology = Topology {
    name: "one NAT (writer behind it, reader public, not firewalled)",
    writer: Place::Behind(Nat::Consistent),
    reader: Place::Open,
};
pub(super) const RANDOM_NAT: Topology = Topology {
    name: "two NATs, the reader's random (--random-fully)",
    writer: Place::Behind(Nat::Consistent),
    reader: Place::Behind(Nat::Random),
};

pub(super) const RANDOM_WRITER: Topology = Topology {
    name: "two NATs, the writer's random (--random-fully)",
    writer: Place::Behind(Nat::Random),
    reader: Place::Behind(Nat::Consistent),
};
pub(super) const BOTH_RANDOM: Topology = Topology {
    name: "two random NATs",
    writer: Place::Behind(Nat::Random),
    reader: Place::Behind(Nat::Random),
};

#[derive(Debug)]
pub(super) enum Expect {
    Pass,
    /// Known not to connect today (`why`): run with a short bound, and the check fails
    /// if it syncs (then make it `Pass`). Our reader must say why it cannot connect: a
    /// `DIAL-FAILED` line containing `says` (the error a user sees in
    /// `HypercoreManager::dial_failures`).
    KnownBoundary {
        why: &'static str,
        says: &'static str,
    },
}

pub(super) struct Pair {
    pub(super) writer: Runtime,
    pub(super) reader: Runtime,
    pub(super) topology: &'static Topology,
    pub(super) expect: Expect,
}

impl Pair {
    pub(super) fn anchor(&self) -> bool {
        self.writer == Runtime::Js && self.reader == Runtime::Js
    }

    pub(super) fn name(&self) -> String {
        format!("{} -> {}", self.writer.name(), self.reader.name())
    }

    /// Whether our writer's connection must run through its DHT socket's tap (it
    /// prints `TAPPED`): it is public and not firewalled, so the reader dials its DHT
    /// socket, or the reader is a public JS peer (it says OPEN), which our writer
    /// dials from its DHT socket. (Our reader never says OPEN: it dials from a socket
    /// of its own.)
    pub(super) fn tapped(&self) -> bool {
        self.writer == Runtime::Rust
            && (self.topology.writer == Place::Open
                || (self.topology.reader == Place::Open && self.reader == Runtime::Js))
    }
}

/// Why two peers behind random NATs do not connect.
pub(super) const DOUBLE_RANDOM: &str = "two random NATs cannot be holepunched (no port to aim at on either side): a blind relay is needed, and we build none yet; our client says 'both NATs are random: a blind relay is needed' (JS: HOLEPUNCH_DOUBLE_RANDOMIZED_NATS)";

pub(super) const fn pair(
    writer: Runtime,
    reader: Runtime,
    topology: &'static Topology,
    expect: Expect,
) -> Pair {
    Pair {
        writer,
        reader,
        topology,
        expect,
    }
}

/// Every pair, in the order they run (the JS -> JS anchors first), with what is expected
/// today. When a known boundary starts to pass, the suite fails until its row says `Pass`
/// (and `docs/discovery.md`, "Across NATs: the nat suite", is updated).
pub(super) const PAIRS: &[Pair] = &[
    pair(Js, Js, &TWO_NATS, Pass),
    pair(Js, Js, &ONE_NAT, Pass),
    pair(Js, Js, &OPEN_WRITER, Pass),
    pair(Js, Js, &OPEN_READER, Pass),
    pair(Js, Js, &RANDOM_NAT, Pass),
    pair(Js, Js, &RANDOM_WRITER, Pass),
    pair(Js, Rust, &TWO_NATS, Pass),
    pair(Js, Rust, &ONE_NAT, Pass),
    pair(Js, Rust, &RANDOM_NAT, Pass),
    pair(Js, Rust, &RANDOM_WRITER, Pass),
    pair(Rust, Rust, &TWO_NATS, Pass),
    pair(Rust, Rust, &ONE_NAT, Pass),
    pair(Rust, Rust, &RANDOM_NAT, Pass),
    pair(Rust, Rust, &RANDOM_WRITER, Pass),
    pair(Rust, Js, &TWO_NATS, Pass),
    pair(Rust, Js, &ONE_NAT, Pass),
    pair(Rust, Js, &RANDOM_NAT, Pass),
    pair(Rust, Rust, &OPEN_WRITER, Pass),
    pair(Rust, Js, &OPEN_WRITER, Pass),
    pair(Js, Rust, &OPEN_WRITER, Pass),
    pair(Rust, Js, &OPEN_READER, Pass),
    pair(Rust, Js, &RANDOM_WRITER, Pass),
    pair(
        Rust,
        Rust,
        &BOTH_RANDOM,
        KnownBoundary {
            why: DOUBLE_RANDOM,
            says: "both NATs are random: a blind relay is needed",
        },
    ),
];
