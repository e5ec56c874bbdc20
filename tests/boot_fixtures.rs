//! The core path, end to end: real QEMU (TCG here) boots the fixture images that
//! fixtures/build-images.sh builds from Debian packages (cached after the first build), and
//! each run must give exactly the expected verdict for every condition — the healthy image
//! passes everything, each broken variant fails exactly its broken condition, its dependents
//! skip with `blocked_by`, and everything else passes.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod common;

/// The boot-phase conditions of SPEC.md's catalog, in run order.
fn boot_ids() -> impl Iterator<Item = &'static str> {
    common::SPEC_IDS
        .iter()
        .copied()
        .skip_while(|id| !id.starts_with("boot."))
}

/// Build (or take from the cache) every fixture image once per test process.
fn fixtures() -> &'static BTreeMap<String, PathBuf> {
    static IMAGES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("fixtures/build-images.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run fixtures/build-images.sh");
        assert!(
            out.status.success(),
            "fixtures/build-images.sh failed (see its output above)"
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PathBuf::from)
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, p)
            })
            .collect()
    })
}

fn image(variant: &str) -> PathBuf {
    fixtures()
        .get(variant)
        .unwrap_or_else(|| panic!("fixture {variant} not built; have {:?}", fixtures().keys()))
        .clone()
}

struct Run {
    code: i32,
    /// What the terminal showed: the progress on stderr and the JSON on stdout.
    terminal: String,
    report: Value,
    out: tempfile::TempDir,
}

impl Run {
    /// The message of a condition that could not be judged because the guest was starved.
    fn starved(&self) -> Option<String> {
        self.report["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "error" && c["message"].as_str().is_some_and(is_starved))
            .map(|c| format!("{}: {}", c["id"], c["message"]))
    }

    fn status(&self, id: &str) -> (String, Option<String>, String) {
        let c = self.report["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no condition {id} in report"));
        (
            c["status"].as_str().unwrap().to_string(),
            c["blocked_by"].as_str().map(String::from),
            c["message"].as_str().unwrap_or("").to_string(),
        )
    }

    /// The likely cause the report names for a condition.
    fn cause(&self, id: &str) -> Option<String> {
        self.report["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["likely_cause"].as_str().map(String::from))
    }

    /// Each of `ids` names `cause` as its likely cause, in report.json and in its message.
    fn expect_caused_by(&self, cause: &str, ids: &[&str]) {
        for id in ids {
            assert_eq!(
                self.cause(id).as_deref(),
                Some(cause),
                "{id}: {}",
                self.status(id).2
            );
            assert!(
                self.status(id)
                    .2
                    .contains(&format!("likely cause: {cause}")),
                "{id}: {}",
                self.status(id).2
            );
        }
        assert_eq!(self.cause(cause), None, "{cause} is a root cause");
    }
}

/// The default profile with shorter waits for the conditions a test expects to time out, so
/// the test is quick; everything else keeps its real timeout (parallel TCG boots are slow).
/// Written as a user would: `extends: pre-nixos` and only the timeouts that differ.
fn profile_with_timeouts(dir: &Path, timeouts: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("extends: pre-nixos\ntimeouts:\n  conditions:\n");
    for (id, value) in timeouts {
        text.push_str(&format!("    {id}: {value}\n"));
    }
    let path = dir.join("profile.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn audit_with_timeouts(variant: &str, timeouts: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_with_timeouts(dir.path(), timeouts);
    audit(variant, &["--profile", profile.to_str().unwrap()])
}

/// Boots the tests may run at once: one per two host CPUs (the profile's guest has two vCPUs,
/// and TCG keeps each busy). Two guests on two cores take as long as one after the other and
/// starve each other; on a loaded runner that ends in RCU stalls.
fn boot_slot() -> SlotGuard {
    static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());
    let limit = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    let (busy, freed) = &SLOTS;
    let mut n = busy.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= limit {
        n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
    }
    *n += 1;
    SlotGuard(&SLOTS)
}

struct SlotGuard(&'static (Mutex<usize>, Condvar));

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let (busy, freed) = self.0;
        *busy.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}

/// Audit a fixture and replay its log. A run that could not judge because the guest was
/// starved of CPU (the host was too busy: see `stall_signatures`) says nothing of the image:
/// it is booted once more, and a second starved run fails the test.
fn audit(variant: &str, extra: &[&str]) -> Run {
    let run = audit_once(variant, extra);
    let run = match run.starved() {
        Some(why) => {
            eprintln!("{variant}: the guest was starved of CPU, booting it again: {why}");
            let again = audit_once(variant, extra);
            if let Some(why) = again.starved() {
                panic!("{variant}: the guest was starved of CPU on two boots in a row (the host is too busy for the boot tests, or the image's kernel stalls on every boot): {why}");
            }
            again
        }
        None => run,
    };
    assert_replay_agrees(&run, extra);
    run
}

/// The test images' passwords, where fixtures/profiles/ take them from the environment.
const FIXTURE_PASSWORDS: &[(&str, &str)] = &[
    ("BOOTAUDIT_OPERATOR_PASSWORD", "bootaudit-operator"),
    ("BOOTAUDIT_ROOT_PASSWORD", "bootaudit-root"),
    // The embedded generic profile's default source.
    ("BOOTAUDIT_PASSWORD", "bootaudit-root"),
];

fn audit_once(variant: &str, extra: &[&str]) -> Run {
    let iso = image(variant);
    let out = tempfile::tempdir().unwrap();
    let mut slot = Some(boot_slot());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootaudit"))
        .envs(FIXTURE_PASSWORDS.iter().copied())
        .args(["run", "--iso"])
        .arg(&iso)
        .arg("--out")
        .arg(out.path())
        .args(["--format", "json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bootaudit");
    // The slot is for the CPU-heavy part, the boot up to the login; the waits after it (a
    // condition expected to time out) leave the CPUs to the next test's boot.
    let progress = BufReader::new(child.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in progress.lines().map_while(Result::ok) {
            if line.split_whitespace().nth(1) == Some("boot.login") {
                slot.take();
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let output = child.wait_with_output().expect("run bootaudit");
    let progress = stderr.join().unwrap();
    eprintln!(
        "{variant}: {:.0}s\n{progress}",
        started.elapsed().as_secs_f64(),
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON report");
    let from_file: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report, from_file, "stdout and report.json differ");
    let xml = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    roxmltree::Document::parse(&xml).expect("junit.xml is well-formed");
    Run {
        code: output.status.code().unwrap_or(-1),
        terminal: progress + &String::from_utf8_lossy(&output.stdout),
        report,
        out,
    }
}

/// Expect every boot condition to pass except those listed: `fail` ones fail, and the
/// `(id, blocker)` ones skip blocked by `blocker`.
fn expect_boot(run: &Run, fail: &[&str], blocked: &[(&str, &str)]) {
    let mut problems = Vec::new();
    for id in boot_ids() {
        let (status, blocked_by, message) = run.status(id);
        let want = if fail.contains(&id) {
            ("fail", None)
        } else if let Some((_, by)) = blocked.iter().find(|(b, _)| *b == id) {
            ("skip", Some(by.to_string()))
        } else {
            ("pass", None)
        };
        if status != want.0 || (want.0 == "skip" && blocked_by != want.1) {
            problems.push(format!(
                "{id}: got {status} (blocked_by {blocked_by:?}) \"{message}\", want {} {:?}",
                want.0, want.1
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "verdicts differ:\n{}",
        problems.join("\n")
    );
    let want_code = if fail.is_empty() { 0 } else { 1 };
    assert_eq!(run.code, want_code, "exit code");
    for id in [
        "host.qemu",
        "virt.qemu-start",
        "iso.resolve",
        "iso.bootable",
    ] {
        assert_eq!(run.status(id).0, "pass", "{id}");
    }
}

/// Does this message say the guest was starved of CPU (live: could not judge; replay: not
/// observed)?
fn is_starved(message: &str) -> bool {
    message.contains("the guest was starved of CPU")
}

/// `bootaudit replay` of the run's serial.raw must reach the live verdict of every boot
/// condition: the same judges read the same framed outputs. `extra` is the run's profile.
/// A log has no clock: what a live run could not judge because the guest was starved before
/// its time ran out, replay does not observe (and says the log shows the starvation).
fn assert_replay_agrees(run: &Run, extra: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    // What the run left out is in its record: the replay is not told again.
    let mut kept = Vec::new();
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        match *a {
            "--skip" | "--only" => {
                args.next();
            }
            a => kept.push(a),
        }
    }
    let extra = &kept[..];
    let output = Command::new(env!("CARGO_BIN_EXE_bootaudit"))
        .arg("replay")
        .arg(run.out.path().join("serial.raw"))
        .arg("--out")
        .arg(out.path())
        .args(["--format", "json"])
        .args(extra)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let replay: Value = serde_json::from_slice(&output.stdout).expect("replay prints its report");
    let mut differ = Vec::new();
    for c in replay["conditions"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let (live, live_blocked, live_message) = run.status(id);
        if live == "error"
            && is_starved(&live_message)
            && !c["message"].as_str().is_some_and(is_starved)
        {
            differ.push(format!(
                "{id}: replay does not say the guest was starved: {}",
                c["message"]
            ));
        }
        let message = c["message"].as_str().unwrap_or("");
        // Judged on the host, not on the console: the run's record (serial.events) says it.
        let from_record = c["phase"] != "boot";
        if from_record && !message.ends_with("(from the run's record: not a console condition)") {
            differ.push(format!(
                "{id}: not said to come from the run's record: {message}"
            ));
        }
        // A verdict from a log names the line it rests on; one from the record (a wait that
        // ran out, the session's end) says so instead.
        if !from_record
            && matches!(c["status"].as_str(), Some("pass" | "fail"))
            && !c["log_line"].is_u64()
            && !message.contains("from the run's record")
        {
            differ.push(format!("{id}: {} without a log line", c["status"]));
        }
        if c["likely_cause"].as_str() != run.cause(id).as_deref() {
            differ.push(format!(
                "{id}: live likely cause {:?}, replay {}",
                run.cause(id),
                c["likely_cause"]
            ));
        }
        if c["status"] != live.as_str() || c["blocked_by"].as_str() != live_blocked.as_deref() {
            differ.push(format!(
                "{id}: live {live} {live_blocked:?} \"{live_message}\", replay {} {} \"{}\"",
                c["status"], c["blocked_by"], c["message"]
            ));
        }
    }
    // The same milestones, found on the same lines: replay names their log lines.
    let names = |r: &Value| -> Vec<String> {
        r["timeline"]["milestones"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    if names(&replay) != names(&run.report) {
        differ.push(format!(
            "milestones: live {:?}, replay {:?}",
            names(&run.report),
            names(&replay)
        ));
    }
    if let Some(m) = replay["timeline"]["milestones"].as_array() {
        if m.iter().any(|m| !m["log_line"].is_u64()) {
            differ.push(format!("a replayed milestone without its log line: {m:?}"));
        }
        // Timed from serial.timing as the live run timed them from the console.
        let live = run.report["timeline"]["milestones"].as_array();
        for (r, l) in m.iter().zip(live.into_iter().flatten()) {
            let (r_at, l_at) = (r["at_ms"].as_i64(), l["at_ms"].as_i64());
            if !matches!((r_at, l_at), (Some(a), Some(b)) if (a - b).abs() <= 100) {
                differ.push(format!(
                    "milestone {}: live at {l_at:?}, replay {r_at:?}",
                    l["name"]
                ));
            }
        }
    }
    if !out.path().join("report.html").is_file() {
        differ.push("the replay folder has no report.html".into());
    }
    assert!(
        differ.is_empty(),
        "replay disagrees with the live run:\n{}",
        differ.join("\n")
    );
    // What the log cannot show (a wait that ran out after a stall, a failure before the
    // boot, the session's end, an interrupt) comes from the run's record: the live exit code.
    assert_eq!(output.status.code(), Some(run.code), "replay exit code");
    assert_eq!(replay["verdict"], run.report["verdict"], "replay verdict");
}

fn message(run: &Run, id: &str) -> String {
    run.status(id).2
}

/// The healthy image's run, booted once per test process and shared: its own test checks it,
/// and the fault tests compare their run with it (`bootaudit compare`). Its report folder lives
/// as long as the process (a static is never dropped), in the system's temp folder.
fn healthy_run() -> &'static Run {
    static HEALTHY: OnceLock<Run> = OnceLock::new();
    HEALTHY.get_or_init(|| audit("healthy", &[]))
}

/// `bootaudit compare OLD NEW --format json` of two runs' report folders: exit code and JSON.
fn compare(old: &Run, new: &Run) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_bootaudit"))
        .arg("compare")
        .arg(old.out.path())
        .arg(new.out.path())
        .args(["--format", "json"])
        .output()
        .expect("run bootaudit compare");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "compare's stdout is not JSON: {e}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), json)
}

/// The ids of a comparison's `changes` of one kind (`new_failure`, `fixed`, …), in order.
fn changed(c: &Value, kind: &str) -> Vec<String> {
    c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["change"] == kind)
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn healthy_image_passes_everything() {
    let run = healthy_run();
    expect_boot(run, &[], &[]);
    // A run compared with itself: nothing changed, nothing grew.
    let (code, c) = compare(run, run);
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(
        (c["changes"].clone(), c["slower"].clone()),
        (Value::Array(vec![]), Value::Array(vec![]))
    );
    assert_eq!(run.report["verdict"], "pass");
    assert_eq!(run.status("iso.console").0, "pass");
    // The evidence is kept: the raw console, the readable transcript, per-condition logs.
    let raw = std::fs::read(run.out.path().join("serial.raw")).unwrap();
    assert!(raw.windows(17).any(|w| w == b"(automatic login)"));
    let log = std::fs::read_to_string(run.out.path().join("serial.log")).unwrap();
    assert!(
        log.contains(" > ") && log.contains(" < "),
        "serial.log marks sent and received lines"
    );
    // Framed commands read as the catalog gives them, the framing named apart.
    let sent: Vec<&str> = log.lines().filter(|l| l.contains(" > ")).collect();
    assert!(
        sent.iter()
            .any(|l| l.contains(" > systemctl show -p LoadState") && l.contains("    [framed BA_")),
        "sent lines read as typed, the framing apart: {sent:#?}"
    );
    assert!(
        !sent.iter().any(|l| l.contains("\"BA\"\"_")),
        "no framing wrapper in a sent line: {sent:#?}"
    );
    let cond =
        std::fs::read_to_string(run.out.path().join("conditions/storage.status.log")).unwrap();
    assert!(cond.contains("STATE=applied"), "{cond}");
    // The boot timeline: the milestones the fixture's console shows, in boot order after
    // power-on, and the guest's own account with its slowest units.
    let t = &run.report["timeline"];
    let power_on = t["power_on_ms"].as_u64().expect("power_on_ms");
    let milestones: Vec<(&str, u64)> = t["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["at_ms"].as_u64().unwrap()))
        .collect();
    let names: Vec<&str> = milestones.iter().map(|m| m.0).collect();
    assert_eq!(
        names,
        ["bootloader", "initrd", "userspace", "login prompt"],
        "{t:#}"
    );
    assert!(
        milestones.windows(2).all(|w| w[0].1 <= w[1].1) && milestones[0].1 >= power_on,
        "{t:#}"
    );
    let login = run.status("boot.login");
    assert_eq!(login.0, "pass");
    // A boot of normal speed gets systemd's times only (the slowest units cost seconds).
    assert!(
        t["guest"]["output"]
            .as_str()
            .unwrap()
            .contains("Startup finished"),
        "{t:#}"
    );
    common::html::check(
        run.out.path(),
        "healthy",
        common::html::Expect {
            failed: None,
            stages: 5,
            bars: true,
        },
    );
    // The replay's page draws the same stages, timed from the recorded console.
    let replayed = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_bootaudit"))
        .arg("replay")
        .arg(run.out.path().join("serial.raw"))
        .arg("--out")
        .arg(replayed.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    common::html::check(
        replayed.path(),
        "healthy-replay",
        common::html::Expect {
            failed: None,
            stages: 4,
            bars: false,
        },
    );
}

#[test]
fn no_serial_console_is_caught_before_booting() {
    let run = audit("no-serial", &[]);
    assert_eq!(run.status("iso.console").0, "fail");
    assert!(message(&run, "iso.console").contains("ttyS0"));
    for (id, by) in blocked_from("boot.console") {
        let (status, blocked_by, _) = run.status(id);
        assert_eq!(
            (status.as_str(), blocked_by.as_deref()),
            ("skip", Some(by)),
            "{id}"
        );
    }
    assert_eq!(run.code, 1);
    // No boot was spent: the whole audit is seconds.
    assert!(run.report["duration_ms"].as_u64().unwrap() < 30_000);
}

#[test]
fn no_autologin() {
    let run = audit("no-autologin", &[]);
    // The announcement needs no shell: the console shows it, so it passes.
    let blocked: Vec<_> = blocked_from("shell.ready")
        .into_iter()
        .filter(|(id, _)| *id != "console.lan-announce")
        .collect();
    expect_boot(&run, &["boot.autologin"], &blocked);
    assert!(message(&run, "boot.autologin").contains("login prompt"));
    // A watch names the line it matched and when that line came.
    let watched = message(&run, "console.lan-announce");
    assert!(
        watched.contains("LAN IPv4 address") && watched.contains("which came at +"),
        "{watched}"
    );
    let log = std::fs::read_to_string(run.out.path().join("conditions/console.lan-announce.log"))
        .unwrap();
    assert!(log.contains("which came at +"), "{log}");
}

#[test]
fn sudo_asking_for_a_password() {
    let run = audit("sudo-password", &[]);
    expect_boot(
        &run,
        &["shell.root"],
        &[
            ("storage.vg-main", "shell.root"),
            ("storage.lv-slash", "shell.root"),
        ],
    );
    assert!(
        message(&run, "shell.root").contains("password"),
        "{}",
        message(&run, "shell.root")
    );
}

/// What a failed storage.status explains: each is judged, fails, and names it as the cause.
const AFTER_STORAGE_STATUS: &[&str] = &[
    "storage.vg-main",
    "storage.lv-slash",
    "unit.pre-nixos-inactive",
];

fn storage_status_and_after() -> Vec<&'static str> {
    let mut ids = vec!["storage.status"];
    ids.extend(AFTER_STORAGE_STATUS);
    ids
}

#[test]
fn provisioning_failed() {
    let run = audit("provision-failed", &[]);
    expect_boot(&run, &storage_status_and_after(), &[]);
    run.expect_caused_by("storage.status", AFTER_STORAGE_STATUS);
    let diag = run.out.path().join("diagnostics/storage.status");
    assert!(
        diag.join("pre-nixos-journal.txt").exists(),
        "diagnostics collected"
    );
    // report.html in Chromium: the root cause is on the first screen, the timeline drawn.
    common::html::check(
        run.out.path(),
        "provision-failed",
        common::html::Expect {
            failed: Some("storage.status"),
            stages: 5,
            bars: true,
        },
    );
    // Compared with the healthy run: the verdict changes, the new failures are listed first,
    // in run order, and the comparison exits 1.
    let (code, c) = compare(healthy_run(), &run);
    assert_eq!(code, 1, "{c:#}");
    assert_eq!(
        (&c["verdict"]["old"], &c["verdict"]["new"]),
        (&"pass".into(), &"fail".into())
    );
    assert_eq!(
        changed(&c, "new_failure"),
        storage_status_and_after(),
        "{c:#}"
    );
    let changes = c["changes"].as_array().unwrap();
    let failures = storage_status_and_after().len();
    assert!(
        changes[..failures]
            .iter()
            .all(|x| x["change"] == "new_failure")
            && changes[failures..]
                .iter()
                .all(|x| x["change"] != "new_failure"),
        "new failures first: {c:#}"
    );
}

#[test]
fn provisioning_hangs() {
    // A shorter wait keeps the test quick; the verdict is the same at any timeout.
    let run = audit_with_timeouts("provision-hang", &[("storage.status", "25s")]);
    expect_boot(&run, &storage_status_and_after(), &[]);
    run.expect_caused_by("storage.status", AFTER_STORAGE_STATUS);
    // The unit's state was there to read: still starting, read once (it follows
    // storage.status, which failed), not polled for its whole timeout.
    let unit = message(&run, "unit.pre-nixos-inactive");
    assert!(
        unit.contains("activating") && unit.contains("judged on what the guest had shown"),
        "{unit}"
    );
    assert!(
        message(&run, "storage.status").contains("activating"),
        "{}",
        message(&run, "storage.status")
    );
}

#[test]
fn slow_provisioning_still_passes() {
    let run = audit("provision-slow", &[]);
    expect_boot(&run, &[], &[]);
    // Compared with the healthy run: no verdict changed, but storage.status waited for the
    // fixture's 45 s of planning (less what the boot took since the service started): a timing
    // regression, exit 1.
    let (code, c) = compare(healthy_run(), &run);
    assert_eq!(code, 1, "{c:#}");
    assert!(
        c["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["regression"] == false),
        "{c:#}"
    );
    let storage = c["slower"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "condition" && s["name"] == "storage.status")
        .unwrap_or_else(|| panic!("storage.status is not slower: {c:#}"));
    assert!(
        storage["new_ms"].as_u64() > storage["old_ms"].as_u64(),
        "{storage}"
    );
}

#[test]
fn unit_never_settles() {
    let run = audit_with_timeouts("unit-never-settles", &[("unit.pre-nixos-inactive", "20s")]);
    expect_boot(&run, &["unit.pre-nixos-inactive"], &[]);
}

#[test]
fn a_oneshot_that_remains_active_fails_at_once() {
    // Its real timeout: the verdict comes from the final state, not from waiting.
    let run = audit("unit-remains-active", &[]);
    expect_boot(&run, &["unit.pre-nixos-inactive"], &[]);
    let msg = message(&run, "unit.pre-nixos-inactive");
    assert!(
        msg.contains("SubState=exited") && msg.contains("final") && !msg.contains("polling"),
        "{msg}"
    );
}

#[test]
fn wrong_lvm_names() {
    let run = audit("wrong-lvm", &[]);
    expect_boot(&run, &["storage.vg-main", "storage.lv-slash"], &[]);
    run.expect_caused_by("storage.vg-main", &["storage.lv-slash"]);
}

#[test]
fn no_lan_interface() {
    let run = audit("no-lan", &[]);
    expect_boot(&run, &["net.lan-ipv4", "console.lan-announce"], &[]);
    run.expect_caused_by("net.lan-ipv4", &["console.lan-announce"]);
    assert!(
        message(&run, "net.lan-ipv4").contains("does not exist"),
        "{}",
        message(&run, "net.lan-ipv4")
    );
}

#[test]
fn no_dhcp_lease() {
    let run = audit("no-dhcp", &[]);
    expect_boot(&run, &["net.lan-ipv4", "console.lan-announce"], &[]);
    run.expect_caused_by("net.lan-ipv4", &["console.lan-announce"]);
    let msg = message(&run, "net.lan-ipv4");
    assert!(msg.contains("final"), "{msg}");
}

#[test]
fn a_link_networkd_leaves_unmanaged_fails_at_once() {
    let run = audit("lan-unmanaged", &[]);
    expect_boot(&run, &["net.lan-ipv4", "console.lan-announce"], &[]);
    run.expect_caused_by("net.lan-ipv4", &["console.lan-announce"]);
    let msg = message(&run, "net.lan-ipv4");
    assert!(msg.contains("unmanaged") && msg.contains("final"), "{msg}");
}

/// Every boot condition from `first` on, with the prerequisite named in `blocked_by` when the
/// condition before `first` failed and everything after it is blocked in turn.
fn blocked_from(first: &str) -> Vec<(&'static str, &'static str)> {
    const CHAIN: &[(&str, &str)] = &[
        ("boot.console", "iso.console"),
        ("boot.login", "boot.console"),
        ("boot.autologin", "boot.login"),
        ("shell.ready", "boot.autologin"),
        ("shell.root", "shell.ready"),
        ("storage.tools", "shell.ready"),
        ("storage.status", "shell.ready"),
        ("storage.vg-main", "shell.root"),
        ("storage.lv-slash", "shell.root"),
        ("net.lan-ipv4", "shell.ready"),
        ("unit.pre-nixos-inactive", "shell.ready"),
        ("console.lan-announce", "boot.login"),
    ];
    CHAIN
        .iter()
        .copied()
        .skip_while(|(id, _)| *id != first)
        .collect()
}

fn all_blocked_after_login() -> Vec<(&'static str, &'static str)> {
    blocked_from("boot.autologin")
}

#[test]
fn kernel_panic_is_reported_at_once() {
    // A generous login wait: on a loaded host a starved TCG guest has taken over 270 s to
    // reach its panic (RCU stalls first), so 200 s (×3); "at once" is measured from the panic line.
    let run = audit_with_timeouts("kernel-panic", &[("boot.login", "200s")]);
    expect_boot(&run, &["boot.login"], &all_blocked_after_login());
    let msg = message(&run, "boot.login");
    assert!(msg.contains("Kernel panic - not syncing"), "{msg}");
    // Reported within seconds of the panic line's arrival (serial.timing), not at a timeout.
    let login = run.report["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "boot.login")
        .unwrap();
    let ended = login["started_ms"].as_u64().unwrap() + login["duration_ms"].as_u64().unwrap();
    let raw_bytes = std::fs::read(run.out.path().join("serial.raw")).unwrap();
    let panic_at = raw_bytes
        .windows(12)
        .position(|w| w == b"Kernel panic")
        .expect("the panic line is in serial.raw") as u64;
    let timing = std::fs::read_to_string(run.out.path().join("serial.timing")).unwrap();
    let arrived = timing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(o, t)| (o.parse::<u64>().unwrap(), t.parse::<u64>().unwrap()))
        .take_while(|(offset, _)| *offset <= panic_at)
        .last()
        .expect("serial.timing covers the panic")
        .1;
    assert!(
        ended.saturating_sub(arrived) < 15_000,
        "boot.login ended {} ms after the panic line arrived: {login}",
        ended.saturating_sub(arrived)
    );
    let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
    assert!(
        raw.contains("end Kernel panic")
            || raw.contains("Kernel Offset")
            || raw.matches('\n').count() > 5,
        "the panic's tail is kept"
    );
}

#[test]
fn emergency_mode() {
    let run = audit("emergency", &[]);
    expect_boot(&run, &["boot.login"], &all_blocked_after_login());
    assert!(
        message(&run, "boot.login").contains("emergency"),
        "{}",
        message(&run, "boot.login")
    );
}

#[test]
fn a_starved_guest_is_an_error_not_a_failure() {
    // The fixture's kernel reports an RCU stall (as a guest on an overloaded host does) and no
    // getty ever comes: boot.login runs out of time after the stall, which says the run could
    // not judge the image, not that the image is broken.
    let dir = tempfile::tempdir().unwrap();
    // The stall comes ~15 s into the boot on an idle host, 2-3× later on a loaded one: 30 s
    // (×3 under TCG) leaves room.
    let profile = profile_with_timeouts(dir.path(), &[("boot.login", "30s")]);
    let extra = ["--profile", profile.to_str().unwrap()];
    let run = audit_once("cpu-stall", &extra);
    let (status, _, msg) = run.status("boot.login");
    assert_eq!(status, "error", "{msg}");
    assert!(is_starved(&msg), "{msg}");
    assert!(
        msg.contains("rcu: INFO: rcu_preempt detected stalls") && msg.contains("no login prompt"),
        "quotes the stall and what ran out of time: {msg}"
    );
    assert_eq!(run.report["verdict"], "error");
    assert_eq!(run.code, 3, "exit code of a run that could not judge");
    for (id, by) in all_blocked_after_login() {
        assert_eq!(run.status(id).1.as_deref(), Some(by), "{id}");
    }
    assert!(run.starved().is_some());
    assert_replay_agrees(&run, &extra);
}

#[test]
fn flooded_console_still_passes() {
    let run = audit("flood", &[]);
    expect_boot(&run, &[], &[]);
}

#[test]
fn fancy_prompt_still_passes() {
    // With a boot condition left out: the replay of the folder, given no flag, leaves it out
    // too (the run's record says so) and passes as the run did.
    let run = audit("fancy-prompt", &["--skip", "storage.tools"]);
    assert_eq!(run.code, 0, "exit code");
    for id in boot_ids() {
        let want = if id == "storage.tools" {
            "skip"
        } else {
            "pass"
        };
        assert_eq!(run.status(id).0, want, "{id}: {}", run.status(id).2);
    }
}

fn qemu_children(parent: u32, with_arg: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name in parentheses: state, ppid, …
        let Some(rest) = stat.rsplit_once(") ") else {
            continue;
        };
        let ppid: u32 = rest
            .1
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == parent && cmd.starts_with("qemu-system") && cmd.contains(with_arg) {
            pids.push(pid);
        }
    }
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|r| r.1.starts_with('Z')))
}

/// What the kill campaign does to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blow {
    /// A signal to bootaudit, at a random moment from its start.
    Audit(i32),
    /// A signal to the boot's QEMU, at a random moment after it started.
    Qemu(i32),
}

/// Every process whose command line names `path` (the runs' TMPDIR: QEMU's sockets and disks).
fn processes_naming(path: &Path) -> Vec<(u32, String)> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle) && alive(pid) {
            found.push((pid, cmd));
        }
    }
    found
}

/// The kill campaign: audits of the healthy image, each hit at a random moment of its real
/// boot with SIGINT, SIGTERM or SIGKILL, or with its QEMU killed (SIGKILL, SIGTERM) or crashed
/// (SIGABRT). After each: no process is left, every report written is valid and the exit code
/// follows SPEC (130 for an interruption, 3 for a QEMU killed from outside, never a failed
/// condition); each later run reaps what a SIGKILLed one left, reporting it once; after the
/// campaign, `bootaudit clean` leaves no temporary folder and no record. A few runs here;
/// benches/kill_campaign.sh runs the long campaign with KILL_CAMPAIGN_RUNS.
#[test]
fn kill_campaign_leaves_nothing_behind() {
    let runs: usize = std::env::var("KILL_CAMPAIGN_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("KILL_CAMPAIGN_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kill campaign: {runs} runs, KILL_CAMPAIGN_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let blows = [
        Blow::Audit(libc::SIGINT),
        Blow::Qemu(libc::SIGKILL),
        Blow::Audit(libc::SIGKILL),
        Blow::Audit(libc::SIGTERM),
        Blow::Qemu(libc::SIGTERM),
        Blow::Qemu(libc::SIGABRT),
    ];
    let iso = image("healthy");
    let tmp = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let runs_tmp = tmp.path().join("tmp");
    std::fs::create_dir(&runs_tmp).unwrap();
    let bootaudit = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bootaudit"));
        c.envs(FIXTURE_PASSWORDS.iter().copied())
            .env("TMPDIR", &runs_tmp)
            .env("BOOTAUDIT_STATE_DIR", state.path())
            .args(args);
        c
    };
    let _slot = boot_slot();
    let mut problems = Vec::new();
    let mut tally: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    let mut killed_pid: Option<u32> = None;
    for i in 0..runs {
        let blow = blows[i % blows.len()];
        let out = tmp.path().join(format!("out-{i}"));
        let err_path = tmp.path().join(format!("stderr-{i}"));
        let started = Instant::now();
        let mut child = bootaudit(&["run", "--iso", iso.to_str().unwrap(), "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let mut qemus: Vec<u32> = Vec::new();
        let at = match blow {
            Blow::Audit(sig) => {
                let delay = Duration::from_millis(rng.u64(1_000..15_000));
                while started.elapsed() < delay {
                    std::thread::sleep(Duration::from_millis(50));
                    for q in qemu_children(child.id(), "media=cdrom") {
                        if !qemus.contains(&q) {
                            qemus.push(q);
                        }
                    }
                }
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.id() as i32, sig) };
                format!("bootaudit at {:.1}s", delay.as_secs_f64())
            }
            Blow::Qemu(sig) => {
                let deadline = Instant::now() + Duration::from_secs(60);
                while qemus.is_empty() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    qemus = qemu_children(child.id(), "media=cdrom");
                }
                assert!(!qemus.is_empty(), "run {i}: QEMU did not start within 60 s");
                let delay = Duration::from_millis(rng.u64(0..10_000));
                std::thread::sleep(delay);
                // SAFETY: signalling our child's child.
                unsafe { libc::kill(qemus[0] as i32, sig) };
                format!("QEMU {:.1}s after its start", delay.as_secs_f64())
            }
        };
        // Bounded: a run that hangs after its blow is a failure of the campaign.
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                problems.push(format!("run {i} ({blow:?}): hung for 120 s after the blow"));
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let ended = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(s)) => format!("signal {s}"),
            _ => "?".into(),
        };
        let (name, expected) = match blow {
            Blow::Audit(libc::SIGKILL) => ("SIGKILL to bootaudit", "signal 9"),
            Blow::Audit(libc::SIGINT) => ("SIGINT to bootaudit", "exit 130"),
            Blow::Audit(_) => ("SIGTERM to bootaudit", "exit 130"),
            Blow::Qemu(libc::SIGKILL) => ("SIGKILL to QEMU", "exit 3"),
            Blow::Qemu(libc::SIGTERM) => ("SIGTERM to QEMU", "exit 3"),
            Blow::Qemu(_) => ("SIGABRT to QEMU", "exit 3"),
        };
        let entry = tally.entry(name.to_string()).or_default();
        entry.0 += 1;
        *entry.1.entry(ended.clone()).or_default() += 1;
        eprintln!("run {i}: {name} ({at}) → {ended}");
        if ended != expected {
            problems.push(format!(
                "run {i} ({name}, {at}): {ended}, SPEC says {expected}\n{stderr}"
            ));
        }
        // A SIGKILLed run's leftovers are reaped, and reported, by the next run.
        if let Some(pid) = killed_pid.take() {
            if !stderr.contains(&format!("an earlier run (pid {pid},")) {
                problems.push(format!(
                    "run {i}: did not report reaping SIGKILLed run {pid}:\n{stderr}"
                ));
            }
        }
        if blow == Blow::Audit(libc::SIGKILL) {
            killed_pid = Some(child.id());
        }
        // No process is left: QEMU dies with bootaudit (at once, or by PDEATHSIG).
        let gone_by = Instant::now() + Duration::from_secs(5);
        while (!processes_naming(&runs_tmp).is_empty() || qemus.iter().any(|&p| alive(p)))
            && Instant::now() < gone_by
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for (pid, cmd) in processes_naming(&runs_tmp) {
            problems.push(format!("run {i} ({name}): process {pid} left: {cmd}"));
            // SAFETY: a leftover of this test's own runs.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // Every report written is valid.
        match std::fs::read_to_string(out.join("report.json")) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(report) => {
                    let want = match expected {
                        "exit 130" => Some("interrupted"),
                        "exit 3" => Some("error"),
                        _ => None,
                    };
                    if want.is_some() && report["verdict"].as_str() != want {
                        problems.push(format!(
                            "run {i} ({name}): verdict {} in report.json",
                            report["verdict"]
                        ));
                    }
                    for c in report["conditions"].as_array().unwrap() {
                        if c["status"] == "fail" {
                            problems.push(format!(
                                "run {i} ({name}): {} failed — the image was blamed: {}",
                                c["id"], c["message"]
                            ));
                        }
                    }
                    if matches!(blow, Blow::Qemu(_)) {
                        let says = report["conditions"].as_array().unwrap().iter().any(|c| {
                            c["status"] == "error"
                                && c["message"]
                                    .as_str()
                                    .is_some_and(|m| m.contains("not a fault of the image"))
                        });
                        if !says {
                            problems.push(format!(
                                "run {i} ({name}): no error says it is not the image's fault"
                            ));
                        }
                    }
                }
                Err(e) => problems.push(format!("run {i} ({name}): report.json invalid: {e}")),
            },
            Err(_) if blow == Blow::Audit(libc::SIGKILL) => {}
            Err(e) => problems.push(format!("run {i} ({name}): no report.json: {e}")),
        }
        if let Ok(xml) = std::fs::read_to_string(out.join("junit.xml")) {
            if let Err(e) = roxmltree::Document::parse(&xml) {
                problems.push(format!("run {i} ({name}): junit.xml invalid: {e}"));
            }
        }
        // The run's own console replays to the live verdict and exit code: interrupted (130)
        // or the infrastructure's error (3), from the run's record (serial.events).
        if out.join("report.json").is_file() && out.join("serial.raw").is_file() {
            let replayed = bootaudit(&["replay"])
                .arg(&out)
                .arg("--out")
                .arg(tmp.path().join(format!("replay-{i}")))
                .args(["--format", "json"])
                .stderr(Stdio::null())
                .output()
                .unwrap();
            let code = replayed.status.code().map(|c| format!("exit {c}"));
            if code.as_deref() != Some(ended.as_str()) {
                problems.push(format!(
                    "run {i} ({name}): live {ended}, replay of its folder {code:?}: {}",
                    String::from_utf8_lossy(&replayed.stdout)
                        .lines()
                        .find(|l| l.contains("verdict"))
                        .unwrap_or("")
                ));
            }
        }
    }
    let clean = bootaudit(&["clean"]).output().unwrap();
    let clean_out = String::from_utf8_lossy(&clean.stdout);
    if let Some(pid) = killed_pid {
        if !clean_out.contains(&format!("an earlier run (pid {pid},")) {
            problems.push(format!(
                "clean did not reap SIGKILLed run {pid}:\n{clean_out}"
            ));
        }
    }
    assert_eq!(clean.status.code(), Some(0), "bootaudit clean: {clean_out}");
    let left: Vec<_> = std::fs::read_dir(&runs_tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let records: Vec<_> = std::fs::read_dir(state.path().join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    eprintln!(
        "kill campaign (seed {seed}): {runs} runs; temporary folders left after clean: {}; records left: {}",
        left.len(),
        records.len()
    );
    for (name, (n, ends)) in &tally {
        eprintln!("  {name}: {n} runs, {ends:?}");
    }
    if !left.is_empty() {
        problems.push(format!("left in TMPDIR after clean: {left:?}"));
    }
    if !records.is_empty() {
        problems.push(format!("cleanup records left: {records:?}"));
    }
    assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
}

// ---- images that are not pre-nixos: each with its profile from fixtures/profiles/ --------

fn fixture_profile(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/profiles")
        .join(format!("{name}.yaml"))
        .to_string_lossy()
        .into_owned()
}

/// Expect every condition of the run's boot phase to pass except those listed (`fail`), and
/// the `(id, blocker)` ones to skip blocked; the exit code follows.
fn expect_verdicts(run: &Run, fail: &[&str], blocked: &[(&str, &str)]) {
    let mut problems = Vec::new();
    let conditions = run.report["conditions"].as_array().unwrap();
    for c in conditions {
        let id = c["id"].as_str().unwrap();
        let phase = c["phase"].as_str().unwrap();
        let status = c["status"].as_str().unwrap();
        let by = c["blocked_by"].as_str();
        let want = if fail.contains(&id) {
            ("fail", None)
        } else if let Some((_, b)) = blocked.iter().find(|(x, _)| *x == id) {
            ("skip", Some(*b))
        } else if phase == "boot"
            || ["iso.console", "iso.bootable", "host.qemu-devices"].contains(&id)
        {
            ("pass", None)
        } else {
            continue;
        };
        if status != want.0 || (want.0 == "skip" && by != want.1) {
            problems.push(format!(
                "{id}: got {status} (blocked_by {by:?}) {}, want {} {:?}",
                c["message"], want.0, want.1
            ));
        }
    }
    for id in fail.iter().chain(blocked.iter().map(|(i, _)| i)) {
        if !conditions.iter().any(|c| c["id"] == *id) {
            problems.push(format!("{id}: not in the report"));
        }
    }
    assert!(
        problems.is_empty(),
        "verdicts differ:\n{}",
        problems.join("\n")
    );
    assert_eq!(run.code, if fail.is_empty() { 0 } else { 1 }, "exit code");
}

/// No file of the report folder (serial.*, transcripts, report.json, junit.xml, report.html,
/// qemu.log, diagnostics), nor the terminal, holds any of the test images' passwords.
fn assert_no_password_in_report(run: &Run) {
    for (_, password) in FIXTURE_PASSWORDS {
        assert!(
            !run.terminal.contains(password),
            "the terminal showed a password"
        );
    }
    let files = walk(run.out.path());
    for name in [
        "serial.raw",
        "serial.log",
        "qemu.log",
        "report.json",
        "junit.xml",
        "report.html",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "no {name} was searched"
        );
    }
    for entry in files {
        let bytes = std::fs::read(&entry).unwrap();
        for (_, password) in FIXTURE_PASSWORDS {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{} holds a password",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn boot_how(run: &Run) -> (String, bool) {
    let b = &run.report["boot"];
    (
        b["how"].as_str().unwrap_or("").to_string(),
        b["bootloader_exercised"].as_bool().unwrap_or(true),
    )
}

#[test]
fn appliance_root_logs_in_with_a_password_into_dash() {
    let profile = fixture_profile("appliance");
    let run = audit("appliance", &["--profile", &profile]);
    expect_verdicts(&run, &[], &[]);
    assert!(message(&run, "boot.session").contains("logged in as `root` with the password"));
    assert!(message(&run, "shell.ready").contains("`root`"));
    let log = std::fs::read_to_string(run.out.path().join("serial.log")).unwrap();
    assert!(
        log.contains("> [secret]"),
        "the typed password shows as [secret]"
    );
    assert_no_password_in_report(&run);
}

/// The embedded generic profile as shipped, with only its port changed: the console on the
/// virtio console (QEMU's virtconsole), the kernel command line naming hvc0.
#[test]
fn generic_profile_on_a_virtio_console() {
    let run = audit(
        "appliance-hvc0",
        &["--profile", "generic", "--var", "port=hvc0"],
    );
    expect_verdicts(&run, &[], &[]);
    assert!(message(&run, "iso.console").contains("to hvc0"));
    assert_no_password_in_report(&run);
}

#[test]
fn appliance_with_a_failed_unit_fails_only_that() {
    let profile = fixture_profile("appliance");
    let run = audit("appliance-failed-unit", &["--profile", &profile]);
    expect_verdicts(&run, &["system.no-failed-units"], &[]);
    let msg = message(&run, "system.no-failed-units");
    assert!(msg.contains("broken-app.service"), "{msg}");
}

/// An image contract added as YAML only: a profile and a catalog written here, from the keys
/// docs/profiles.md documents, audit the appliance as its user `operator`, who reaches root
/// with `su -`. The catalog adds a check of its own.
#[test]
fn a_profile_written_from_the_docs_audits_an_image_through_su() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("operator.pw"), "bootaudit-operator\n").unwrap();
    std::fs::write(
        dir.path().join("edge-checks.yaml"),
        r#"conditions:
  - {id: host.qemu, phase: host, check: builtin, builtin: qemu, passes_when: QEMU runs}
  - {id: host.devices, phase: host, check: builtin, builtin: qemu-devices, requires: [host.qemu], passes_when: QEMU has the devices}
  - {id: virt.start, phase: virt, check: builtin, builtin: qemu-start, requires: [host.devices], passes_when: QEMU starts}
  - {id: image.file, phase: iso, check: builtin, builtin: iso-resolve, passes_when: one ISO}
  - {id: image.bootable, phase: iso, check: builtin, builtin: iso-bootable, requires: [image.file], passes_when: El Torito}
  - {id: image.console, phase: iso, check: builtin, builtin: iso-console, requires: [image.bootable], passes_when: console on the port}
  - {id: edge.console, phase: boot, check: builtin, builtin: console-output, requires: [virt.start, image.console], passes_when: output}
  - {id: edge.getty, phase: boot, check: builtin, builtin: login-prompt, requires: [edge.console], passes_when: a login prompt}
  - {id: edge.login, phase: boot, check: builtin, builtin: login, requires: [edge.getty], passes_when: operator logs in}
  - {id: edge.shell, phase: boot, check: builtin, builtin: shell, requires: [edge.login], passes_when: a shell}
  - id: edge.root
    phase: boot
    requires: [edge.shell]
    passes_when: su gives root
    check: probe
    run: id -u
    run_as: root
    grants_root: true
    pass: ['(?m)^0$']
    fail_fast: ['(?m)^su: .*$']
  - id: edge.hostname
    phase: boot
    requires: [edge.root]
    passes_when: the appliance is called {host}
    check: probe
    run: cat /etc/hostname
    run_as: root
    pass: ['(?m)^{host}$']
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("edge.yaml"),
        r#"name: edge-operator
checks: [edge-checks.yaml, boot-timeline]
# Every boot counts as slow here, so the guest's slowest units are read.
boot_analysis:
  run: systemd-analyze time
  slow: {after: 1s, run: 'systemd-analyze blame --no-pager | head -n 5'}
vars:
  host: edge
console:
  port: ttyS0
  login:
    mode: password
    user: operator
    password: {file: operator.pw}
  root:
    via: su
    password: {env: BOOTAUDIT_ROOT_PASSWORD}
machine:
  memory: 1536M
  cpus: 2
  nic: {device: virtio-net-pci}
timeouts:
  default: 30s
  tcg_scale: 3
  conditions: {edge.getty: 90s}
"#,
    )
    .unwrap();
    let profile = dir.path().join("edge.yaml").to_string_lossy().into_owned();
    let run = audit("appliance", &["--profile", &profile]);
    expect_verdicts(&run, &[], &[]);
    assert!(message(&run, "edge.login").contains("`operator`"));
    assert_no_password_in_report(&run);
    let guest = &run.report["timeline"]["guest"];
    let units = guest["slowest_units"]
        .as_array()
        .expect("the guest's analysis");
    assert!(
        !units.is_empty() && units.len() <= 5 && units.iter().all(|u| u["ms"].is_u64()),
        "{guest:#}"
    );
}

#[test]
fn su_refused_fails_only_the_root_condition() {
    let profile = fixture_profile("su-user");
    let run = audit("su-denied", &["--profile", &profile]);
    expect_verdicts(&run, &["shell.root"], &[]);
    let msg = message(&run, "shell.root");
    assert!(msg.contains("su: Permission denied"), "{msg}");
    assert_no_password_in_report(&run);
}

#[test]
fn installer_serial_entry_chosen_in_the_isolinux_menu() {
    let profile = fixture_profile("installer-menu");
    let run = audit("installer-menu", &["--profile", &profile]);
    expect_verdicts(&run, &[], &[]);
    assert_eq!(boot_how(&run), ("menu".to_string(), true));
    assert!(message(&run, "boot.console").contains("in the ISOLINUX menu"));
    // The default entry's missing serial console is reported, but only the booted one counts.
    let console = run.report["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "iso.console")
        .unwrap();
    assert!(
        console["warnings"].to_string().contains("not booted"),
        "{console}"
    );
}

#[test]
fn installer_serial_entry_chosen_in_the_grub_menu_under_uefi() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture_profile("installer-menu"))
        .unwrap()
        .replace("firmware: bios", "firmware: uefi");
    let profile = dir.path().join("installer-menu-uefi.yaml");
    std::fs::write(&profile, text).unwrap();
    let run = audit("installer-menu", &["--profile", profile.to_str().unwrap()]);
    expect_verdicts(&run, &[], &[]);
    assert!(message(&run, "boot.console").contains("in the GRUB menu"));
    assert_eq!(run.report["boot"]["firmware"], "uefi");
}

#[test]
fn stock_installer_profile_boots_the_serial_entry_directly() {
    let run = audit("installer-menu", &["--profile", "nixos-installer"]);
    expect_verdicts(&run, &[], &[]);
    assert_eq!(boot_how(&run), ("direct".to_string(), false));
    let cmdline = run.report["boot"]["cmdline"].as_str().unwrap();
    assert!(cmdline.ends_with("console=ttyS0,115200n8"), "{cmdline}");
}

#[test]
fn installer_whose_serial_entry_lacks_the_console_is_caught_before_booting() {
    let profile = fixture_profile("installer-menu");
    let run = audit("installer-menu-no-serial", &["--profile", &profile]);
    let boot: Vec<(&str, &str)> = vec![("boot.console", "iso.console")];
    expect_verdicts_iso(&run, "iso.console", &boot);
    let msg = message(&run, "iso.console");
    assert!(
        msg.contains("booted entry") && msg.contains("serial console=ttyS0"),
        "{msg}"
    );
}

#[test]
fn uefi_only_image_boots_with_ovmf() {
    let profile = fixture_profile("uefi-only");
    let run = audit("uefi-only", &["--profile", &profile]);
    expect_verdicts(&run, &[], &[]);
    assert_eq!(run.report["boot"]["firmware"], "uefi");
    assert!(message(&run, "iso.bootable").contains("UEFI only"));
}

#[test]
fn uefi_only_image_without_serial_console_is_caught_before_booting() {
    let profile = fixture_profile("uefi-only");
    let run = audit("uefi-only-no-serial", &["--profile", &profile]);
    expect_verdicts_iso(&run, "iso.console", &[("boot.console", "iso.console")]);
}

/// An iso-phase failure: it fails, the boot's first condition is blocked by it, and the rest
/// of the boot is blocked in a chain (no boot at all).
fn expect_verdicts_iso(run: &Run, failed: &str, first: &[(&str, &str)]) {
    assert_eq!(run.status(failed).0, "fail", "{}", message(run, failed));
    for (id, by) in first {
        let (status, blocked_by, _) = run.status(id);
        assert_eq!(
            (status.as_str(), blocked_by.as_deref()),
            ("skip", Some(*by)),
            "{id}"
        );
    }
    for c in run.report["conditions"].as_array().unwrap() {
        if c["phase"] == "boot" {
            assert_eq!(c["status"], "skip", "{c}");
        }
    }
    assert_eq!(run.code, 1);
    assert!(run.report["boot"].is_null(), "no boot happened");
}

// ---- the image's fault or the infrastructure's ---------------------------------------------

/// The generic profile booting the appliance's kernel directly with extra parameters.
fn audit_direct_with(append: &str) -> Run {
    audit_once(
        "appliance",
        &[
            "--profile",
            "generic",
            "--var",
            "boot_mode=direct",
            "--var",
            &format!("append={append}"),
        ],
    )
}

/// The one failure a session's end caused, and that no condition is an error.
fn the_failure(run: &Run) -> (String, String) {
    let conditions = run.report["conditions"].as_array().unwrap();
    assert!(
        conditions.iter().all(|c| c["status"] != "error"),
        "an error where the image is at fault: {:#}",
        run.report["conditions"]
    );
    let failed: Vec<_> = conditions
        .iter()
        .filter(|c| c["status"] == "fail" && c["likely_cause"].is_null())
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "one root cause: {:#}",
        run.report["conditions"]
    );
    assert_eq!(run.code, 1);
    (
        failed[0]["id"].as_str().unwrap().to_string(),
        failed[0]["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_guest_that_powers_off_fails_naming_it() {
    let run = audit_direct_with("systemd.unit=poweroff.target");
    let (id, message) = the_failure(&run);
    assert!(
        message.contains(&format!("the guest powered off during {id}")),
        "{id}: {message}"
    );
}

#[test]
fn a_guest_that_reboots_fails_naming_it() {
    let run = audit_direct_with("systemd.unit=reboot.target");
    let (id, message) = the_failure(&run);
    assert!(
        message.contains(&format!(
            "the guest rebooted (QEMU runs with -no-reboot) during {id}"
        )),
        "{id}: {message}"
    );
}

/// QEMU that starts for the host and virt checks but fails to boot the image: an error of the
/// run (exit 3), not a failure of the image. A wrapper stands in for a QEMU that breaks.
#[test]
fn qemu_failing_to_start_the_boot_is_an_error_not_the_images_fault() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("qemu-breaks-on-boot");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\ncase \"$*\" in *media=cdrom*) echo 'qemu-system-x86_64: cannot boot (a test wrapper)' >&2; exit 1;; esac\nexec qemu-system-x86_64 \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let profile = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/pre-nixos.yaml"),
    )
    .unwrap()
    .replace(
        "  qemu: qemu-system-x86_64\n",
        &format!("  qemu: {}\n", wrapper.display()),
    );
    let path = dir.path().join("profile.yaml");
    std::fs::write(&path, profile).unwrap();
    let run = audit_once("healthy", &["--profile", path.to_str().unwrap()]);
    let (status, _, message) = run.status("boot.console");
    assert_eq!(status, "error", "{message}");
    assert!(
        message.contains("cannot boot (a test wrapper)"),
        "{message}"
    );
    assert!(message.contains("not a fault of the image"), "{message}");
    let conditions = run.report["conditions"].as_array().unwrap();
    assert!(
        conditions.iter().all(|c| c["status"] != "fail"),
        "{:#}",
        run.report
    );
    assert_eq!(run.report["verdict"], "error");
    assert_eq!(run.code, 3);
}

/// Four audits of one image at once, in one folder, with the default report folders: they
/// never share a socket, a disk, a folder or a half-made `audit-reports/latest`, and each
/// report is complete. Each boots until the console answers (`--only boot.console`).
#[test]
fn four_parallel_audits_of_one_image_never_collide() {
    let iso = image("healthy");
    let cwd = tempfile::tempdir().unwrap();
    let _slot = boot_slot();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_bootaudit"))
                .args(["run", "--iso"])
                .arg(&iso)
                .args(["--only", "boot.console", "--format", "json"])
                .current_dir(cwd.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut folders = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["verdict"], "pass");
        let folder = stderr
            .lines()
            .find_map(|l| {
                l.split_once("report in ")
                    .map(|(_, d)| d.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no report folder named: {stderr}"));
        let dir = cwd.path().join(&folder);
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(on_disk, report, "{folder} holds another run's report");
        assert!(std::fs::metadata(dir.join("serial.raw")).unwrap().len() > 0);
        roxmltree::Document::parse(&std::fs::read_to_string(dir.join("junit.xml")).unwrap())
            .unwrap();
        assert!(
            folders.insert(folder.clone()),
            "two runs wrote into {folder}"
        );
    }
    let latest = std::fs::read_link(cwd.path().join("audit-reports/latest")).unwrap();
    assert!(
        folders
            .iter()
            .any(|f| Path::new(f).file_name() == latest.file_name()),
        "latest → {latest:?}, not one of {folders:?}"
    );
    let stray: Vec<_> = std::fs::read_dir(cwd.path().join("audit-reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "half-made links left: {stray:?}");
}
