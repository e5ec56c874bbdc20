//! The README's "Everyday use" examples, run as a newcomer runs them: in order, in one working
//! folder, twice in a row. The second pass must give what the first gave — the trap of issue 12
//! was `audit-reports/latest` moving with every check and replay, so the README's replay line
//! worked once, then replayed a replay's folder or a check's empty log.
//!
//! Two of the examples boot the healthy fixture, so the two passes cost four boots.

mod common;

use common::{bootaudit, fixture_iso, run_with_deadline, Report};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `bootaudit …` lines of the README's "Everyday use" block, comments cut, split in words.
fn everyday_examples() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## Everyday use")
        .nth(1)
        .expect("README has an Everyday use section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an sh block in Everyday use");
    block
        .lines()
        .filter_map(|l| l.split(" # ").next())
        .filter_map(|l| l.trim().strip_prefix("bootaudit "))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// What one example gave, without what is meant to differ between runs (times, folder names).
#[derive(Debug, PartialEq)]
struct Outcome {
    code: i32,
    verdict: Option<String>,
    statuses: BTreeMap<String, String>,
    /// `list`'s output, which depends on nothing but the profile.
    listing: Option<String>,
}

/// The report folder a human-format command names in its summary (`…; report: DIR`).
fn report_dir(stdout: &str) -> Option<PathBuf> {
    let at = stdout.rfind("report: ")?;
    let dir = stdout[at + "report: ".len()..].lines().next()?.trim();
    Some(PathBuf::from(dir))
}

fn outcome_of(report: &Value, code: i32) -> Outcome {
    let statuses = report["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Outcome {
        code,
        verdict: report["verdict"].as_str().map(str::to_string),
        statuses,
        listing: None,
    }
}

fn run_pass(cwd: &Path, state: &Path, substitutes: &BTreeMap<&str, String>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for example in everyday_examples() {
        let args: Vec<String> = example
            .iter()
            .map(|a| substitutes.get(a.as_str()).cloned().unwrap_or(a.clone()))
            .collect();
        let mut cmd = bootaudit(&args);
        cmd.current_dir(cwd)
            .env("BOOTAUDIT_STATE_DIR", state)
            .env("NO_COLOR", "1");
        let run = run_with_deadline(cmd, Duration::from_secs(900));
        let shown = example.join(" ");
        assert_ne!(
            run.code,
            2,
            "`bootaudit {shown}` is a usage error: {}",
            run.describe()
        );
        let outcome = if args[0] == "list" {
            Outcome {
                code: run.code,
                verdict: None,
                statuses: BTreeMap::new(),
                listing: Some(run.stdout.clone()),
            }
        } else if args.contains(&"--format".to_string()) {
            let report: Value = serde_json::from_str(&run.stdout)
                .unwrap_or_else(|e| panic!("`{shown}`: no JSON report ({e}): {}", run.describe()));
            outcome_of(&report, run.code)
        } else if let Some(dir) = report_dir(&run.stdout) {
            let report = Report::load(&cwd.join(dir));
            outcome_of(&report.json, run.code)
        } else {
            Outcome {
                code: run.code,
                verdict: None,
                statuses: BTreeMap::new(),
                listing: None,
            }
        };
        // The examples are run on a healthy image and a log of a passing run: each passes.
        assert_eq!(outcome.code, 0, "`bootaudit {shown}`: {}", run.describe());
        outcomes.push(outcome);
    }
    outcomes
}

#[test]
fn the_readme_examples_give_the_same_results_twice_in_a_row() {
    let cwd = common::tempdir();
    let state = common::tempdir();
    let iso = fixture_iso("healthy").to_string_lossy().into_owned();
    // A console capture of another tool, of a run that passed (the replay benchmark's generator).
    let log = cwd.path().join("ci-console.log");
    let generated = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/gen_foreign_log.py"))
        .arg("0.05")
        .arg(&log)
        .status()
        .expect("python3");
    assert!(generated.success());
    let latest = "audit-reports/latest".to_string();
    let substitutes: BTreeMap<&str, String> = [
        ("result/iso", iso.clone()),
        ("x.iso", iso),
        ("ci-console.log", log.to_string_lossy().into_owned()),
        ("OLD", latest.clone()),
        ("NEW", latest),
    ]
    .into();
    let first = run_pass(cwd.path(), state.path(), &substitutes);
    let newest_run = std::fs::read_link(cwd.path().join("audit-reports/latest")).unwrap();
    let second = run_pass(cwd.path(), state.path(), &substitutes);
    assert_eq!(first.len(), everyday_examples().len());
    for (example, (a, b)) in everyday_examples().iter().zip(first.iter().zip(&second)) {
        assert_eq!(
            a,
            b,
            "`bootaudit {}` changed on the second pass",
            example.join(" ")
        );
    }
    // `latest` follows the runs alone: the second pass's last run, not a check or a replay.
    let now = std::fs::read_link(cwd.path().join("audit-reports/latest")).unwrap();
    assert_ne!(now, newest_run, "latest moved on to the second pass's run");
    let report = Report::load(&cwd.path().join("audit-reports").join(&now));
    assert_eq!(report.json["verdict"], "pass");
    assert!(
        report.json.get("replayed_log").is_none_or(Value::is_null),
        "latest points at a run, not a replay"
    );
}
