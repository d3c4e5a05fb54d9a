//! The rows compared as bytes, seconds and memory (smaller is better): `disk_usage` and
//! `many_logs`, ours against JS corestore 6 / hypercore 10 (`js/bench`).
//!
//! Owns: which fields of their JSON lines become [`FootprintRow`]s, their targets
//! (disk: allocated bytes per payload byte <= [`DISK_TARGET`] x JS; many_logs: time and
//! peak RSS <= 1x JS) and the detail paragraph below the tables.
//!
//! Must not: run anything. Used by `super::run`.

use serde_json::Value;

use super::median;
use super::report::{Better, FootprintRow, fmt_num};

/// Entry sizes of disk_usage (as `crates/bench/src/disk.rs` and `js/bench/bench.mjs`).
pub(super) const DISK_SIZES: [u64; 3] = [128, 1024, 16 * 1024];
/// disk_usage target: our allocated bytes per payload byte at most 1.1x JS's.
pub(super) const DISK_TARGET: f64 = 1.1;
/// many_logs targets: ours no slower and no larger than JS.
pub(super) const MANY_LOGS_TARGET: f64 = 1.0;

fn js_median(runs: &[Value], field: &str) -> Option<f64> {
    let m = median(runs, field);
    m.is_finite().then_some(m)
}

/// The footprint rows of one workload from its runs (ours, js/bench's, the anchor's).
pub(super) fn rows(
    workload: &str,
    ours: &[Value],
    js: &[Value],
    anchor: &[Value],
) -> Vec<FootprintRow> {
    let row = |measure: String, field: &str, target: Option<f64>, digits: usize| FootprintRow {
        workload: workload.into(),
        measure,
        ours: median(ours, field),
        js: js_median(js, field),
        better: Better::Lower,
        target,
        no_target: "",
        digits,
    };
    match workload {
        "disk_usage" => {
            let mut out: Vec<FootprintRow> = DISK_SIZES
                .iter()
                .map(|size| {
                    row(
                        format!("{} entries: allocated bytes / payload", size_label(*size)),
                        &format!("alloc_ratio_{size}"),
                        Some(DISK_TARGET),
                        3,
                    )
                })
                .collect();
            // The anchor's hypercore 11 (RocksDB) for 1 KiB entries, beside it.
            if let Some(js11) = js_median(anchor, "alloc_ratio") {
                out.push(FootprintRow {
                    workload: workload.into(),
                    measure: "1 KiB entries vs JS hypercore 11 (RocksDB, 10,000 entries)".into(),
                    ours: median(ours, "alloc_ratio_1024"),
                    js: Some(js11),
                    better: Better::Lower,
                    target: None,
                    no_target: "another storage format",
                    digits: 3,
                });
            }
            out
        }
        "many_logs" => vec![
            row(
                "1,000 logs opened + one append each: seconds".into(),
                "create_seconds",
                Some(MANY_LOGS_TARGET),
                3,
            ),
            row(
                "the 1,000 logs reopened: seconds".into(),
                "reopen_seconds",
                Some(MANY_LOGS_TARGET),
                3,
            ),
            row(
                "peak RSS MiB".into(),
                "peak_rss_mib",
                Some(MANY_LOGS_TARGET),
                1,
            ),
        ],
        _ => Vec::new(),
    }
}

fn size_label(size: u64) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The paragraph below the tables: what was measured and the raw figures behind it.
pub(super) fn note(workload: &str, ours: &[Value], js: &[Value]) -> String {
    let o = |f: &str| median(ours, f);
    let j = |f: &str| js_median(js, f);
    match workload {
        "disk_usage" => {
            let sizes: Vec<String> = DISK_SIZES
                .iter()
                .map(|s| {
                    format!(
                        "{}: ours {} bytes allocated / {} apparent in {} files, JS {} / {} in {} files",
                        size_label(*s),
                        fmt_num(Some(o(&format!("alloc_bytes_{s}"))), 0),
                        fmt_num(Some(o(&format!("apparent_bytes_{s}"))), 0),
                        fmt_num(Some(o(&format!("files_{s}"))), 0),
                        fmt_num(j(&format!("alloc_bytes_{s}")), 0),
                        fmt_num(j(&format!("apparent_bytes_{s}")), 0),
                        fmt_num(j(&format!("files_{s}")), 0),
                    )
                })
                .collect();
            format!(
                "\ndisk_usage: {} entries of each size, each size in a fresh store (ours: a \
                 HypercoreManager, one log; JS: corestore 6 / hypercore 10, one core), appended \
                 in batches of 100, the store closed, then every file under it counted. \
                 Allocated = st_blocks * 512 (what the file system reserved); the verdict uses \
                 it. Medians: {}.\n",
                fmt_num(Some(o("entries_per_size")), 0),
                sizes.join("; ")
            )
        }
        "many_logs" => format!(
            "\nmany_logs: ours = a HypercoreManager with its default caps (max_open_logs {}, \
             max_open_files {}: logs beyond them are closed and reopened on use), 1,000 \
             get_log + one append each, closed, then a new manager opening all 1,000 again \
             and checking each length; JS = one corestore 6 (every core and its files stay \
             open) doing the same. RSS after opening: ours {} MiB, JS {} MiB; after \
             reopening: ours {} MiB, JS {} MiB (from {} / {} MiB at start). Files on disk: \
             ours {}, JS {}.\n",
            fmt_num(Some(o("max_open_logs")), 0),
            fmt_num(Some(o("max_open_files")), 0),
            fmt_num(Some(o("rss_after_create_mib")), 1),
            fmt_num(j("rss_after_create_mib"), 1),
            fmt_num(Some(o("rss_after_reopen_mib")), 1),
            fmt_num(j("rss_after_reopen_mib"), 1),
            fmt_num(Some(o("rss_base_mib")), 1),
            fmt_num(j("rss_base_mib"), 1),
            fmt_num(Some(o("files")), 0),
            fmt_num(j("files"), 0),
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::Verdict;
    use super::*;
    use serde_json::json;

    #[test]
    fn disk_rows_compare_allocated_ratios_per_size() {
        let ours = vec![json!({
            "alloc_ratio_128": 2.18, "alloc_ratio_1024": 1.15, "alloc_ratio_16384": 1.01
        })];
        let js = vec![json!({
            "alloc_ratio_128": 2.0, "alloc_ratio_1024": 1.14, "alloc_ratio_16384": 1.01
        })];
        let anchor = vec![json!({"alloc_ratio": 1.1548})];
        let rows = rows("disk_usage", &ours, &js, &anchor);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].measure, "128 B entries: allocated bytes / payload");
        assert_eq!(rows[2].measure, "16 KiB entries: allocated bytes / payload");
        assert_eq!(rows[0].verdict(), Verdict::Meets); // 1.09x
        assert_eq!(rows[1].verdict(), Verdict::Meets);
        assert!(matches!(rows[3].verdict(), Verdict::Informational(_)));
        let ours = vec![json!({"alloc_ratio_128": 2.3})];
        assert_eq!(
            rows_of("disk_usage", &ours, &js)[0].verdict(),
            Verdict::Misses
        );
    }

    fn rows_of(w: &str, ours: &[Value], js: &[Value]) -> Vec<FootprintRow> {
        rows(w, ours, js, &[])
    }

    #[test]
    fn many_logs_rows_are_time_and_memory_without_js_informational() {
        let ours =
            vec![json!({"create_seconds": 0.5, "reopen_seconds": 0.2, "peak_rss_mib": 30.0})];
        let rows = rows_of("many_logs", &ours, &[]);
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter()
                .all(|r| r.js.is_none()
                    && r.verdict() == Verdict::Informational("no JS measurement"))
        );
        let js = vec![json!({"create_seconds": 1.0, "reopen_seconds": 0.1, "peak_rss_mib": 60.0})];
        let rows = rows_of("many_logs", &ours, &js);
        let verdicts: Vec<Verdict> = rows.iter().map(FootprintRow::verdict).collect();
        assert_eq!(verdicts, [Verdict::Meets, Verdict::Misses, Verdict::Meets]);
    }

    #[test]
    fn notes_name_the_method() {
        let n = note("disk_usage", &[json!({"entries_per_size": 5000})], &[]);
        assert!(n.contains("st_blocks * 512") && n.contains("5000 entries"));
        assert!(note("many_logs", &[], &[]).contains("max_open_logs"));
    }
}
