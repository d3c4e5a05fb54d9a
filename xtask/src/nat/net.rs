//! The NAT suite's network: namespaces named `nvnat-*` (removed at the start and at the
//! end), none connected to the host's network.
//!
//! - `nvnat-inet`, the internet: bridge `br0` with 203.0.113.1-3/24 and a JS HyperDHT node
//!   on each of those addresses (`js/interop/dht-nodes.mjs`);
//! - per run and side (`w` writer, `r` reader) a public address 203.0.113.(10 + 2 run +
//!   0|1), on a veth port of the bridge: either the peer's own (`nvnat-N-S`, a peer on
//!   the internet), or a router's (`nvnat-N-Sgw`: `wan` outside, `lan` 10.{1|2}.0.1/24
//!   inside) with the peer behind it at 10.{1|2}.0.2 (default route via the router).
//!
//! A router: `MASQUERADE` out of `wan` (`--random-fully` for a random NAT), FORWARD
//! dropped except established/related and `lan` -> `wan`, and NEW packets from `wan` to
//! the router itself dropped. The routers have no default route, the peers reach
//! nothing beyond 203.0.113.0/24.

use std::process::Command;

use super::pairs::{Nat, Place, Topology};
use crate::Result;
use crate::integration::{Peer, example, field};
use crate::interop::js_dir;

/// Every namespace of this suite starts with it (stale ones are removed at the start).
const PREFIX: &str = "nvnat-";
/// The internet: the bridge and the DHT nodes.
const INET: &str = "nvnat-inet";
const BRIDGE: &str = "br0";
/// The DHT nodes' hosts, on the bridge.
const DHT_HOSTS: [&str; 3] = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];

/// The simulated internet: its namespace, bridge and DHT nodes. Dropping it stops the
/// nodes and removes every namespace of the suite.
pub(super) struct Internet {
    dht: Option<Peer>,
    /// The DHT nodes, `host:port,...`.
    pub(super) bootstrap: String,
}

impl Internet {
    pub(super) fn start() -> Result<Internet> {
        remove_all_namespaces();
        let mut internet = Internet {
            dht: None,
            bootstrap: String::new(),
        };
        add_namespace(INET)?;
        ip_in(
            INET,
            &format!("link add {BRIDGE} type bridge forward_delay 0"),
        )?;
        for host in DHT_HOSTS {
            ip_in(INET, &format!("addr add {host}/24 dev {BRIDGE}"))?;
        }
        ip_in(INET, &format!("link set {BRIDGE} up"))?;
        let mut args = vec!["dht-nodes.mjs"];
        args.extend(DHT_HOSTS);
        let dht = Peer::start("dht", node_in(INET, &args))?;
        internet.bootstrap = field(&dht.expect("BOOTSTRAP")?, 1)?;
        internet.dht = Some(dht);
        eprintln!(
            "  internet: bridge {BRIDGE} in {INET}, 203.0.113.0/24; DHT nodes {}",
            internet.bootstrap
        );
        Ok(internet)
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        drop(self.dht.take());
        remove_all_namespaces();
    }
}

/// A peer's place: its namespace and, behind a NAT, its router's.
pub(super) struct Site {
    peer: String,
    router: Option<String>,
}

impl Site {
    /// Site `side` ('w' or 'r') of run `run`; its public address is 203.0.113.(10 + 2 *
    /// run + 0|1), unique per run, so no cache on the internet side mixes two runs.
    fn build(run: usize, side: char, place: Place) -> Result<Site> {
        let peer = format!("{PREFIX}{run}-{side}");
        add_namespace(&peer)?;
        let mut site = Site { peer, router: None };
        let public = format!("203.0.113.{}/24", 10 + 2 * run + usize::from(side == 'r'));
        let bridge_port = format!("{side}{run}");
        let outside = match place {
            Place::Internet | Place::Open => (site.peer.clone(), "eth0"),
            Place::Behind(_) => {
                let router = format!("{PREFIX}{run}-{side}gw");
                add_namespace(&router)?;
                site.router = Some(router.clone());
                (router, "wan")
            }
        };
        let (netns, dev) = outside;
        ip(&format!(
            "link add {dev} netns {netns} type veth peer name {bridge_port} netns {INET}"
        ))?;
        ip_in(INET, &format!("link set {bridge_port} master {BRIDGE} up"))?;
        ip_in(&netns, &format!("addr add {public} dev {dev}"))?;
        ip_in(&netns, &format!("link set {dev} up"))?;
        if let Place::Behind(nat) = place {
            site.router(nat, if side == 'w' { 1 } else { 2 })?;
        }
        Ok(site)
    }

    /// The router's inside (10.`n`.0.1/24, the peer at .2) and its NAT and firewall.
    fn router(&self, nat: Nat, n: u8) -> Result {
        let router = self.router.as_deref().ok_or("no router")?;
        let (gw, addr) = (format!("10.{n}.0.1"), format!("10.{n}.0.2/24"));
        let peer = &self.peer;
        ip(&format!(
            "link add lan netns {router} type veth peer name eth0 netns {peer}"
        ))?;
        ip_in(router, &format!("addr add {gw}/24 dev lan"))?;
        ip_in(router, "link set lan up")?;
        ip_in(peer, &format!("addr add {addr} dev eth0"))?;
        ip_in(peer, "link set eth0 up")?;
        ip_in(peer, &format!("route add default via {gw}"))?;
        exec_in(router, "sysctl -qw net.ipv4.ip_forward=1")?;
        let random = if nat == Nat::Random {
            " --random-fully"
        } else {
            ""
        };
        let rules = [
            format!("-t nat -A POSTROUTING -o wan -j MASQUERADE{random}"),
            "-P FORWARD DROP".into(),
            "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT".into(),
            "-A FORWARD -i lan -o wan -j ACCEPT".into(),
            // Without it the other side's first punch makes a conntrack entry on the
            // router itself and our own punch is remapped to another port.
            "-A INPUT -i wan -m conntrack --ctstate NEW -j DROP".into(),
        ];
        for rule in rules {
            exec_in(router, &format!("iptables -w {rule}"))?;
        }
        Ok(())
    }

    /// `node ARGS` in js/interop, in this site's peer namespace.
    pub(super) fn node(&self, args: &[&str]) -> Command {
        node_in(&self.peer, args)
    }

    /// The Rust peer example with `args`, in this site's peer namespace.
    pub(super) fn rust(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.peer])
            .arg(example("peer"))
            .args(args);
        cmd
    }

    /// `conntrack -F` in the router: the number of entries it held just before.
    pub(super) fn flush_conntrack(&self) -> Result<u64> {
        let router = self.router.as_deref().ok_or("this peer has no router")?;
        let count = output(&format!("ip netns exec {router} conntrack -C"))?;
        let held = count
            .trim()
            .parse()
            .map_err(|e| format!("conntrack -C said {count:?}: {e}"))?;
        output(&format!("ip netns exec {router} conntrack -F"))?;
        Ok(held)
    }

    /// The router's connection tracking table (diagnostics).
    fn conntrack(&self) -> String {
        self.router.as_deref().map_or_else(String::new, |router| {
            output(&format!("ip netns exec {router} conntrack -L")).unwrap_or_else(|e| e)
        })
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        remove_namespace(&self.peer);
        if let Some(router) = &self.router {
            remove_namespace(router);
        }
    }
}

pub(super) struct Sites {
    pub(super) writer: Site,
    pub(super) reader: Site,
}

/// Runs `f` on fresh sites for `topology` (run `run`), printing the routers' conntrack
/// tables when it fails; the sites are removed afterwards.
pub(super) fn with_sites<T>(
    run: usize,
    topology: &Topology,
    f: impl FnOnce(&Sites) -> Result<T>,
) -> Result<T> {
    let sites = Sites {
        writer: Site::build(run, 'w', topology.writer)?,
        reader: Site::build(run, 'r', topology.reader)?,
    };
    let result = f(&sites);
    if result.is_err() {
        for (side, site) in [("writer", &sites.writer), ("reader", &sites.reader)] {
            if site.router.is_some() {
                eprintln!("  {side}'s router conntrack -L:\n{}", site.conntrack());
            }
        }
    }
    result
}

fn node_in(netns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, "node"])
        .args(args)
        .current_dir(js_dir());
    cmd
}

/// Runs `line` (a program and its arguments, separated by spaces) quietly: its output
/// (stdout then stderr), or an error with it.
fn output(line: &str) -> Result<String> {
    let mut words = line.split_whitespace();
    let program = words.next().ok_or("empty command")?;
    let out = Command::new(program)
        .args(words)
        .output()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("`{line}` failed ({}): {}", out.status, text.trim()))
    }
}

/// `ip ARGS`.
fn ip(args: &str) -> Result {
    output(&format!("ip {args}")).map(drop)
}

/// `ip -n NETNS ARGS`.
fn ip_in(netns: &str, args: &str) -> Result {
    ip(&format!("-n {netns} {args}"))
}

/// `PROGRAM ARGS` (`line`) in `netns`.
fn exec_in(netns: &str, line: &str) -> Result {
    ip(&format!("netns exec {netns} {line}"))
}

fn add_namespace(name: &str) -> Result {
    ip(&format!("netns add {name}"))?;
    ip_in(name, "link set lo up")
}

/// Kills what still runs in `name` (by pid: a run that was killed leaves its peers) and
/// removes it. Best effort: cleanup must not hide the result.
fn remove_namespace(name: &str) {
    if let Ok(pids) = output(&format!("ip netns pids {name}")) {
        for pid in pids.split_whitespace() {
            let _ = output(&format!("kill -KILL {pid}"));
        }
    }
    if let Err(e) = ip(&format!("netns del {name}")) {
        eprintln!("  (cleanup: {e})");
    }
}

/// Removes every namespace of this suite (stale ones from a killed run included).
fn remove_all_namespaces() {
    let Ok(list) = output("ip netns list") else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if name.starts_with(PREFIX) {
            remove_namespace(name);
        }
    }
}
