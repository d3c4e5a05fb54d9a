//! Counting what `cargo xtask test` and `test-integration` ran: each step or suite passed,
//! failed or was skipped (with the reason). The closing line is `suites: N passed, N failed,
//! N skipped`. Under `CI=true` a skipped suite fails the run: CI must run everything.

use std::time::{Duration, Instant};

use crate::Result;

/// How a step or suite ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    /// It could not run here; the reason says what it needs.
    Skipped(String),
}

#[derive(Debug)]
enum Row {
    Passed,
    Failed,
    Skipped(String),
}

/// The steps and suites of one run, in order, with their times.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    rows: Vec<(String, Row, Duration)>,
}

/// Whether this run is CI's (`CI=true`, as `.ci/run` is started).
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

impl Tally {
    /// Runs `f` as the step `name` and records how it ended; an error is recorded and returned.
    pub(crate) fn step(&mut self, name: &str, f: impl FnOnce() -> Result<Outcome>) -> Result {
        let start = Instant::now();
        let result = f();
        let took = start.elapsed();
        let row = match &result {
            Ok(Outcome::Passed) => Row::Passed,
            Ok(Outcome::Skipped(why)) => {
                eprintln!("  SKIPPED: {name}: {why}");
                Row::Skipped(why.clone())
            }
            Err(_) => Row::Failed,
        };
        self.rows.push((name.to_owned(), row, took));
        result.map(|_| ())
    }

    /// Prints the table and the closing line; the run's result is `result`, or an error when
    /// a suite was skipped under CI.
    pub(crate) fn finish(&self, result: Result) -> Result {
        eprintln!("==> summary");
        for (name, row, took) in &self.rows {
            let what = match row {
                Row::Passed => "passed".to_owned(),
                Row::Failed => "FAILED".to_owned(),
                Row::Skipped(why) => format!("SKIPPED ({why})"),
            };
            eprintln!("  {:>7.1} s  {name}: {what}", took.as_secs_f64());
        }
        let count = |f: fn(&Row) -> bool| self.rows.iter().filter(|(_, r, _)| f(r)).count();
        let passed = count(|r| matches!(r, Row::Passed));
        let failed = count(|r| matches!(r, Row::Failed));
        let skipped = count(|r| matches!(r, Row::Skipped(_)));
        // The plain closing line (CI reads it): suites, not individual tests.
        println!("suites: {passed} passed, {failed} failed, {skipped} skipped");
        result?;
        if skipped > 0 && in_ci() {
            return Err(format!(
                "{skipped} suite(s) skipped under CI=true; CI must run every suite (see the SKIPPED lines for what they need)"
            ));
        }
        Ok(())
    }
}
