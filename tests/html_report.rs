//! report.html in a real headless Chromium, without booting: a run that fails before the boot
//! (the ISO sends no console to the serial port). The boot tests check the pages of booted
//! runs, with their timelines.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let iso = root.join(format!("fixtures/out/{name}.iso"));
    if !iso.is_file() {
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("fixtures/build-images.sh")).arg(name);
        let run = common::run_with_deadline(cmd, Duration::from_secs(1800));
        assert_eq!(
            run.code,
            0,
            "fixtures/build-images.sh {name}\n{}",
            run.describe()
        );
    }
    iso
}

#[test]
fn a_failed_iso_check_shows_its_failure_on_the_first_screen() {
    let iso = fixture("no-serial");
    let tmp = common::tempdir();
    let out = tmp.path().join("report");
    let mut cmd = common::bootaudit(["check", "iso", "--iso"]);
    cmd.arg(&iso).arg("--out").arg(&out);
    common::run_expect(cmd, Duration::from_secs(60), 1);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("This run did not boot"),
        "no serial log section"
    );
    common::html::check(
        &out,
        "iso-check-failed",
        common::html::Expect {
            failed: Some("iso.console"),
            stages: 0,
        },
    );
}
