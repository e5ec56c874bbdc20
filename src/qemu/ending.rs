//! Why a QEMU session ended, told from what QEMU itself reports: its exit status, the reason of
//! the SHUTDOWN event it sent on QMP, its run state, and its own log. The line it draws is the
//! one between the image (the guest powered off, rebooted or panicked: a failure of the image)
//! and the infrastructure (QEMU killed, crashed, out of disk, the serial socket lost: an error
//! of the run, never the image's fault). Pure, so every case is tested without a boot.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// What was seen of a session that stopped answering.
#[derive(Debug, Default, Clone)]
pub struct Observed<'a> {
    /// QEMU's exit status; None while it still runs.
    pub status: Option<ExitStatus>,
    /// The `reason` of QEMU's SHUTDOWN event (`guest-shutdown`, `guest-reset`, `host-signal`…).
    pub shutdown_reason: Option<&'a str>,
    /// QEMU's run state from `query-status`, when it still runs (`running`, `io-error`…).
    pub run_state: Option<&'a str>,
    /// A BLOCK_IO_ERROR event said the host had no space left for a guest disk.
    pub no_space: bool,
    /// What QEMU wrote to its log (stderr).
    pub log: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The guest powered itself off.
    GuestPoweredOff,
    /// The guest rebooted (QEMU runs with -no-reboot, so a reset ends it).
    GuestRebooted,
    /// The guest reported a panic to QEMU (pvpanic).
    GuestPanicked,
    /// QEMU was asked to stop by a signal from outside bootaudit, and did.
    StoppedBySignal { detail: String },
    /// QEMU was killed by a signal it could not handle (SIGKILL: an OOM killer, a CI cancel).
    Killed { signal: i32 },
    /// QEMU crashed (a fatal signal of its own).
    Crashed { signal: i32 },
    /// QEMU exited with an error of its own.
    Failed { code: i32, message: String },
    /// QEMU paused the guest: the host ran out of space for a guest disk.
    HostDiskFull,
    /// QEMU stopped the guest for an error of its own (`internal-error`, `io-error`).
    Stopped { state: String },
    /// QEMU still runs, but the serial console's socket failed.
    SerialLost,
    /// QEMU exited cleanly and said nothing about why.
    Unexplained,
}

impl Ending {
    /// A fact about the image (fail), or about the run (error)?
    pub fn is_image_fault(&self) -> bool {
        matches!(
            self,
            Ending::GuestPoweredOff | Ending::GuestRebooted | Ending::GuestPanicked
        )
    }

    /// "the guest powered off", "QEMU was killed by SIGKILL…": the clause after "during X:".
    pub fn describe(&self) -> String {
        const NOT_IMAGE: &str = "not a fault of the image";
        match self {
            Ending::GuestPoweredOff => "the guest powered off".into(),
            Ending::GuestRebooted => "the guest rebooted (QEMU runs with -no-reboot)".into(),
            Ending::GuestPanicked => "the guest reported a panic to QEMU".into(),
            Ending::StoppedBySignal { detail } => format!(
                "QEMU was stopped from outside bootaudit ({detail}) — {NOT_IMAGE}; the host or \
                 a CI job's cancel ended it"
            ),
            Ending::Killed { signal } => format!(
                "QEMU was killed by {} from outside bootaudit — {NOT_IMAGE}; the kernel's OOM \
                 killer or a CI job's cancel do this (see the host's `dmesg`)",
                signal_name(*signal)
            ),
            Ending::Crashed { signal } => format!(
                "QEMU crashed ({}) — {NOT_IMAGE}; qemu.log has QEMU's last words",
                signal_name(*signal)
            ),
            Ending::Failed { code, message } => format!(
                "QEMU exited with status {code}{} — {NOT_IMAGE}",
                match message.is_empty() {
                    true => String::new(),
                    false => format!(": {message}"),
                }
            ),
            Ending::HostDiskFull => format!(
                "the host ran out of disk space for the guest's disk, so QEMU paused the guest \
                 — {NOT_IMAGE}; free space in the temporary folder (TMPDIR)"
            ),
            Ending::Stopped { state } => {
                format!("QEMU stopped the guest (run state `{state}`) — {NOT_IMAGE}")
            }
            Ending::SerialLost => {
                format!("the serial console's socket failed while QEMU still ran — {NOT_IMAGE}")
            }
            Ending::Unexplained => "QEMU exited without saying why (no SHUTDOWN event on QMP) \
                 — it cannot be told whether the guest powered off, so it is not counted against \
                 the image"
                .into(),
        }
    }
}

/// Signals that mean QEMU itself went wrong, not that someone stopped it.
const CRASH_SIGNALS: [i32; 6] = [
    libc::SIGSEGV,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSYS,
];

pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {signal}"),
    };
    format!("{name} (signal {signal})")
}

/// QEMU's own words when a signal stops it: `terminating on signal 15 from pid 1234 (kill)`.
fn terminating_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .find(|l| l.contains("terminating on signal"))
        .map(|l| l.split_once(": ").map_or(l, |(_, rest)| rest).trim())
}

/// The last lines of QEMU's log that say something, for a failure of QEMU's own.
fn last_words(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('$'))
        .collect();
    lines[lines.len().saturating_sub(2)..].join(" / ")
}

pub fn classify(seen: &Observed) -> Ending {
    let Some(status) = seen.status else {
        if seen.no_space {
            return Ending::HostDiskFull;
        }
        return match seen.run_state {
            Some(s @ ("io-error" | "internal-error" | "shutdown" | "guest-panicked")) => match s {
                "guest-panicked" => Ending::GuestPanicked,
                "shutdown" => from_reason(seen).unwrap_or(Ending::Unexplained),
                _ => Ending::Stopped { state: s.into() },
            },
            _ => Ending::SerialLost,
        };
    };
    if let Some(signal) = status.signal() {
        return match CRASH_SIGNALS.contains(&signal) {
            true => Ending::Crashed { signal },
            false => Ending::Killed { signal },
        };
    }
    if let Some(line) = terminating_line(seen.log) {
        return Ending::StoppedBySignal {
            detail: line.to_string(),
        };
    }
    match status.code() {
        Some(0) | None => from_reason(seen).unwrap_or(Ending::Unexplained),
        Some(code) => Ending::Failed {
            code,
            message: last_words(seen.log),
        },
    }
}

fn from_reason(seen: &Observed) -> Option<Ending> {
    Some(match seen.shutdown_reason? {
        "guest-shutdown" => Ending::GuestPoweredOff,
        "guest-reset" => Ending::GuestRebooted,
        "guest-panic" => Ending::GuestPanicked,
        "host-signal" => Ending::StoppedBySignal {
            detail: "a signal".into(),
        },
        other => Ending::StoppedBySignal {
            detail: format!("SHUTDOWN reason `{other}`"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    fn signalled(sig: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(sig))
    }

    #[test]
    fn the_guests_own_endings_are_the_images() {
        for (reason, want) in [
            ("guest-shutdown", Ending::GuestPoweredOff),
            ("guest-reset", Ending::GuestRebooted),
            ("guest-panic", Ending::GuestPanicked),
        ] {
            let e = classify(&Observed {
                status: exited(0),
                shutdown_reason: Some(reason),
                ..Default::default()
            });
            assert_eq!(e, want);
            assert!(e.is_image_fault());
        }
    }

    #[test]
    fn killed_crashed_stopped_or_failing_qemu_is_never_the_images() {
        let cases = [
            (signalled(libc::SIGKILL), None, "", "SIGKILL"),
            (signalled(libc::SIGSEGV), None, "", "crashed"),
            (signalled(libc::SIGABRT), None, "", "crashed"),
            (
                exited(0),
                Some("host-signal"),
                "qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)\n",
                "signal 15 from pid 4242",
            ),
            (
                exited(1),
                None,
                "# boot\n$ qemu ...\nqemu-system-x86_64: -m 99999G: cannot set up guest memory 'pc.ram': Cannot allocate memory\n",
                "Cannot allocate memory",
            ),
            (exited(0), None, "", "without saying why"),
        ];
        for (status, reason, log, says) in cases {
            let e = classify(&Observed {
                status,
                shutdown_reason: reason,
                log,
                ..Default::default()
            });
            assert!(!e.is_image_fault(), "{e:?}");
            assert!(e.describe().contains(says), "{e:?}: {}", e.describe());
        }
    }

    #[test]
    fn a_running_qemu_whose_socket_failed_or_that_paused_is_the_hosts() {
        let running = |state, no_space| {
            classify(&Observed {
                run_state: state,
                no_space,
                ..Default::default()
            })
        };
        assert_eq!(running(Some("running"), false), Ending::SerialLost);
        assert_eq!(running(None, false), Ending::SerialLost);
        assert_eq!(running(Some("io-error"), true), Ending::HostDiskFull);
        assert_eq!(
            running(Some("internal-error"), false),
            Ending::Stopped {
                state: "internal-error".into()
            }
        );
        assert!(!running(Some("io-error"), true).is_image_fault());
    }
}
