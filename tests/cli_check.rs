//! End-to-end tests of `bootaudit check host|virt|iso` and `bootaudit list`: the binary is run
//! under a deadline, with `--out <tempdir>` always; every report folder is checked for the SPEC
//! layout, report.json's schema and a junit.xml that a real XML parser accepts with one
//! testsuite per phase and one testcase per condition.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ISO_LIMIT: Duration = Duration::from_secs(30);
const HOST_LIMIT: Duration = Duration::from_secs(30);
const VIRT_LIMIT: Duration = Duration::from_secs(20);
const QUICK_LIMIT: Duration = Duration::from_secs(15);

/// `bootaudit check iso --iso ISO --out TMP/out`, run in TMP.
fn check_iso_cmd(iso: &Path, tmp: &Path, extra: &[&str]) -> (Command, PathBuf) {
    let out = tmp.join("out");
    let mut cmd = bootaudit(["check", "iso", "--iso"]);
    cmd.arg(iso)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .current_dir(tmp);
    (cmd, out)
}

fn check_iso(iso: &Path, tmp: &Path, code: i32) -> (Run, Report) {
    let (cmd, out) = check_iso_cmd(iso, tmp, &[]);
    let run = run_expect(cmd, ISO_LIMIT, code);
    let report = Report::load(&out);
    assert_verdict_matches(&run, &report);
    (run, report)
}

/// Build the healthy tree, let `edit` change it, and make `name` from it.
fn iso_from(tmp: &Path, name: &str, bootable: bool, edit: impl FnOnce(&Path)) -> PathBuf {
    let tree = nixos_tree(tmp);
    edit(&tree);
    let iso = tmp.join(name);
    mkiso(&tree, &iso, bootable);
    iso
}

fn healthy_iso(tmp: &Path) -> PathBuf {
    iso_from(tmp, "nixos-minimal-24.11-x86_64-linux.iso", true, |_| {})
}

/// iso.resolve fails, and iso.bootable / iso.console skip, blocked along the chain.
fn assert_resolve_failed_and_rest_blocked(r: &Report) {
    r.assert_status("iso.resolve", "fail");
    r.assert_status("iso.bootable", "skip");
    assert_eq!(r.blocked_by("iso.bootable"), Some("iso.resolve"));
    r.assert_status("iso.console", "skip");
    assert!(r.blocked_by("iso.console").is_some());
}

/// iso.bootable fails (not a panic, not an error), iso.console skips blocked by it.
fn assert_bootable_failed(r: &Report) {
    r.assert_status("iso.resolve", "pass");
    r.assert_status("iso.bootable", "fail");
    r.assert_status("iso.console", "skip");
    assert_eq!(r.blocked_by("iso.console"), Some("iso.bootable"));
}

// =============================================================================================
// 1. check iso

#[test]
fn iso_healthy_passes() {
    let tmp = tempdir();
    let iso = healthy_iso(tmp.path());
    let (_run, r) = check_iso(&iso, tmp.path(), 0);
    for id in ["iso.resolve", "iso.bootable", "iso.console"] {
        r.assert_status(id, "pass");
    }
    assert!(
        r.warnings("iso.console").is_empty(),
        "{:?}",
        r.warnings("iso.console")
    );
    // Every boot config of the tree was read.
    r.assert_message_has(
        "iso.console",
        &[
            "isolinux/isolinux.cfg",
            "EFI/BOOT/grub.cfg",
            "boot/grub/loopback.cfg",
        ],
    );
    assert!(r.message("iso.bootable").to_lowercase().contains("bios"));
    // Evidence for people, not a debug dump.
    let evidence = r.evidence("iso.bootable");
    assert!(
        evidence.starts_with("BIOS: isolinux/isolinux.bin (no emulation)")
            && !evidence.contains("Bios")
            && !evidence.contains('{'),
        "{evidence}"
    );
    let bytes = std::fs::metadata(&iso).unwrap().len();
    assert_eq!(r.json["iso"]["bytes"], bytes);
    assert_eq!(r.json["iso"]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn iso_without_serial_in_efi_grub_fails_naming_file_and_line() {
    let tmp = tempdir();
    let iso = iso_from(tmp.path(), "noserial.iso", true, |t| {
        std::fs::write(t.join("EFI/BOOT/grub.cfg"), efi_grub_cfg("console=tty0")).unwrap();
    });
    let (_run, r) = check_iso(&iso, tmp.path(), 1);
    r.assert_status("iso.resolve", "pass");
    r.assert_status("iso.bootable", "pass");
    r.assert_status("iso.console", "fail");
    let line = line_of(&efi_grub_cfg("console=tty0"), "linux /boot/bzImage");
    r.assert_message_has(
        "iso.console",
        &[&format!("EFI/BOOT/grub.cfg:{line}"), "console=ttyS0"],
    );
    // Says what to do, and does not blame the configs that are fine.
    r.assert_message_has("iso.console", &["add"]);
    let m = r.message("iso.console");
    assert!(
        !m.contains("isolinux.cfg:") && !m.contains("loopback.cfg:"),
        "{m}"
    );
}

#[test]
fn iso_ttys0_not_last_in_loopback_passes_with_warning() {
    let tmp = tempdir();
    let iso = iso_from(tmp.path(), "order.iso", true, |t| {
        std::fs::write(
            t.join("boot/grub/loopback.cfg"),
            loopback_cfg("console=ttyS0,115200n8 console=tty0"),
        )
        .unwrap();
    });
    let (_run, r) = check_iso(&iso, tmp.path(), 0);
    r.assert_status("iso.console", "pass");
    let w = r.warnings("iso.console");
    assert_eq!(w.len(), 1, "one warning expected: {w:?}");
    let w = &w[0];
    assert!(w.contains("boot/grub/loopback.cfg"), "{w}");
    assert!(
        w.contains("last"),
        "warning should say ttyS0 must be last: {w}"
    );
    // The warning also reaches the condition's transcript.
    let log = std::fs::read_to_string(r.dir.join("conditions/iso.console.log")).unwrap();
    assert!(log.contains("loopback.cfg"), "{log}");
}

#[test]
fn iso_menu_label_with_console_is_not_a_command_line() {
    let tmp = tempdir();
    let cfg = isolinux_cfg(GOOD_CONSOLE).replace(
        "MENU LABEL NixOS 24.11 Installer (nomodeset)",
        "MENU LABEL NixOS 24.11 Installer (serial console=ttyS0)",
    );
    // Drop ttyS0 from the APPEND of that second entry only.
    let mut lines: Vec<String> = cfg.lines().map(String::from).collect();
    let append = lines.iter().rposition(|l| l.starts_with("APPEND")).unwrap();
    lines[append] = lines[append].replace(" console=ttyS0,115200n8", "");
    let cfg = lines.join("\n") + "\n";
    assert!(cfg.contains("MENU LABEL NixOS 24.11 Installer (serial console=ttyS0)"));
    let iso = iso_from(tmp.path(), "label.iso", true, |t| {
        std::fs::write(t.join("isolinux/isolinux.cfg"), &cfg).unwrap();
    });
    let (_run, r) = check_iso(&iso, tmp.path(), 1);
    r.assert_status("iso.console", "fail");
    r.assert_message_has(
        "iso.console",
        &[
            &format!("isolinux/isolinux.cfg:{}", append + 1),
            "add console=ttyS0",
        ],
    );
}

#[test]
fn iso_without_boot_catalog_fails_bootable_and_blocks_console() {
    let tmp = tempdir();
    let iso = iso_from(tmp.path(), "nocat.iso", false, |_| {});
    let (_run, r) = check_iso(&iso, tmp.path(), 1);
    assert_bootable_failed(&r);
    r.assert_message_has("iso.bootable", &["El Torito"]);
    // What to do: how to build it bootable.
    r.assert_message_has("iso.bootable", &["xorriso", "-b"]);
}

#[test]
fn iso_truncated_fails_without_panic() {
    let tmp = tempdir();
    let full = healthy_iso(tmp.path());
    let data = std::fs::read(&full).unwrap();
    let iso = tmp.path().join("truncated.iso");
    std::fs::write(&iso, &data[..data.len() / 2]).unwrap();
    let (_run, r) = check_iso(&iso, tmp.path(), 1);
    assert_bootable_failed(&r);
    let m = r.message("iso.bootable").to_lowercase();
    assert!(m.contains("truncated") || m.contains("cut short"), "{m}");
}

#[test]
fn iso_text_file_fails() {
    let tmp = tempdir();
    let iso = tmp.path().join("image.iso");
    std::fs::write(&iso, "this is a README, not an ISO image\n".repeat(10)).unwrap();
    let (_run, r) = check_iso(&iso, tmp.path(), 1);
    assert_bootable_failed(&r);
    r.assert_message_has("iso.bootable", &["not an ISO 9660"]);
    // Hints that the wrong file was given.
    r.assert_message_has("iso.bootable", &["text"]);
}

#[test]
fn iso_empty_file_fails() {
    let tmp = tempdir();
    let iso = tmp.path().join("empty.iso");
    std::fs::write(&iso, b"").unwrap();
    let (_run, r) = check_iso(&iso, tmp.path(), 1);
    assert_bootable_failed(&r);
    r.assert_message_has("iso.bootable", &["empty"]);
}

#[test]
fn iso_directory_with_two_isos_fails_listing_both() {
    let tmp = tempdir();
    let iso = healthy_iso(tmp.path());
    let dir = tmp.path().join("result/iso");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&iso, dir.join("first.iso")).unwrap();
    std::fs::copy(&iso, dir.join("second.iso")).unwrap();
    let (_run, r) = check_iso(&dir, tmp.path(), 1);
    assert_resolve_failed_and_rest_blocked(&r);
    r.assert_message_has("iso.resolve", &["first.iso", "second.iso", "--iso"]);
}

#[test]
fn iso_directory_with_one_iso_resolves_to_it() {
    let tmp = tempdir();
    let built = healthy_iso(tmp.path());
    let dir = tmp.path().join("result/iso");
    std::fs::create_dir_all(&dir).unwrap();
    let inside = dir.join("nixos.iso");
    std::fs::rename(&built, &inside).unwrap();
    std::fs::write(dir.join("nix-support-hydra-build-products"), "file iso\n").unwrap();
    let (_run, r) = check_iso(&dir, tmp.path(), 0);
    for id in ["iso.resolve", "iso.bootable", "iso.console"] {
        r.assert_status(id, "pass");
    }
    let path = r.json["iso"]["path"].as_str().expect("iso.path");
    assert_eq!(
        Path::new(path),
        inside,
        "iso.path should be the file inside the directory"
    );
}

#[test]
fn iso_directory_without_iso_fails_listing_its_contents() {
    let tmp = tempdir();
    let dir = tmp.path().join("result");
    std::fs::create_dir_all(dir.join("nix-support")).unwrap();
    std::fs::write(dir.join("README.txt"), "nothing here\n").unwrap();
    let (_run, r) = check_iso(&dir, tmp.path(), 1);
    assert_resolve_failed_and_rest_blocked(&r);
    r.assert_message_has(
        "iso.resolve",
        &["no .iso", "README.txt", "nix-support", "--iso"],
    );
}

#[test]
fn iso_missing_path_fails() {
    let tmp = tempdir();
    let missing = tmp.path().join("no-such.iso");
    let (_run, r) = check_iso(&missing, tmp.path(), 1);
    assert_resolve_failed_and_rest_blocked(&r);
    r.assert_message_has(
        "iso.resolve",
        &["no-such.iso", "no such file", "check the path"],
    );
}

#[test]
fn iso_unreadable_file_fails_with_permission() {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(setpriv) = setpriv else {
        eprintln!("NOTE: setpriv is missing: iso_unreadable_file_fails_with_permission skipped");
        return;
    };
    let tmp = tempdir();
    let built = healthy_iso(tmp.path());
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let iso = tmp.path().join("locked.iso");
    std::fs::rename(&built, &iso).unwrap();
    std::fs::set_permissions(&iso, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();

    let mut cmd = Command::new(setpriv);
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "check",
        "iso",
        "--iso",
    ])
    .arg(&iso)
    .arg("--out")
    .arg(&out)
    .current_dir(tmp.path());
    let run = run_expect(cmd, ISO_LIMIT, 1);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    assert_resolve_failed_and_rest_blocked(&r);
    r.assert_message_has("iso.resolve", &["locked.iso", "permission"]);
}

#[test]
fn iso_json_format_stdout_is_the_report() {
    let tmp = tempdir();
    let iso = healthy_iso(tmp.path());
    let (cmd, out) = check_iso_cmd(&iso, tmp.path(), &["--format", "json"]);
    let run = run_expect(cmd, ISO_LIMIT, 0);
    // The whole of stdout is one JSON document (serde_json rejects trailing non-whitespace).
    let stdout: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not (only) JSON: {e}\n{}", run.stdout));
    let r = Report::load(&out);
    assert_eq!(stdout, r.json, "stdout differs from report.json");
    // Human progress goes to stderr.
    for id in ["iso.resolve", "iso.bootable", "iso.console"] {
        assert!(
            run.stderr.contains(id),
            "stderr lacks progress for {id}:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.trim_start().starts_with('{'),
        "report on stderr?\n{}",
        run.stderr
    );
}

// =============================================================================================
// 7. report folder layout (checked by Report::load for every run; here explicitly)

#[test]
fn report_folder_has_the_spec_layout() {
    let tmp = tempdir();
    let iso = healthy_iso(tmp.path());
    let (_run, r) = check_iso(&iso, tmp.path(), 0);
    for f in [
        "report.json",
        "junit.xml",
        "serial.raw",
        "serial.log",
        "qemu.log",
    ] {
        assert!(r.dir.join(f).is_file(), "missing {f}");
    }
    let ids = r.ids();
    assert!(ids.contains(&"iso.console".to_string()), "{ids:?}");
    for id in &ids {
        let p = r.dir.join("conditions").join(format!("{id}.log"));
        let log = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!log.trim().is_empty(), "{} is empty", p.display());
        // The transcript says the verdict.
        let status = r.status(id);
        assert!(
            log.contains(status),
            "{} does not state `{status}`:\n{log}",
            p.display()
        );
    }
    // Only the phases `check iso` runs; no boot conditions.
    assert!(
        ids.iter()
            .all(|i| i.starts_with("iso.") || i.starts_with("host.")),
        "{ids:?}"
    );
}

// =============================================================================================
// 2. check host

fn qemu_version() -> String {
    let out = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in {text}"))
        .to_string()
}

#[test]
fn host_passes_and_records_qemu_version() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&out).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 0);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    for id in ["host.qemu", "host.qemu-devices", "host.resources"] {
        r.assert_status(id, "pass");
    }
    r.assert_status("host.nix", "skip");
    let v = qemu_version();
    assert!(
        r.evidence("host.qemu").contains(&v) || r.message("host.qemu").contains(&v),
        "host.qemu does not record version {v}: {}",
        serde_json::to_string_pretty(r.cond("host.qemu")).unwrap()
    );
    assert!(
        r.ids().iter().all(|i| i.starts_with("host.")),
        "{:?}",
        r.ids()
    );
}

fn profile_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/pre-nixos.yaml"
    ))
    .unwrap()
}

/// Write the default profile with `from` replaced by `to` (which must occur) to TMP/NAME.
fn edited_profile(tmp: &Path, name: &str, from: &str, to: &str) -> (PathBuf, String) {
    let text = profile_text();
    assert!(
        text.contains(from),
        "profiles/pre-nixos.yaml no longer contains `{from}`"
    );
    let text = text.replacen(from, to, 1);
    let path = tmp.join(name);
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

#[test]
fn host_with_missing_qemu_fails_with_install_hint() {
    let tmp = tempdir();
    let (profile, _) = edited_profile(
        tmp.path(),
        "no-qemu.yaml",
        "qemu: qemu-system-x86_64",
        "qemu: qemu-system-nonexistent",
    );
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["check", "host", "--profile"]);
    cmd.arg(&profile)
        .arg("--out")
        .arg(&out)
        .current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 1);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    r.assert_status("host.qemu", "fail");
    r.assert_message_has("host.qemu", &["qemu-system-nonexistent", "apt-get"]);
    r.assert_status("host.qemu-devices", "skip");
    assert_eq!(r.blocked_by("host.qemu-devices"), Some("host.qemu"));
    // The independent checks still ran.
    r.assert_status("host.resources", "pass");
}

// =============================================================================================
// 3. check virt

/// qemu-system processes: pid → (cmdline, ppid).
fn qemu_processes() -> BTreeMap<u32, (String, u32)> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if !cmdline.contains("qemu-system") {
            continue;
        }
        let ppid = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0);
        found.insert(pid, (cmdline, ppid));
    }
    found
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// QEMU processes started since `before` that belong to our run: their command line names our
/// tempdir, or they look like bootaudit's (`-name bootaudit`, the KVM probe's debugcon) and no
/// live bootaudit is their parent (another engineer's run may be going on concurrently).
fn leftover_qemu(before: &BTreeMap<u32, (String, u32)>, tmp: &Path) -> Vec<String> {
    let tmp = tmp.to_string_lossy();
    qemu_processes()
        .into_iter()
        .filter(|(pid, _)| !before.contains_key(pid))
        .filter(|(_, (cmd, ppid))| {
            cmd.contains(tmp.as_ref())
                || ((cmd.contains("bootaudit") || cmd.contains("isa-debugcon.iobase=0x402"))
                    && comm(*ppid) != "bootaudit")
        })
        .map(|(pid, (cmd, ppid))| format!("pid {pid} (ppid {ppid}): {cmd}"))
        .collect()
}

fn check_virt(tmp: &Path, out_name: &str, extra: &[&str], code: i32) -> (Run, Report) {
    let out = tmp.join(out_name);
    let mut cmd = bootaudit(["check", "virt", "--out"]);
    // TMPDIR: QEMU's private workspace (QMP socket) then lands in our tempdir, so a leftover
    // QEMU is recognisable by its command line.
    cmd.arg(&out)
        .args(extra)
        .current_dir(tmp)
        .env("TMPDIR", tmp);
    let before = qemu_processes();
    let run = run_expect(cmd, VIRT_LIMIT, code);
    let left = leftover_qemu(&before, tmp);
    assert!(
        left.is_empty(),
        "check virt {extra:?} left QEMU behind:\n{}",
        left.join("\n")
    );
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    (run, r)
}

#[test]
fn virt_is_fast_leaves_no_qemu_and_judges_kvm() {
    let tmp = tempdir();
    let (run, r) = check_virt(tmp.path(), "out-auto", &[], 0);
    eprintln!(
        "check virt took {:?} (contract: < 3 s; test bound 5 s)",
        run.elapsed
    );
    assert!(
        run.elapsed < Duration::from_secs(5),
        "check virt took {:?}\n{}",
        run.elapsed,
        run.describe()
    );
    let kvm = r.status("virt.kvm").to_string();
    assert!(
        kvm == "skip" || kvm == "pass",
        "virt.kvm {kvm}: {}",
        r.message("virt.kvm")
    );
    r.assert_status("virt.qemu-start", "pass");
    r.assert_status("virt.tun", "skip");
    if kvm == "skip" {
        // Says why and that TCG is used instead, in the report and on screen.
        r.assert_message_has("virt.kvm", &["tcg"]);
        assert_eq!(r.json["accel"], "tcg");
        assert!(run.stderr.to_lowercase().contains("tcg"), "{}", run.stderr);
    } else {
        assert_eq!(r.json["accel"], "kvm");
    }

    // --accel kvm: KVM is then required.
    if kvm == "skip" {
        let (run, r) = check_virt(tmp.path(), "out-kvm", &["--accel", "kvm"], 1);
        eprintln!("check virt --accel kvm took {:?}", run.elapsed);
        r.assert_status("virt.kvm", "fail");
        // What to do: use TCG or another host.
        r.assert_message_has("virt.kvm", &["--accel tcg"]);
    } else {
        let (_run, r) = check_virt(tmp.path(), "out-kvm", &["--accel", "kvm"], 0);
        r.assert_status("virt.kvm", "pass");
    }
}

// =============================================================================================
// 4. usage and profile errors → exit 2

/// Run `check host` with this profile; expect exit 2, no panic; return stderr.
fn host_with_profile_exit_2(tmp: &Path, profile: &str) -> String {
    let mut cmd = bootaudit(["check", "host", "--profile", profile, "--out"]);
    cmd.arg(tmp.join("out")).current_dir(tmp);
    run_expect(cmd, QUICK_LIMIT, 2).stderr
}

/// stderr names `path:line:col` with one of the accepted columns.
fn assert_location(stderr: &str, path: &Path, line: usize, cols: &[usize]) {
    let ok = cols
        .iter()
        .any(|c| stderr.contains(&format!("{}:{line}:{c}", path.display())));
    assert!(
        ok,
        "stderr should name {}:{line}:{cols:?}:\n{stderr}",
        path.display()
    );
}

#[test]
fn profile_unknown_field_is_exit_2_with_location() {
    let tmp = tempdir();
    let (path, text) = edited_profile(tmp.path(), "typo.yaml", "  memory: 1536M", "  memry: 1536M");
    let stderr = host_with_profile_exit_2(tmp.path(), path.to_str().unwrap());
    assert_location(&stderr, &path, line_of(&text, "memry:"), &[3]);
    assert!(stderr.contains("memry"), "{stderr}");
}

#[test]
fn profile_invalid_regex_is_exit_2_with_location() {
    let tmp = tempdir();
    let (path, text) = edited_profile(
        tmp.path(),
        "regex.yaml",
        "pattern: 'Kernel panic - not syncing.*'",
        "pattern: 'Kernel panic (unclosed'",
    );
    let stderr = host_with_profile_exit_2(tmp.path(), path.to_str().unwrap());
    let line = line_of(&text, "Kernel panic (unclosed");
    let quote = text.lines().nth(line - 1).unwrap().find('\'').unwrap() + 1;
    // The scalar's quote or its first character.
    assert_location(&stderr, &path, line, &[quote, quote + 1]);
    assert!(stderr.contains("regex"), "{stderr}");
}

#[test]
fn profile_select_of_unknown_condition_is_exit_2_with_location() {
    let tmp = tempdir();
    let (path, text) = edited_profile(
        tmp.path(),
        "select.yaml",
        "checks: [pre-nixos, boot-timeline]\n",
        "checks: [pre-nixos, boot-timeline]\nselect:\n  - host.qemu\n  - host.nosuch\n",
    );
    let stderr = host_with_profile_exit_2(tmp.path(), path.to_str().unwrap());
    // The list item's dash or its value.
    assert_location(&stderr, &path, line_of(&text, "host.nosuch"), &[3, 5]);
    assert!(stderr.contains("host.nosuch"), "{stderr}");
}

#[test]
fn profile_missing_file_is_exit_2() {
    let tmp = tempdir();
    let missing = tmp.path().join("missing-profile.yaml");
    let stderr = host_with_profile_exit_2(tmp.path(), missing.to_str().unwrap());
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}

#[test]
fn profile_unknown_embedded_name_is_exit_2() {
    let tmp = tempdir();
    let stderr = host_with_profile_exit_2(tmp.path(), "no-such-profile");
    assert!(stderr.contains("no-such-profile"), "{stderr}");
    // Tells which names exist.
    assert!(stderr.contains("pre-nixos"), "{stderr}");
}

#[test]
fn only_unknown_condition_is_exit_2() {
    let tmp = tempdir();
    let mut cmd = bootaudit(["check", "host", "--only", "no.such.id", "--out"]);
    cmd.arg(tmp.path().join("out")).current_dir(tmp.path());
    let run = run_expect(cmd, QUICK_LIMIT, 2);
    assert!(run.stderr.contains("no.such.id"), "{}", run.stderr);
    assert!(
        run.stderr.contains("bootaudit list"),
        "should point at `bootaudit list`: {}",
        run.stderr
    );
}

#[test]
fn unknown_builtin_in_a_catalog_is_exit_2_before_any_report() {
    let tmp = tempdir();
    let catalog = tmp.path().join("extra.yaml");
    std::fs::write(
        &catalog,
        "conditions:\n  - id: host.frobnicator\n    phase: host\n    check: builtin\n    passes_when: the frobnicator works\n",
    )
    .unwrap();
    let profile_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/pre-nixos.yaml"),
    )
    .unwrap()
    .replace(
        "checks: [pre-nixos, boot-timeline]",
        "checks: [pre-nixos, boot-timeline, ./extra.yaml]",
    );
    let profile = tmp.path().join("profile.yaml");
    std::fs::write(&profile, profile_text).unwrap();
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["check", "host", "--profile"]);
    cmd.arg(&profile)
        .arg("--out")
        .arg(&out)
        .current_dir(tmp.path());
    let run = run_expect(cmd, QUICK_LIMIT, 2);
    assert!(run.stderr.contains("host.frobnicator"), "{}", run.stderr);
    assert!(run.stderr.contains("builtin"), "{}", run.stderr);
    assert!(
        run.stderr.contains("extra.yaml:2:"),
        "names the file and line: {}",
        run.stderr
    );
    assert!(!out.exists(), "no half-made report folder");
}

#[test]
fn timeout_scale_zero_is_exit_2() {
    let tmp = tempdir();
    let mut cmd = bootaudit(["run", "--iso", "x.iso", "--timeout-scale", "0", "--out"]);
    cmd.arg(tmp.path().join("out")).current_dir(tmp.path());
    let run = run_expect(cmd, QUICK_LIMIT, 2);
    assert!(run.stderr.contains("--timeout-scale"), "{}", run.stderr);
}

/// A command given no image, two images, or a flag it does not use is told so at once (exit 2),
/// before any check runs and before a report folder exists.
#[test]
fn usage_errors_come_before_any_check() {
    let tmp = tempdir();
    for (args, says) in [
        (vec!["run"], "--iso"),
        (
            vec!["run", "--iso", "x.iso", "--flake", ".#iso"],
            "cannot be used with",
        ),
        (vec!["check", "host", "--accel", "kvm"], "--accel"),
        (
            vec!["replay", "x.log", "--timeout-scale", "2"],
            "--timeout-scale",
        ),
    ] {
        let mut cmd = bootaudit(&args);
        cmd.current_dir(tmp.path());
        let run = run_expect(cmd, QUICK_LIMIT, 2);
        assert!(
            run.stderr.contains(says),
            "{}: {}",
            args.join(" "),
            run.stderr
        );
        assert!(run.elapsed < Duration::from_secs(2), "{:?}", run.elapsed);
        assert!(
            !tmp.path().join("audit-reports").exists(),
            "{}: a report folder was made",
            args.join(" ")
        );
    }
}

// =============================================================================================
// 5. list

#[test]
fn list_shows_the_spec_ids_in_spec_order() {
    let run = run_expect(bootaudit(["list"]), QUICK_LIMIT, 0);
    // Condition rows: a mark column, then the phase and the id.
    let ids: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| ["host", "virt", "iso", "boot"].contains(&l.get(1..6).unwrap_or("").trim()))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(ids, SPEC_IDS, "bootaudit list:\n{}", run.stdout);
}

#[test]
fn list_of_an_id_shows_how_it_is_checked() {
    let run = run_expect(bootaudit(["list", "storage.vg-main"]), QUICK_LIMIT, 0);
    for what in [
        "vgs --noheadings -o vg_name",
        "root, through sudo -n sh -c '…'",
        "storage.status",
        "lvm",
    ] {
        assert!(
            run.stdout.contains(what),
            "`{what}` missing:\n{}",
            run.stdout
        );
    }
    let run = run_expect(bootaudit(["list", "no.such"]), QUICK_LIMIT, 2);
    assert!(run.stderr.contains("no.such"), "{}", run.stderr);
}

// =============================================================================================
// 6. checks written by a user, and replay of logs

/// A profile using the embedded catalog plus `extra` (written as extra.yaml beside it).
fn profile_with_catalog(tmp: &Path, extra: &str) -> PathBuf {
    std::fs::write(tmp.join("extra.yaml"), extra).unwrap();
    let profile = tmp.join("profile.yaml");
    std::fs::write(
        &profile,
        profile_text()
            .replace(
                "checks: [pre-nixos, boot-timeline]",
                "checks: [pre-nixos, boot-timeline, ./extra.yaml]",
            )
            .replace("  iface: lan\n", "  iface: lan\n  host: pre-nixos-box\n"),
    )
    .unwrap();
    profile
}

const HOSTNAME_CHECK: &str = "conditions:
  - id: net.hostname
    phase: boot
    requires: [shell.ready]
    passes_when: the guest is called {host}
    check: probe
    run: hostname
    pass: ['(?m)^(?P<name>{host})$']
    replay:
      - command: 'hostname|cat /etc/hostname'
        lines: '[\\w.-]+'
        max_lines: 1
";

#[test]
fn a_check_written_in_yaml_is_listed_and_replayed() {
    let tmp = tempdir();
    let profile = profile_with_catalog(tmp.path(), HOSTNAME_CHECK);
    let run = run_expect(
        bootaudit([
            "list",
            "net.hostname",
            "--profile",
            profile.to_str().unwrap(),
        ]),
        QUICK_LIMIT,
        0,
    );
    assert!(
        run.stdout.contains("the guest is called pre-nixos-box"),
        "{}",
        run.stdout
    );
    let log = tmp.path().join("console.log");
    std::fs::write(
        &log,
        "nixos login: nixos (automatic login)\r\r\n\x1b[1;32m[nixos@box:~]$\x1b[0m cat /etc/hostname\r\npre-nixos-box\r\n\x1b[1;32m[nixos@box:~]$\x1b[0m ",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["replay"]);
    cmd.arg(&log)
        .args(["--only", "net.hostname", "--format", "json", "--profile"])
        .arg(&profile)
        .arg("--out")
        .arg(&out);
    let run = run_expect(cmd, QUICK_LIMIT, 0);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let c = report["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "net.hostname")
        .expect("net.hostname in the report")
        .clone();
    assert_eq!(c["status"], "pass", "{c}");
    assert_eq!(c["evidence"], "name=pre-nixos-box", "{c}");
    assert_eq!(c["log_line"], 2, "{c}");
    let transcript = std::fs::read_to_string(out.join("conditions/net.hostname.log")).unwrap();
    assert!(transcript.contains("3: pre-nixos-box"), "{transcript}");
    assert!(
        !out.join("serial.raw").exists(),
        "a replay does not copy the log"
    );
}

#[test]
fn a_replay_form_naming_an_unknown_capture_is_exit_2_with_location() {
    let tmp = tempdir();
    let broken = HOSTNAME_CHECK.replace("max_lines: 1", "judge_as: '{nmae}'");
    let profile = profile_with_catalog(tmp.path(), &broken);
    let stderr = host_with_profile_exit_2(tmp.path(), profile.to_str().unwrap());
    let catalog = tmp.path().join("./extra.yaml");
    let line = line_of(&broken, "{nmae}");
    let col = broken.lines().nth(line - 1).unwrap().find("{nmae").unwrap() + 1;
    assert_location(&stderr, &catalog, line, &[col]);
    assert!(stderr.contains("nmae"), "{stderr}");
}

#[test]
fn a_replay_form_with_both_command_and_from_is_exit_2() {
    let tmp = tempdir();
    let broken = HOSTNAME_CHECK.replace("max_lines: 1", "from: escalation");
    let profile = profile_with_catalog(tmp.path(), &broken);
    let stderr = host_with_profile_exit_2(tmp.path(), profile.to_str().unwrap());
    assert!(stderr.contains("extra.yaml:2:"), "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");
}

#[test]
fn replay_of_a_missing_log_or_a_folder_without_serial_raw_is_exit_2() {
    let tmp = tempdir();
    for path in [tmp.path().join("nope.log"), tmp.path().to_path_buf()] {
        let out = tmp.path().join("out");
        let mut cmd = bootaudit(["replay"]);
        cmd.arg(&path).arg("--out").arg(&out);
        let run = run_expect(cmd, QUICK_LIMIT, 2);
        assert!(
            run.stderr.contains(path.to_str().unwrap()),
            "{}",
            run.stderr
        );
        assert!(!out.exists(), "no report folder for a bad path");
    }
}

#[test]
fn list_json_parses_with_the_spec_ids() {
    let run = run_expect(bootaudit(["list", "--format", "json"]), QUICK_LIMIT, 0);
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("list --format json: {e}\n{}", run.stdout));
    let ids: Vec<&str> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, SPEC_IDS);
    for c in v.as_array().unwrap() {
        assert!(c["phase"].is_string(), "{c}");
    }
}

// =============================================================================================
// Never a panic: stdout closed by the reader (`bootaudit list --format json | head -1`).

/// A pipe whose read end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills two fresh descriptors that we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

#[test]
fn list_into_closed_stdout_is_not_a_panic() {
    let run = run_with_stdout(
        bootaudit(["list", "--format", "json"]),
        QUICK_LIMIT,
        closed_pipe(),
    );
    assert_ne!(run.code, 3, "list into a closed pipe: {}", run.describe());
}

#[test]
fn check_iso_json_into_closed_stdout_is_not_a_panic() {
    let tmp = tempdir();
    let iso = healthy_iso(tmp.path());
    let (cmd, out) = check_iso_cmd(&iso, tmp.path(), &["--format", "json"]);
    let run = run_with_stdout(cmd, ISO_LIMIT, closed_pipe());
    assert_ne!(
        run.code,
        3,
        "check iso into a closed pipe: {}",
        run.describe()
    );
    // The report folder is still complete and valid.
    let r = Report::load(&out);
    r.assert_status("iso.console", "pass");
}

#[test]
fn ctrl_c_stops_a_long_replay_with_a_valid_report() {
    use std::io::Write;
    let tmp = tempdir();
    let log = tmp.path().join("long.log");
    {
        // ~60 MB of console flood: a debug build reads it for far longer than a second.
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        f.write_all(b"nixos login: nixos (automatic login)\r\n")
            .unwrap();
        let line = b"[  123.456789] random: a chatty service says nothing of interest here\r\r\n";
        for _ in 0..800_000 {
            f.write_all(line).unwrap();
        }
    }
    let out = tmp.path().join("out");
    let mut child = bootaudit(["replay"])
        .arg(&log)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: plain kill(2) on our child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("replay did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "interrupted exit code");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"], "interrupted");
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    roxmltree::Document::parse(&xml).expect("junit.xml is well-formed");
}

#[test]
fn replay_of_latest_serial_raw_reads_the_run_not_its_own_folder() {
    // The README's `bootaudit replay audit-reports/latest/serial.raw`: creating the replay's
    // folder repoints `latest`, so the log must be resolved first.
    let tmp = tempdir();
    let run = tmp.path().join("audit-reports/20260101T000000Z-x");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("serial.raw"),
        "nixos login: nixos (automatic login)\r\n",
    )
    .unwrap();
    std::fs::write(run.join("serial.timing"), "0 0\n").unwrap();
    std::fs::write(run.join("report.json"), "{}\n").unwrap();
    std::os::unix::fs::symlink(
        "20260101T000000Z-x",
        tmp.path().join("audit-reports/latest"),
    )
    .unwrap();
    let mut cmd = bootaudit([
        "replay",
        "audit-reports/latest/serial.raw",
        "--format",
        "json",
    ]);
    cmd.current_dir(tmp.path());
    let run_out = run_with_deadline(cmd, QUICK_LIMIT);
    let report: Value = serde_json::from_str(&run_out.stdout).unwrap();
    let login = report["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "boot.autologin")
        .unwrap()
        .clone();
    assert_eq!(login["status"], "pass", "{login}");
    assert!(report["replayed_log"]
        .as_str()
        .unwrap()
        .ends_with("20260101T000000Z-x/serial.raw"));
}

// ---- the console contract: what a profile for another image says ------------------------

/// The example profile docs/profiles.md gives for a new image loads as written.
#[test]
fn the_docs_example_profile_loads() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profiles.md"))
            .unwrap();
    let section = docs
        .split("## A profile for a new image, from scratch")
        .nth(1)
        .expect("the section is in docs/profiles.md");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a yaml block");
    let tmp = tempdir();
    let path = tmp.path().join("my-appliance.yaml");
    std::fs::write(&path, yaml).unwrap();
    let run = run_expect(
        bootaudit(["list", "--profile", path.to_str().unwrap()]),
        QUICK_LIMIT,
        0,
    );
    assert!(
        run.stdout.contains(
            "login: `root` with the password from the environment variable APPLIANCE_ROOT_PW"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("root: none"), "{}", run.stdout);
}

#[test]
fn list_shows_each_embedded_profiles_contract() {
    for (profile, says) in [
        ("pre-nixos", "login: autologin of `nixos` · root: sudo"),
        (
            "generic",
            "root: none · boots the default entry through the boot menu",
        ),
        (
            "nixos-installer",
            "directly (kernel and initrd from the ISO)",
        ),
    ] {
        let run = run_expect(bootaudit(["list", "--profile", profile]), QUICK_LIMIT, 0);
        assert!(run.stdout.contains(says), "{profile}: {}", run.stdout);
    }
    // --var adapts the generic profile; a var it lacks is an error naming its vars.
    let run = run_expect(
        bootaudit([
            "list",
            "--profile",
            "generic",
            "--var",
            "login=autologin",
            "--var",
            "user=live",
            "--var",
            "root_via=doas",
        ]),
        QUICK_LIMIT,
        0,
    );
    assert!(
        run.stdout.contains("autologin of `live` · root: doas"),
        "{}",
        run.stdout
    );
    let run = run_expect(
        bootaudit(["list", "--profile", "generic", "--var", "usr=x"]),
        QUICK_LIMIT,
        2,
    );
    assert!(
        run.stderr.contains("no variable `usr`") && run.stderr.contains("user"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_password_the_run_cannot_read_is_a_configuration_error_before_booting() {
    let tmp = tempdir();
    let mut cmd = bootaudit([
        "run",
        "--iso",
        "/nonexistent.iso",
        "--profile",
        "generic",
        "--out",
    ]);
    cmd.arg(tmp.path().join("out"))
        .env_remove("BOOTAUDIT_PASSWORD");
    let run = run_expect(cmd, QUICK_LIMIT, 2);
    assert!(
        run.stderr.contains("BOOTAUDIT_PASSWORD") && run.stderr.contains("export"),
        "{}",
        run.stderr
    );
    assert!(!tmp.path().join("out").exists(), "nothing was written");
}

#[test]
fn a_wrong_contract_value_is_located_and_says_what_to_write() {
    let tmp = tempdir();
    let path = tmp.path().join("p.yaml");
    std::fs::write(
        &path,
        "name: x\nchecks: [generic]\nconsole:\n  login:\n    mode: autologin\n    user: a\n  root:\n    via: sodu\nmachine:\n  memory: 1G\n  cpus: 1\n  nic: {device: virtio-net-pci}\n",
    )
    .unwrap();
    let run = run_expect(
        bootaudit(["list", "--profile", path.to_str().unwrap()]),
        QUICK_LIMIT,
        2,
    );
    assert!(run.stderr.contains("p.yaml:8:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("sudo, doas, su, none"),
        "{}",
        run.stderr
    );
}

#[test]
fn uefi_without_its_firmware_files_fails_the_host_check_naming_the_package() {
    let tmp = tempdir();
    let path = tmp.path().join("uefi.yaml");
    std::fs::write(
        &path,
        "name: x\nchecks: [generic]\nconsole:\n  login: {user: a}\nmachine:\n  firmware: uefi\n  uefi_code: /nonexistent/OVMF_CODE.fd\n  uefi_vars: /nonexistent/OVMF_VARS.fd\n  memory: 1G\n  cpus: 1\n  nic: {device: virtio-net-pci}\n",
    )
    .unwrap();
    let mut cmd = bootaudit([
        "check",
        "host",
        "--profile",
        path.to_str().unwrap(),
        "--out",
    ]);
    cmd.arg(tmp.path().join("out"));
    let run = run_expect(cmd, HOST_LIMIT, 1);
    let report = Report::load(&tmp.path().join("out"));
    let devices = report
        .conditions()
        .iter()
        .find(|c| c["id"] == "host.qemu-devices")
        .unwrap()
        .clone();
    assert_eq!(devices["status"], "fail", "{devices}");
    let msg = devices["message"].as_str().unwrap();
    assert!(
        msg.contains("/nonexistent/OVMF_CODE.fd") && msg.contains("`ovmf`"),
        "{msg}"
    );
    assert!(run.code == 1);
}

// =============================================================================================
// 8. compare two runs

/// A hand-written report.json: `conditions` as (id, status, duration_ms); milestones from
/// power-on at `power_on_ms`.
fn report_json(
    verdict: &str,
    conditions: &[(&str, &str, u64)],
    power_on_ms: u64,
    milestones: &[(&str, u64)],
) -> Value {
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(id, status, ms)| {
            serde_json::json!({
                "id": id, "phase": "boot", "status": status, "message": format!("{id}: {status}"),
                "evidence": "", "started_ms": 0, "duration_ms": ms,
                "transcript": format!("conditions/{id}.log"), "blocked_by": null,
            })
        })
        .collect();
    let milestones: Vec<Value> = milestones
        .iter()
        .map(|(name, at)| serde_json::json!({"name": name, "at_ms": at, "line": "…"}))
        .collect();
    serde_json::json!({
        "bootaudit_version": "0.1.0", "verdict": verdict, "profile": "pre-nixos",
        "iso": {"path": "healthy.iso", "sha256": null, "bytes": null}, "accel": "tcg",
        "started_at": "2025-01-01T00:00:00Z", "duration_ms": 90000,
        "timeline": {"power_on_ms": power_on_ms, "milestones": milestones},
        "conditions": conditions,
    })
}

fn write_report(dir: &Path, report: &Value) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report).unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}

fn compare_cmd(old: &Path, new: &Path, extra: &[&str]) -> Command {
    let mut cmd = bootaudit(["compare"]);
    cmd.arg(old).arg(new).args(extra);
    cmd
}

/// The healthy run, then one where storage.status fails (its dependant too) and the login
/// prompt comes 30 s later after power-on (the host checks took 10 s longer: not counted).
fn old_and_new(tmp: &Path) -> (PathBuf, PathBuf) {
    let old = write_report(
        &tmp.join("old"),
        &report_json(
            "pass",
            &[
                ("boot.login", "pass", 20_000),
                ("storage.status", "pass", 3_000),
                ("storage.vg-main", "pass", 500),
                ("net.lan-ipv4", "fail", 1_000),
            ],
            1_000,
            &[("kernel", 4_000), ("login prompt", 21_000)],
        ),
    );
    let new = write_report(
        &tmp.join("new"),
        &report_json(
            "fail",
            &[
                ("boot.login", "pass", 50_000),
                ("storage.status", "fail", 3_000),
                ("storage.vg-main", "fail", 500),
                ("net.lan-ipv4", "pass", 1_000),
            ],
            11_000,
            &[("kernel", 14_500), ("login prompt", 61_000)],
        ),
    );
    (old, new)
}

#[test]
fn compare_bad_input_exits_2_naming_the_file() {
    let tmp = tempdir();
    let (good, _) = old_and_new(tmp.path());
    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let not_json = tmp.path().join("junit.xml");
    std::fs::write(&not_json, "<testsuites/>\n").unwrap();
    let not_report = tmp.path().join("other.json");
    std::fs::write(
        &not_report,
        "{\n  \"name\": \"x\",\n  \"verdict\": \"maybe\"\n}\n",
    )
    .unwrap();
    let missing = tmp.path().join("no-such-run");
    let cases: [(&Path, &[&str]); 4] = [
        (&missing, &["no-such-run", "no such file"]),
        (&empty_dir, &["has no report.json"]),
        (&not_json, &["junit.xml", "is not JSON", "line 1"]),
        (
            &not_report,
            &["other.json", "is not a bootaudit report.json", "line 3"],
        ),
    ];
    for (bad, words) in cases {
        for (old, new) in [(bad, good.as_path()), (good.as_path(), bad)] {
            let run = run_expect(compare_cmd(old, new, &[]), QUICK_LIMIT, 2);
            for w in words.iter().chain(&["pass a report folder"]) {
                assert!(run.stderr.contains(w), "`{w}` missing:\n{}", run.describe());
            }
            assert!(run.stdout.is_empty(), "{}", run.describe());
        }
    }
}

#[test]
fn compare_finds_new_failures_and_slower_times_and_exits_1() {
    let tmp = tempdir();
    let (old, new) = old_and_new(tmp.path());
    let run = run_expect(
        compare_cmd(&old, &new, &["--format", "json"]),
        QUICK_LIMIT,
        1,
    );
    let c: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not (only) JSON: {e}\n{}", run.stdout));
    assert_eq!(c["regression"], true);
    assert_eq!(c["verdict"]["old"], "pass");
    assert_eq!(c["verdict"]["new"], "fail");
    let changes: Vec<(&str, &str, bool)> = c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap(),
                x["change"].as_str().unwrap(),
                x["regression"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("storage.status", "new_failure", true),
            ("storage.vg-main", "new_failure", true),
            ("net.lan-ipv4", "fixed", false),
        ]
    );
    // From power-on the kernel came at the same time; the login prompt 20 s later.
    assert_eq!(c["milestones_from"], "power_on");
    let slower: Vec<(&str, &str, u64, u64)> = c["slower"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["old_ms"].as_u64().unwrap(),
                s["new_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        slower,
        vec![
            ("milestone", "login prompt", 20_000, 50_000),
            ("condition", "boot.login", 20_000, 50_000),
        ]
    );
    assert_eq!(c["old"]["path"], old.to_str().unwrap());

    // The human list says the same, regressions first.
    let html = tmp.path().join("compare.html");
    let mut cmd = compare_cmd(&old.join("report.json"), &new, &["--html"]);
    cmd.arg(&html);
    let run = run_expect(cmd, QUICK_LIMIT, 1);
    let out = &run.stdout;
    let pos = |w: &str| {
        out.find(w)
            .unwrap_or_else(|| panic!("`{w}` missing:\n{out}"))
    };
    assert!(
        pos("regressions:") < pos("storage.status")
            && pos("storage.status") < pos("other changes:")
    );
    assert!(pos("other changes:") < pos("net.lan-ipv4") && pos("net.lan-ipv4") < pos("slower ("));
    assert!(out.contains("verdict: pass → fail") && out.contains("milestone login prompt"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<section id=\"comparison\">"), "{page}");
    assert!(page.contains("storage.status") && page.contains("login prompt"));
    for external in ["<script", "<link", "src=", "href=", "url("] {
        assert!(!page.contains(external), "{external} in the page");
    }
}

#[test]
fn compare_of_a_run_with_itself_or_within_the_thresholds_exits_0() {
    let tmp = tempdir();
    let (old, new) = old_and_new(tmp.path());
    let run = run_expect(compare_cmd(&old, &old, &[]), QUICK_LIMIT, 0);
    assert!(
        run.stdout.trim_end().ends_with("no regression"),
        "{}",
        run.stdout
    );
    // Only slower: within thresholds that allow it, no regression; beyond the default, one.
    let only_slower = write_report(
        &tmp.path().join("only-slower"),
        &report_json(
            "pass",
            &[
                ("boot.login", "pass", 50_000),
                ("storage.status", "pass", 3_000),
                ("storage.vg-main", "pass", 500),
                ("net.lan-ipv4", "fail", 1_000),
            ],
            11_000,
            &[("kernel", 14_500), ("login prompt", 61_000)],
        ),
    );
    run_expect(compare_cmd(&old, &only_slower, &[]), QUICK_LIMIT, 1);
    let run = run_expect(
        compare_cmd(
            &old,
            &only_slower,
            &["--slower-by", "200%", "--format", "json"],
        ),
        QUICK_LIMIT,
        0,
    );
    let c: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(c["slower"], serde_json::json!([]));
    assert_eq!(c["thresholds"]["slower_by_percent"], 200.0);
    run_expect(
        compare_cmd(&old, &only_slower, &["--at-least", "31"]),
        QUICK_LIMIT,
        0,
    );
    // The failure fixed in `new` alone is not a regression either way round… but a new one is.
    run_expect(compare_cmd(&new, &old, &[]), QUICK_LIMIT, 1);
    // A bad threshold is a usage error.
    run_expect(
        compare_cmd(&old, &new, &["--slower-by", "lots"]),
        QUICK_LIMIT,
        2,
    );
}

// ---- the report folder under hostile ground -------------------------------------------------

#[test]
fn an_out_folder_that_is_or_holds_a_symlink_is_never_followed() {
    let tmp = tempdir();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let victim = elsewhere.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    // --out is a symlink to another folder.
    let link = tmp.path().join("out-link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&link).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 2);
    assert!(run.stderr.contains("is a symlink"), "{}", run.describe());
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        1,
        "wrote through --out"
    );
    // --out holds symlinks where the report's files go.
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("report.json")).unwrap();
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&out).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 2);
    assert!(
        run.stderr.contains("report.json is a symlink"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    std::fs::remove_file(out.join("report.json")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("conditions")).unwrap();
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&out).current_dir(tmp.path());
    run_expect(cmd, HOST_LIMIT, 2);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        1,
        "wrote through conditions/"
    );
}

#[test]
fn report_paths_with_spaces_and_non_ascii_work() {
    let tmp = tempdir();
    let out = tmp.path().join("reports with spaces/ünïcødé ✓");
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&out).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 0);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    roxmltree::Document::parse(&xml).unwrap();
    assert!(out.join("report.html").is_file());
}

/// A tmpfs of a few pages stands in for a full disk: the run ends with exit 3 saying so, and
/// whatever report files were written are whole (never cut JSON or XML), no `.tmp` is left.
#[test]
fn a_full_disk_is_exit_3_and_what_was_written_stays_valid() {
    let tmp = tempdir();
    let mnt = tmp.path().join("small disk");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "this test mounts a small tmpfs: run the tests as root (as CI and setup.sh do)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    // Fill it, then free a few pages: the small files of the report fit, the rest does not.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(6 * 4096))
        .unwrap();
    let out = mnt.join("out");
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&out).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 3);
    assert!(
        run.stderr.contains("the report folder is incomplete"),
        "{}",
        run.describe()
    );
    let mut seen = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "left behind: {}", p.display());
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if name.ends_with(".json") {
                serde_json::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{name} is cut: {e}"));
            }
            if name.ends_with(".xml") {
                roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name} is cut: {e}"));
            }
            if !text.is_empty() {
                seen.push(name);
            }
        }
    }
    assert!(
        !seen.is_empty(),
        "nothing at all was written: the test proves nothing"
    );
    assert!(
        !seen.iter().any(|n| n == "report.html"),
        "everything fitted: the disk was not full ({seen:?})"
    );
    // Written last, report.json says what is missing: it must not read as a plain answer.
    if let Ok(text) = std::fs::read_to_string(out.join("report.json")) {
        let json: Value = serde_json::from_str(&text).unwrap();
        let problems = json["report_problems"].as_array();
        assert!(
            problems.is_some_and(|p| p
                .iter()
                .any(|w| w.as_str().unwrap().contains("report.html"))),
            "{json:#}"
        );
    }
}

/// `--skip` a condition others need: they are left out with it, and the run passes — a user's
/// choice never makes a run incomplete, let alone "Fail" with nothing failed.
#[test]
fn a_skipped_condition_and_what_needs_it_never_fail_the_run() {
    let tmp = tempdir();
    let iso = healthy_iso(tmp.path());
    let (cmd, out) = check_iso_cmd(&iso, tmp.path(), &["--skip", "iso.bootable"]);
    let run = run_expect(cmd, ISO_LIMIT, 0);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    r.assert_status("iso.bootable", "skip");
    r.assert_status("iso.console", "skip");
    assert!(run.stderr.contains("Pass — "), "{}", run.stderr);
    assert!(!run.stderr.contains("Fail"), "{}", run.stderr);
}

/// A log that shows the boot but not the rest: nothing failed, so the run is not "fail" but
/// `incomplete` (exit 4) with the reason in one line, and junit.xml carries the verdict.
#[test]
fn a_replay_that_cannot_judge_everything_is_incomplete_not_failed() {
    let tmp = tempdir();
    let log = tmp.path().join("short.log");
    std::fs::write(
        &log,
        "SeaBIOS (version 1.16)\n[    0.000000] Linux version 6.6.1\nnixos login: \n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["replay"]);
    cmd.arg(&log).arg("--out").arg(&out).current_dir(tmp.path());
    let run = run_expect(cmd, QUICK_LIMIT, 4);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    assert!(
        run.stderr.contains("Incomplete — 2 passed, 0 failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("not judged: boot.autologin (not observed in the log)"),
        "{}",
        run.stderr
    );
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        xml.contains(r#"name="verdict" value="incomplete""#),
        "{xml}"
    );
    assert!(xml.contains(r#"failures="0""#), "{xml}");
}

/// A fake run's report folder in `cwd`/audit-reports, with `latest` pointing at it.
fn fake_run_folder(cwd: &Path) -> PathBuf {
    let run = cwd.join("audit-reports/20260101T000000Z-x");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("serial.raw"),
        "nixos login: nixos (automatic login)\r\n",
    )
    .unwrap();
    std::fs::write(run.join("serial.timing"), "0 0\n").unwrap();
    std::fs::write(
        run.join("serial.log"),
        "    0.512 < nixos login: nixos (automatic login)\n    0.900 > printf x\n",
    )
    .unwrap();
    std::fs::write(run.join("report.json"), "{}\n").unwrap();
    std::os::unix::fs::symlink("20260101T000000Z-x", cwd.join("audit-reports/latest")).unwrap();
    run
}

/// The README's `bootaudit replay audit-reports/latest` keeps working: checks and replays do
/// not move `latest`, a folder replays its serial.raw, and twice gives the same.
#[test]
fn latest_stays_the_newest_runs_and_a_report_folder_replays_its_serial_raw() {
    let tmp = tempdir();
    fake_run_folder(tmp.path());
    let mut cmd = bootaudit(["check", "host"]);
    cmd.current_dir(tmp.path());
    run_with_deadline(cmd, HOST_LIMIT);
    let mut verdicts = Vec::new();
    for _ in 0..2 {
        let mut cmd = bootaudit(["replay", "audit-reports/latest", "--format", "json"]);
        cmd.current_dir(tmp.path());
        let run = run_with_deadline(cmd, QUICK_LIMIT);
        let report: Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.describe()));
        assert!(
            report["replayed_log"]
                .as_str()
                .unwrap()
                .ends_with("20260101T000000Z-x/serial.raw"),
            "{}",
            report["replayed_log"]
        );
        verdicts.push((run.code, report["verdict"].clone()));
    }
    assert_eq!(verdicts[0], verdicts[1]);
    assert_eq!(
        std::fs::read_link(tmp.path().join("audit-reports/latest")).unwrap(),
        Path::new("20260101T000000Z-x")
    );
    // Two replays of one log, within a second or not, never share a folder.
    let replays: Vec<String> = std::fs::read_dir(tmp.path().join("audit-reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-replay-"))
        .collect();
    assert_eq!(replays.len(), 2, "{replays:?}");
}

/// A run's readable serial.log is not judged as a foreign console capture: it is refused,
/// pointing at serial.raw beside it.
#[test]
fn replay_of_a_runs_serial_log_points_at_its_serial_raw() {
    let tmp = tempdir();
    let run_dir = fake_run_folder(tmp.path());
    let mut cmd = bootaudit(["replay"]);
    cmd.arg(run_dir.join("serial.log")).current_dir(tmp.path());
    let run = run_expect(cmd, QUICK_LIMIT, 2);
    assert!(run.stderr.contains("readable transcript"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            &run_dir
                .join("serial.raw")
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        ),
        "{}",
        run.stderr
    );
}

/// --out into a folder of someone else's files is refused and touches nothing; into a previous
/// report it replaces that report whole.
#[test]
fn out_into_a_used_folder_is_refused_or_replaced_whole() {
    let tmp = tempdir();
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&theirs).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 2);
    assert!(run.stderr.contains("notes.txt"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 1);
    // Files that only share a report's names (another harness's logs, a user's own
    // diagnostics) are someone's too: refused, and left as they are.
    let logs = tmp.path().join("ci-logs");
    std::fs::create_dir_all(logs.join("diagnostics")).unwrap();
    std::fs::write(logs.join("serial.log"), "pexpect's log").unwrap();
    std::fs::write(logs.join("qemu.log"), "its qemu").unwrap();
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&logs).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 2);
    assert!(
        run.stderr.contains("not a bootaudit report"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("serial.log")).unwrap(),
        "pexpect's log"
    );
    let ours = tmp.path().join("ours");
    std::fs::create_dir_all(ours.join("conditions")).unwrap();
    std::fs::write(
        ours.join("report.json"),
        r#"{"bootaudit_version": "0.1.0"}"#,
    )
    .unwrap();
    std::fs::write(ours.join("conditions/plan.md"), "notes").unwrap();
    let mut cmd = bootaudit(["check", "host", "--out"]);
    cmd.arg(&ours).current_dir(tmp.path());
    let run = run_expect(cmd, HOST_LIMIT, 2);
    assert!(
        run.stderr.contains("conditions/ holds plan.md"),
        "{}",
        run.stderr
    );
    assert!(ours.join("conditions/plan.md").is_file());
    // A previous report: its stale serial.raw and an old condition's log go.
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("conditions")).unwrap();
    std::fs::write(out.join("serial.raw"), "old console").unwrap();
    std::fs::write(out.join("conditions/boot.login.log"), "old").unwrap();
    std::fs::write(out.join("report.json"), r#"{"bootaudit_version": "0.1.0"}"#).unwrap();
    let (cmd, out) = check_iso_cmd(&healthy_iso(tmp.path()), tmp.path(), &[]);
    let run = run_expect(cmd, ISO_LIMIT, 0);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    assert_eq!(std::fs::read_to_string(out.join("serial.raw")).unwrap(), "");
    assert!(
        !out.join("conditions/boot.login.log").exists(),
        "an old transcript was kept"
    );
}
