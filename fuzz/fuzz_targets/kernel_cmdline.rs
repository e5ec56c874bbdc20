//! The kernel command-line analysis of `bootaudit-iso` (`console.rs`) over arbitrary text:
//! splitting as the kernel does, splitting into words to pass on, the `console=` device of
//! each value, and the console use for a port. Checks the invariants the callers rely on.
#![no_main]

use bootaudit_iso::console::{analyse, cmdline_words, console_device, kernel_params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cmdline = String::from_utf8_lossy(data);
    let params = kernel_params(&cmdline);
    // `--` ends the kernel's parameters: it is never one of them.
    assert!(!params.iter().any(|p| p == "--"), "{params:?}");
    for p in &params {
        if let Some(value) = p.strip_prefix("console=") {
            let _ = console_device(value);
        }
    }
    // Words are passed on joined by spaces (a direct boot's -append): split again, they must
    // be the same words.
    let words = cmdline_words(&cmdline);
    assert!(words.iter().all(|w| !w.is_empty()));
    assert_eq!(
        cmdline_words(&words.join(" ")),
        words,
        "words of {cmdline:?}"
    );
    for port in ["ttyS0", "ttyS1", "hvc0"] {
        let used = analyse(&cmdline, port);
        assert!(!used.port_last || used.has_port);
        assert_eq!(used.primary(), used.consoles.last().map(String::as_str));
        assert_eq!(
            used.has_port,
            used.consoles.iter().any(|c| console_device(c) == port)
        );
    }
});
