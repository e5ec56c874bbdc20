//! A newcomer's profile, written from docs/profiles.md alone: the worked example there (extends
//! plus three overrides, one added probe and one added watch) loads, audits the healthy fixture
//! with a real boot and passes; the same profile with five mistakes is answered with all five
//! errors in one run, each at its file:line:column, with the nearest name where there is one.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The worked example, as docs/profiles.md gives it (the YAML block that starts with its name).
fn worked_example() -> String {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profiles.md"))
            .unwrap();
    let start = docs
        .find("```yaml\n# my-installer.yaml\n")
        .expect("docs/profiles.md has the worked example")
        + "```yaml\n".len();
    let end = start + docs[start..].find("```").unwrap();
    let text = docs[start..end].to_string();
    assert!(
        text.contains("extends: pre-nixos") && text.contains("check: watch"),
        "{text}"
    );
    text
}

fn write_profile(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_worked_example_is_listed_with_its_own_conditions_last() {
    let tmp = tempdir();
    let profile = write_profile(tmp.path(), "my-installer.yaml", &worked_example());
    let mut cmd = bootaudit(["list", "--profile"]);
    cmd.arg(&profile);
    let run = run_expect(cmd, Duration::from_secs(60), 0);
    let hostname = run.stdout.find("system.hostname").expect(&run.stdout);
    let watch = run.stdout.find("console.welcome").expect(&run.stdout);
    let base = run
        .stdout
        .find("unit.pre-nixos-inactive")
        .expect(&run.stdout);
    assert!(base < hostname && hostname < watch, "{}", run.stdout);
}

/// The five mistakes a newcomer makes, each one line changed or added; every one is reported.
#[test]
fn five_mistakes_are_five_errors_in_one_run() {
    let good = worked_example();
    let bad = good
        .replacen("  memory: 2G", "  memroy: 2G\n  rng: true", 1)
        .replacen("requires: [shell.ready]", "requires: [shell.redy]", 1)
        .replacen("{hostname}$", "{hostnme}$", 1)
        .replacen(
            "    check: watch\n",
            "    phase: host\n    check: watch\n",
            1,
        );
    let tmp = tempdir();
    let profile = write_profile(tmp.path(), "my-installer.yaml", &bad);
    let mut cmd = bootaudit(["list", "--profile"]);
    cmd.arg(&profile);
    let run = run_expect(cmd, Duration::from_secs(60), 2);
    let at = |needle: &str, skip: usize| {
        let line = line_of(&bad, needle);
        let col = bad.lines().nth(line - 1).unwrap().find(needle).unwrap() + skip + 1;
        format!("bootaudit: {}:{line}:{col}: ", profile.display())
    };
    let expected = [
        (at("memroy", 0), "did you mean `memory`?"),
        (at("rng: true", 5), "named by its QEMU model"),
        (at("shell.redy", 0), "did you mean `shell.ready`?"),
        (at("{hostnme}", 0), "did you mean `hostname`?"),
        (at("phase: host", 7), "only the boot phase has"),
    ];
    let lines: Vec<&str> = run.stderr.lines().collect();
    for (place, words) in &expected {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(place.as_str()) && l.contains(words)),
            "no `{words}` at {place}\n{}",
            run.stderr
        );
    }
    let errors = lines
        .iter()
        .filter(|l| l.starts_with("bootaudit: /"))
        .count();
    assert_eq!(errors, 5, "five errors, no more:\n{}", run.stderr);
    assert!(
        run.stderr.contains("5 configuration errors"),
        "{}",
        run.stderr
    );
}

/// The worked example audits the healthy fixture with a real boot (QEMU, TCG here): it passes,
/// and its own probe and watch pass with it.
#[test]
fn the_worked_example_audits_the_healthy_fixture() {
    let iso = fixture_iso("healthy");
    let tmp = tempdir();
    let profile = write_profile(tmp.path(), "my-installer.yaml", &worked_example());
    let audit = |n: usize| {
        let out = tmp.path().join(format!("out-{n}"));
        let mut cmd = bootaudit(["run", "--iso"]);
        cmd.arg(&iso)
            .arg("--profile")
            .arg(&profile)
            .arg("--out")
            .arg(&out)
            .args(["--format", "json"]);
        let run = run_with_deadline(cmd, Duration::from_secs(1500));
        (run, out)
    };
    let (mut run, mut out) = audit(1);
    // A guest starved of CPU by a busy host says nothing of the profile: boot once more.
    if run.code == 3 && run.stdout.contains("starved of CPU") {
        eprintln!("the guest was starved of CPU, booting again");
        (run, out) = audit(2);
    }
    assert_eq!(run.code, 0, "{}", run.describe());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["profile"], "my-installer", "named after its file");
    let conditions = report["conditions"].as_array().expect("conditions");
    for id in ["system.hostname", "console.welcome"] {
        let c = conditions
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in report.json"));
        assert_eq!(c["status"], "pass", "{c}");
    }
    let hostname = conditions
        .iter()
        .find(|c| c["id"] == "system.hostname")
        .unwrap();
    assert!(
        hostname["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("pre-nixos"),
        "{hostname}"
    );
}
