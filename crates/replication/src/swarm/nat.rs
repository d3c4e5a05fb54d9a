//! What our NAT does to one socket, as JS hyperdht's `lib/nat.js` works it out: DHT
//! nodes tell us where they saw that socket (a ping reply's `to`); the same address
//! from several nodes means a consistent mapping (a peer can punch to it), a new port
//! for each node means a random one.
//!
//! Pure bookkeeping ([`Samples`]); the pings are sent by the puncher that owns the
//! socket (`puncher.rs`).

use peeroxide_dht::hyperdht_messages::{FIREWALL_CONSISTENT, FIREWALL_RANDOM};
use peeroxide_dht::messages::Ipv4Peer;

/// Samples wanted before a conclusion is forced (JS `_minSamples`).
pub(crate) const MIN_SAMPLES: u32 = 4;

/// Most distinct nodes remembered (the answers come from the nodes we asked; bounded
/// all the same).
const MAX_VISITED: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    host: String,
    port: u16,
    hits: u32,
}

/// The answers so far, and what they say.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    /// By host only (port 0), most hits first.
    host: Vec<Sample>,
    /// By host and port, most hits first.
    full: Vec<Sample>,
    /// Nodes that answered (each counts once).
    visited: Vec<Ipv4Peer>,
    sampled: u32,
    firewall: u64,
    frozen: bool,
}

impl Samples {
    /// `node` saw our socket at `seen`. A node counts once.
    pub(crate) fn add(&mut self, seen: &Ipv4Peer, node: &Ipv4Peer) {
        if self.visited.contains(node) || self.visited.len() >= MAX_VISITED {
            return;
        }
        self.visited.push(node.clone());
        add_sample(&mut self.host, &seen.host, 0);
        add_sample(&mut self.full, &seen.host, seen.port);
        self.sampled += 1;
        if self.sampled >= 3 && !self.frozen {
            self.firewall = self.classify();
        }
    }

    /// Stops changing what we say (JS `freeze()`: once told to the other peer).
    pub(crate) fn freeze(&mut self) {
        self.frozen = true;
    }

    /// How many nodes answered.
    pub(crate) fn sampled(&self) -> u32 {
        self.sampled
    }

    /// `FIREWALL_UNKNOWN`, `FIREWALL_CONSISTENT` or `FIREWALL_RANDOM`.
    pub(crate) fn firewall(&self) -> u64 {
        self.firewall
    }

    /// Whether sampling may stop: a consistent mapping is known, or enough samples.
    pub(crate) fn settled(&self) -> bool {
        self.firewall == FIREWALL_CONSISTENT || self.sampled >= MIN_SAMPLES
    }

    /// Where peers can reach this socket (JS `addresses`): for a consistent mapping the
    /// addresses seen twice or more (at least two); for a random one the host alone
    /// (port 0); none while unknown.
    pub(crate) fn addresses(&self) -> Option<Vec<Ipv4Peer>> {
        match self.firewall {
            FIREWALL_RANDOM => self.host.first().map(|s| {
                vec![Ipv4Peer {
                    host: s.host.clone(),
                    port: 0,
                }]
            }),
            FIREWALL_CONSISTENT => {
                let mut out: Vec<Ipv4Peer> = Vec::new();
                for s in &self.full {
                    if s.hits >= 2 || out.len() < 2 {
                        out.push(Ipv4Peer {
                            host: s.host.clone(),
                            port: s.port,
                        });
                    }
                }
                Some(out)
            }
            _ => None,
        }
    }

    /// JS `_updateFirewall`.
    fn classify(&self) -> u64 {
        let Some(first) = self.full.first() else {
            return self.firewall;
        };
        match first.hits {
            hits if hits >= 3 => FIREWALL_CONSISTENT,
            1 => FIREWALL_RANDOM,
            _ if self.host.len() == 1 && self.sampled > 3 => FIREWALL_RANDOM,
            _ if self.host.len() > 1 && self.full.get(1).is_some_and(|s| s.hits > 1) => {
                FIREWALL_CONSISTENT
            }
            _ if self.sampled > 4 => FIREWALL_RANDOM,
            _ => self.firewall,
        }
    }
}

/// Counts one more hit of `host:port`, keeping the list sorted by hits (JS
/// `addSample`).
fn add_sample(samples: &mut Vec<Sample>, host: &str, port: u16) {
    if let Some(mut i) = samples
        .iter()
        .position(|s| s.host == host && s.port == port)
    {
        samples[i].hits += 1;
        while i > 0 && samples[i - 1].hits < samples[i].hits {
            samples.swap(i - 1, i);
            i -= 1;
        }
        return;
    }
    samples.push(Sample {
        host: host.to_owned(),
        port,
        hits: 1,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use peeroxide_dht::hyperdht_messages::FIREWALL_UNKNOWN;

    fn peer(host: &str, port: u16) -> Ipv4Peer {
        Ipv4Peer {
            host: host.into(),
            port,
        }
    }

    fn sampled(seen: &[(&str, u16)]) -> Samples {
        let mut s = Samples::default();
        for (i, (host, port)) in seen.iter().enumerate() {
            let node = peer(&format!("203.0.113.{}", 10 + i), 49737);
            s.add(&peer(host, *port), &node);
        }
        s
    }

    #[test]
    fn the_same_mapping_from_three_nodes_is_consistent() {
        let s = sampled(&[("198.51.100.7", 4000); 3]);
        assert_eq!(s.firewall(), FIREWALL_CONSISTENT);
        assert!(s.settled());
        assert_eq!(s.addresses(), Some(vec![peer("198.51.100.7", 4000)]));
    }

    #[test]
    fn a_new_port_per_node_is_random_and_offers_the_host_only() {
        let s = sampled(&[
            ("198.51.100.7", 4000),
            ("198.51.100.7", 4001),
            ("198.51.100.7", 4002),
        ]);
        assert_eq!(s.firewall(), FIREWALL_RANDOM);
        assert_eq!(s.addresses(), Some(vec![peer("198.51.100.7", 0)]));
    }

    #[test]
    fn table_of_js_decisions() {
        let cases: &[(&[(&str, u16)], u64)] = &[
            // Two samples: no decision yet.
            (&[("1.1.1.1", 1), ("1.1.1.1", 1)], FIREWALL_UNKNOWN),
            // Max 2 hits on one host, 4 samples: random.
            (
                &[
                    ("1.1.1.1", 1),
                    ("1.1.1.1", 1),
                    ("1.1.1.1", 2),
                    ("1.1.1.1", 3),
                ],
                FIREWALL_RANDOM,
            ),
            // Double hits on two hosts: consistent (two public addresses).
            (
                &[
                    ("1.1.1.1", 1),
                    ("1.1.1.1", 1),
                    ("2.2.2.2", 5),
                    ("2.2.2.2", 5),
                ],
                FIREWALL_CONSISTENT,
            ),
            // Max 2 hits, one host, 3 samples: undecided.
            (
                &[("1.1.1.1", 1), ("1.1.1.1", 1), ("1.1.1.1", 2)],
                FIREWALL_UNKNOWN,
            ),
        ];
        for (seen, want) in cases {
            assert_eq!(sampled(seen).firewall(), *want, "{seen:?}");
        }
    }

    #[test]
    fn a_node_counts_once_and_a_frozen_view_stays() {
        let mut s = Samples::default();
        let node = peer("203.0.113.10", 1);
        s.add(&peer("1.1.1.1", 1), &node);
        s.add(&peer("1.1.1.1", 1), &node);
        assert_eq!(s.sampled(), 1);
        s.freeze();
        s.add(&peer("1.1.1.1", 1), &peer("203.0.113.11", 1));
        s.add(&peer("1.1.1.1", 1), &peer("203.0.113.12", 1));
        assert_eq!(s.firewall(), FIREWALL_UNKNOWN);
    }
}
