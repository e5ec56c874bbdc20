//! Helpers for the end-to-end CLI tests: run the binary under a deadline, load and check the
//! report folder (report.json + junit.xml + layout), build small ISOs with xorriso.
#![allow(dead_code)]

pub mod html;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bootaudit");

/// Condition ids of SPEC.md's catalog for the default profile, in SPEC order.
pub const SPEC_IDS: &[&str] = &[
    "host.qemu",
    "host.qemu-devices",
    "host.resources",
    "host.nix",
    "virt.kvm",
    "virt.tun",
    "virt.qemu-start",
    "iso.build",
    "iso.resolve",
    "iso.bootable",
    "iso.console",
    "boot.console",
    "boot.login",
    "boot.autologin",
    "shell.ready",
    "shell.root",
    "storage.tools",
    "storage.status",
    "storage.vg-main",
    "storage.lv-slash",
    "net.lan-ipv4",
    "unit.pre-nixos-inactive",
    "console.lan-announce",
];

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub pid: u32,
}

impl Run {
    pub fn describe(&self) -> String {
        format!(
            "exit {} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A `bootaudit` command with the given arguments, stdin closed.
pub fn bootaudit<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(BIN);
    c.args(args);
    // Under GitHub Actions the fixtures' expected failures are not the job's annotations.
    c.env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    c
}

/// A fixture image, built by fixtures/build-images.sh when it is missing.
pub fn fixture_iso(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let iso = root.join(format!("fixtures/out/{name}.iso"));
    if !iso.is_file() {
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("fixtures/build-images.sh")).arg(name);
        let run = run_with_deadline(cmd, Duration::from_secs(1800));
        assert_eq!(
            run.code,
            0,
            "fixtures/build-images.sh {name}\n{}",
            run.describe()
        );
    }
    assert!(iso.is_file(), "{} not built", iso.display());
    iso
}

/// Spawn `cmd` in its own process group, collect its output, and wait at most `limit`. On
/// expiry the whole group is killed and the test fails. A panic of the binary fails the test.
pub fn run_with_deadline(cmd: Command, limit: Duration) -> Run {
    run_with_stdout(cmd, limit, Stdio::piped())
}

/// Like `run_with_deadline`, with the child's stdout given (e.g. a pipe nobody reads).
pub fn run_with_stdout(mut cmd: Command, limit: Duration, stdout: Stdio) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let pid = child.id();
    let out = child.stdout.take();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(mut out) = out {
            let _ = out.read_to_end(&mut b);
        }
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if started.elapsed() > limit {
            // SAFETY: plain kill(2) on the process group we created.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    let Some(status) = status else {
        panic!(
            "HANG: {cmd:?} did not finish within {limit:?}; killed.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        );
    };
    let code = match status.code() {
        Some(c) => c,
        None => panic!("{cmd:?} was killed by a signal ({status:?})\n{stderr}"),
    };
    let run = Run {
        code,
        stdout,
        stderr,
        elapsed,
        pid,
    };
    assert!(
        !run.stderr.contains("panicked at") && !run.stderr.contains("internal error (a bug)"),
        "PANIC / internal error in {cmd:?}:\n{}",
        run.describe()
    );
    run
}

/// Run and assert the exit code.
pub fn run_expect(cmd: Command, limit: Duration, code: i32) -> Run {
    let dbg = format!("{cmd:?}");
    let run = run_with_deadline(cmd, limit);
    assert_eq!(
        run.code,
        code,
        "unexpected exit code for {dbg}\n{}",
        run.describe()
    );
    run
}

// ---------------------------------------------------------------------------------------------
// The report folder

pub struct Report {
    pub dir: PathBuf,
    pub json: Value,
}

impl Report {
    /// Load `dir/report.json`, then check junit.xml against it and the folder layout of SPEC.
    pub fn load(dir: &Path) -> Report {
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()));
        let r = Report {
            dir: dir.to_path_buf(),
            json,
        };
        r.check_schema();
        r.check_layout();
        r.check_junit();
        r
    }

    pub fn conditions(&self) -> &Vec<Value> {
        self.json["conditions"]
            .as_array()
            .expect("report.json: conditions is an array")
    }

    pub fn ids(&self) -> Vec<String> {
        self.conditions()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn cond(&self, id: &str) -> &Value {
        self.conditions()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no condition {id} in report; has {:?}", self.ids()))
    }

    pub fn status(&self, id: &str) -> &str {
        self.cond(id)["status"].as_str().unwrap()
    }

    pub fn message(&self, id: &str) -> &str {
        self.cond(id)["message"].as_str().unwrap()
    }

    pub fn evidence(&self, id: &str) -> &str {
        self.cond(id)["evidence"].as_str().unwrap_or("")
    }

    pub fn warnings(&self, id: &str) -> Vec<String> {
        self.cond(id)["warnings"]
            .as_array()
            .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    pub fn blocked_by(&self, id: &str) -> Option<&str> {
        self.cond(id)["blocked_by"].as_str()
    }

    pub fn verdict(&self) -> &str {
        self.json["verdict"].as_str().unwrap()
    }

    /// Assert the status of a condition, with the whole condition in the failure message.
    pub fn assert_status(&self, id: &str, want: &str) {
        let c = self.cond(id);
        assert_eq!(
            c["status"],
            want,
            "{id}: expected {want}, got:\n{}",
            serde_json::to_string_pretty(c).unwrap()
        );
    }

    /// Assert that the message of `id` contains every one of `words` (case-insensitive).
    pub fn assert_message_has(&self, id: &str, words: &[&str]) {
        let m = self.message(id).to_lowercase();
        for w in words {
            assert!(
                m.contains(&w.to_lowercase()),
                "{id}: message should mention `{w}`: {}",
                self.message(id)
            );
        }
    }

    fn check_schema(&self) {
        let j = &self.json;
        for key in ["bootaudit_version", "verdict", "profile", "started_at"] {
            assert!(
                j[key].is_string(),
                "report.json: `{key}` missing or not a string: {j}"
            );
        }
        assert!(j["duration_ms"].is_u64(), "report.json: duration_ms");
        assert!(j.get("iso").is_some(), "report.json: iso key missing");
        assert!(j.get("accel").is_some(), "report.json: accel key missing");
        assert!(
            ["pass", "fail", "error", "incomplete", "interrupted"].contains(&self.verdict()),
            "verdict {}",
            self.verdict()
        );
        let mut seen = BTreeSet::new();
        for c in self.conditions() {
            let id = c["id"].as_str().expect("condition id");
            assert!(
                seen.insert(id.to_string()),
                "condition {id} twice in report.json"
            );
            for key in ["phase", "status", "message", "evidence"] {
                assert!(c[key].is_string(), "{id}: `{key}` not a string: {c}");
            }
            assert!(
                ["pass", "fail", "skip", "error"].contains(&c["status"].as_str().unwrap()),
                "{id}: status {}",
                c["status"]
            );
            assert!(
                c["started_ms"].is_u64() && c["duration_ms"].is_u64(),
                "{id}: timings"
            );
            assert!(
                c.get("blocked_by").is_some(),
                "{id}: blocked_by key missing"
            );
            let msg = c["message"].as_str().unwrap();
            assert!(
                !msg.contains('\n'),
                "{id}: message is not one line: {msg:?}"
            );
            if c["status"] != "pass" {
                assert!(!msg.trim().is_empty(), "{id}: non-pass without a message");
            }
        }
    }

    fn check_layout(&self) {
        // A replay's folder holds no console files: the log is the input, not copied.
        let console: &[&str] = match self.json.get("replayed_log") {
            Some(_) => &[],
            None => &["serial.raw", "serial.log", "qemu.log"],
        };
        for f in ["report.json", "junit.xml", "report.html"]
            .iter()
            .chain(console)
        {
            let p = self.dir.join(f);
            assert!(p.is_file(), "report folder lacks {f}: {}", p.display());
        }
        for c in self.conditions() {
            let id = c["id"].as_str().unwrap();
            let rel = format!("conditions/{id}.log");
            assert_eq!(c["transcript"], rel.as_str(), "{id}: transcript field");
            let p = self.dir.join(&rel);
            assert!(p.is_file(), "report folder lacks {rel}");
        }
    }

    /// junit.xml: well-formed, one `bootaudit.PHASE` testsuite per phase, one testcase per
    /// condition with classname = its suite, and failure/skipped/error matching the status.
    fn check_junit(&self) {
        let path = self.dir.join("junit.xml");
        let xml = std::fs::read_to_string(&path).expect("junit.xml readable as UTF-8");
        let doc = roxmltree::Document::parse(&xml)
            .unwrap_or_else(|e| panic!("junit.xml is not well-formed XML: {e}\n{xml}"));

        let mut want_suites: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for c in self.conditions() {
            let suite = format!("bootaudit.{}", c["phase"].as_str().unwrap());
            want_suites.entry(suite).or_default().insert(
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            );
        }

        let mut got_suites: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for suite in doc.descendants().filter(|n| n.has_tag_name("testsuite")) {
            let sname = suite
                .attribute("name")
                .expect("testsuite without name")
                .to_string();
            assert!(
                !got_suites.contains_key(&sname),
                "junit.xml: testsuite {sname} appears twice"
            );
            let cases = got_suites.entry(sname.clone()).or_default();
            for tc in suite.children().filter(|n| n.has_tag_name("testcase")) {
                let name = tc.attribute("name").expect("testcase without name");
                assert_eq!(
                    tc.attribute("classname"),
                    Some(sname.as_str()),
                    "junit.xml: testcase {name} classname"
                );
                let kinds: Vec<&str> = tc
                    .children()
                    .filter(|n| n.is_element())
                    .map(|n| n.tag_name().name())
                    .filter(|t| ["failure", "skipped", "error"].contains(t))
                    .collect();
                assert!(kinds.len() <= 1, "junit.xml: {name} has {kinds:?}");
                let status = match kinds.first() {
                    None => "pass",
                    Some(&"failure") => "fail",
                    Some(&"skipped") => "skip",
                    Some(_) => "error",
                };
                if let Some(node) = tc
                    .children()
                    .find(|n| ["failure", "skipped", "error"].contains(&n.tag_name().name()))
                {
                    let m = node.attribute("message").unwrap_or("");
                    assert!(
                        !m.is_empty(),
                        "junit.xml: {name} <{:?}> without message",
                        node.tag_name()
                    );
                    assert!(
                        !m.contains('\n'),
                        "junit.xml: {name} message is not one line"
                    );
                }
                assert!(
                    cases.insert(name.to_string(), status.to_string()).is_none(),
                    "junit.xml: testcase {name} twice in {sname}"
                );
            }
        }
        assert_eq!(
            got_suites, want_suites,
            "junit.xml suites/testcases/statuses do not match report.json\n{xml}"
        );
    }
}

/// Check the exit code and the report's verdict agree (0 ↔ pass, 1 ↔ fail).
pub fn assert_verdict_matches(run: &Run, report: &Report) {
    let want = match run.code {
        0 => "pass",
        1 => "fail",
        3 => "error",
        4 => "incomplete",
        c => panic!("unexpected exit code {c} with a report\n{}", run.describe()),
    };
    assert_eq!(
        report.verdict(),
        want,
        "verdict vs exit code\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// ISOs

pub const NIX_INIT: &str =
    "/nix/store/0g4hb7z7wf6sqd0hpxpql6gkqm0zs3q3-nixos-system-nixos-24.11pre-git/init";

pub fn isolinux_cfg(append_tail: &str) -> String {
    format!(
        "SERIAL 0 115200\n\
         TIMEOUT 100\n\
         DEFAULT boot\n\
         UI menu.c32\n\
         MENU TITLE NixOS\n\
         \n\
         LABEL boot\n\
         MENU LABEL NixOS 24.11 Installer\n\
         LINUX /boot/bzImage\n\
         APPEND init={NIX_INIT} root=LABEL=nixos-minimal-24.11-x86_64 boot.shell_on_fail loglevel=4 {append_tail}\n\
         INITRD /boot/initrd\n\
         \n\
         LABEL boot-nomodeset\n\
         MENU LABEL NixOS 24.11 Installer (nomodeset)\n\
         LINUX /boot/bzImage\n\
         APPEND init={NIX_INIT} root=LABEL=nixos-minimal-24.11-x86_64 boot.shell_on_fail loglevel=4 nomodeset {append_tail}\n\
         INITRD /boot/initrd\n"
    )
}

pub fn efi_grub_cfg(cmdline_tail: &str) -> String {
    format!(
        "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
         terminal_output console serial\n\
         terminal_input console serial\n\
         set timeout=10\n\
         \n\
         menuentry 'NixOS 24.11 Installer' --class installer {{\n\
         \x20 linux /boot/bzImage init={NIX_INIT} root=LABEL=nixos-minimal-24.11-x86_64 boot.shell_on_fail loglevel=4 {cmdline_tail}\n\
         \x20 initrd /boot/initrd\n\
         }}\n"
    )
}

pub fn loopback_cfg(cmdline_tail: &str) -> String {
    format!(
        "menuentry 'NixOS 24.11 Installer (loopback)' --class installer {{\n\
         \x20 linux /boot/bzImage findiso=${{iso_path}} init={NIX_INIT} boot.shell_on_fail loglevel=4 {cmdline_tail}\n\
         \x20 initrd /boot/initrd\n\
         }}\n"
    )
}

pub const GOOD_CONSOLE: &str = "console=tty0 console=ttyS0,115200n8";

/// A NixOS-installer-like tree with the serial console everywhere; returns its root.
pub fn nixos_tree(parent: &Path) -> PathBuf {
    let root = parent.join("tree");
    for d in ["isolinux", "EFI/BOOT", "boot/grub"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(
        "/usr/lib/ISOLINUX/isolinux.bin",
        root.join("isolinux/isolinux.bin"),
    )
    .expect("copy /usr/lib/ISOLINUX/isolinux.bin (apt-get install isolinux)");
    std::fs::write(
        root.join("isolinux/isolinux.cfg"),
        isolinux_cfg(GOOD_CONSOLE),
    )
    .unwrap();
    std::fs::write(root.join("EFI/BOOT/grub.cfg"), efi_grub_cfg(GOOD_CONSOLE)).unwrap();
    std::fs::write(
        root.join("boot/grub/loopback.cfg"),
        loopback_cfg(GOOD_CONSOLE),
    )
    .unwrap();
    std::fs::write(root.join("boot/bzImage"), b"not really a kernel\n").unwrap();
    std::fs::write(root.join("boot/initrd"), b"not really an initrd\n").unwrap();
    std::fs::write(root.join("version.txt"), b"24.11pre-git\n").unwrap();
    root
}

/// `xorriso -as mkisofs` the tree into `iso`, with the isolinux El Torito entry when `bootable`.
pub fn mkiso(tree: &Path, iso: &Path, bootable: bool) {
    let mut cmd = Command::new("xorriso");
    cmd.args(["-as", "mkisofs", "-o"]).arg(iso).args([
        "-iso-level",
        "3",
        "-R",
        "-J",
        "-joliet-long",
        "-V",
        "NIXOS_ISO",
    ]);
    if bootable {
        cmd.args([
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
        ]);
    }
    cmd.arg(tree);
    let run = run_with_deadline(cmd, Duration::from_secs(30));
    assert_eq!(run.code, 0, "xorriso failed:\n{}", run.describe());
    assert!(iso.is_file());
}

/// Line number (1-based) of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in\n{text}"))
        + 1
}

/// A fresh tempdir (0700; tests that run as nobody chmod it).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cli-check-")
        .tempdir()
        .expect("tempdir")
}
