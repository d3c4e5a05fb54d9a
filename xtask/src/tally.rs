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
        self.finish_as(result, in_ci())
    }

    fn finish_as(&self, result: Result, ci: bool) -> Result {
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
        if skipped > 0 && ci {
            return Err(format!(
                "{skipped} suite(s) skipped under CI=true; CI must run every suite (see the SKIPPED lines for what they need)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(outcomes: Vec<Result<Outcome>>) -> (Tally, Result) {
        let mut t = Tally::default();
        let mut result = Ok(());
        for (i, o) in outcomes.into_iter().enumerate() {
            result = result.and(t.step(&format!("s{i}"), || o));
        }
        (t, result)
    }

    #[test]
    fn a_skip_passes_outside_ci_and_fails_under_ci() {
        let (t, r) = tally(vec![
            Ok(Outcome::Passed),
            Ok(Outcome::Skipped("needs root".into())),
        ]);
        assert!(t.finish_as(r.clone(), false).is_ok());
        let err = t.finish_as(r, true).unwrap_err();
        assert!(err.contains("1 suite(s) skipped under CI=true"), "{err}");
    }

    #[test]
    fn a_failure_is_the_result_whatever_the_mode() {
        let (t, r) = tally(vec![Ok(Outcome::Passed), Err("boom".into())]);
        assert_eq!(t.finish_as(r.clone(), false), Err("boom".into()));
        assert_eq!(t.finish_as(r, true), Err("boom".into()));
        assert!(matches!(t.rows[1].1, Row::Failed));
    }

    #[test]
    fn all_passed_is_ok_under_ci() {
        let (t, r) = tally(vec![Ok(Outcome::Passed), Ok(Outcome::Passed)]);
        assert!(t.finish_as(r, true).is_ok());
    }
}
