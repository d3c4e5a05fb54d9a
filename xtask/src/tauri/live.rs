//! The tauri suite's two-instance run (issue 24): two processes of the e2e app, each in a
//! real window on its own virtual display, each with its own store, connected over
//! direct TCP on loopback (the writer listens, the reader dials).
//!
//! 1. The writer's page appends the first entry of `e2e-live`, `share`s it and binds a Yjs
//!    document to the CRDT log; it prints `E2E-SHARE key=<log key> crdt=<writer key>`.
//! 2. The reader starts with those keys: its page `follow`s the log, `tail`s it from 0,
//!    `subscribe`s (download progress), binds its own Yjs document, follows the writer's
//!    CRDT writer, types its line, and prints `E2E-READER-READY crdt=<its key>`.
//! 3. The runner sends `go crdt=<reader key>` to the writer, whose page follows the reader's
//!    CRDT writer, types its line and appends 200 entries, one every 10 ms, each with the
//!    time it was appended; the reader's page shows each as it arrives through the tail.
//! 4. The reader shows its results (entries in order without gaps, latency p50/p99 from
//!    append in the writer to shown in the reader, progress events, the shared text's
//!    length and hash) and holds its window for its screenshot; meanwhile the writer (told
//!    `done`) checks its side (the reader's confirmed length in `replication_status`, its
//!    text hash) and reports after its own screenshot; then the reader reports.
//!
//! Checked: both `E2E OK`, 201 entries and no gap in the reader, at least one progress
//! event, the same text (both lines in it) in both windows, two rendered screenshots
//! (`target/tauri-e2e/writer.png`, `reader.png`). The latency goes to
//! `target/tauri-e2e/live.txt` and is printed (docs/benchmarks.md keeps the measured
//! numbers).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{app_command, check_rendered, screenshot, value};
use crate::Result;
use crate::integration::{Peer, check};

/// Entries the writer appends after the first.
const ENTRIES: u64 = 200;

/// The writer's and the reader's pages, start to finish.
const WITHIN: Duration = Duration::from_secs(80);

/// Fails with the line if the page failed.
fn ok_or_fail(line: String) -> Result<String> {
    if line.starts_with("E2E FAIL") {
        return Err(line);
    }
    Ok(line)
}

fn field<'a>(line: &'a str, name: &str) -> Result<&'a str> {
    value(line, name).ok_or_else(|| format!("no {name}= in {line:?}"))
}

/// Runs the pair; see the module doc.
pub(super) fn pair(tmp: &Path, out: &Path) -> Result {
    let started = Instant::now();
    let mut writer = Peer::start(
        "e2e-writer",
        app_command(
            &tmp.join("writer-store"),
            &[
                ("NOVA_E2E_ROLE", "writer"),
                ("NOVA_E2E_LISTEN", "127.0.0.1:0"),
            ],
        ),
    )?;
    let listen = ok_or_fail(writer.expect_any_within(&["E2E-LISTEN", "E2E FAIL"], WITHIN)?)?;
    let addr = field(&listen, "addr")?.to_owned();
    let share = ok_or_fail(writer.expect_any_within(&["E2E-SHARE", "E2E FAIL"], WITHIN)?)?;
    let (key, writer_crdt) = (field(&share, "key")?, field(&share, "crdt")?);

    let mut reader = Peer::start(
        "e2e-reader",
        app_command(
            &tmp.join("reader-store"),
            &[
                ("NOVA_E2E_ROLE", "reader"),
                ("NOVA_E2E_CONNECT", &addr),
                ("NOVA_E2E_FOLLOW", key),
                ("NOVA_E2E_CRDT_FOLLOW", writer_crdt),
            ],
        ),
    )?;
    let ready = ok_or_fail(reader.expect_any_within(&["E2E-READER-READY", "E2E FAIL"], WITHIN)?)?;
    let reader_crdt = field(&ready, "crdt")?;
    writer.send(&format!("go crdt={reader_crdt}"))?;

    let reader_png = out.join("reader.png");
    let reader_ready =
        ok_or_fail(reader.expect_any_within(&["READY-FOR-SCREENSHOT", "E2E FAIL"], WITHIN)?)?;
    let reader_shot = screenshot(&reader_ready, &reader_png);
    // The reader holds its window (and its connection) until told: the writer checks its
    // side meanwhile, with the reader still connected.
    writer.send("done")?;
    let writer_png = out.join("writer.png");
    let writer_ready =
        ok_or_fail(writer.expect_any_within(&["READY-FOR-SCREENSHOT", "E2E FAIL"], WITHIN)?)?;
    let writer_shot = screenshot(&writer_ready, &writer_png);
    writer.send("screenshot taken")?;
    let writer_line = writer.expect_any_within(&["E2E OK", "E2E FAIL"], WITHIN)?;
    writer.wait()?;
    reader.send("screenshot taken")?;
    let reader_line = reader.expect_any_within(&["E2E OK", "E2E FAIL"], WITHIN)?;
    reader.wait()?;
    let took = started.elapsed();

    check(
        "two instances: the reader's page reports E2E OK",
        reader_line.starts_with("E2E OK"),
        reader_line.clone(),
    )?;
    check(
        "two instances: the writer's page reports E2E OK",
        writer_line.starts_with("E2E OK"),
        writer_line.clone(),
    )?;
    check(
        "the writer's replication_status has the reader, at the whole length",
        value(&writer_line, "peers").is_some_and(|n| n != "0"),
        writer_line.clone(),
    )?;
    check(
        "the reader's tail showed every entry, in order, without a gap",
        value(&reader_line, "entries") == Some(&(ENTRIES + 1).to_string())
            && value(&reader_line, "gaps") == Some("0"),
        reader_line.clone(),
    )?;
    check(
        "the reader's subscribe channel had download progress",
        value(&reader_line, "progress_events")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1),
        reader_line.clone(),
    )?;
    check(
        "a Yjs text edited in both windows converged (same length and hash)",
        value(&reader_line, "crdt").is_some()
            && value(&reader_line, "crdt") == value(&writer_line, "crdt"),
        format!("reader {reader_line:?}, writer {writer_line:?}"),
    )?;
    let ms = |name: &str| -> Result<f64> {
        field(&reader_line, name)?
            .parse()
            .map_err(|e| format!("{name} in {reader_line:?}: {e}"))
    };
    let (p50, p99) = (ms("live_p50_ms")?, ms("live_p99_ms")?);
    reader_shot?;
    writer_shot?;
    check_rendered(&reader_png)?;
    check_rendered(&writer_png)?;
    let summary = format!(
        "append in the writer's window -> shown in the reader's (tail over direct TCP, {ENTRIES} entries, one per 10 ms): p50 {p50} ms, p99 {p99} ms"
    );
    let _ = std::fs::write(
        out.join("live.txt"),
        format!("{summary}\nreader: {reader_line}\nwriter: {writer_line}\n"),
    );
    eprintln!(
        "  {summary}; pair run {:.1} s; screenshots {} and {}",
        took.as_secs_f64(),
        writer_png.display(),
        reader_png.display()
    );
    Ok(())
}
