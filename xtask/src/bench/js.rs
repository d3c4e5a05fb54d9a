//! The JS harnesses `cargo xtask bench` runs beside ours.
//!
//! Owns: installing them into scratch directories under `target/` with `npm ci` (the
//! shared anchor `../shared/anchors/js-bench`: hypercore 11 / corestore 7, read-only,
//! never edited here; and the repo's `js/bench`: corestore 6 / hypercore 10, the file
//! format our store writes, for `disk_usage` and `many_logs`), and reading the anchor's
//! recorded medians (`RESULTS.md`) when node is not run.
//!
//! Must not: run workloads or judge them (`super` does). Used by `super::run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{have, root, run_step};

/// The shared anchor harness (outside the repository, read-only).
pub(super) fn anchor_dir() -> PathBuf {
    root()
        .join("..")
        .join("shared")
        .join("anchors")
        .join("js-bench")
}

/// Workloads of the repo's own harness, `js/bench/bench.mjs`.
pub(super) fn in_repo_harness(workload: &str) -> bool {
    matches!(workload, "disk_usage" | "many_logs")
}

/// The shared anchor, installed into `target/js-bench`. None if node/npm are missing or
/// the install fails (the report then falls back to RESULTS.md).
pub(super) fn prepare_anchor() -> Option<PathBuf> {
    install(
        &anchor_dir(),
        &root().join("target").join("js-bench"),
        "JS anchor harness",
    )
}

/// `js/bench`, installed into `target/js-bench-hc10`. None if node/npm are missing or
/// the install fails (its rows are then reported without a JS number).
pub(super) fn prepare_repo() -> Option<PathBuf> {
    install(
        &root().join("js").join("bench"),
        &root().join("target").join("js-bench-hc10"),
        "JS harness js/bench (hypercore 10)",
    )
}

fn install(src: &Path, dst: &Path, what: &str) -> Option<PathBuf> {
    if !have("node", "--version") || !have("npm", "--version") {
        eprintln!("node/npm not found: no live JS run ({what})");
        return None;
    }
    if std::fs::create_dir_all(dst).is_err() {
        return None;
    }
    for f in ["package.json", "package-lock.json", "bench.mjs"] {
        if let Err(e) = std::fs::copy(src.join(f), dst.join(f)) {
            eprintln!("cannot copy {what} ({f}): {e}");
            return None;
        }
    }
    let ok = run_step(
        &format!("npm ci ({what})"),
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dst),
    );
    match ok {
        Ok(()) => Some(dst.to_path_buf()),
        Err(e) => {
            eprintln!("{e}: no live JS run ({what})");
            None
        }
    }
}

/// Median ops/s per workload from the anchor's RESULTS.md table.
pub(super) fn read_anchor_results() -> BTreeMap<String, f64> {
    let path: &Path = &anchor_dir().join("RESULTS.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_anchor_results(&text)
}

fn parse_anchor_results(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | workload | ops | median ops/s | ...
        if cells.len() > 4
            && let Ok(v) = cells[3].replace(',', "").parse::<f64>()
        {
            out.insert(cells[1].to_owned(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_medians_are_read_from_its_table() {
        let text = "| workload | ops | median ops/s | median MB/s |\n\
                    | --- | ---: | ---: | ---: |\n\
                    | append_single | 10,000 | 1,904.7 | 1.95 |\n";
        let m = parse_anchor_results(text);
        assert_eq!(m.get("append_single"), Some(&1904.7));
        assert_eq!(m.len(), 1);
    }
}
