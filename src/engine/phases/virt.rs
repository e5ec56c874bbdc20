//! Virt phase: which accelerator really runs a guest, is tap networking possible, and does the
//! profile's machine start and answer QMP.

use crate::cli::Accel;
use crate::config::profile::Network;
use crate::engine::events::Event;
use crate::engine::{AccelChoice, Engine};
use crate::model::Outcome;
use crate::qemu::probe::{self, GuestProbe};
use crate::qemu::{args, process::QemuProcess, qmp::Qmp, workspace::Workspace};
use std::fs::OpenOptions;
use std::time::Duration;

/// The whole KVM verdict must come within 2 s whatever the kernel does.
const KVM_DEADLINE: Duration = Duration::from_millis(1500);
/// Under `--accel auto`, KVM must finish the firmware's POST no later than TCG does (at least
/// [`KVM_FLOOR`] allowed): a KVM slower than emulation is no use for a boot. A working KVM
/// finishes POST several times faster than TCG; the broken nested KVM of these machines is
/// ten times slower.
const KVM_VS_TCG: u32 = 1;
const KVM_FLOOR: Duration = Duration::from_millis(200);

/// The KVM verdict: Ok((message, evidence)) when KVM runs a guest; Err((reason, evidence,
/// what to do)).
pub type KvmVerdict = Result<(String, String), (String, String, String)>;

/// Start the KVM probe in the background as the run starts, so that it runs while the host
/// checks do (virt.kvm then takes its answer). Only when virt.kvm will run and may use KVM.
pub fn start_kvm_probe(engine: &mut Engine) {
    if engine.opts.accel == Accel::Tcg || !engine.will_run(crate::config::Builtin::VirtKvm) {
        return;
    }
    let qemu = engine.config.profile.machine.qemu.clone();
    let insist = engine.opts.accel == Accel::Kvm;
    engine.facts.kvm_probe = Some(crate::engine::in_background(move || {
        kvm_verdict(&qemu, insist)
    }));
}

pub fn kvm(engine: &mut Engine) -> Outcome {
    let requested = engine.opts.accel;
    if requested == Accel::Tcg {
        engine.facts.accel = Some(AccelChoice::Tcg);
        return Outcome::not_applicable("--accel tcg: KVM not used");
    }
    let verdict = match engine.facts.kvm_probe.take() {
        // Started with the run; it ends within its own bound.
        Some(rx) => rx.recv_timeout(KVM_DEADLINE * 3).unwrap_or_else(|_| {
            Err((
                "the KVM probe did not answer".into(),
                String::new(),
                "check that QEMU starts (`bootaudit check host`)".into(),
            ))
        }),
        None => kvm_verdict(&engine.config.profile.machine.qemu, requested == Accel::Kvm),
    };
    match (verdict, requested) {
        (Ok(message), _) => {
            engine.facts.accel = Some(AccelChoice::Kvm);
            Outcome::pass(message.0, message.1)
        }
        (Err(why), Accel::Kvm) => Outcome::fail(
            format!("{}: KVM does not run guests here — {}", why.0, why.2),
            why.1,
        ),
        (Err(why), _) => {
            engine.facts.accel = Some(AccelChoice::Tcg);
            let note = format!(
                "KVM unusable ({}): using TCG software emulation; boot timeouts are scaled ×{}",
                why.0, engine.config.profile.timeouts.tcg_scale
            );
            engine.emit(Event::Note(&note));
            let mut o = Outcome::skip(format!(
                "{} — falling back to TCG (slower); {}",
                why.0, why.2
            ));
            o.evidence = why.1;
            o
        }
    }
}

/// Does KVM run a guest? With `insist` (`--accel kvm`) it may take [`KVM_DEADLINE`] to show
/// it; otherwise it must also beat emulation ([`probe::kvm_against_tcg`]).
fn kvm_verdict(qemu: &str, insist: bool) -> KvmVerdict {
    let dev = std::path::Path::new("/dev/kvm");
    if !dev.exists() {
        return Err((
            "/dev/kvm does not exist".into(),
            String::new(),
            "enable virtualisation in the firmware/hypervisor and load kvm_intel or kvm_amd".into(),
        ));
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open(dev) {
        return Err((
            format!("/dev/kvm is not accessible: {e}"),
            String::new(),
            "add the user to the kvm group (`usermod -aG kvm $USER`, then log in again)".into(),
        ));
    }
    let (probe, tcg) = if insist {
        (probe::guest_runs(qemu, "kvm", KVM_DEADLINE), None)
    } else {
        match probe::kvm_against_tcg(qemu, KVM_VS_TCG, KVM_FLOOR, KVM_DEADLINE) {
            Ok(race) => (Ok(race.kvm), race.tcg),
            Err(e) => (Err(e), None),
        }
    };
    let against = |tcg: Option<Duration>| match tcg {
        Some(t) => format!(" (TCG: {} ms)", t.as_millis()),
        None => String::new(),
    };
    match probe {
        Ok(GuestProbe::Runs { elapsed }) => Ok((
            format!(
                "KVM runs a guest: firmware POST finished in {} ms{}",
                elapsed.as_millis(),
                against(tcg)
            ),
            "SeaBIOS reached boot-device selection under -accel kvm".into(),
        )),
        Ok(GuestProbe::Stalled { last_line, elapsed }) => Err((
            match tcg {
                Some(t) if elapsed < KVM_DEADLINE => format!(
                    "/dev/kvm opens but the guest runs slower than emulation: firmware POST not finished after {} ms under KVM, done in {} ms under TCG",
                    elapsed.as_millis(),
                    t.as_millis()
                ),
                _ => format!(
                    "/dev/kvm opens but the guest stalled (no progress within {} ms)",
                    elapsed.as_millis()
                ),
            },
            format!("last firmware line: {last_line}"),
            "nested virtualisation is likely broken on this host; use --accel tcg or a host with working KVM".into(),
        )),
        Ok(GuestProbe::Refused { message }) => Err((
            format!("QEMU refused -accel kvm: {message}"),
            message,
            "check the kvm kernel module and /dev/kvm permissions".into(),
        )),
        Err(e) => Err((e, String::new(), "check the QEMU installation".into())),
    }
}

pub fn tun(engine: &mut Engine) -> Outcome {
    if engine.config.profile.machine.nic.network != Network::Tap {
        return Outcome::not_applicable("the profile uses user networking, not tap");
    }
    match OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(_) => Outcome::pass("/dev/net/tun opens read-write", "/dev/net/tun"),
        Err(e) => Outcome::fail(
            format!("cannot open /dev/net/tun: {e} — load the tun module (`modprobe tun`) and grant access, or use user networking"),
            "",
        ),
    }
}

/// The accelerator to use when virt.kvm did not decide (e.g. `check iso` scope).
pub fn accel_for(engine: &Engine) -> AccelChoice {
    engine.facts.accel.unwrap_or(match engine.opts.accel {
        Accel::Kvm => AccelChoice::Kvm,
        _ => AccelChoice::Tcg,
    })
}

pub async fn qemu_start(engine: &mut Engine) -> Outcome {
    let machine = engine.config.profile.machine.clone();
    let accel = accel_for(engine);
    let ws = match Workspace::create(&machine) {
        Ok(ws) => ws,
        Err(e) => {
            return Outcome::error(format!(
                "cannot create a private temp folder for QEMU: {e} — check TMPDIR"
            ))
        }
    };
    let qmp_listener = match tokio::net::UnixListener::bind(&ws.qmp_socket) {
        Ok(l) => l,
        Err(e) => {
            return Outcome::error(format!("cannot listen on {}: {e}", ws.qmp_socket.display()))
        }
    };
    let launch = args::Launch {
        machine: &machine,
        accel,
        iso: None,
        disks: ws.disks.clone(),
        serial_socket: None,
        qmp_socket: &ws.qmp_socket,
        paused: true,
        tap_ifname: None,
        console_port: engine.config.contract.port.clone(),
        uefi: ws.uefi.as_ref(),
        direct: None,
    };
    let argv = match args::build(&launch) {
        Ok(a) => a,
        Err(e) => return Outcome::fail(format!("profile machine: {e}"), ""),
    };
    let cmdline = format!("{} {}", machine.qemu, argv.join(" "));
    engine.emit(Event::QemuLog {
        text: &format!("# virt.qemu-start\n$ {cmdline}\n"),
    });
    let log = match std::fs::File::create(&ws.qemu_log) {
        Ok(f) => f,
        Err(e) => return Outcome::error(format!("cannot create {}: {e}", ws.qemu_log.display())),
    };
    let mut qemu = match QemuProcess::spawn(&machine.qemu, &argv, log) {
        Ok(q) => q,
        Err(e) => return Outcome::fail(format!("cannot start {}: {e}", machine.qemu), cmdline),
    };
    let result = talk_qmp(&qmp_listener, &mut qemu).await;
    qemu.kill();
    let qemu_output = std::fs::read_to_string(&ws.qemu_log).unwrap_or_default();
    if !qemu_output.is_empty() {
        engine.emit(Event::QemuLog { text: &qemu_output });
    }
    match result {
        Ok(status) => Outcome::pass(
            format!(
                "QEMU started the profile's machine ({}, {} MiB, accel {}) paused and answered QMP",
                machine.machine_type,
                machine.memory.mib(),
                accel.as_str()
            ),
            format!("query-status: {status}"),
        ),
        Err(e) => {
            let last = qemu_output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            Outcome::fail(
                format!(
                    "{e}{}",
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                ),
                cmdline,
            )
        }
    }
}

async fn talk_qmp(
    listener: &tokio::net::UnixListener,
    qemu: &mut QemuProcess,
) -> Result<String, String> {
    let deadline = Duration::from_secs(15);
    let accept = tokio::time::timeout(deadline, listener.accept());
    let (stream, _) = tokio::select! {
        r = accept => r.map_err(|_| format!("QEMU did not connect to QMP within {}s", deadline.as_secs()))?.map_err(|e| e.to_string())?,
        _ = wait_exit(qemu) => return Err("QEMU exited during start-up".into()),
    };
    let (mut qmp, _greeting) = Qmp::handshake(stream, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let status = qmp
        .execute("query-status")
        .await
        .map_err(|e| e.to_string())?;
    let state = status
        .get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("?")
        .to_string();
    if state != "prelaunch" && state != "paused" {
        return Err(format!(
            "QMP query-status says `{state}`, expected prelaunch (started with -S)"
        ));
    }
    qmp.quit().await.map_err(|e| e.to_string())?;
    if tokio::time::timeout(Duration::from_secs(5), wait_exit(qemu))
        .await
        .is_err()
    {
        return Err("QEMU did not exit after QMP quit within 5 s".into());
    }
    Ok(status.to_string())
}

/// Resolves when the QEMU process has exited.
pub async fn wait_exit(qemu: &mut QemuProcess) {
    qemu.exited().await;
}
