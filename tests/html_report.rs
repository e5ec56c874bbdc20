//! report.html in a real headless Chromium, without booting: a run that fails before the boot
//! (the ISO sends no console to the serial port). The boot tests check the pages of booted
//! runs, with their timelines.

mod common;

use std::time::Duration;

#[test]
fn a_failed_iso_check_shows_its_failure_on_the_first_screen() {
    let iso = common::fixture_iso("no-serial");
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
            bars: false,
        },
    );
}
