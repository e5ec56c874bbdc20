//! `--flake` with a real nix (Debian 12's nix 2.8, which scripts/setup.sh installs): host.nix
//! and iso.build run the nix CLI on a flake written into a temp folder from tests/nix/flake.nix
//! (no inputs, no nixpkgs: the machines are offline), and one run boots what nix built up to the
//! login prompt. The project's own flake.nix is parsed and evaluated against a stub nixpkgs.
//! Without nix these tests fail (they do not skip): run `bash scripts/setup.sh`.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// bootaudit passes these to every `nix build` (iso.build); the tests' own nix calls too.
const FEATURES: [&str; 2] = ["--extra-experimental-features", "nix-command flakes"];

/// This machine's nix settings, given to the child only (not bootaudit's business): root
/// without a nix daemon or a `nixbld` group builds as root (`build-users-group =`); no network,
/// so no binary cache (each lookup of cache.nixos.org retries for seconds); no sandbox, since
/// Debian's nix has no sandbox shell (see tests/nix/flake.nix).
const NIX_CONFIG: &str = "build-users-group =\nsubstituters =\nsandbox = false\n";

const BOOT_LIMIT: Duration = Duration::from_secs(600);
const QUICK_LIMIT: Duration = Duration::from_secs(120);

/// nix's `--version` line; the test fails if nix is missing.
fn require_nix() -> String {
    match Command::new("nix").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => panic!(
            "`nix --version` failed: {} — run `bash scripts/setup.sh` (it installs Debian's nix-bin)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "nix is not installed ({e}) — run `bash scripts/setup.sh` (it installs Debian's nix-bin)"
        ),
    }
}

/// The fixture ISO's real path (fixtures/out/ holds symlinks into the fixture cache).
fn fixture_iso() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/out/healthy.iso");
    std::fs::canonicalize(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} — build it with `bash fixtures/build-images.sh healthy`",
            p.display()
        )
    })
}

/// tests/nix/flake.nix for this machine, written to `dir/flake`; returns that folder.
fn write_flake(dir: &Path) -> PathBuf {
    let flake = dir.join("flake");
    std::fs::create_dir_all(&flake).unwrap();
    let text = include_str!("nix/flake.nix")
        .replace("@SYSTEM@", &format!("{}-linux", std::env::consts::ARCH))
        .replace("@ISO@", &fixture_iso().display().to_string());
    std::fs::write(flake.join("flake.nix"), text).unwrap();
    flake
}

/// `bootaudit ARGS --flake FLAKE#ATTR --out TMP/out`, run in TMP with the test's nix settings.
fn bootaudit_flake(tmp: &Path, args: &[&str], attr: &str) -> (Command, PathBuf) {
    let flake = write_flake(tmp);
    let out = tmp.join("out");
    let mut cmd = bootaudit(args);
    cmd.arg("--flake")
        .arg(format!("{}#{attr}", flake.display()))
        .arg("--out")
        .arg(&out)
        .env("NIX_CONFIG", NIX_CONFIG)
        .current_dir(tmp);
    (cmd, out)
}

#[test]
fn run_with_flake_builds_the_iso_with_nix_and_boots_it() {
    let version = require_nix();
    let iso = fixture_iso();
    let tmp = tempdir();
    let (cmd, out) = bootaudit_flake(tmp.path(), &["run", "--only", "boot.login"], "iso");
    let run = run_expect(cmd, BOOT_LIMIT, 0);
    eprintln!("run --flake …#iso --only boot.login: {:?}", run.elapsed);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    r.assert_status("host.nix", "pass");
    r.assert_message_has("host.nix", &[&version]);
    r.assert_status("iso.build", "pass");
    // The ISO is the one in nix's output, in the store; resolve and boot use it.
    let built = r.json["iso"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        built.starts_with("/nix/store/") && built.ends_with("-bootaudit-test-iso/iso/healthy.iso"),
        "report.json's iso.path is not nix's output: {built:?}\n{}",
        serde_json::to_string_pretty(&r.json["iso"]).unwrap()
    );
    r.assert_message_has("iso.build", &[&built]);
    let out_path = built.trim_end_matches("/iso/healthy.iso");
    assert_eq!(
        r.evidence("iso.build"),
        out_path,
        "the evidence is nix's output path"
    );
    assert_eq!(
        r.json["iso"]["bytes"],
        std::fs::metadata(&iso).unwrap().len(),
        "the built ISO is the fixture"
    );
    for id in ["iso.resolve", "iso.bootable", "boot.console", "boot.login"] {
        r.assert_status(id, "pass");
    }
    assert!(
        std::fs::metadata(out.join("serial.raw")).unwrap().len() > 0,
        "the guest said nothing"
    );
}

#[test]
fn a_failing_nix_build_fails_iso_build_with_nixs_error_and_boots_nothing() {
    require_nix();
    let tmp = tempdir();
    let (cmd, out) = bootaudit_flake(tmp.path(), &["run", "--only", "boot.login"], "broken");
    let run = run_expect(cmd, QUICK_LIMIT, 1);
    eprintln!("run --flake …#broken: {:?}", run.elapsed);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    r.assert_status("host.nix", "pass");
    r.assert_status("iso.build", "fail");
    // nix's own words: the derivation, its exit code and the builder's last log line.
    r.assert_message_has(
        "iso.build",
        &[
            "nix build",
            "bootaudit-test-broken.drv",
            "failed with exit code 1",
            "bootaudit test: this build fails on purpose",
        ],
    );
    assert!(
        r.evidence("iso.build")
            .contains("this build fails on purpose"),
        "the evidence holds nix's stderr: {}",
        r.evidence("iso.build")
    );
    r.assert_status("iso.resolve", "skip");
    assert_eq!(r.blocked_by("iso.resolve"), Some("iso.build"));
    for id in ["boot.console", "boot.login"] {
        r.assert_status(id, "skip");
        assert!(r.blocked_by(id).is_some(), "{id} is not blocked");
    }
    assert!(r.json["iso"].is_null() || r.json["iso"]["path"].is_null());
    let serial = std::fs::metadata(out.join("serial.raw")).unwrap().len();
    assert_eq!(serial, 0, "nothing may boot after a failed build");
}

#[test]
fn a_nix_build_without_an_iso_fails_iso_build_naming_the_output() {
    require_nix();
    let tmp = tempdir();
    let (cmd, out) = bootaudit_flake(tmp.path(), &["check", "iso"], "noiso");
    let run = run_expect(cmd, QUICK_LIMIT, 1);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    r.assert_status("iso.build", "fail");
    r.assert_message_has(
        "iso.build",
        &["no .iso", "-bootaudit-test-noiso", "/nix/store/"],
    );
    r.assert_status("iso.resolve", "skip");
}

#[test]
fn host_nix_passes_with_the_real_nix() {
    let version = require_nix();
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["check", "host", "--flake", "x", "--out"]);
    cmd.arg(&out).current_dir(tmp.path());
    let run = run_with_deadline(cmd, QUICK_LIMIT);
    let r = Report::load(&out);
    r.assert_status("host.nix", "pass");
    r.assert_message_has("host.nix", &["nix works", &version]);
    assert!(run.code == 0 || run.code == 1, "{}", run.describe());
}

#[test]
fn host_nix_without_nix_on_path_fails_with_an_install_hint() {
    let tmp = tempdir();
    // A PATH with QEMU and nothing else, so only host.nix has a reason to fail.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let qemu = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .expect("qemu-system-x86_64 on PATH (run scripts/setup.sh)");
    std::os::unix::fs::symlink(&qemu, bin.join("qemu-system-x86_64")).unwrap();
    let out = tmp.path().join("out");
    let mut cmd = bootaudit(["check", "host", "--flake", "x", "--out"]);
    cmd.arg(&out).env("PATH", &bin).current_dir(tmp.path());
    let run = run_expect(cmd, QUICK_LIMIT, 1);
    let r = Report::load(&out);
    assert_verdict_matches(&run, &r);
    r.assert_status("host.qemu", "pass");
    r.assert_status("host.nix", "fail");
    r.assert_message_has(
        "host.nix",
        &[
            "nix is not installed",
            "--flake",
            "apt-get install nix-setup-systemd",
            "https://nixos.org/nix/install",
            "--iso",
        ],
    );
    assert!(
        r.evidence("host.nix").contains(&bin.display().to_string()),
        "the evidence shows the PATH searched: {}",
        r.evidence("host.nix")
    );
}

/// `nix ARGS`, with the flake features and the test's settings; its stdout as JSON.
fn nix_json(args: &[&str]) -> Value {
    let mut cmd = Command::new("nix");
    cmd.args(FEATURES).args(args).env("NIX_CONFIG", NIX_CONFIG);
    let dbg = format!("{cmd:?}");
    let run = run_with_deadline(cmd, QUICK_LIMIT);
    assert_eq!(run.code, 0, "{dbg}\n{}", run.describe());
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{dbg}: not JSON: {e}\n{}", run.describe()))
}

#[test]
fn the_projects_flake_parses_and_evaluates_against_a_stub_nixpkgs() {
    require_nix();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut parse = Command::new("nix-instantiate");
    parse.arg("--parse").arg(manifest.join("flake.nix"));
    run_expect(parse, QUICK_LIMIT, 0);

    // The flake, in a folder of its own (nix copies a flake's folder into the store), with
    // nixpkgs replaced by tests/nix/stub-nixpkgs.nix: fetching nixpkgs needs the network.
    let tmp = tempdir();
    let project = tmp.path().join("project");
    let stub = tmp.path().join("nixpkgs");
    for d in [&project, &stub] {
        std::fs::create_dir(d).unwrap();
    }
    for f in ["flake.nix", "Cargo.lock", "Cargo.toml"] {
        std::fs::copy(manifest.join(f), project.join(f))
            .unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    std::fs::write(stub.join("flake.nix"), include_str!("nix/stub-nixpkgs.nix")).unwrap();
    let flake = project.display().to_string();
    let override_input = format!("path:{}", stub.display());
    let eval = |what: &str| -> Value {
        nix_json(&[
            "eval",
            "--json",
            &format!("{flake}#{what}"),
            "--override-input",
            "nixpkgs",
            &override_input,
            "--no-write-lock-file",
        ])
    };

    let packages = eval("packages");
    let devshells = eval("devShells");
    for system in ["x86_64-linux", "aarch64-linux"] {
        let p = &packages[system]["default"];
        assert_eq!(p["pname"], "bootaudit", "{system}: {packages}");
        assert_eq!(
            p["version"],
            env!("CARGO_PKG_VERSION"),
            "{system}: flake.nix's version is not Cargo.toml's"
        );
        assert_eq!(p["lockFileExists"], true, "{system}: cargoLock.lockFile");
        assert_eq!(p["srcIsTheFlake"], true, "{system}: src = self");
        let post = p["postInstall"].as_str().unwrap_or_default();
        assert!(
            post.contains("wrapProgram $out/bin/bootaudit") && post.contains("/stub/qemu/bin"),
            "{system}: the binary is not wrapped with QEMU on PATH: {post:?}"
        );
        let shell = devshells[system]["default"]["packages"].to_string();
        for tool in ["stub-cargo", "/stub/qemu", "stub-xorriso"] {
            assert!(
                shell.contains(tool),
                "{system}: dev shell lacks {tool}: {shell}"
            );
        }
    }

    let meta = nix_json(&[
        "flake",
        "metadata",
        "--json",
        &flake,
        "--override-input",
        "nixpkgs",
        &override_input,
        "--no-write-lock-file",
    ]);
    assert!(
        meta["description"]
            .as_str()
            .is_some_and(|d| d.contains("bootaudit")),
        "{meta}"
    );
    let original = &meta["locks"]["nodes"]["nixpkgs"]["original"];
    assert_eq!(
        ["type", "owner", "repo"].map(|k| original[k].as_str()),
        [Some("github"), Some("NixOS"), Some("nixpkgs")],
        "inputs.nixpkgs: {original}"
    );
    assert!(
        !project.join("flake.lock").exists(),
        "--no-write-lock-file wrote a lock"
    );
}
