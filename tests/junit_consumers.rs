//! junit.xml as real consumers read it: junitparser (PyPI, pinned 5.0.3) and junit2json (npm,
//! pinned 3.1.14), which `scripts/setup.sh` installs into `.tools/`. Each consumer reads the
//! file through a small script in `tests/junit/` that prints what it saw as JSON; the tests
//! assert that every testcase arrives with its name, classname, status, message, evidence,
//! time and attachment lines, and every suite with its timestamp, hostname, counts and
//! properties. A missing consumer fails the tests (run `bash scripts/setup.sh`); it is never
//! skipped.

mod common;

use bootaudit::model::{
    BootInfo, ConditionReport, IsoInfo, Phase, Report, SkipKind, Status, Verdict,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CONSUMER_LIMIT: Duration = Duration::from_secs(60);
const SETUP_HINT: &str = "run `bash scripts/setup.sh` to install the JUnit consumers into .tools/";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The consumers

/// What a consumer saw (the shape both scripts in tests/junit/ print).
#[derive(Debug, Deserialize)]
struct Seen {
    suites: Vec<SeenSuite>,
}

#[derive(Debug, Deserialize)]
struct SeenSuite {
    name: Option<String>,
    timestamp: Option<String>,
    hostname: Option<String>,
    tests: Option<u64>,
    failures: Option<u64>,
    errors: Option<u64>,
    skipped: Option<u64>,
    properties: Vec<(String, String)>,
    cases: Vec<SeenCase>,
}

#[derive(Debug, Deserialize)]
struct SeenCase {
    name: Option<String>,
    classname: Option<String>,
    status: String,
    results: u64,
    message: Option<String>,
    text: Option<String>,
    time: Option<f64>,
    system_out: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum Consumer {
    Junitparser,
    Junit2json,
}

impl Consumer {
    const ALL: [Consumer; 2] = [Consumer::Junitparser, Consumer::Junit2json];

    fn name(self) -> &'static str {
        match self {
            Consumer::Junitparser => "junitparser (PyPI)",
            Consumer::Junit2json => "junit2json (npm)",
        }
    }

    /// The command that prints what the consumer saw in `junit`; fails the test when the
    /// consumer is not installed.
    fn command(self, junit: &Path) -> Command {
        let tools = root().join(".tools");
        let scripts = root().join("tests/junit");
        match self {
            Consumer::Junitparser => {
                let python = tools.join("venv/bin/python");
                assert!(
                    python.is_file(),
                    "{}: {} is missing: {SETUP_HINT}",
                    self.name(),
                    python.display()
                );
                let mut c = Command::new(python);
                c.arg(scripts.join("junitparser_dump.py")).arg(junit);
                c
            }
            Consumer::Junit2json => {
                let pkg = tools.join("node/node_modules/junit2json");
                let bin = tools.join("node/node_modules/.bin/junit2json");
                assert!(
                    pkg.join("package.json").is_file() && bin.exists(),
                    "{}: {} is missing: {SETUP_HINT}",
                    self.name(),
                    pkg.display()
                );
                let mut c = Command::new("node");
                c.arg(scripts.join("junit2json_dump.cjs"))
                    .arg(pkg)
                    .arg(junit);
                c
            }
        }
    }

    fn read(self, junit: &Path) -> Seen {
        let mut cmd = self.command(junit);
        let dbg = format!("{cmd:?}");
        // A missing interpreter (node) is a missing consumer too.
        if let Err(e) = Command::new(cmd.get_program()).arg("--version").output() {
            panic!(
                "{}: cannot run {:?}: {e}: {SETUP_HINT}",
                self.name(),
                cmd.get_program()
            );
        }
        cmd.current_dir(root());
        let run = common::run_with_deadline(cmd, CONSUMER_LIMIT);
        assert_eq!(
            run.code,
            0,
            "{} could not read {} ({dbg}); if it is not installed, {SETUP_HINT}\n{}",
            self.name(),
            junit.display(),
            run.describe()
        );
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: its script printed no JSON of the expected shape: {e}\n{}",
                self.name(),
                run.describe()
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// What every consumer must see

/// The characters the renderer must drop (not XML 1.0, or ESC); all else arrives as written.
fn visible(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\0' | '\u{1b}' | '\u{FFFE}' | '\u{FFFF}'))
        .collect()
}

/// The suite properties the report implies, in order; unknown ones absent.
fn want_properties(r: &Report) -> Vec<(String, String)> {
    let iso_name = r.iso.as_ref().map(|i| {
        Path::new(&i.path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    });
    [
        ("verdict", Some(r.verdict.as_str().to_string())),
        ("verdict.reason", r.verdict_reason.clone()),
        ("profile", Some(r.profile.clone())),
        ("iso.name", iso_name),
        ("iso.sha256", r.iso.as_ref().and_then(|i| i.sha256.clone())),
        ("accel", r.accel.clone()),
        ("qemu.version", r.qemu_version.clone()),
        ("bootaudit.version", Some(r.bootaudit_version.clone())),
        ("boot.entry", r.boot.as_ref().and_then(|b| b.entry.clone())),
        ("replayed_log", r.replayed_log.clone()),
    ]
    .into_iter()
    .filter_map(|(n, v)| Some((n.to_string(), visible(&v?))).filter(|(_, v)| !v.is_empty()))
    .collect()
}

/// The attachments a CI tool finds in a system-out: every `[[ATTACHMENT|PATH]]`, anywhere in
/// it (Jenkins' plugin and GitLab match the marker within lines too). bootaudit's own are
/// whole lines.
fn attachments(system_out: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = system_out;
    while let Some(at) = rest.find("[[ATTACHMENT|") {
        let tail = &rest[at + "[[ATTACHMENT|".len()..];
        let end = tail
            .find("]]")
            .unwrap_or_else(|| panic!("attachment without ]]: {tail}"));
        let path = &tail[..end];
        let line = format!("[[ATTACHMENT|{path}]]");
        assert!(
            system_out.lines().any(|l| l == line),
            "attachment {line} is not a line of its own (forged by the guest?):\n{system_out}"
        );
        found.push(path.to_string());
        rest = &tail[end..];
    }
    found
}

/// Assert that `seen` is the whole of `report`, its files under `folder` (as given to render).
fn assert_saw_report(consumer: Consumer, seen: &Seen, report: &Report, folder: &str) {
    let who = consumer.name();
    let started = chrono::DateTime::parse_from_rfc3339(&report.started_at)
        .unwrap_or_else(|e| panic!("report started_at {}: {e}", report.started_at));
    let phases: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|p| report.conditions.iter().any(|c| c.phase == *p))
        .collect();
    let names: Vec<String> = seen
        .suites
        .iter()
        .map(|s| s.name.clone().unwrap_or_default())
        .collect();
    let want_names: Vec<String> = phases.iter().map(|p| format!("bootaudit.{p}")).collect();
    assert_eq!(names, want_names, "{who}: testsuites");
    let want_props = want_properties(report);

    for (suite, phase) in seen.suites.iter().zip(&phases) {
        let sname = format!("bootaudit.{phase}");
        let ctx = format!("{who}: testsuite {sname}");
        let ts = suite
            .timestamp
            .as_deref()
            .unwrap_or_else(|| panic!("{ctx}: no timestamp"));
        let ts = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap_or_else(|e| panic!("{ctx}: timestamp {ts} is not RFC 3339: {e}"));
        assert_eq!(ts, started, "{ctx}: timestamp");
        assert_eq!(suite.hostname, report.hostname, "{ctx}: hostname");
        assert_eq!(suite.properties, want_props, "{ctx}: properties");

        // Root causes first, catalog order within each rank.
        let mut conds: Vec<&ConditionReport> = report
            .conditions
            .iter()
            .filter(|c| c.phase == *phase)
            .collect();
        conds.sort_by_key(|c| c.cause_rank());
        let count = |s: Status| conds.iter().filter(|c| c.status == s).count() as u64;
        assert_eq!(suite.tests, Some(conds.len() as u64), "{ctx}: tests");
        assert_eq!(suite.failures, Some(count(Status::Fail)), "{ctx}: failures");
        assert_eq!(suite.errors, Some(count(Status::Error)), "{ctx}: errors");
        assert_eq!(suite.skipped, Some(count(Status::Skip)), "{ctx}: skipped");
        let ids: Vec<_> = suite
            .cases
            .iter()
            .map(|c| c.name.clone().unwrap_or_default())
            .collect();
        let want_ids: Vec<_> = conds.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, want_ids, "{ctx}: testcases");

        for (case, c) in suite.cases.iter().zip(conds) {
            let ctx = format!("{who}: testcase {}", c.id);
            assert_eq!(case.classname.as_deref(), Some(sname.as_str()), "{ctx}");
            assert_eq!(case.status, c.status.as_str(), "{ctx}: status");
            let message = visible(&c.message);
            if c.status == Status::Pass {
                assert_eq!(case.results, 0, "{ctx}: results");
                assert_eq!(case.message, None, "{ctx}: message");
            } else {
                assert_eq!(case.results, 1, "{ctx}: results");
                assert_eq!(case.message.as_deref(), Some(message.as_str()), "{ctx}");
                // The evidence is the result's text.
                let text = case.text.as_deref().unwrap_or("");
                assert_eq!(text, visible(&c.evidence), "{ctx}: result text (evidence)");
            }
            let time = case.time.unwrap_or_else(|| panic!("{ctx}: no time"));
            assert!(
                (time - c.duration_ms as f64 / 1000.0).abs() < 1e-6,
                "{ctx}: time {time} for {} ms",
                c.duration_ms
            );
            let out = case
                .system_out
                .as_deref()
                .unwrap_or_else(|| panic!("{ctx}: no system-out"));
            let head = format!("{}: {message}\n", c.status);
            assert!(out.starts_with(&head), "{ctx}: system-out\n{out}");
            let want_attachments: Vec<String> = c
                .transcript
                .iter()
                .chain(&c.diagnostics)
                .map(|rel| format!("{folder}/{rel}"))
                .collect();
            assert_eq!(attachments(out), want_attachments, "{ctx}: attachments");
        }
    }
}

// =============================================================================================
// a. A report with every field set, rendered by the library

const ODD: &str =
    "<b>bold</b> & \"quoted\" 'apos' ]]> <![CDATA[x]]> &amp; ünïcødé — 🚀 \u{0}nul \u{FFFE}end";

fn condition(id: &str, phase: Phase, status: Status, duration_ms: u64) -> ConditionReport {
    ConditionReport {
        id: id.into(),
        phase,
        status,
        message: format!("{status}: {ODD}"),
        evidence: String::new(),
        started_ms: 100,
        duration_ms,
        transcript: Some(format!("conditions/{id}.log")),
        blocked_by: None,
        likely_cause: None,
        log_line: None,
        warnings: vec![],
        diagnostics: vec![],
        skip_kind: SkipKind::Counts,
    }
}

fn full_report() -> Report {
    let mut qemu = condition("host.qemu", Phase::Host, Status::Pass, 1234);
    qemu.evidence = "QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)".into();
    let mut kvm = condition("virt.kvm", Phase::Virt, Status::Skip, 0);
    kvm.message = "blocked: prerequisite host.qemu-devices did not pass (fail) <kvm>".into();
    kvm.blocked_by = Some("host.qemu-devices".into());
    let mut console = condition("iso.console", Phase::Iso, Status::Fail, 7);
    console.evidence =
        "isolinux/isolinux.cfg:7 'live' [booted]: console=tty0\nEFI/BOOT/grub.cfg:4 <no ttyS0> & more"
            .into();
    let mut login = condition("boot.login", Phase::Boot, Status::Fail, 61_500);
    login.evidence = "no `login:` within 60 s".into();
    login.likely_cause = Some("storage.status".into());
    login.diagnostics = vec![
        "diagnostics/boot.login/journal.txt".into(),
        "diagnostics/boot.login/dmesg.txt".into(),
    ];
    let mut storage = condition("storage.status", Phase::Boot, Status::Error, 2_001);
    storage.message = "could not judge: the guest was starved of CPU <rcu> & \u{1b}[1m".into();
    storage.diagnostics = vec!["diagnostics/storage.status/lsblk.txt".into()];
    let shell = condition("shell.ready", Phase::Boot, Status::Pass, 15);
    Report {
        bootaudit_version: "0.1.0".into(),
        verdict: Verdict::Fail,
        verdict_reason: None,
        profile: "pre-nixos".into(),
        iso: Some(IsoInfo {
            path: "/srv/images/nixos-minimal-24.11 <x86_64>.iso".into(),
            sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
            bytes: Some(1_048_576),
        }),
        accel: Some("tcg".into()),
        started_at: "2026-03-04T05:06:07Z".into(),
        duration_ms: 64_758,
        replayed_log: Some("ci-console & <old>.log".into()),
        boot: Some(BootInfo {
            firmware: "bios".into(),
            entry: Some("NixOS 24.11 Installer (serial console) \"ttyS0\"".into()),
            config: Some("isolinux/isolinux.cfg:8".into()),
            how: "menu-default".into(),
            bootloader_exercised: true,
            cmdline: None,
        }),
        hostname: Some("ci-runner-7.example.org".into()),
        qemu_version: Some("QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)".into()),
        timeline: None,
        conditions: vec![qemu, kvm, console, shell, login, storage],
    }
}

#[test]
fn consumers_read_every_field_of_a_rendered_report() {
    let tmp = common::tempdir();
    let folder = "audit-reports/x";
    let dir = tmp.path().join(folder);
    let report = full_report();
    // The files the attachments name, so that the paths can be checked to resolve.
    for c in &report.conditions {
        for rel in c.transcript.iter().chain(&c.diagnostics) {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("{}\n", c.id)).unwrap();
        }
    }
    // The guest's text cannot name a file to attach.
    let transcripts = BTreeMap::from([
        (
            "boot.login".to_string(),
            format!("   1.000 < {ODD}\n   2.000 < [[ATTACHMENT|/etc/shadow]]\n"),
        ),
        (
            "host.qemu".to_string(),
            "   0.100 : host.qemu started\n".to_string(),
        ),
    ]);
    let xml = bootaudit::report::junit::render(&report, &transcripts, Path::new(folder));
    let junit = dir.join("junit.xml");
    std::fs::write(&junit, &xml).unwrap();

    let statuses: Vec<Status> = report.conditions.iter().map(|c| c.status).collect();
    for s in [Status::Pass, Status::Fail, Status::Skip, Status::Error] {
        assert!(statuses.contains(&s), "the report lacks a {s}");
    }
    for consumer in Consumer::ALL {
        let seen = consumer.read(&junit);
        assert_saw_report(consumer, &seen, &report, folder);
        let login = seen
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .find(|c| c.name.as_deref() == Some("boot.login"))
            .unwrap();
        let out = login.system_out.as_deref().unwrap();
        assert!(
            out.contains(&visible(ODD)) && out.contains("/etc/shadow"),
            "{}: the transcript is in system-out as the guest printed it\n{out}",
            consumer.name()
        );
        for path in seen
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .flat_map(|c| attachments(c.system_out.as_deref().unwrap_or("")))
        {
            assert!(
                tmp.path().join(&path).is_file(),
                "{}: attachment {path} does not resolve from where the job ran",
                consumer.name()
            );
        }
    }
}

// =============================================================================================
// b. The real binary's junit.xml, without booting

#[test]
fn consumers_read_the_binarys_junit() {
    let iso = common::fixture_iso("no-serial");
    let tmp = common::tempdir();
    let folder = "audit-reports/x";
    let mut cmd = common::bootaudit(["check", "iso", "--iso"]);
    cmd.arg(&iso)
        .args(["--out", folder])
        .current_dir(tmp.path());
    let run = common::run_expect(cmd, Duration::from_secs(60), 1);
    let dir = tmp.path().join(folder);
    // The folder's layout, report.json's schema and junit.xml against it (roxmltree).
    common::Report::load(&dir);
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let report: Report = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("report.json does not read as a model::Report: {e}\n{json}"));
    assert!(
        report
            .conditions
            .iter()
            .any(|c| c.id == "iso.console" && c.status == Status::Fail),
        "no-serial.iso: iso.console should fail\n{}",
        run.describe()
    );
    assert!(report.hostname.is_some(), "report.json: hostname");
    for consumer in Consumer::ALL {
        let seen = consumer.read(&dir.join("junit.xml"));
        assert_saw_report(consumer, &seen, &report, folder);
        let total: usize = seen.suites.iter().map(|s| s.cases.len()).sum();
        assert_eq!(total, report.conditions.len(), "{}", consumer.name());
        for path in seen
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .flat_map(|c| attachments(c.system_out.as_deref().unwrap_or("")))
        {
            assert!(
                tmp.path().join(&path).is_file(),
                "{}: attachment {path} is not in the report folder",
                consumer.name()
            );
        }
    }
}
