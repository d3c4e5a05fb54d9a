//! `cargo xtask test-props`: find the spec's property tests by their tag, run them, report.
//!
//! A property test is a `#[test] fn property_NN_...` whose doc comment carries the tag
//! `Feature: p2p-hypercore-protocol, Property N: <title>` (see `docs/architecture.md`).
//! Tests count their cases with `nova_hypercore_testkit::CaseCounter`, which appends
//! `property N cases C` to the file named by `NOVA_PROPERTY_REPORT`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Result, cargo, root};

/// Must match `nova_hypercore_testkit::REPORT_ENV`.
pub(crate) const REPORT_ENV: &str = "NOVA_PROPERTY_REPORT";
const TAG: &str = "Feature: p2p-hypercore-protocol, Property ";
const MIN_CASES: u64 = 100;

/// The spec's 24 correctness properties (design.md, "Correctness Properties").
pub(crate) const TITLES: [&str; 24] = [
    "Initialization produces ready event with valid metadata",
    "Close flushes all managed logs",
    "Idempotent log retrieval",
    "Status count accuracy",
    "Monotonically increasing sequence numbers",
    "Append-read round trip",
    "Range read returns correct ordered entries",
    "Signature verification succeeds for all appended entries",
    "Serialization round trip",
    "ATLAS store and query correctness",
    "Index rebuild consistency",
    "Replication completeness",
    "CRDT append preservation with causal metadata",
    "Cross-runtime append-read round trip",
    "NanoClaw isolation enforcement",
    "Offline append and read",
    "Incremental sync transfers only new entries",
    "Replication state persistence round trip",
    "Operation log events contain required fields",
    "Metrics accuracy",
    "Health warning threshold",
    "Unique key generation",
    "Default access mode",
    "Key storage separation",
];

/// One tagged property test found in the sources.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    number: u32,
    title: String,
    package: String,
    /// `--test <name>` for integration tests, `None` for unit tests in the library.
    target: Option<String>,
    function: String,
    file: PathBuf,
}

/// Scans `crates/*/{tests,src}` for tagged property tests.
pub(crate) fn scan() -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let crates = root().join("crates");
    let entries = std::fs::read_dir(&crates).map_err(|e| format!("{}: {e}", crates.display()))?;
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(package) = package_name(&dir.join("Cargo.toml")) else {
            continue;
        };
        for file in rust_files(&dir.join("tests"), false) {
            let target = file.file_stem().map(|s| s.to_string_lossy().into_owned());
            scan_file(&file, &package, target, &mut found)?;
        }
        for file in rust_files(&dir.join("src"), true) {
            scan_file(&file, &package, None, &mut found)?;
        }
    }
    found.sort_by_key(|f| f.number);
    Ok(found)
}

fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|v| v.trim_matches('"').to_owned())
}

fn rust_files(dir: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && recursive {
            out.extend(rust_files(&path, true));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn scan_file(file: &Path, package: &str, target: Option<String>, found: &mut Vec<Found>) -> Result {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.split_once(TAG).map(|(_, r)| r) else {
            continue;
        };
        let Some((number, title)) = rest.split_once(':') else {
            continue;
        };
        let Ok(number) = number.trim().parse::<u32>() else {
            continue;
        };
        // The test function follows the tag within a few lines (attributes in between).
        let function = lines[i + 1..]
            .iter()
            .take(6)
            .find_map(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix("async ").unwrap_or(l);
                l.strip_prefix("fn ")
                    .map(|f| f.split(['(', '<']).next().unwrap_or("").trim().to_owned())
            })
            .filter(|f| f.starts_with(&format!("property_{number:02}_")));
        if let Some(function) = function {
            found.push(Found {
                number,
                title: title.trim().to_owned(),
                package: package.to_owned(),
                target: target.clone(),
                function,
                file: file.to_owned(),
            });
        } else {
            eprintln!(
                "warning: {}:{}: tag for property {number} is not followed by `fn property_{number:02}_...`",
                file.display(),
                i + 1
            );
        }
    }
    Ok(())
}

/// A fresh, empty report file under `target/`.
pub(crate) fn report_file() -> Result<PathBuf> {
    let dir = root().join("target").join("xtask");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("property-cases.txt");
    std::fs::write(&file, b"").map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}

/// `property N cases C` lines; the largest count per property wins.
fn read_report(file: &Path) -> BTreeMap<u32, u64> {
    let mut cases = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["property", n, "cases", c] = parts.as_slice()
            && let (Ok(n), Ok(c)) = (n.parse::<u32>(), c.parse::<u64>())
        {
            let e = cases.entry(n).or_insert(0);
            *e = (*e).max(c);
        }
    }
    cases
}

/// After `cargo xtask test`: one line on property coverage and case counts.
pub(crate) fn summarize_report(file: &Path) {
    let cases = read_report(file);
    // A property may have more than one test (e.g. 24): count properties, not tests.
    let numbers: std::collections::BTreeSet<u32> = scan()
        .unwrap_or_default()
        .iter()
        .map(|f| f.number)
        .collect();
    let short: Vec<String> = numbers
        .iter()
        .filter(|n| cases.get(n).copied().unwrap_or(0) < MIN_CASES)
        .map(|n| n.to_string())
        .collect();
    eprintln!(
        "properties with a test: {}/24; ran >= {MIN_CASES} cases: {}{}",
        numbers.len(),
        numbers.len() - short.len(),
        if short.is_empty() {
            String::new()
        } else {
            format!(" (short: {})", short.join(", "))
        }
    );
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Passed,
    Failed,
    NotRun,
}

/// `cargo xtask test-props [N...]`.
pub(crate) fn run(numbers: &[u32]) -> Result {
    if let Some(bad) = numbers.iter().find(|n| !(1..=24).contains(*n)) {
        return Err(format!("property {bad} does not exist (the spec has 1-24)"));
    }
    let wanted: Vec<u32> = if numbers.is_empty() {
        (1..=24).collect()
    } else {
        numbers.to_vec()
    };
    let found: Vec<Found> = scan()?
        .into_iter()
        .filter(|f| wanted.contains(&f.number))
        .collect();
    let report = report_file()?;

    // One cargo invocation per test target, filtering on the property functions.
    let mut groups: BTreeMap<(String, Option<String>), Vec<&Found>> = BTreeMap::new();
    for f in &found {
        groups
            .entry((f.package.clone(), f.target.clone()))
            .or_default()
            .push(f);
    }
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    for ((package, target), tests) in &groups {
        let mut cmd = cargo();
        cmd.args(["test", "--package", package]);
        match target {
            Some(t) => cmd.args(["--test", t]),
            None => cmd.arg("--lib"),
        };
        cmd.arg("--");
        for t in tests {
            cmd.arg(&t.function);
        }
        cmd.env(REPORT_ENV, &report);
        eprintln!(
            "==> {package} {}: {}",
            target.as_deref().unwrap_or("(lib)"),
            tests
                .iter()
                .map(|t| t.function.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let output = cmd
            .output()
            .map_err(|e| format!("cannot run cargo test for {package}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("test ") else {
                continue;
            };
            let Some((name, result)) = rest.rsplit_once(" ... ") else {
                continue;
            };
            let function = name.rsplit("::").next().unwrap_or(name).to_owned();
            let outcome = match result.trim() {
                "ok" => Outcome::Passed,
                r if r.starts_with("FAILED") => Outcome::Failed,
                _ => Outcome::NotRun,
            };
            outcomes.insert(function, outcome);
        }
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
            eprintln!("{stdout}");
        }
    }
    let cases = read_report(&report);
    let (rows, failed) = judge(&wanted, &found, &outcomes, &cases);
    println!("| # | title | crate | cases | result |");
    println!("|---:|---|---|---:|---|");
    for row in rows {
        println!("{row}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("properties not passing: {}", failed.join("; ")))
    }
}

/// The table rows and the failures for `wanted`: a property fails when it has no tagged
/// test (with or without numbers on the command line: the spec has 24 and every one
/// must be there), when any of its tests did not pass or did not run, when it ran
/// fewer than `MIN_CASES` cases, or when its tag's title differs from the spec.
fn judge(
    wanted: &[u32],
    found: &[Found],
    outcomes: &BTreeMap<String, Outcome>,
    cases: &BTreeMap<u32, u64>,
) -> (Vec<String>, Vec<String>) {
    let (mut rows, mut failed) = (Vec::new(), Vec::new());
    for n in wanted {
        let spec_title = TITLES[(*n - 1) as usize];
        let tests: Vec<&Found> = found.iter().filter(|f| f.number == *n).collect();
        let Some(first) = tests.first() else {
            rows.push(format!("| {n} | {spec_title} | - | - | missing |"));
            failed.push(format!("{n} (missing: no test tagged for it)"));
            continue;
        };
        let count = cases.get(n).copied();
        // The worst outcome of the property's tests.
        let outcome = tests
            .iter()
            .map(|f| {
                outcomes
                    .get(&f.function)
                    .cloned()
                    .unwrap_or(Outcome::NotRun)
            })
            .max_by_key(|o| match o {
                Outcome::Passed => 0,
                Outcome::NotRun => 1,
                Outcome::Failed => 2,
            })
            .unwrap_or(Outcome::NotRun);
        let mut result = match outcome {
            Outcome::Passed => "passed".to_owned(),
            Outcome::Failed => "FAILED".to_owned(),
            Outcome::NotRun => "not run".to_owned(),
        };
        if outcome == Outcome::Passed && count.unwrap_or(0) < MIN_CASES {
            result = format!("FAILED (fewer than {MIN_CASES} cases)");
        }
        if let Some(f) = tests.iter().find(|f| f.title != spec_title) {
            result = format!("{result}; tag title differs from the spec: {:?}", f.title);
        }
        if result != "passed" {
            failed.push(format!("{n} ({result}, {})", first.file.display()));
        }
        rows.push(format!(
            "| {n} | {spec_title} | {} | {} | {result} |",
            first.package.trim_start_matches("nova-hypercore-"),
            count.map_or("?".to_owned(), |c| c.to_string()),
        ));
    }
    (rows, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(n: u32, function: &str) -> Found {
        Found {
            number: n,
            title: TITLES[(n - 1) as usize].to_owned(),
            package: "nova-hypercore-x".into(),
            target: None,
            function: function.into(),
            file: PathBuf::from("x.rs"),
        }
    }

    #[test]
    fn a_missing_property_fails_without_numbers_too() {
        let all: Vec<u32> = (1..=24).collect();
        // Every property but 5 has a passing test with enough cases.
        let tests: Vec<Found> = all
            .iter()
            .filter(|n| **n != 5)
            .map(|n| found(*n, &format!("property_{n:02}_t")))
            .collect();
        let outcomes = tests
            .iter()
            .map(|f| (f.function.clone(), Outcome::Passed))
            .collect();
        let cases = all.iter().map(|n| (*n, MIN_CASES)).collect();
        let (rows, failed) = judge(&all, &tests, &outcomes, &cases);
        assert_eq!(rows.len(), 24);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].starts_with("5 (missing"), "{failed:?}");
    }

    #[test]
    fn every_test_of_a_property_counts_and_short_runs_fail() {
        let tests = vec![found(24, "property_24_a"), found(24, "property_24_b")];
        let mut outcomes = BTreeMap::new();
        outcomes.insert("property_24_a".to_owned(), Outcome::Passed);
        outcomes.insert("property_24_b".to_owned(), Outcome::Failed);
        let mut cases = BTreeMap::from([(24, MIN_CASES)]);
        let (_, failed) = judge(&[24], &tests, &outcomes, &cases);
        assert!(failed[0].contains("FAILED"), "{failed:?}");
        // The second test not run at all (a skip, an ignore) is not a pass either.
        outcomes.remove("property_24_b");
        let (_, failed) = judge(&[24], &tests, &outcomes, &cases);
        assert!(failed[0].contains("not run"), "{failed:?}");
        outcomes.insert("property_24_b".to_owned(), Outcome::Passed);
        assert!(judge(&[24], &tests, &outcomes, &cases).1.is_empty());
        cases.insert(24, MIN_CASES - 1);
        let (_, failed) = judge(&[24], &tests, &outcomes, &cases);
        assert!(failed[0].contains("fewer than"), "{failed:?}");
    }
}
