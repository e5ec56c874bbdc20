//! Short QEMU probes with hard deadlines: the version, the device list, and whether an
//! accelerator really runs a guest.

use super::process::{run_probe, run_probe_until};
use std::time::Duration;

/// `QEMU emulator version 10.0.2 (Debian …)` → `10.0.2`.
pub fn parse_version(output: &str) -> Option<String> {
    let rest = output.split("version ").nth(1)?;
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Run `qemu --version`; Err carries a message for a person.
pub fn version(program: &str) -> Result<(String, String), String> {
    let run = run_probe(
        program,
        &["--version".to_string()],
        Duration::from_secs(10),
        |_| false,
    )
    .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let text = String::from_utf8_lossy(&run.output).to_string();
    match (run.exit, parse_version(&text)) {
        (Some(s), Some(v)) if s.success() => Ok((v, text.lines().next().unwrap_or("").to_string())),
        (None, _) => Err(format!("`{program} --version` did not answer within 10 s")),
        _ => Err(format!(
            "`{program} --version` printed no version: {}",
            text.trim()
        )),
    }
}

/// Device names from `qemu -device help` (lines like `name "virtio-net-pci", bus PCI`).
pub fn parse_devices(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name \""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect()
}

pub fn devices(program: &str) -> Result<Vec<String>, String> {
    let args = ["-machine", "none", "-device", "help"].map(String::from);
    let run = run_probe(program, &args, Duration::from_secs(10), |_| false)
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let list = parse_devices(&String::from_utf8_lossy(&run.output));
    if list.is_empty() {
        return Err(format!("`{program} -device help` listed no devices"));
    }
    Ok(list)
}

/// What the accelerator probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestProbe {
    /// The firmware ran its whole power-on self test and reached boot-device selection.
    Runs { elapsed: Duration },
    /// QEMU started but the guest stopped making progress (the last firmware line is kept).
    Stalled {
        last_line: String,
        elapsed: Duration,
    },
    /// QEMU refused to start with that accelerator.
    Refused { message: String },
}

/// SeaBIOS prints this when POST is done and it picks a boot device.
const POST_DONE: &[u8] = b"enter handle_19";

/// Boot SeaBIOS (QEMU's default firmware) with its debug console on stdout and wait until it
/// reaches boot-device selection. A plain "instructions ran" test is not enough: on a broken
/// nested KVM the first real-mode instructions run, then the guest stalls forever (seen here:
/// SeaBIOS stops right after printing its e820 map). POST exercises mode switches, interrupts
/// and timers, which is what a real boot needs; under TCG it takes about 0.1 s.
pub fn guest_runs(program: &str, accel: &str, deadline: Duration) -> Result<GuestProbe, String> {
    guest_runs_until(program, accel, || deadline)
}

/// [`guest_runs`] with a deadline that may move while it runs (see [`kvm_against_tcg`]).
pub fn guest_runs_until(
    program: &str,
    accel: &str,
    deadline: impl Fn() -> Duration,
) -> Result<GuestProbe, String> {
    let args = [
        "-accel",
        accel,
        "-machine",
        "pc",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-m",
        "16",
        "-debugcon",
        "stdio",
        "-global",
        "isa-debugcon.iobase=0x402",
        "-no-reboot",
    ]
    .map(String::from);
    let run = run_probe_until(program, &args, deadline, |out| {
        out.windows(POST_DONE.len()).any(|w| w == POST_DONE)
    })
    .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let text = String::from_utf8_lossy(&run.output);
    if run.matched {
        return Ok(GuestProbe::Runs {
            elapsed: run.elapsed,
        });
    }
    if run.exit.is_some() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let message = stderr
            .lines()
            .rev()
            .find(|l| !l.contains("warning:") && !l.trim().is_empty());
        return Ok(GuestProbe::Refused {
            message: message
                .unwrap_or("QEMU exited before the guest finished POST")
                .trim()
                .to_string(),
        });
    }
    let last_line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no firmware output)")
        .trim()
        .to_string();
    Ok(GuestProbe::Stalled {
        last_line,
        elapsed: run.elapsed,
    })
}

/// How a KVM guest fared against the same firmware under TCG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmRace {
    pub kvm: GuestProbe,
    /// TCG's POST time, when TCG finished it.
    pub tcg: Option<Duration>,
}

/// KVM POST is bounded by how TCG does: a KVM that has not finished the firmware's POST in
/// `factor` times TCG's time (at least `floor`, at most `bound`) runs guests slower than
/// emulation (with `factor` 1), and is no use for a boot — on hosts whose nested KVM is broken, it trickles
/// through POST at a few characters a millisecond. Both run at once, so a healthy host's
/// answer comes as soon as KVM finishes, and a broken one's in a few hundred ms instead of
/// `bound`.
pub fn kvm_against_tcg(
    program: &str,
    factor: u32,
    floor: Duration,
    bound: Duration,
) -> Result<KvmRace, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let limit_ms = Arc::new(AtomicU64::new(bound.as_millis() as u64));
    let tcg = {
        let (program, limit_ms) = (program.to_string(), limit_ms.clone());
        std::thread::spawn(move || {
            let r = guest_runs(&program, "tcg", bound);
            if let Ok(GuestProbe::Runs { elapsed }) = &r {
                let cap = (*elapsed * factor).max(floor).min(bound);
                limit_ms.store(cap.as_millis() as u64, Ordering::SeqCst);
            }
            r
        })
    };
    let kvm = guest_runs_until(program, "kvm", || {
        Duration::from_millis(limit_ms.load(Ordering::SeqCst))
    })?;
    // KVM done first: the answer is in; the TCG probe ends by itself within `bound`.
    if matches!(kvm, GuestProbe::Runs { .. }) && !tcg.is_finished() {
        return Ok(KvmRace { kvm, tcg: None });
    }
    let tcg = match tcg.join() {
        Ok(Ok(GuestProbe::Runs { elapsed })) => Some(elapsed),
        _ => None,
    };
    Ok(KvmRace { kvm, tcg })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's positive path, under TCG (KVM does not run guests on these machines): it
    /// must recognise a finished POST well within the deadline.
    #[test]
    fn tcg_guest_finishes_post() {
        match guest_runs("qemu-system-x86_64", "tcg", Duration::from_secs(10)).unwrap() {
            GuestProbe::Runs { elapsed } => assert!(elapsed < Duration::from_secs(5), "{elapsed:?}"),
            other => panic!("SeaBIOS under TCG did not finish POST: {other:?} (is qemu-system-x86 installed? scripts/setup.sh)"),
        }
    }

    #[test]
    fn unknown_accelerator_is_refused() {
        let probe =
            guest_runs("qemu-system-x86_64", "nosuchaccel", Duration::from_secs(5)).unwrap();
        assert!(matches!(probe, GuestProbe::Refused { .. }), "{probe:?}");
    }

    #[test]
    fn parses_version_and_devices() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\n").as_deref(),
            Some("10.0.2")
        );
        assert_eq!(parse_version("nope"), None);
        let devs = parse_devices("Network devices:\nname \"virtio-net-pci\", bus PCI, alias \"virtio-net\"\nname \"e1000\", bus PCI\n");
        assert_eq!(devs, ["virtio-net-pci", "e1000"]);
    }
}
