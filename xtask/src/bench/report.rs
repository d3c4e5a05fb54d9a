//! The bench report: measured rows in, `target/bench/report.md` out.
//!
//! Owns: the report's model (a [`ThroughputRow`] per workload next to the JS anchor,
//! [`FootprintRow`]s for what is better when smaller: bytes on disk, seconds, RSS), the
//! ratio and verdict rules ([`Better`], [`Verdict`]), their formatting, the markdown
//! tables and the run's header ([`Meta`]: date, machine, git commit, runs).
//!
//! Must not: run workloads, read their JSON lines or draw (`super` runs and collects,
//! `super::chart` draws the same rows). Used by `cargo xtask bench` and its tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Errors of writing the report files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    /// A file or directory of the report could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The chart backend failed.
    #[error("cannot draw the chart: {0}")]
    Chart(String),
}

/// Which direction of a measure is the better one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    /// Throughput: ours/JS >= target meets.
    Higher,
    /// Bytes, seconds, memory: ours/JS <= target meets.
    Lower,
}

/// A row's verdict.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Meets,
    Misses,
    /// No target applies; the reason is printed.
    Informational(&'static str),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Meets => f.write_str("meets"),
            Verdict::Misses => f.write_str("MISSES"),
            Verdict::Informational(why) => write!(f, "informational ({why})"),
        }
    }
}

/// The verdict of `ratio` (ours/JS) against `target`, `better` saying which side passes.
pub(crate) fn verdict(
    ratio: Option<f64>,
    target: Option<f64>,
    better: Better,
    no_target: &'static str,
) -> Verdict {
    match (ratio, target) {
        (Some(r), Some(t)) if r.is_finite() => {
            let meets = match better {
                Better::Higher => r >= t,
                Better::Lower => r <= t,
            };
            if meets {
                Verdict::Meets
            } else {
                Verdict::Misses
            }
        }
        (None | Some(_), Some(_)) => Verdict::Informational("no JS measurement"),
        (_, None) => Verdict::Informational(no_target),
    }
}

/// `1.23x`, or `-` when there is nothing to compare.
pub(crate) fn fmt_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        _ => "-".into(),
    }
}

/// `>= 8x` / `<= 1.1x`, or `-`.
pub(crate) fn fmt_target(target: Option<f64>, better: Better) -> String {
    match (target, better) {
        (Some(t), Better::Higher) => format!(">= {t}x"),
        (Some(t), Better::Lower) => format!("<= {t}x"),
        (None, _) => "-".into(),
    }
}

/// A number with `digits` decimals, `-` for a missing or non-finite one.
pub(crate) fn fmt_num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "-".into(),
    }
}

/// One workload measured in ops/s, ours next to the JS anchor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ThroughputRow {
    pub workload: String,
    pub layer: String,
    pub durability: String,
    pub ours_ops: f64,
    pub ours_mbs: f64,
    pub ours_rss_mib: f64,
    pub js_ops: Option<f64>,
    pub js_rss_mib: Option<f64>,
    /// Target ratio ours/JS; None = informational.
    pub target: Option<f64>,
}

impl ThroughputRow {
    /// ours/JS in ops/s.
    pub fn ratio(&self) -> Option<f64> {
        self.js_ops.map(|j| self.ours_ops / j)
    }

    /// Targets hold for `flush` only (JS has no other durability).
    pub fn verdict(&self) -> Verdict {
        if self.durability != "flush" {
            return Verdict::Informational("no JS row at this durability");
        }
        verdict(
            self.ratio(),
            self.target,
            Better::Higher,
            "no JS row at this durability",
        )
    }
}

/// One measure where ours and JS are compared as a ratio of sizes or times.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FootprintRow {
    pub workload: String,
    /// What was measured, e.g. "128 B entries: allocated bytes / payload".
    pub measure: String,
    pub ours: f64,
    pub js: Option<f64>,
    pub better: Better,
    pub target: Option<f64>,
    /// Why there is no target, when there is none.
    pub no_target: &'static str,
    /// Decimals to print the values with.
    pub digits: usize,
}

impl FootprintRow {
    /// ours/JS.
    pub fn ratio(&self) -> Option<f64> {
        self.js.map(|j| self.ours / j)
    }

    pub fn verdict(&self) -> Verdict {
        verdict(self.ratio(), self.target, self.better, self.no_target)
    }

    /// How many times better ours is (> 1: ours better), whatever the direction.
    pub fn advantage(&self) -> Option<f64> {
        let r = self.ratio()?;
        Some(match self.better {
            Better::Higher => r,
            Better::Lower => 1.0 / r,
        })
    }
}

/// Peak RSS of one workload, ours and JS (the chart's second panel).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RssPair {
    pub label: String,
    pub ours_mib: f64,
    pub js_mib: Option<f64>,
}

/// Facts about the run printed above the tables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    /// UTC, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    pub cores: usize,
    pub kernel: String,
    pub cpu: String,
    pub commit: String,
    pub runs: usize,
    /// Where the JS numbers come from.
    pub js_source: String,
}

impl Meta {
    /// The facts of this machine and checkout, now.
    pub fn collect(runs: usize, js_source: String) -> Meta {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(crate::root())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let commit = match (
            git(&["rev-parse", "--short=12", "HEAD"]),
            git(&["status", "--porcelain", "--untracked-files=no"]),
        ) {
            (Some(c), Some(s)) if !s.is_empty() => format!("{c} (with uncommitted changes)"),
            (Some(c), _) => c,
            (None, _) => "unknown".into(),
        };
        Meta {
            date: utc_date(secs),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            cpu,
            commit,
            runs,
            js_source,
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (days to civil date: H. Hinnant's algorithm).
pub(crate) fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

/// Everything one `cargo xtask bench` run reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub meta: Meta,
    pub throughput: Vec<ThroughputRow>,
    pub footprint: Vec<FootprintRow>,
    pub rss: Vec<RssPair>,
    /// Paragraphs printed after the tables (details of particular rows), markdown.
    pub notes: String,
}

impl Report {
    /// Rows that missed their targets, as one line each.
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.throughput {
            if r.verdict() == Verdict::Misses {
                out.push(format!(
                    "{} ({}) {} < {}x",
                    r.workload,
                    r.layer,
                    fmt_ratio(r.ratio()),
                    fmt_num(r.target, 1)
                ));
            }
        }
        for r in &self.footprint {
            if r.verdict() == Verdict::Misses {
                out.push(format!(
                    "{} ({}) {} vs target {}",
                    r.workload,
                    r.measure,
                    fmt_ratio(r.ratio()),
                    fmt_target(r.target, r.better)
                ));
            }
        }
        out
    }

    /// The report as markdown: header, throughput table, footprint table, notes.
    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let mut s = String::new();
        let _ = writeln!(s, "# nova-hypercore bench report\n");
        let _ = writeln!(s, "- date: {}", m.date);
        let _ = writeln!(s, "- machine: {} cores ({}), {}", m.cores, m.cpu, m.kernel);
        let _ = writeln!(s, "- git commit: {}", m.commit);
        let _ = writeln!(
            s,
            "- runs: {} fresh-process run(s) per workload, medians",
            m.runs
        );
        let _ = writeln!(s, "- JS reference: {}\n", m.js_source);
        if !self.throughput.is_empty() {
            s.push_str(&throughput_table(&self.throughput));
        }
        if !self.footprint.is_empty() {
            if !self.throughput.is_empty() {
                s.push('\n');
            }
            s.push_str(&footprint_table(&self.footprint));
        }
        if !self.notes.is_empty() {
            s.push('\n');
            s.push_str(self.notes.trim_end());
            s.push('\n');
        }
        s
    }

    /// Writes `report.md` into `dir` (created if missing) and returns its path.
    pub fn write_markdown(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let path = dir.join("report.md");
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, self.markdown()))
            .map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
}

/// The side-by-side table in ops/s (the one `cargo xtask bench` has always printed,
/// with JS's peak RSS beside ours).
pub(crate) fn throughput_table(rows: &[ThroughputRow]) -> String {
    let mut s = String::from(
        "| workload | layer | durability | ours ops/s | ours MB/s | ours peak RSS MiB | JS ops/s | JS peak RSS MiB | ours/JS | target | verdict |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.2} | {:.1} | {} | {} | {} | {} | {} |",
            r.workload,
            r.layer,
            r.durability,
            r.ours_ops,
            r.ours_mbs,
            r.ours_rss_mib,
            fmt_num(r.js_ops, 0),
            fmt_num(r.js_rss_mib, 1),
            fmt_ratio(r.ratio()),
            fmt_target(r.target, Better::Higher),
            r.verdict(),
        );
    }
    s
}

/// Measures where smaller is better (or mixed): ours, JS, ours/JS, target, verdict.
pub(crate) fn footprint_table(rows: &[FootprintRow]) -> String {
    let mut s = String::from(
        "| workload | measure | ours | JS | ours/JS | target | verdict |\n\
         |---|---|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.measure,
            fmt_num(Some(r.ours), r.digits),
            fmt_num(r.js, r.digits),
            fmt_ratio(r.ratio()),
            fmt_target(r.target, r.better),
            r.verdict(),
        );
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Report {
        Report {
            meta: Meta {
                date: utc_date(1_796_688_000),
                cores: 2,
                kernel: "Linux 6.1".into(),
                cpu: "Test CPU".into(),
                commit: "abc123".into(),
                runs: 3,
                js_source: "JS harness run in this session".into(),
            },
            throughput: vec![
                ThroughputRow {
                    workload: "append_batch".into(),
                    layer: "core".into(),
                    durability: "flush".into(),
                    ours_ops: 400_000.0,
                    ours_mbs: 409.6,
                    ours_rss_mib: 17.5,
                    js_ops: Some(50_000.0),
                    js_rss_mib: Some(117.0),
                    target: Some(8.0),
                },
                ThroughputRow {
                    workload: "read_warm".into(),
                    layer: "core".into(),
                    durability: "flush".into(),
                    ours_ops: 100_000.0,
                    ours_mbs: 102.4,
                    ours_rss_mib: 20.0,
                    js_ops: Some(20_000.0),
                    js_rss_mib: Some(118.0),
                    target: Some(20.0),
                },
                ThroughputRow {
                    workload: "append_single".into(),
                    layer: "core".into(),
                    durability: "fsync-per-batch".into(),
                    ours_ops: 2_000.0,
                    ours_mbs: 2.0,
                    ours_rss_mib: 17.0,
                    js_ops: Some(2_500.0),
                    js_rss_mib: Some(150.0),
                    target: None,
                },
            ],
            footprint: vec![
                FootprintRow {
                    workload: "disk_usage".into(),
                    measure: "128 B entries: allocated bytes / payload".into(),
                    ours: 1.9,
                    js: Some(2.0),
                    better: Better::Lower,
                    target: Some(1.1),
                    no_target: "",
                    digits: 3,
                },
                FootprintRow {
                    workload: "many_logs".into(),
                    measure: "peak RSS MiB".into(),
                    ours: 40.0,
                    js: Some(20.0),
                    better: Better::Lower,
                    target: Some(1.0),
                    no_target: "",
                    digits: 1,
                },
            ],
            rss: vec![
                RssPair {
                    label: "append_batch (core)".into(),
                    ours_mib: 17.5,
                    js_mib: Some(117.0),
                },
                RssPair {
                    label: "many_logs".into(),
                    ours_mib: 40.0,
                    js_mib: Some(20.0),
                },
            ],
            notes: "Durability: `flush`.\n".into(),
        }
    }

    #[test]
    fn verdict_follows_direction_and_target() {
        assert_eq!(
            verdict(Some(8.0), Some(8.0), Better::Higher, "x"),
            Verdict::Meets
        );
        assert_eq!(
            verdict(Some(7.99), Some(8.0), Better::Higher, "x"),
            Verdict::Misses
        );
        assert_eq!(
            verdict(Some(1.1), Some(1.1), Better::Lower, "x"),
            Verdict::Meets
        );
        assert_eq!(
            verdict(Some(1.2), Some(1.1), Better::Lower, "x"),
            Verdict::Misses
        );
        assert_eq!(
            verdict(None, Some(1.1), Better::Lower, "x"),
            Verdict::Informational("no JS measurement")
        );
        assert_eq!(
            verdict(Some(f64::NAN), Some(1.1), Better::Lower, "x"),
            Verdict::Informational("no JS measurement")
        );
        assert_eq!(
            verdict(Some(3.0), None, Better::Higher, "no anchor").to_string(),
            "informational (no anchor)"
        );
    }

    #[test]
    fn ratios_and_targets_are_formatted_for_the_table() {
        assert_eq!(fmt_ratio(Some(8.333)), "8.33x");
        assert_eq!(fmt_ratio(None), "-");
        assert_eq!(fmt_ratio(Some(f64::INFINITY)), "-");
        assert_eq!(fmt_target(Some(8.0), Better::Higher), ">= 8x");
        assert_eq!(fmt_target(Some(1.1), Better::Lower), "<= 1.1x");
        assert_eq!(fmt_target(None, Better::Lower), "-");
        assert_eq!(fmt_num(Some(1.23456), 3), "1.235");
        assert_eq!(fmt_num(Some(f64::NAN), 1), "-");
    }

    #[test]
    fn lower_is_better_rows_invert_their_advantage() {
        let r = &sample().footprint[1];
        assert_eq!(r.ratio(), Some(2.0));
        assert_eq!(r.advantage(), Some(0.5));
        assert_eq!(r.verdict(), Verdict::Misses);
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
        assert_eq!(utc_date(1_796_688_000), "2026-12-08 00:00 UTC");
    }

    #[test]
    fn markdown_has_header_tables_and_verdicts() {
        let report = sample();
        let md = report.markdown();
        for needle in [
            "- date: 2026-12-08 00:00 UTC",
            "- machine: 2 cores (Test CPU), Linux 6.1",
            "- git commit: abc123",
            "- runs: 3 fresh-process run(s) per workload, medians",
            "| append_batch | core | flush | 400000 | 409.60 | 17.5 | 50000 | 117.0 | 8.00x | >= 8x | meets |",
            "| read_warm | core | flush | 100000 | 102.40 | 20.0 | 20000 | 118.0 | 5.00x | >= 20x | MISSES |",
            "| append_single | core | fsync-per-batch | 2000 | 2.00 | 17.0 | 2500 | 150.0 | 0.80x | - | informational (no JS row at this durability) |",
            "| disk_usage | 128 B entries: allocated bytes / payload | 1.900 | 2.000 | 0.95x | <= 1.1x | meets |",
            "| many_logs | peak RSS MiB | 40.0 | 20.0 | 2.00x | <= 1x | MISSES |",
            "Durability: `flush`.",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        // Every table line has the same number of cells as its header.
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
            assert!(cells.iter().all(|c| *c == cells[0]), "{table}");
        }
    }

    #[test]
    fn misses_name_the_rows() {
        let misses = sample().misses();
        assert_eq!(
            misses,
            vec![
                "read_warm (core) 5.00x < 20.0x".to_owned(),
                "many_logs (peak RSS MiB) 2.00x vs target <= 1x".to_owned(),
            ]
        );
    }

    #[test]
    fn write_markdown_writes_report_md() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = sample().write_markdown(&dir.path().join("bench"))?;
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("report.md"));
        assert_eq!(std::fs::read_to_string(path)?, sample().markdown());
        Ok(())
    }
}
