//! The command line's grammar (clap derive): global options, one variant per command.
//!
//! Owns: argument names, defaults, help text, and parsing of keys and addresses.
//! Must not: open the store or do any work (the command modules do).
//! Used by: `main` (parse) and every command module (its arguments).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// P2P append-only logs on the Hypercore protocol: a store of named, signed logs you can
/// append to, read, verify, share with peers and follow.
#[derive(Debug, Parser)]
#[command(name = "nova-hypercore", version, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The store directory [default: $NOVA_HYPERCORE_DIR, else the platform's data dir].
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A DHT bootstrap node (`host:port`); repeat for more. Also
    /// $NOVA_HYPERCORE_BOOTSTRAP (comma-separated) or `bootstrap` in the store's
    /// config.toml. None means no DHT: public nodes are never used implicitly.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// Machine-readable output: one JSON value per line on stdout (errors as JSON on
    /// stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// The logs this command names are encrypted with this key (64 hex digits for JS's
    /// usual 32 bytes; 16 to 64 bytes): appends encrypt, reads decrypt, `follow`
    /// replicates a log written with JS hypercore's `encryptionKey`. Also
    /// $NOVA_HYPERCORE_ENCRYPTION_KEY. Not stored: give it on every command. Without
    /// it an encrypted log is still replicated, verified and served (`seed`), and reads
    /// print its stored (encrypted) bytes. `status`, `metrics` and `seed` do not take it.
    #[arg(long, global = true, value_name = "HEX")]
    pub encryption_key: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store (directories, primary key); prints where it is.
    Init,
    /// Append to a log (created on first use): DATA as one entry, `-` for one entry per
    /// stdin line, or --file PATH for a file's bytes as one entry.
    Append {
        /// The log's name.
        log: String,
        /// The entry, or `-` to read entries from stdin, one per line.
        data: Option<String>,
        /// Append this file's contents as one entry.
        #[arg(long, value_name = "PATH", conflicts_with = "data")]
        file: Option<PathBuf>,
    },
    /// Print entry SEQ of a log.
    Read {
        /// The log's name.
        log: String,
        /// The entry's sequence number.
        seq: u64,
    },
    /// Print entries START..END (END exclusive), one per line.
    Range {
        /// The log's name.
        log: String,
        /// First seq.
        start: u64,
        /// One past the last seq.
        end: u64,
    },
    /// Print the last entries of a log, and with --follow new ones as they arrive.
    Tail {
        /// The log's name.
        log: String,
        /// How many of the last entries to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Keep printing entries as the log grows (a replica replicates meanwhile, over
        /// --connect or the DHT) until Ctrl-C.
        #[arg(short, long)]
        follow: bool,
        /// Network options (used with --follow on a replica).
        #[command(flatten)]
        net: NetArgs,
    },
    /// The store: its logs with their lengths, disk usage.
    Status,
    /// This process's aggregate counters after opening every log of the store.
    Metrics,
    /// A log's public key and discovery key, in hex.
    Keys {
        /// The log's name.
        log: String,
    },
    /// Share logs with peers (DHT and/or --listen) until Ctrl-C.
    Share {
        /// The logs to share.
        #[arg(required = true)]
        logs: Vec<String>,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Replicate a peer's log by its public key into a local log NAME.
    Follow {
        /// The writer's public key (64 hex characters).
        #[arg(value_parser = parse_key)]
        key: [u8; 32],
        /// The local name of the replica.
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        /// Download only what is read or asked for, not every block.
        #[arg(long)]
        sparse: bool,
        /// Keep replicating (and serving) after the download is complete, until Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Host a DHT bootstrap node (for a LAN or a test) until Ctrl-C; prints its address.
    Bootstrap {
        /// Where to bind (port 0 picks one).
        #[arg(default_value = "0.0.0.0:49737")]
        addr: SocketAddr,
        /// Join the DHT of these nodes instead of starting a new one.
        #[arg(long, value_name = "HOST:PORT")]
        join: Vec<SocketAddr>,
    },
    /// Check every block of a log against its signed tree; reports the first bad seq.
    Verify {
        /// The log's name.
        log: String,
    },
    /// Drop blocks START..END of a log from local storage (the log keeps its length).
    Clear {
        /// The log's name.
        log: String,
        /// First seq.
        start: u64,
        /// One past the last seq.
        end: u64,
    },
    /// Delete a log (files, key); our own log's name cannot be used again.
    Delete {
        /// The log's name.
        log: String,
    },
    /// Always-on peer: keep logs replicated and announced, restart where it left off.
    Seed(SeedArgs),
}

/// Arguments of `seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Logs to seed: a log name of this store, a public key (64 hex), or NAME=KEY.
    /// Added to seeds.json in the store, so a restart resumes them.
    pub targets: Vec<String>,
    /// Seed every log the store has: own logs, replicas and earlier seeds.
    #[arg(long)]
    pub all: bool,
    /// Replicas added now are sparse: they hold only what was downloaded on purpose.
    #[arg(long)]
    pub sparse: bool,
    /// Serve GET /status (JSON) on this address, e.g. 127.0.0.1:7070.
    #[arg(long, value_name = "ADDR")]
    pub status_addr: Option<SocketAddr>,
    /// Stop downloading into replicas while the store occupies more than this many
    /// bytes on disk (checked every few seconds).
    #[arg(long, value_name = "BYTES")]
    pub max_storage: Option<u64>,
    /// Network options.
    #[command(flatten)]
    pub net: NetArgs,
}

/// How a command reaches peers: direct TCP (--listen / --connect) and the DHT.
#[derive(Debug, Args, Clone, Default)]
pub struct NetArgs {
    /// Serve replication on this TCP address (port 0 picks one; the bound address is
    /// printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Keep a replication connection to this peer (repeat for more).
    #[arg(long, value_name = "ADDR")]
    pub connect: Vec<SocketAddr>,
    /// Address the DHT sockets bind to [default: 127.0.0.1 when every bootstrap node
    /// is on loopback, else 0.0.0.0].
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Most peers replicated with at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_peers: usize,
}

/// A 32-byte key from 64 hex characters.
pub fn parse_key(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 {
        return Err(format!(
            "a key is 64 hex characters, this is {} characters long",
            s.len()
        ));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2).ok_or("a key is hex (0-9, a-f)")?;
        *byte = u8::from_str_radix(pair, 16)
            .map_err(|_| format!("not hex at character {}: {pair:?}", 2 * i + 1))?;
    }
    Ok(key)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Command {
    /// Whether the command runs until stopped (it logs at `info` by default).
    pub fn is_long_running(&self) -> bool {
        matches!(
            self,
            Command::Share { .. } | Command::Seed(_) | Command::Bootstrap { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(parse_key(&hex(&key)), Ok(key));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(parse_key("abc").is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
        assert!(parse_key(&"é".repeat(32)).is_err());
    }

    #[test]
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
