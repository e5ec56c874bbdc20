//! GitHub Actions output, without booting: a check that fails (the ISO sends no console to the
//! serial port) gives an `::error` annotation titled with the condition, and a Markdown job
//! summary in $GITHUB_STEP_SUMMARY; outside GitHub Actions and without --github, neither.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

fn check_iso(extra: &[&str], env: &[(&str, &Path)], github: bool) -> (common::Run, PathBuf) {
    let tmp = common::tempdir().keep();
    let out = tmp.join("report");
    let mut cmd = common::bootaudit(["check", "iso", "--iso"]);
    cmd.arg(common::fixture_iso("no-serial"))
        .arg("--out")
        .arg(&out)
        .args(extra);
    cmd.env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    if github {
        cmd.env("GITHUB_ACTIONS", "true");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    (common::run_expect(cmd, Duration::from_secs(60), 1), tmp)
}

#[test]
fn on_github_actions_a_failure_is_annotated_and_summarised() {
    let dir = common::tempdir();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let (run, tmp) = check_iso(&[], &[("GITHUB_STEP_SUMMARY", &summary)], true);
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.describe());
    assert!(
        errors[0].starts_with("::error title=bootaudit%3A iso.console failed::"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("do not send the console to ttyS0"),
        "{}",
        errors[0]
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n"),
        "the summary is appended to"
    );
    assert!(md.contains("## ❌ bootaudit: Fail"), "{md}");
    assert!(md.contains("| `iso.console` | fail | root cause |"), "{md}");
    assert!(
        md.contains(&format!(
            "Report folder: `{}`",
            tmp.join("report").display()
        )),
        "{md}"
    );
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn with_json_on_stdout_the_annotations_go_to_stderr() {
    let (run, tmp) = check_iso(&["--format", "json", "--github"], &[], false);
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report: {e}\n{}", run.describe()));
    assert_eq!(report["verdict"], "fail");
    assert!(
        run.stderr
            .contains("::error title=bootaudit%3A iso.console failed::"),
        "{}",
        run.describe()
    );
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn elsewhere_there_are_no_annotations() {
    let (run, tmp) = check_iso(&[], &[], false);
    assert!(
        !run.stdout.contains("::error") && !run.stderr.contains("::error"),
        "{}",
        run.describe()
    );
    std::fs::remove_dir_all(tmp).unwrap();
}
