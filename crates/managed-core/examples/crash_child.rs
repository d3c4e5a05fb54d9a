//! The child process of the crash trials (`cargo xtask test-integration crash`): appends
//! to one log until the parent kills it with SIGKILL, reporting every acknowledged
//! append on stdout, so the parent knows what must survive.
//!
//! ```text
//! crash_child append DIR MODE SEED   open (verifying every stored entry: "OPENED <length>"),
//!                                    then append singles and batches forever, printing
//!                                    "ACK <end>" after each acknowledged append
//! crash_child close DIR MODE SEED    open and verify as above, append SEED % 500 + 1
//!                                    entries, print "CLOSING", close, print "CLOSED"
//! crash_child verify DIR MODE        open and verify; print "OPENED <length>"
//! ```
//! MODE is `flush`, `fsync-per-batch` or `fsync-per-write`. Entry `seq` is a function of
//! `seq` only ([`entry`]), so "reads back verified" also checks the content byte for byte.
//! The signing key is fixed (the log is the writer's own, its key held outside the files).

use std::io::Write;
use std::path::Path;

use nova_hypercore_managed_core::{Durability, ManagedCore, OpenOptions, SigningKey};
use nova_hypercore_serialization::LogName;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Entry `seq`: its number, then 0..300 bytes that depend on `seq`.
fn entry(seq: u64) -> Vec<u8> {
    let mut v = format!("crash entry {seq};").into_bytes();
    let mixed = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let fill = (mixed >> 56) as u8;
    v.resize(v.len() + (mixed % 301) as usize, fill);
    v
}

fn say(line: &str) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// xorshift64*: the shapes of the appends, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn durability(mode: &str) -> Result<Durability, BoxError> {
    match mode {
        "flush" => Ok(Durability::Flush),
        "fsync-per-batch" => Ok(Durability::FsyncPerBatch),
        "fsync-per-write" => Ok(Durability::FsyncPerWrite),
        other => Err(format!("unknown durability mode {other:?}").into()),
    }
}

/// Opens the log and reads back every entry it holds, each verified and compared.
async fn open_verified(dir: &Path, mode: Durability) -> Result<ManagedCore, BoxError> {
    let options = OpenOptions::new()
        .durability(mode)
        .signing_key(SigningKey::from_bytes(&[77; 32]));
    let log = ManagedCore::open(dir, LogName::parse("crash-log")?, options).await?;
    let length = log.length();
    let mut seq = 0;
    while seq < length {
        let end = (seq + 4096).min(length);
        for (i, value) in log.get_range(seq, end).await?.into_iter().enumerate() {
            let at = seq + i as u64;
            if value != entry(at) {
                return Err(format!("entry {at} reads back different bytes").into());
            }
        }
        seq = end;
    }
    say(&format!("OPENED {length}"))?;
    Ok(log)
}

async fn append_forever(log: &ManagedCore, rng: &mut Rng) -> Result<(), BoxError> {
    let mut seq = log.length();
    loop {
        // Half singles (`append`), half batches of 2..=64 (`append_batch`).
        let end = if rng.next().is_multiple_of(2) {
            let at = log.append(&entry(seq)).await?;
            if at != seq {
                return Err(format!("append returned {at}, expected {seq}").into());
            }
            seq + 1
        } else {
            let n = 2 + rng.next() % 63;
            let values: Vec<Vec<u8>> = (seq..seq + n).map(entry).collect();
            let range = log.append_batch(&values).await?;
            if range != (seq..seq + n) {
                return Err(format!("append_batch returned {range:?}").into());
            }
            range.end
        };
        say(&format!("ACK {end}"))?;
        seq = end;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument");
    let (command, dir, mode) = (arg(0)?, Path::new(arg(1)?), durability(arg(2)?)?);
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let mut rng = Rng(seed | 1);
    let log = open_verified(dir, mode).await?;
    match command {
        "append" => append_forever(&log, &mut rng).await,
        "close" => {
            let mut seq = log.length();
            for _ in 0..=seed % 500 {
                seq = log.append(&entry(seq)).await? + 1;
                say(&format!("ACK {seq}"))?;
            }
            say("CLOSING")?;
            log.close().await?;
            say("CLOSED")
        }
        "verify" => Ok(()),
        other => Err(format!("unknown command {other:?}").into()),
    }
}
