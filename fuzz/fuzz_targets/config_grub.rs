//! The GRUB `grub.cfg` parser of `bootaudit-iso` over arbitrary text: entries, skipped entries,
//! includes and warnings, then the console judgement of what it found. Never a panic; every
//! line number it reports is a line of the text.
#![no_main]

use bootaudit_iso::{console, parse_config, ConfigKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_config(ConfigKind::Grub, "EFI/BOOT/grub.cfg", &text);
    let lines = text.lines().count().max(1);
    for e in &parsed.entries {
        assert!(
            (1..=lines).contains(&e.line),
            "entry line {} of {lines}",
            e.line
        );
        assert!(
            (1..=lines).contains(&e.cmdline_line),
            "command line at line {} of {lines}",
            e.cmdline_line
        );
    }
    for s in &parsed.skipped {
        assert!(
            (1..=lines).contains(&s.line),
            "skipped line {} of {lines}",
            s.line
        );
    }
    for (line, _) in &parsed.includes {
        assert!((1..=lines).contains(line), "include line {line} of {lines}");
    }
    for w in &parsed.warnings {
        let _ = w.to_string();
    }
    for port in ["ttyS0", "hvc0"] {
        let verdict = console::judge(&parsed.entries, port);
        for f in verdict.failures.iter().chain(&verdict.warnings) {
            let _ = f.to_string();
        }
    }
});
