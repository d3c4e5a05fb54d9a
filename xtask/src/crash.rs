//! `cargo xtask test-integration crash`: kill -9 at random moments, then check that
//! everything acknowledged is still there, verified, byte for byte.
//!
//! - Appends: `crates/managed-core/examples/crash_child.rs` appends singles and batches
//!   in each durability mode and prints every acknowledged end; the parent SIGKILLs it
//!   after a random delay. The next child reopens the same log, reads back every entry
//!   (verified against the signed tree, compared with what was appended) and prints its
//!   length, which must cover every acknowledgement.
//! - `close()`: the child appends, says `CLOSING`, closes; the parent kills it within
//!   2 ms or 30 ms of it (some kills land inside `close`, some after).
//! - Local rebuild: a log's tree and bitfield are damaged and the child that opens it
//!   (rebuilding them from the data file) is killed at a random moment, again and again;
//!   the last open must still rebuild and read back everything acknowledged.
//! - Replication (`crates/manager/examples/peer.rs`, two processes over loopback TCP):
//!   the reader is killed mid-transfer and restarted on its store (what it had verified
//!   is still held, it resumes, ends with every entry verified); the writer is killed
//!   while it appends and serves, restarted on the same address, and must hold every
//!   length it acknowledged, while the reader redials and completes.
//!
//! Trial counts: [`Counts::default_run`] in `cargo xtask test`, [`Counts::full`] with
//! `--full`. The random seed is printed (and taken from `NOVA_CRASH_SEED` when set) so a
//! failing run can be repeated.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::integration::{Peer, check, example, field, number};
use crate::{Result, cargo, run_step};
use nova_hypercore_testkit::replay::{Rng, seed_from_env};

/// How many trials of each kind.
#[derive(Debug, Clone, Copy)]
struct Counts {
    appends: u64,
    closes: u64,
    rebuilds: u64,
    reader_kills: u64,
    writer_kills: u64,
}

impl Counts {
    /// `cargo xtask test`.
    fn default_run() -> Self {
        Counts {
            appends: 20,
            closes: 6,
            rebuilds: 4,
            reader_kills: 3,
            writer_kills: 3,
        }
    }

    /// `cargo xtask test --full`.
    fn full() -> Self {
        Counts {
            appends: 200,
            closes: 30,
            rebuilds: 20,
            reader_kills: 15,
            writer_kills: 15,
        }
    }
}

const MODES: [&str; 3] = ["flush", "fsync-per-batch", "fsync-per-write"];
/// A mode's log is started afresh past this many entries (each trial reads all back).
const ROTATE_AT: u64 = 150_000;
/// The log name the peer processes use.
const LOG: &str = "crash-replica";
/// How long a trial waits for one line before it gives up.
const LINE_WAIT: Duration = Duration::from_secs(120);

/// The suite: builds the two child programs, runs every kind of trial, prints a tally.
pub(crate) fn run(tmp: &Path) -> Result {
    run_step(
        "build the crash child (crates/managed-core/examples/crash_child.rs)",
        cargo().args([
            "build",
            "--quiet",
            "--package",
            "nova-hypercore-managed-core",
            "--example",
            "crash_child",
        ]),
    )?;
    let counts = if crate::full() {
        Counts::full()
    } else {
        Counts::default_run()
    };
    eprintln!("  crash trials: {counts:?}");
    let mut rng = Rng::new(seed_from_env("NOVA_CRASH_SEED", "  crash trials:"));
    let started = Instant::now();
    let appended = appends(tmp, counts.appends, &mut rng)?;
    let (inside, after) = closes(tmp, counts.closes, &mut rng)?;
    let (mid_rebuild, rebuilt) = rebuilds(tmp, counts.rebuilds, &mut rng)?;
    reader_kills(tmp, counts.reader_kills, &mut rng)?;
    writer_kills(tmp, counts.writer_kills, &mut rng)?;
    eprintln!(
        "  crash summary: {} append trials ({appended} entries acknowledged, all read back), {} close trials ({inside} killed inside close, {after} after it), {} rebuild trials ({mid_rebuild} killed before the rebuilding open had read everything back, {rebuilt} after), {} reader kills, {} writer kills, {:.1} s",
        counts.appends,
        counts.closes,
        counts.rebuilds,
        counts.reader_kills,
        counts.writer_kills,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn crash_child(args: &[&str]) -> Result<Peer> {
    let mut cmd = Command::new(example("crash_child"));
    cmd.args(args);
    Peer::start("crash-child", cmd)
}

/// The next line starting with `prefix`, not echoed; `ACK <n>` lines on the way raise
/// `acked`. An error if the child ends or nothing comes within [`LINE_WAIT`].
fn expect_quiet(child: &Peer, prefix: &str, acked: &mut u64) -> Result<String> {
    let end = Instant::now() + LINE_WAIT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = child
            .next_line(left)
            .ok_or_else(|| format!("crash child: no `{prefix}` line (it failed or stalled)"))?;
        note_ack(&line, acked)?;
        if line.starts_with(prefix) {
            return Ok(line);
        }
    }
}

/// SIGKILLs `child`, unless it already ended: an error if it ended on its own, except
/// for a successful exit when `may_finish` (a close trial whose `close` returned).
fn kill_checked(child: &mut Peer, may_finish: bool, what: &str) -> Result {
    match child.child.try_wait() {
        Ok(Some(status)) if status.success() && may_finish => child.kill(),
        Ok(Some(status)) => Err(format!(
            "{what}: the child ended by itself before the kill ({status}); see its stderr"
        )),
        Ok(None) => child.kill(),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn note_ack(line: &str, acked: &mut u64) -> Result {
    if line.starts_with("ACK ") {
        *acked = (*acked).max(number(line, 1)?);
    }
    Ok(())
}

/// Opens the log in a child (every entry read back verified) and checks its length
/// covers `acked`; returns the length.
fn reopen_covers(child: &Peer, acked: u64, what: &str) -> Result<u64> {
    let mut ignored = 0;
    let length = number(&expect_quiet(child, "OPENED", &mut ignored)?, 1)?;
    if length < acked {
        return Err(format!(
            "{what}: reopened at length {length}, but {acked} entries were acknowledged"
        ));
    }
    Ok(length)
}

/// Append trials: returns the entries acknowledged over all of them.
fn appends(tmp: &Path, trials: u64, rng: &mut Rng) -> Result<u64> {
    let mut acked = [0u64; 3];
    let mut generation = [0u32; 3];
    let mut total = 0;
    for trial in 0..trials {
        let m = (trial % 3) as usize;
        if acked[m] > ROTATE_AT {
            verify_final(tmp, m, generation[m], acked[m])?;
            generation[m] += 1;
            acked[m] = 0;
        }
        let dir = tmp.join(format!("append-{}-{}", MODES[m], generation[m]));
        let dir = dir.display().to_string();
        let seed = rng.next().to_string();
        let mut child = crash_child(&["append", &dir, MODES[m], &seed])?;
        let what = format!("append trial {trial} ({})", MODES[m]);
        let before = acked[m];
        reopen_covers(&child, before, &what)?;
        // Kill at a random moment: 0..150 ms into the appends.
        let kill_at = Instant::now() + Duration::from_micros(rng.below(150_000));
        let mut now_acked = before;
        while Instant::now() < kill_at {
            let left = kill_at.saturating_duration_since(Instant::now());
            match child.next_line(left) {
                Some(line) => note_ack(&line, &mut now_acked)?,
                // Its stdout closed: it ended by itself (reported by the kill below).
                None if child.child.try_wait().ok().flatten().is_some() => break,
                None => {}
            }
        }
        kill_checked(&mut child, false, &what)?;
        // Lines written before the kill were acknowledged too.
        for line in child.rest() {
            note_ack(&line, &mut now_acked)?;
        }
        total += now_acked - before;
        acked[m] = now_acked;
    }
    for m in 0..3 {
        verify_final(tmp, m, generation[m], acked[m])?;
    }
    check(
        &format!(
            "{trials} kill -9 trials while appending: every reopen read back every acknowledged entry, verified"
        ),
        true,
        String::new(),
    )?;
    Ok(total)
}

fn verify_final(tmp: &Path, m: usize, generation: u32, acked: u64) -> Result {
    let dir = tmp.join(format!("append-{}-{generation}", MODES[m]));
    if !dir.exists() {
        return Ok(());
    }
    let child = crash_child(&["verify", &dir.display().to_string(), MODES[m]])?;
    reopen_covers(&child, acked, &format!("final check of {}", dir.display()))?;
    child.wait()
}

/// Close trials: returns (kills that landed before `CLOSED` was printed, kills after).
fn closes(tmp: &Path, trials: u64, rng: &mut Rng) -> Result<(u64, u64)> {
    let (mut inside, mut after) = (0, 0);
    let mut acked = [0u64; 3];
    for trial in 0..trials {
        let m = (trial % 3) as usize;
        let dir = tmp
            .join(format!("close-{}", MODES[m]))
            .display()
            .to_string();
        let seed = rng.next().to_string();
        let mut child = crash_child(&["close", &dir, MODES[m], &seed])?;
        let what = format!("close trial {trial} ({})", MODES[m]);
        reopen_covers(&child, acked[m], &what)?;
        expect_quiet(&child, "CLOSING", &mut acked[m])?;
        // Half the trials within 2 ms of `CLOSING` (mostly inside close), half within 30.
        let window = if trial % 2 == 0 { 2_000 } else { 30_000 };
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        kill_checked(&mut child, true, &what)?;
        let rest = child.rest();
        if rest.iter().any(|l| l == "CLOSED") {
            after += 1;
        } else {
            inside += 1;
        }
    }
    for (m, acked) in acked.iter().enumerate() {
        let dir = tmp.join(format!("close-{}", MODES[m]));
        if dir.exists() {
            let child = crash_child(&["verify", &dir.display().to_string(), MODES[m]])?;
            reopen_covers(&child, *acked, "final check after the close trials")?;
            child.wait()?;
        }
    }
    check(
        &format!(
            "{trials} kill -9 trials around close(): every reopen read back every acknowledged entry ({inside} kills before close returned)"
        ),
        true,
        String::new(),
    )?;
    Ok((inside, after))
}

/// Damages a log's tree (every parent node zeroed, the roots among them) and bitfield
/// (zeroed), as the local rebuild at open repairs them.
fn damage_tree_and_bitfield(dir: &Path) -> Result {
    let tree = dir.join("tree");
    let mut bytes = std::fs::read(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    for node in bytes.chunks_mut(40).skip(1).step_by(2) {
        node.fill(0);
    }
    std::fs::write(&tree, bytes).map_err(|e| format!("{}: {e}", tree.display()))?;
    let bitfield = dir.join("bitfield");
    let len = std::fs::metadata(&bitfield)
        .map_err(|e| format!("{}: {e}", bitfield.display()))?
        .len();
    let zeros = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
    std::fs::write(&bitfield, zeros).map_err(|e| format!("{}: {e}", bitfield.display()))
}

/// Rebuild trials: a log's tree and bitfield are damaged, and the opening child (which
/// rebuilds them from the data file, then reads everything back) is killed at a random
/// moment; the damage is applied again before the next trial. The last open must
/// rebuild and read back every acknowledged entry. Returns (kills before the child
/// printed `OPENED`, kills after).
fn rebuilds(tmp: &Path, trials: u64, rng: &mut Rng) -> Result<(u64, u64)> {
    let dir = tmp.join("rebuild");
    let dir_arg = dir.display().to_string();
    let seed = rng.next().to_string();
    let mut child = crash_child(&["append", &dir_arg, "flush", &seed])?;
    let mut acked = 0;
    reopen_covers(&child, 0, "rebuild set-up")?;
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        if let Some(line) = child.next_line(left) {
            note_ack(&line, &mut acked)?;
        }
    }
    kill_checked(&mut child, false, "rebuild set-up")?;
    for line in child.rest() {
        note_ack(&line, &mut acked)?;
    }
    let (mut before, mut after) = (0, 0);
    for trial in 0..trials {
        damage_tree_and_bitfield(&dir)?;
        let mut child = crash_child(&["verify", &dir_arg, "flush"])?;
        let kill_at = Instant::now() + Duration::from_micros(rng.below(300_000));
        let mut opened = false;
        while Instant::now() < kill_at && !opened {
            let left = kill_at.saturating_duration_since(Instant::now());
            match child.next_line(left) {
                Some(line) => opened |= line.starts_with("OPENED"),
                None if child.child.try_wait().ok().flatten().is_some() => break,
                None => {}
            }
        }
        kill_checked(&mut child, true, &format!("rebuild trial {trial}"))?;
        opened |= child.rest().iter().any(|l| l.starts_with("OPENED"));
        if opened {
            after += 1;
        } else {
            before += 1;
        }
    }
    damage_tree_and_bitfield(&dir)?;
    let child = crash_child(&["verify", &dir_arg, "flush"])?;
    reopen_covers(&child, acked, "final rebuild")?;
    child.wait()?;
    check(
        &format!(
            "{trials} kill -9 trials while a damaged tree and bitfield are rebuilt at open: the last open rebuilt them and read back all {acked} acknowledged entries"
        ),
        true,
        String::new(),
    )?;
    Ok((before, after))
}

/// Kill -9 the reader at random moments of a transfer; each restart must hold at least
/// what it reported as stored, and the last one verifies every entry.
fn reader_kills(tmp: &Path, trials: u64, rng: &mut Rng) -> Result {
    // About 2,000 entries arrive per trial here: enough that every kill is mid-transfer.
    let n: u64 = 5_000 * (trials + 1);
    let wdir = tmp.join("repl-w").display().to_string();
    let writer = Peer::spawn("writer", &["write", &wdir, LOG, &n.to_string()])?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let rdir = tmp.join("repl-r").display().to_string();
    let read_args = ["read", &rdir, LOG, &key, &addr, &n.to_string()];
    let mut stored = 0u64;
    for trial in 0..trials {
        let mut reader = Peer::spawn("reader", &read_args)?;
        let held = number(&reader.expect("START")?, 1)?;
        check(
            &format!(
                "reader kill {trial}: the restarted reader verifies the {held} entries it holds, covering the {stored} it had stored"
            ),
            held >= stored,
            format!("held {held} < stored {stored}"),
        )?;
        let kill_at = Instant::now() + Duration::from_micros(50_000 + rng.below(400_000));
        while Instant::now() < kill_at {
            let left = kill_at.saturating_duration_since(Instant::now());
            match reader.next_line(left) {
                Some(line) if line.starts_with("PROGRESS") => {
                    stored = stored.max(number(&line, 1)?);
                }
                Some(_) => {}
                None if reader.child.try_wait().ok().flatten().is_some() => break,
                None => {}
            }
        }
        // A reader that already got everything exits by itself: fine, the last run checks.
        kill_checked(&mut reader, true, &format!("reader kill {trial}"))?;
        for line in reader.rest() {
            if line.starts_with("PROGRESS") {
                stored = stored.max(number(&line, 1)?);
            }
        }
    }
    let reader = Peer::spawn("reader", &read_args)?;
    let held = number(&reader.expect("START")?, 1)?;
    reader.expect(&format!("VERIFIED {n}"))?;
    reader.wait()?;
    check(
        &format!(
            "after {trials} reader kills the reader resumes at {held} (>= {stored} stored) and ends with all {n} entries verified"
        ),
        held >= stored,
        format!("held {held} < stored {stored}"),
    )?;
    writer.wait()
}

/// Kill -9 the writer while it appends and serves; each restart (same store, same
/// address) holds every length it acknowledged; the reader ends with every entry.
fn writer_kills(tmp: &Path, trials: u64, rng: &mut Rng) -> Result {
    let step = 2_000u64;
    let start = 3_000u64;
    let total = start + step * trials;
    let wdir = tmp.join("repl-w2").display().to_string();
    let mut writer = Peer::spawn("writer", &["write", &wdir, LOG, &start.to_string()])?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let rdir = tmp.join("repl-r2").display().to_string();
    let reader = Peer::spawn(
        "reader",
        &["read", &rdir, LOG, &key, &addr, &total.to_string()],
    )?;
    reader.expect("START")?;
    let mut acked = start;
    for trial in 0..trials {
        let goal = start + step * (trial + 1);
        writer.send(&format!("append {}", goal - acked))?;
        // Half the kills within 3 ms of the command (inside the append), half within 60.
        let window = if trial % 2 == 0 { 3_000 } else { 60_000 };
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        kill_checked(&mut writer, false, &format!("writer kill {trial}"))?;
        for line in writer.rest() {
            if line.starts_with("LENGTH") {
                acked = acked.max(number(&line, 1)?);
            }
        }
        // Restart with nothing to add, on the same address; report the length it holds.
        writer = Peer::spawn("writer", &["write", &wdir, LOG, "0", &addr])?;
        writer.expect("READY")?;
        writer.send("append 0")?;
        let length = number(&writer.expect("LENGTH")?, 1)?;
        check(
            &format!(
                "writer kill {trial}: the restarted writer holds {length} entries, covering the {acked} acknowledged"
            ),
            length >= acked,
            format!("length {length} < acknowledged {acked}"),
        )?;
        acked = length;
        if length < goal {
            writer.send(&format!("append {}", goal - length))?;
            acked = number(&writer.expect("LENGTH")?, 1)?;
        }
    }
    reader.expect(&format!("VERIFIED {total}"))?;
    reader.wait()?;
    check(
        &format!("after {trials} writer kills the reader redials and verifies all {total} entries"),
        true,
        String::new(),
    )?;
    writer.wait()
}
