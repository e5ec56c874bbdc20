//! Boot phase: one QEMU session, the serial console driven by a [`Dialogue`], and each boot
//! condition judged in catalog order — builtin dialogues for the console, login and shell,
//! generic probes and watches for the rest. Diagnostics are gathered right after a failure,
//! while the state is fresh. QEMU is killed on every way out of here.

use super::iso::ChosenEntry;
use super::virt::{accel_for, wait_exit};
use crate::config::contract::{BootMode, Contract, Login};
use crate::config::{Builtin, CheckDef, ConditionDef, ConsoleDialogue, RunAs};
use crate::dialogue::login::{self, PasswordLogin};
use crate::dialogue::menu::{self, Loader, MenuTarget};
use crate::dialogue::{console_rules, last_lines, Dialogue, RootAccess, WaitError};
use crate::engine::events::{Event, Fanout, SessionEvent};
use crate::engine::Engine;
use crate::judge::{console as verdicts, ProbeJudge, ProbeVerdict};
use crate::model::{BootInfo, Outcome, Status};
use crate::qemu::ending::{self, Ending, Observed};
use crate::qemu::{args, process::QemuProcess, qmp::Qmp, workspace::Workspace};
use bootaudit_console::{Console, ConsoleEvent, FnSink};
use bootaudit_iso::{BootEntry, ConfigKind, IsoImage};
use regex::Regex;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long to keep reading after a fatal line for the end of its report (a panic's end line),
/// so the whole report lands in the transcript; the bound for a report without an end line.
const DRAIN_AFTER_FATAL: Duration = Duration::from_secs(3);
/// A login prompt that stays silent this long gets a newline (getty may have printed it
/// before the console was readable, or kernel messages buried it).
const LOGIN_POKE_AFTER: Duration = Duration::from_secs(10);
/// After the login prompt, how long `(automatic login)` may take to follow.
const AUTOLOGIN_GRACE: Duration = Duration::from_secs(8);
/// The take-over line is typed again (in a fresh frame) when the shell has not answered it in
/// this long, then in twice that, …: a login may flush what was typed before its shell ran.
const FIRST_TAKE_OVER_TRY: Duration = Duration::from_millis(1500);
/// A polled probe's check started before its deadline may take this long to answer.
const LAST_CHECK_GRACE: Duration = Duration::from_secs(10);
/// Bound on one diagnostic command.
const DIAGNOSTIC_TIMEOUT: Duration = Duration::from_secs(20);

struct Session {
    _ws: Workspace,
    qemu: QemuProcess,
    qmp: Option<Qmp>,
    dialogue: Dialogue,
    qemu_log: std::path::PathBuf,
    /// Why the guest can no longer be judged (panic, QEMU gone), and the condition that saw it:
    /// later conditions fail at once, naming it as their likely cause.
    fatal: Option<(String, String)>,
    /// The fatal end was the infrastructure's (QEMU killed, the socket lost), not the image's:
    /// what could not be judged after it is an error, not a failure.
    fatal_is_infra: bool,
    shell_ready: bool,
    /// A `grants_root` probe passed: root commands work.
    root: bool,
    contract: Contract,
    /// How the session ended, once known and not yet told to the reporters: why, and
    /// whether it was the image's doing.
    ended: Option<(String, bool)>,
    /// The login password, revealed for this boot only.
    login_password: Option<String>,
    /// The entry to choose in the boot menu (menu mode, not the default).
    menu: Option<(Loader, MenuTarget)>,
}

impl Session {
    async fn shutdown(mut self, engine: &mut Engine) {
        if let Some(mut qmp) = self.qmp.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), qmp.quit()).await;
            let _ = tokio::time::timeout(Duration::from_secs(3), wait_exit(&mut self.qemu)).await;
        }
        self.qemu.kill();
        if let Ok(text) = std::fs::read_to_string(&self.qemu_log) {
            if !text.is_empty() {
                engine.emit(Event::QemuLog { text: &text });
            }
        }
    }
}

pub async fn run(engine: &mut Engine, defs: &[ConditionDef]) {
    let mut session: Option<Session> = None;
    for def in defs {
        if engine.skip_if_gated(def) {
            continue;
        }
        let started = engine.begin(def);
        // A guest already gone (a panic): what saw it is the likely cause of what fails now.
        let gone_since = session
            .as_ref()
            .and_then(|s| s.fatal.as_ref().map(|(_, seen_by)| seen_by.clone()));
        let outcome = match &mut session {
            Some(s) => judge(engine, s, def).await,
            None => match start(engine).await {
                Ok(s) => {
                    let s = session.insert(s);
                    judge(engine, s, def).await
                }
                // No session: the guest never ran, which its console cannot show.
                Err(outcome) => {
                    engine.emit(Event::Session(SessionEvent::Ended {
                        during: &def.id,
                        why: &outcome.message,
                        image_fault: outcome.status == Status::Fail,
                    }));
                    outcome
                }
            },
        };
        if let Some((why, image_fault)) = session.as_mut().and_then(|s| s.ended.take()) {
            engine.emit(Event::Session(SessionEvent::Ended {
                during: &def.id,
                why: &why,
                image_fault,
            }));
        }
        let failed = outcome.status == Status::Fail;
        engine.record_caused_by(def, started, outcome, gone_since);
        if failed {
            if let Some(s) = &mut session {
                collect_diagnostics(engine, s, def).await;
            }
        }
    }
    if let Some(mut s) = session {
        read_timeline(engine, &mut s).await;
        s.shutdown(engine).await;
    }
}

/// The boot's milestones, from the console so far, and the guest's own boot analysis where a
/// shell still answers.
async fn read_timeline(engine: &mut Engine, s: &mut Session) {
    let mut scanner = engine.milestone_scanner();
    let clock = engine.clock();
    // Scanned in place, up to the last milestone: the transcript may be large.
    s.dialogue.console.with_transcript(|t| {
        crate::timeline::scan_text(&mut scanner, t.text(), |offset| {
            let at = t.normalizer().time_at(offset)?;
            Some(clock.ms(at.into_std()))
        })
    });
    let milestones = scanner.finish();
    let power_on_ms = engine.facts.timeline.as_ref().and_then(|t| t.power_on_ms);
    let mut guest = None;
    let alive = s.fatal.is_none() && !engine.cancel.is_cancelled();
    if let (Some(analysis), true, true) = (
        engine.config.profile.boot_analysis.clone(),
        s.shell_ready,
        alive,
    ) {
        // As the boot timeouts: the guest runs slower under emulation.
        let scale = engine.opts.timeout_scale
            * match engine.facts.accel {
                Some(crate::engine::AccelChoice::Kvm) => 1.0,
                _ => engine.config.profile.timeouts.tcg_scale,
            };
        let took = crate::timeline::boot_took(power_on_ms, &milestones);
        let slow = analysis
            .slow
            .as_ref()
            .filter(|slow| took.is_some_and(|t| t > slow.after.0.mul_f64(scale)));
        let mut command = analysis.run.clone();
        if let Some(slow) = slow {
            command = format!("{command}; {}", slow.run);
        }
        let deadline = Instant::now() + DIAGNOSTIC_TIMEOUT.mul_f64(scale);
        match s.dialogue.run(&command, false, deadline).await {
            Ok(run) => {
                let output = run.output.text();
                guest = Some(crate::model::GuestBootAnalysis {
                    slowest_units: crate::timeline::slowest_units(&output),
                    command,
                    output,
                });
            }
            Err(e) => {
                let note = format!("the guest's boot analysis gave no answer: {e:?}");
                engine.emit(Event::Note(&note));
            }
        }
    }
    let timeline = engine.facts.timeline.get_or_insert_with(Default::default);
    timeline.milestones = milestones;
    timeline.guest = guest;
}

/// Start QEMU with the ISO and connect the serial console and QMP.
async fn start(engine: &mut Engine) -> Result<Session, Outcome> {
    let machine = engine.config.profile.machine.clone();
    let accel = accel_for(engine);
    if accel == crate::engine::AccelChoice::Kvm {
        if let Some(kvm) = engine
            .result_of(Builtin::VirtKvm)
            .filter(|r| r.status == Status::Fail)
        {
            // --accel kvm on a host where KVM does not run guests: a boot would only hang.
            return Err(Outcome::blocked(&kvm.id.clone(), Status::Fail));
        }
    }
    let contract = engine.config.contract.clone();
    let reveal = |s: Option<&crate::config::contract::Secret>| {
        s.map(|s| s.reveal()).transpose().map_err(Outcome::error)
    };
    let login_password = reveal(match &contract.login {
        Login::Password { password, .. } => Some(password),
        _ => None,
    })?;
    let root_password = reveal(contract.root.password())?;
    engine.facts.accel = Some(accel);
    let iso = engine
        .facts
        .iso_path
        .clone()
        .ok_or_else(|| Outcome::error("no ISO resolved (iso.resolve did not run)"))?;
    let ws = Workspace::create(&machine).map_err(|e| {
        Outcome::error(format!(
            "cannot prepare QEMU's private folder (sockets, disks, firmware variables): {e}"
        ))
    })?;
    let serial_listener = tokio::net::UnixListener::bind(&ws.serial_socket).map_err(|e| {
        Outcome::error(format!(
            "cannot listen on {}: {e}",
            ws.serial_socket.display()
        ))
    })?;
    let qmp_listener = tokio::net::UnixListener::bind(&ws.qmp_socket).map_err(|e| {
        Outcome::error(format!("cannot listen on {}: {e}", ws.qmp_socket.display()))
    })?;
    // What boots: the profile's entry, through the loader's menu or directly.
    let chosen = match (&contract.boot.mode, &contract.boot.entry) {
        (BootMode::Menu, crate::config::contract::EntryChoice::Default) => {
            super::iso::chosen_entry(engine).ok()
        }
        _ => Some(super::iso::chosen_entry(engine)?),
    };
    let direct = match contract.boot.mode {
        BootMode::Direct => {
            let c = chosen.as_ref().expect("direct mode has chosen an entry");
            Some(extract_kernel(
                &iso,
                &c.entry,
                ws.path(),
                &contract.boot.append,
            )?)
        }
        BootMode::Menu => None,
    };
    let menu = match (&chosen, contract.boot.mode) {
        (Some(c), BootMode::Menu) if !c.is_default => {
            // Positions count within one config file: from a default in another file (a menu
            // assembled from includes) the keys to press are not known.
            let across_files = c
                .default_config
                .as_ref()
                .is_some_and(|d| *d != c.entry.config);
            if c.entry.menu_path.is_empty() || across_files {
                return Err(Outcome::error(format!(
                    "the entry '{}' ({}:{}) cannot be chosen in its loader's menu by position (it is hidden, or the menu is assembled from several config files) — set `boot.mode: direct`",
                    c.entry.label, c.entry.config, c.entry.line
                )));
            }
            Some(menu_target(c))
        }
        _ => None,
    };
    engine.facts.boot = Some(BootInfo {
        firmware: machine.firmware.as_str().to_string(),
        entry: chosen.as_ref().map(|c| c.entry.label.clone()),
        config: chosen
            .as_ref()
            .map(|c| format!("{}:{}", c.entry.config, c.entry.line)),
        how: match (contract.boot.mode, &menu) {
            (BootMode::Direct, _) => "direct".into(),
            (BootMode::Menu, Some(_)) => "menu".into(),
            (BootMode::Menu, None) => "menu-default".into(),
        },
        bootloader_exercised: direct.is_none(),
        cmdline: direct.as_ref().map(|d| d.cmdline.clone()),
    });
    let launch = args::Launch {
        machine: &machine,
        accel,
        iso: Some(&iso),
        disks: ws.disks.clone(),
        serial_socket: Some(&ws.serial_socket),
        qmp_socket: &ws.qmp_socket,
        paused: false,
        tap_ifname: None,
        console_port: contract.port.clone(),
        uefi: ws.uefi.as_ref(),
        direct: direct.as_ref(),
    };
    let argv = args::build(&launch)
        .map_err(|e| Outcome::error(format!("the profile's machine cannot be started: {e}")))?;
    let cmdline = format!("{} {}", machine.qemu, argv.join(" "));
    engine.emit(Event::QemuLog {
        text: &format!("# boot\n$ {cmdline}\n"),
    });
    let log = std::fs::File::create(&ws.qemu_log)
        .map_err(|e| Outcome::error(format!("cannot create {}: {e}", ws.qemu_log.display())))?;
    let power_on_ms = engine.now_ms();
    let mut qemu = QemuProcess::spawn(&machine.qemu, &argv, log).map_err(|e| {
        let mut o = Outcome::error(format!(
            "cannot start {}: {e} — not a fault of the image",
            machine.qemu
        ));
        o.evidence = cmdline.clone();
        o
    })?;
    engine.facts.timeline = Some(crate::model::Timeline {
        power_on_ms: Some(power_on_ms),
        ..Default::default()
    });
    let connect = async {
        let (serial, _) = serial_listener.accept().await?;
        let (qmp, _) = qmp_listener.accept().await?;
        Ok::<_, std::io::Error>((serial, qmp))
    };
    let connected = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(20), connect) => r,
        _ = wait_exit(&mut qemu) => {
            let log = std::fs::read_to_string(&ws.qemu_log).unwrap_or_default();
            let ending = ending::classify(&Observed { status: qemu.try_exit(), log: &log, ..Default::default() });
            let mut o = Outcome::error(format!("QEMU ended during start-up: {}", ending.describe()));
            o.evidence = cmdline;
            return Err(o);
        }
    };
    let (serial, qmp_stream) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(Outcome::error(format!("accepting QEMU's sockets: {e}"))),
        Err(_) => {
            let mut o = Outcome::error(
                "QEMU did not connect its serial console and QMP within 20 s — an overloaded \
                 host or a broken QEMU; not a fault of the image",
            );
            o.evidence = cmdline;
            return Err(o);
        }
    };
    let qmp = Qmp::handshake(qmp_stream, Duration::from_secs(10))
        .await
        .ok()
        .map(|(q, _)| q);
    let dialogue = console_dialogue(engine, serial)
        .map_err(Outcome::error)?
        .with_root(
            contract.prompts.password.clone(),
            RootAccess {
                escalation: contract.root.clone(),
                password: root_password,
            },
        );
    let first = engine
        .config
        .conditions
        .iter()
        .find(|d| d.phase == crate::model::Phase::Boot)
        .map(|d| d.id.clone())
        .unwrap_or_default();
    if let Some(b) = &engine.facts.boot {
        let what = match b.how.as_str() {
            "direct" => "booting the kernel directly (the boot loader is not exercised)",
            "menu" => "choosing the entry in the boot menu",
            _ => "booting the default entry",
        };
        let entry = b.entry.clone().unwrap_or_else(|| "?".into());
        engine.progress(&first, &format!("{what}: '{entry}' ({})", b.firmware));
    }
    if accel == crate::engine::AccelChoice::Tcg {
        engine.progress(&first, "booting under TCG (software emulation)");
    }
    Ok(Session {
        qemu_log: ws.qemu_log.clone(),
        _ws: ws,
        qemu,
        qmp,
        dialogue,
        fatal: None,
        fatal_is_infra: false,
        ended: None,
        shell_ready: false,
        root: false,
        contract,
        login_password,
        menu,
    })
}

/// The menu position of the chosen entry, for the loader that reads its config.
fn menu_target(c: &ChosenEntry) -> (Loader, MenuTarget) {
    let loader = match c.kind {
        ConfigKind::Syslinux => Loader::Syslinux,
        ConfigKind::Grub | ConfigKind::SystemdBoot => Loader::Grub,
    };
    (
        loader,
        MenuTarget {
            label: c.entry.label.clone(),
            name: c.entry.name.clone(),
            path: c.entry.menu_path.clone(),
            default_path: c.default_path.clone(),
        },
    )
}

/// Copy the entry's kernel and initrds out of the ISO into the workspace, for QEMU to boot
/// directly, and make its command line: the entry's own, without what only a loader reads
/// (`initrd=`, GRUB `$variables`), with the profile's `boot.append`.
fn extract_kernel(
    iso: &std::path::Path,
    entry: &BootEntry,
    dir: &std::path::Path,
    append: &str,
) -> Result<args::DirectKernel, Outcome> {
    let image =
        IsoImage::open(iso).map_err(|e| Outcome::error(format!("{}: {e}", iso.display())))?;
    let config_dir = entry.config.rsplit_once('/').map_or("", |(d, _)| d);
    let find = |path: &str| {
        let candidates = if path.starts_with('/') {
            vec![path.to_string()]
        } else {
            vec![format!("{config_dir}/{path}"), path.to_string()]
        };
        candidates
            .iter()
            .find_map(|p| image.find(p).ok())
            .ok_or_else(|| {
                // The image's own fault: its loader would not find the file either.
                Outcome::fail(
                    format!(
                        "the entry '{}' ({}:{}) boots {path}, which is not in the image",
                        entry.label, entry.config, entry.line
                    ),
                    "",
                )
            })
    };
    let copy = |path: &str, to: &std::path::Path, append_to: bool| -> Result<(), Outcome> {
        let found = find(path)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append_to)
            .write(true)
            .open(to)
            .map_err(|e| Outcome::error(format!("cannot write {}: {e}", to.display())))?;
        image
            .copy_entry(&found, &mut f)
            .map_err(|e| Outcome::error(format!("cannot copy {path} out of the image: {e}")))?;
        Ok(())
    };
    let kernel = dir.join("kernel");
    copy(&entry.kernel, &kernel, false)?;
    // Several initrds are concatenated, as loaders do (the kernel reads one cpio after another).
    let initrd = match entry.initrd.is_empty() {
        true => None,
        false => {
            let to = dir.join("initrd");
            for path in &entry.initrd {
                copy(path, &to, true)?;
            }
            Some(to)
        }
    };
    let words = bootaudit_iso::console::cmdline_words(&entry.cmdline);
    // The kernel's own parameters come before `--`; the profile's go there too, init's after.
    let split = words.iter().position(|w| w == "--").unwrap_or(words.len());
    let mut params: Vec<String> = words[..split]
        .iter()
        .filter(|p| !p.starts_with("initrd=") && !p.contains('$'))
        .cloned()
        .collect();
    params.extend(bootaudit_iso::console::cmdline_words(append));
    params.extend(words[split..].iter().cloned());
    Ok(args::DirectKernel {
        kernel,
        initrd,
        cmdline: params.join(" "),
    })
}

/// Wire the serial stream into a console whose traffic flows to the reporters as events.
fn console_dialogue(
    engine: &mut Engine,
    serial: tokio::net::UnixStream,
) -> Result<Dialogue, String> {
    let rules = console_rules(&engine.config.profile)?;
    let mut config = rules.config;
    let fanout: Arc<Mutex<Fanout>> = engine.fanout();
    let clock = engine.clock();
    config = config.sink(FnSink(move |event: ConsoleEvent| {
        let Ok(mut f) = fanout.lock() else { return };
        match event {
            ConsoleEvent::Received { at, bytes } => f.emit(Event::ConsoleReceived {
                at: clock.ms(at.into_std()),
                bytes: &bytes,
            }),
            ConsoleEvent::Sent { at, bytes } => f.emit(Event::ConsoleSent {
                at: clock.ms(at.into_std()),
                bytes: &bytes,
            }),
            _ => {}
        }
    }));
    let console = Console::from_stream(serial, config);
    Ok(
        Dialogue::new(console, rules.scopes, rules.noise, engine.cancel.clone())
            .with_report_ends(rules.ends),
    )
}

/// Judge one boot condition on the running session.
async fn judge(engine: &mut Engine, s: &mut Session, def: &ConditionDef) -> Outcome {
    s.dialogue.current = def.id.clone();
    if let Some((why, _)) = s.fatal.clone() {
        // The guest is gone, but what its console showed before stays shown.
        if let Ok(CheckDef::Watch { pattern }) = def.check() {
            if let Ok(re) = pattern.resolve(&engine.config.profile.vars) {
                if let Ok(shown) = watch(s, engine.clock(), &re, Instant::now(), None).await {
                    return shown;
                }
            }
        }
        return match s.fatal_is_infra {
            true => Outcome::error(format!("not judged: {why}")),
            false => Outcome::fail(format!("not judged: {why}"), ""),
        };
    }
    if let Some(hit) = s.dialogue.earlier_hit_for(&def.id) {
        return fatal_line(s, &hit.pattern_name, &hit.line, true).await;
    }
    let timeout = engine.boot_timeout(def);
    let started = Instant::now();
    let deadline = started + timeout;
    // It can only pass after a condition that failed: judge what the guest shows now.
    let at_once = engine.failed_precondition(def).map(|r| r.id.clone());
    let outcome = match def.check() {
        Ok(CheckDef::Builtin(builtin)) => match builtin.dialogue() {
            Some(ConsoleDialogue::Console) => boot_console(engine, s, deadline, timeout).await,
            Some(ConsoleDialogue::Login) => boot_login(engine, s, deadline, timeout).await,
            Some(ConsoleDialogue::Autologin) => login(engine, s, deadline, timeout).await,
            Some(ConsoleDialogue::ShellReady) => shell_ready(engine, s, deadline, timeout).await,
            None => Err(Outcome::error(format!(
                "`{}` is not a builtin check of the boot phase",
                builtin.kind()
            ))),
        },
        Ok(CheckDef::Probe(p)) => match ProbeJudge::resolve(def, &p, &engine.config.profile.vars) {
            Ok(judge) => {
                let polls = at_once.is_none();
                probe(engine, s, def, &judge, polls, deadline, timeout).await
            }
            Err(e) => Err(Outcome::error(e)),
        },
        Ok(CheckDef::Watch { pattern }) => match pattern.resolve(&engine.config.profile.vars) {
            Ok(re) => {
                let wait = match at_once {
                    Some(_) => None,
                    None => Some(timeout),
                };
                watch(s, engine.clock(), &re, started, wait).await
            }
            Err(e) => Err(Outcome::error(e)),
        },
        Err(e) => Err(Outcome::error(e)),
    };
    let (Ok(outcome) | Err(outcome)) = outcome;
    if let (Some(first), true) = (&at_once, outcome.timed_out) {
        let mut o = verdicts::after_failed(&outcome.message, first);
        o.evidence = outcome.evidence;
        return o;
    }
    if outcome.timed_out {
        engine.emit(Event::Session(SessionEvent::WaitRanOut { id: &def.id }));
        if let Some(ending) = paused_by_qemu(s).await {
            let why = format!("{} during {}", ending.describe(), def.id);
            if s.fatal.is_none() {
                s.fatal = Some((why.clone(), def.id.clone()));
                s.fatal_is_infra = !ending.is_image_fault();
                let said = match ending.is_image_fault() {
                    true => why.clone(),
                    false => format!("could not judge: {why}"),
                };
                s.ended = Some((said, ending.is_image_fault()));
            }
            let mut o = match ending.is_image_fault() {
                true => Outcome::fail(why, ""),
                false => Outcome::error(format!("could not judge: {why}")),
            };
            o.evidence = outcome.evidence;
            return o;
        }
        // Only a stall during this condition's wait speaks for it: one early in the boot says
        // nothing of a hang minutes later.
        if let Some(stall) = s.dialogue.stall_since(started) {
            return starved(outcome, &stall.pattern_name, &stall.line);
        }
    }
    outcome
}

use verdicts::starved;

/// Turn a wait error into the condition's failure; fatal ones end the session's usefulness.
async fn wait_failure(
    s: &mut Session,
    err: WaitError,
    waiting_for: &str,
    timeout: Duration,
) -> Outcome {
    match err {
        WaitError::Timeout { tail, .. } => Outcome::timed_out(
            format!(
                "{waiting_for}: nothing within {}s; the console last showed: {}",
                timeout.as_secs(),
                quote(&last_lines(&tail, 3))
            ),
            last_lines(&tail, 10),
        ),
        WaitError::Signature { name, line } => fatal_line(s, &name, &line, false).await,
        WaitError::Password { line, refused } => Outcome::fail(
            match refused {
                true => format!(
                    "{waiting_for}: the password was refused (asked again: {})",
                    quote(&line)
                ),
                false => format!(
                    "{waiting_for}: a password prompt appeared: {}",
                    quote(&line)
                ),
            },
            line,
        ),
        WaitError::Closed { tail } => {
            let ending = why_it_ended(s).await;
            let why = format!("{} during {}", ending.describe(), s.dialogue.current);
            let first = s.fatal.is_none();
            if first {
                s.fatal = Some((why.clone(), s.dialogue.current.clone()));
                s.fatal_is_infra = !ending.is_image_fault();
                s.ended = Some((why.clone(), ending.is_image_fault()));
            }
            let message = format!(
                "{why} ({waiting_for}); the console last showed: {}",
                quote(&last_lines(&tail, 3))
            );
            let mut o = match ending.is_image_fault() {
                true => Outcome::fail(message, last_lines(&tail, 10)),
                false => {
                    let mut o = Outcome::error(message);
                    o.evidence = last_lines(&tail, 10);
                    o
                }
            };
            o.root_cause = first;
            o
        }
        // The console is open: the harness could not judge this one, the session goes on.
        WaitError::Broken { reason } => Outcome::error(format!(
            "{waiting_for}: could not judge: {reason} — not a fault of the image"
        )),
        WaitError::Cancelled => Outcome::skip("interrupted"),
    }
}

/// The console closed: ask QEMU why — its exit status, the SHUTDOWN event's reason, its run
/// state if it still runs, its log. Bounded: a few seconds at most.
async fn why_it_ended(s: &mut Session) -> Ending {
    // The socket closes as QEMU exits; give it a moment to be reaped.
    let _ = tokio::time::timeout(Duration::from_secs(3), wait_exit(&mut s.qemu)).await;
    let status = s.qemu.try_exit();
    let mut run_state = None;
    if let Some(q) = s.qmp.as_mut() {
        match status {
            Some(_) => q.read_events(Duration::from_secs(1)).await,
            None => {
                run_state = tokio::time::timeout(Duration::from_secs(3), q.run_state())
                    .await
                    .ok()
                    .flatten()
            }
        }
    }
    let log = std::fs::read_to_string(&s.qemu_log).unwrap_or_default();
    ending::classify(&Observed {
        status,
        shutdown_reason: s.qmp.as_ref().and_then(|q| q.shutdown_reason()),
        run_state: run_state.as_deref(),
        no_space: s.qmp.as_ref().is_some_and(|q| q.saw_no_space()),
        log: &log,
    })
}

/// After a wait ran out of time: a guest QEMU paused (its disk's host out of space, an internal
/// error) could never have answered — that is the host's doing, not the image's.
async fn paused_by_qemu(s: &mut Session) -> Option<Ending> {
    let q = s.qmp.as_mut()?;
    let state = tokio::time::timeout(Duration::from_secs(3), q.run_state())
        .await
        .ok()
        .flatten()?;
    let ending = ending::classify(&Observed {
        run_state: Some(&state),
        no_space: q.saw_no_space(),
        ..Default::default()
    });
    (state != "running" && !matches!(ending, Ending::SerialLost)).then_some(ending)
}

/// A failure signature concerning this condition: fail quoting the line. Signatures that
/// concern every condition (panic, emergency mode) make the guest unusable for the rest.
async fn fatal_line(s: &mut Session, name: &str, line: &str, earlier: bool) -> Outcome {
    let global = s.dialogue.is_global(name) && s.fatal.is_none();
    s.dialogue.console.clear_signature();
    if global {
        s.fatal = Some((
            format!("{name}: {}", quote(line)),
            s.dialogue.current.clone(),
        ));
        s.dialogue
            .read_report_end(name, line, DRAIN_AFTER_FATAL)
            .await;
    }
    let mut o = verdicts::signature(name, line, earlier);
    o.root_cause = global;
    o
}

use verdicts::quote;

async fn boot_console(
    engine: &mut Engine,
    s: &mut Session,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outcome, Outcome> {
    let started = Instant::now();
    match first_output(s, deadline).await {
        Ok(()) => {
            let mut chose = match s.contract.boot.mode {
                BootMode::Direct => {
                    "; booted directly, the boot loader was not exercised".to_string()
                }
                BootMode::Menu => String::new(),
            };
            if let Some((loader, target)) = s.menu.take() {
                engine.progress(
                    &s.dialogue.current.clone(),
                    &format!("waiting for the boot menu to choose '{}'", target.label),
                );
                match menu::choose(&mut s.dialogue, loader, &target, deadline).await {
                    Ok(driven) => chose = format!("; {}", driven.how),
                    Err(WaitError::Timeout { tail, .. }) => {
                        return Err(Outcome::timed_out(
                            format!(
                                "the boot menu did not show on the console within {}s, so '{}' could not be chosen (it last showed: {}) — enable the loader's serial console (ISOLINUX `serial 0 115200`, GRUB `terminal_input serial`), or boot the entry directly (boot.mode: direct)",
                                timeout.as_secs(),
                                target.label,
                                quote(&last_lines(&tail, 3))
                            ),
                            last_lines(&tail, 10),
                        ))
                    }
                    Err(e) => {
                        return Err(wait_failure(s, e, "driving the boot menu", timeout).await)
                    }
                }
            }
            // Keep the first line whole for the evidence.
            let first = s.dialogue.console.with_transcript(|t| {
                t.text()
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string()
            });
            s.dialogue.console.set_cursor(0);
            Ok(Outcome::pass(
                format!(
                    "the guest wrote to the serial console after {:.1}s{chose}",
                    started.elapsed().as_secs_f64()
                ),
                first,
            ))
        }
        Err(WaitError::Timeout { .. }) => Err(Outcome::timed_out(
            format!(
                "the guest wrote nothing to the serial console in {}s",
                timeout.as_secs()
            ),
            format!("{} bytes received", s.dialogue.console.bytes_received()),
        )),
        Err(e) => Err(wait_failure(s, e, "waiting for console output", timeout).await),
    }
}

async fn boot_login(
    engine: &mut Engine,
    s: &mut Session,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outcome, Outcome> {
    if s.contract.login == Login::None {
        return Ok(Outcome::not_applicable(
            "no login on this console: the profile says a shell is on it already (console.login.mode: none)",
        ));
    }
    let pats = [
        s.contract.prompts.autologin.clone(),
        s.contract.prompts.login.clone(),
    ];
    let started = Instant::now();
    let mut pokes = 0;
    loop {
        let step = (Instant::now() + LOGIN_POKE_AFTER).min(deadline);
        let from = s.dialogue.console.cursor();
        match s.dialogue.expect(&pats, step).await {
            Ok(m) => {
                // Leave the cursor at the prompt so the login reads what follows it.
                s.dialogue
                    .console
                    .set_cursor(if m.pattern == 0 { m.start } else { m.end });
                let line = s
                    .dialogue
                    .console
                    .with_transcript(|t| line_around(t, m.start));
                return Ok(Outcome::pass(
                    format!(
                        "{} after {:.1}s",
                        if m.pattern == 0 {
                            "automatic login"
                        } else {
                            "login prompt"
                        },
                        started.elapsed().as_secs_f64()
                    ),
                    line,
                ));
            }
            Err(WaitError::Timeout { .. }) if Instant::now() < deadline => {
                let quiet_for = s
                    .dialogue
                    .console
                    .last_received_at()
                    .map(|t| t.elapsed())
                    .unwrap_or(LOGIN_POKE_AFTER);
                if quiet_for >= LOGIN_POKE_AFTER && pokes < 3 {
                    pokes += 1;
                    engine.progress(
                        &s.dialogue.current.clone(),
                        "console quiet: sending a newline to wake the getty",
                    );
                    s.dialogue.console.set_cursor(from);
                    let _ = s.dialogue.send_line("").await;
                }
            }
            Err(e) => {
                let mut o = wait_failure(s, e, "waiting for a login prompt", timeout).await;
                if !o.timed_out {
                    return Err(o);
                }
                let shown = s
                    .dialogue
                    .console
                    .with_transcript(|t| last_lines(t.text(), 3));
                o.message = format!(
                    "no login prompt within {}s ({} bytes on the console, {pokes} newline(s) sent); it last showed: {}",
                    timeout.as_secs(),
                    s.dialogue.console.bytes_received(),
                    quote(&shown)
                );
                return Err(o);
            }
        }
    }
}

/// Wait for the first output of the image itself: under UEFI, OVMF writes its own lines to the
/// serial port (`BdsDxe: loading Boot0001 …`) before any loader runs; they prove nothing of it.
async fn first_output(s: &mut Session, deadline: Instant) -> Result<(), WaitError> {
    let firmware = Regex::new(r"^\s*(BdsDxe:|BdsDxe |Boot\d{4}|UEFI |EFI stub:|\[Bds\])")
        .expect("static regex");
    let line = Regex::new(r"(?m)^[^\n]*\S[^\n]*(\n|\z)").expect("static regex");
    loop {
        let m = s
            .dialogue
            .expect(std::slice::from_ref(&line), deadline)
            .await?;
        if !firmware.is_match(&m.matched) {
            return Ok(());
        }
        // A partial line may still grow into the loader's output: look at it again whole.
        if !m.matched.ends_with('\n') {
            s.dialogue.console.set_cursor(m.start);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The whole line containing byte `at` (an absolute transcript offset, as a match's).
fn line_around(t: &bootaudit_console::Transcript, at: usize) -> String {
    t.line_at(at).trim().to_string()
}

/// The profile's login: an automatic login of its user, the user and password typed at the
/// prompts, or none (a shell is on the console).
async fn login(
    engine: &mut Engine,
    s: &mut Session,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outcome, Outcome> {
    match s.contract.login.clone() {
        Login::Automatic { user } => autologin(engine, s, &user, deadline).await,
        Login::Password { user, password } => {
            let secret = s.login_password.clone().unwrap_or_default();
            password_login(s, &user, &secret, &password.source(), deadline, timeout).await
        }
        Login::None => Ok(Outcome::not_applicable(
            "no login: the profile says a shell is on the console (console.login.mode: none)",
        )),
    }
}

async fn autologin(
    engine: &mut Engine,
    s: &mut Session,
    expected: &str,
    deadline: Instant,
) -> Result<Outcome, Outcome> {
    let auto = s.contract.prompts.autologin.clone();
    let login = s.contract.prompts.login.clone();
    let id = s.dialogue.current.clone();
    // agetty may print "(automatic login)" in a later chunk than "login: ".
    let grace = (Instant::now() + AUTOLOGIN_GRACE).min(deadline);
    let m = match s.dialogue.expect(std::slice::from_ref(&auto), grace).await {
        Ok(m) => m,
        Err(WaitError::Timeout { .. }) => {
            // Poke once: a getty without autologin answers with another login prompt.
            engine.progress(&id, "no automatic login yet: sending a newline");
            s.dialogue
                .send_line("")
                .await
                .map_err(|e| Outcome::fail(format!("{e:?}"), ""))?;
            let poke_deadline = (Instant::now() + AUTOLOGIN_GRACE).min(deadline);
            match s
                .dialogue
                .expect(&[auto.clone(), login], poke_deadline)
                .await
            {
                Ok(m) if m.pattern == 0 => m,
                Ok(m) => {
                    let line = s
                        .dialogue
                        .console
                        .with_transcript(|t| line_around(t, m.start));
                    return Err(verdicts::no_autologin(expected, line));
                }
                Err(WaitError::Timeout { tail, .. }) => {
                    return Err(Outcome::timed_out(
                        format!(
                        "no automatic login after the login prompt; the console last showed: {}",
                        quote(&last_lines(&tail, 3))
                    ),
                        last_lines(&tail, 5),
                    ))
                }
                Err(e) => {
                    return Err(wait_failure(
                        s,
                        e,
                        "waiting for the automatic login",
                        AUTOLOGIN_GRACE,
                    )
                    .await)
                }
            }
        }
        Err(e) => {
            return Err(
                wait_failure(s, e, "waiting for the automatic login", AUTOLOGIN_GRACE).await,
            )
        }
    };
    let line = s
        .dialogue
        .console
        .with_transcript(|t| line_around(t, m.start));
    let user = m.get(1).unwrap_or_default().to_string();
    let o = verdicts::autologin(&user, expected, line);
    match o.status {
        Status::Pass => Ok(o),
        _ => Err(o),
    }
}

/// Type the user name and the password at the getty's prompts (dialogue::login), and judge
/// how it ended.
async fn password_login(
    s: &mut Session,
    user: &str,
    password: &str,
    source: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outcome, Outcome> {
    let prompts = s.contract.prompts.clone();
    match login::with_password(&mut s.dialogue, &prompts, user, password, deadline).await {
        Ok(PasswordLogin::Accepted { asked: true }) => {
            Ok(verdicts::password_login(user, Some(source)))
        }
        Ok(PasswordLogin::Accepted { asked: false }) => Ok(verdicts::password_login(user, None)
            .with_warning(format!("`{user}` was logged in without a password prompt"))),
        Ok(PasswordLogin::Refused { at }) => {
            let line = s.dialogue.console.with_transcript(|t| line_around(t, at));
            Err(verdicts::login_refused(user, line))
        }
        Err(e) => Err(wait_failure(s, e, &format!("logging in as `{user}`"), timeout).await),
    }
}

/// Take over the shell: make it predictable (no colours, no pager, no bracketed paste, wide
/// lines) and prove a round trip with an exit code, in one framed line typed as soon as the
/// shell can read it (`Dialogue::run_when_ready`): no waiting for a quiet console, which a
/// console that services keep printing to never is.
async fn shell_ready(
    _engine: &mut Engine,
    s: &mut Session,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outcome, Outcome> {
    // POSIX sh (dash, busybox ash) as well as bash and zsh: options a shell lacks are tried
    // in a subshell first, since a special builtin's error would abort the rest of the line.
    let take_over = "export TERM=dumb PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0 LESS=FRX GIT_PAGER=cat; \
                 unset PROMPT_COMMAND; PS1='$ '; PS2='> '; \
                 (bind 'set enable-bracketed-paste off') >/dev/null 2>&1 && bind 'set enable-bracketed-paste off'; \
                 (set +o emacs) 2>/dev/null && set +o emacs; (set +o vi) 2>/dev/null && set +o vi; \
                 (unsetopt zle) 2>/dev/null && unsetopt zle prompt_cr prompt_sp; \
                 printf '\\033[?2004l'; stty cols 250 -echoctl 2>/dev/null; echo $((6*7)); id -un";
    match s
        .dialogue
        .run_when_ready(take_over, FIRST_TAKE_OVER_TRY, deadline)
        .await
    {
        Ok(run)
            if run.output.exit_code == 0 && run.output.lines.iter().any(|l| l.trim() == "42") =>
        {
            s.shell_ready = true;
            let user = run
                .output
                .lines
                .iter()
                .map(|l| l.trim())
                .rfind(|l| *l != "42" && !l.is_empty())
                .unwrap_or("?")
                .to_string();
            Ok(Outcome::pass(
                format!(
                    "shell answers as `{user}`: round trip {} ms with exit code 0",
                    run.took.as_millis()
                ),
                format!(
                    "{} rc={}",
                    run.output.text().replace('\n', " "),
                    run.output.exit_code
                ),
            ))
        }
        Ok(run) => Err(Outcome::fail(
            format!(
                "the shell answered but not as expected (exit code {}): {}",
                run.output.exit_code,
                quote(&run.output.text())
            ),
            run.output.raw,
        )),
        Err(e) => Err(wait_failure(s, e, "taking over the shell", timeout).await),
    }
}

/// Run a probe and judge its output; with `polls`, again every `poll` until it passes, fails
/// at once, or the deadline comes.
async fn probe(
    engine: &mut Engine,
    s: &mut Session,
    def: &ConditionDef,
    judge: &ProbeJudge,
    polls: bool,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outcome, Outcome> {
    let as_root = judge.run_as == RunAs::Root;
    let mut runs = 0;
    let mut streak = crate::judge::FinalStreak::default();
    loop {
        runs += 1;
        // The deadline is the state's: a check started before it may finish its round trip.
        let run_deadline = match runs {
            1 => deadline,
            _ => deadline.max(Instant::now() + LAST_CHECK_GRACE),
        };
        let run = s.dialogue.run(&judge.command, as_root, run_deadline).await;
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                return Err(
                    wait_failure(s, e, &format!("running `{}`", judge.command), timeout).await,
                )
            }
        };
        let text = run.output.text();
        match judge.judge_next(&mut streak, &text, run.output.exit_code) {
            ProbeVerdict::Pass { evidence } => {
                if judge.grants_root {
                    s.root = true;
                    // Kernel messages down to errors only: keeps chatter out of command
                    // output, and lets the panic and CPU-stall reports through. In the
                    // background where the escalation needs no terminal: it costs an
                    // escalation (0.3–1 s under TCG) that no verdict waits for.
                    let quiet_deadline = Instant::now() + Duration::from_secs(10);
                    let _ = s
                        .dialogue
                        .run_as_root_detached("dmesg -n 4", quiet_deadline)
                        .await;
                }
                let after = if runs > 1 {
                    format!(" (after {runs} checks)")
                } else {
                    String::new()
                };
                return Ok(Outcome::pass(
                    format!("{}{after}", def.describe(&engine.config.profile.vars)),
                    evidence,
                ));
            }
            ProbeVerdict::FailNow { matched, why } => {
                return Err(Outcome::fail(
                    crate::judge::will_not_pass(&judge.command, &matched, why.as_deref(), ""),
                    text,
                ));
            }
            ProbeVerdict::NotYet { observed } => {
                let poll = judge.poll.unwrap_or_default();
                let next = Instant::now() + poll;
                if judge.poll.is_none() || !polls || next >= deadline {
                    let waited = if judge.poll.is_some() {
                        format!(" after {}s of polling ({runs} checks)", timeout.as_secs())
                    } else {
                        String::new()
                    };
                    return Err(Outcome::timed_out(
                        format!("not met{waited}: `{}` gave {observed}", judge.command),
                        text,
                    ));
                }
                engine.progress(
                    &def.id,
                    &format!(
                        "not yet ({observed}); checking again in {}s",
                        poll.as_secs()
                    ),
                );
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = engine.cancel.cancelled() => return Err(Outcome::skip("interrupted")),
                }
            }
        }
    }
}

/// A pattern anywhere on the console since boot, waited for `wait` from `started` (`None`:
/// what the console shows now).
async fn watch(
    s: &mut Session,
    clock: crate::engine::Clock,
    re: &Regex,
    started: Instant,
    wait: Option<Duration>,
) -> Result<Outcome, Outcome> {
    let cursor = s.dialogue.console.cursor();
    s.dialogue.console.set_cursor(0);
    let deadline = started + wait.unwrap_or_default();
    let result = s.dialogue.expect(std::slice::from_ref(re), deadline).await;
    s.dialogue.console.set_cursor(cursor);
    match result {
        Ok(m) => {
            let evidence = m.get(1).unwrap_or(&m.matched).to_string();
            let line = s
                .dialogue
                .console
                .with_transcript(|t| line_around(t, m.start));
            // When it came, on the run's axis: the transcript's own stamps say when it was read.
            let when = match s.dialogue.console.time_at(m.start) {
                Some(at) => format!(
                    ", which came at +{:.1}s",
                    clock.ms(at.into_std()) as f64 / 1000.0
                ),
                None => String::new(),
            };
            Ok(Outcome::pass(
                format!("the console shows {}{when}", quote(&line)),
                evidence,
            ))
        }
        Err(WaitError::Timeout { .. }) => Err(Outcome::timed_out(
            match wait {
                Some(t) => format!(
                    "the console never showed /{}/ (waited {}s)",
                    re.as_str(),
                    t.as_secs()
                ),
                None => format!("the console has not shown /{}/", re.as_str()),
            },
            String::new(),
        )),
        Err(e) => {
            let t = wait.unwrap_or_default();
            Err(wait_failure(s, e, "watching the console", t).await)
        }
    }
}

/// Gather the profile's diagnostics for a failed condition, while the guest is still up.
async fn collect_diagnostics(engine: &mut Engine, s: &mut Session, def: &ConditionDef) {
    if def.diagnostics.is_empty()
        || !s.shell_ready
        || s.fatal.is_some()
        || s.dialogue.console.is_closed()
    {
        return;
    }
    // Their output quotes failures (journalctl): no signature may fire on it.
    s.dialogue.console.set_signature_checking(false);
    s.dialogue.current = format!("{}#diagnostics", def.id);
    for name in &def.diagnostics {
        let Some(diag) = engine.config.profile.diagnostics.get(name) else {
            continue;
        };
        let Ok(command) =
            crate::config::pattern::fill(&diag.run, &engine.config.profile.vars, |v| v.to_string())
        else {
            continue;
        };
        engine.progress(&def.id, &format!("collecting diagnostic {name}"));
        let deadline = Instant::now() + DIAGNOSTIC_TIMEOUT;
        let content = match s.dialogue.run(&command, s.root, deadline).await {
            Ok(run) => format!(
                "$ {command}\n{}\n[exit code {}]\n",
                run.output.raw.trim_end(),
                run.output.exit_code
            ),
            Err(e) => format!("$ {command}\n[not collected: {e:?}]\n"),
        };
        engine.emit(Event::Diagnostic {
            id: &def.id,
            name,
            content: &content,
        });
        engine.add_diagnostic_path(&def.id, format!("diagnostics/{}/{name}.txt", def.id));
    }
    s.dialogue.console.set_signature_checking(true);
}
