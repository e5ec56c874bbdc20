//! `bootaudit replay`: judge a captured serial log offline with the same judges as a live run.
//!
//! A live run cannot be re-enacted against a recording (nobody answers the commands), so the
//! replay reads what the recording shows: the console conditions (output, login, autologin,
//! watches, failure signatures) from the text, and every probe from the framed commands a
//! bootaudit run left in its `serial.raw` — each begin marker names its command, each frame
//! carries the output and exit code, and the probe's own judge decides, run by run, as it did
//! live ([`own`]). A log captured by another tool has no frames: [`foreign`] recovers the
//! commands that harness ran and their output, and the catalog's `replay:` forms ([`forms`])
//! say which of them show a condition's probe. A condition the log does not show is `skip`
//! ("not observed in the log"), never a pass.
//!
//! The log is streamed twice (a survey, then the judging) and never held: a gigabyte capture
//! replays in flat memory (docs/benchmarks.md).

pub mod foreign;
pub mod forms;
pub mod judging;
pub mod own;

/// Lines of the log quoted for one frame or exchange in the condition's transcript.
const MAX_EXCERPT_LINES: usize = 40;
/// Characters of one quoted line (a flood line may be 64 KiB).
const MAX_QUOTED_CHARS: usize = 400;

/// A log line as the condition's transcript quotes it: numbered, and cut if very long.
fn quoted(no: u64, line: &str) -> (u64, String) {
    let mut text = String::new();
    quote_to(&mut text, line);
    (no, text)
}

/// Append the line as quoted: cut after MAX_QUOTED_CHARS characters, with `…`.
fn quote_to(out: &mut String, line: &str) {
    match line.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((at, _)) => {
            out.push_str(&line[..at]);
            out.push('…');
        }
        None => out.push_str(line),
    }
}

/// Add a line to an excerpt unless it is full.
fn quote_into(excerpt: &mut Vec<(u64, String)>, no: u64, line: &str) {
    if excerpt.len() < MAX_EXCERPT_LINES {
        excerpt.push(quoted(no, line));
    }
}

use crate::cli::ReplayArgs;
use crate::config::ConditionDef;
use crate::engine::events::{Event, Fanout};
use crate::engine::{Engine, RunOptions, Scope};
use crate::exit_codes;
use crate::model::Outcome;
use bootaudit_console::for_each_line;
use judging::{not_observed, Finding, Judging, Plan, OUT_OF_REACH};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

pub async fn run(args: ReplayArgs, cancel: crate::signal::Cancel) -> i32 {
    let common = args.common;
    let config = match crate::app::load_config(&common.profile, &common.vars) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Checked before the report folder exists: a typo leaves nothing behind. Resolved now,
    // too: making the report folder repoints `audit-reports/latest`, the very path of
    // `bootaudit replay audit-reports/latest/serial.raw`.
    // A report folder stands for its serial.raw.
    let given = match args.serial_log.join("serial.raw") {
        raw if args.serial_log.is_dir() && raw.is_file() => raw,
        _ => args.serial_log.clone(),
    };
    let log = match std::fs::File::open(&given).and_then(|f| {
        if f.metadata()?.is_dir() {
            Err(std::io::Error::other(
                "it is a folder without a serial.raw (not a report folder of a run)",
            ))
        } else {
            given.canonicalize()
        }
    }) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("bootaudit: cannot read {}: {e} — give the path of a serial log (e.g. a report's serial.raw)", args.serial_log.display());
            return exit_codes::USAGE;
        }
    };
    if let Err(e) = crate::engine::validate(&config, &common.only, &common.skip) {
        eprintln!("bootaudit: {e}");
        return exit_codes::USAGE;
    }
    // bootaudit's readable serial.log is no console capture: its stamps and direction marks
    // would be read as the guest's output (a false failure of every probe).
    if own::is_readable_transcript(&log) {
        let raw = log.with_file_name("serial.raw");
        eprintln!(
            "bootaudit: {} is bootaudit's readable transcript (time stamps, `>` sent, `<` \
             received), not a capture of the console — replay {} instead (every byte as it \
             came), or the report folder",
            log.display(),
            match raw.is_file() {
                true => raw.display().to_string(),
                false => "the run's serial.raw".to_string(),
            }
        );
        return exit_codes::USAGE;
    }
    // A report folder is replaced whole: it must not be the one that holds the log.
    if let Some(out) = common.out.as_ref().and_then(|o| o.canonicalize().ok()) {
        if log.starts_with(&out) {
            eprintln!(
                "bootaudit: --out {} holds the log being replayed ({}), and a report folder is \
                 replaced whole — choose another folder",
                out.display(),
                log.display()
            );
            return exit_codes::USAGE;
        }
    }
    // `audit-reports/<run>/serial.raw` → `replay-<run>`, any other log → `replay-<its name>`.
    let named_by = if archived_by_a_run(&log) {
        log.parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_owned())
    } else {
        log.file_stem().map(|s| s.to_owned())
    };
    let name = named_by
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "log".into());
    // Ctrl-C (listened for by app::main) stops the reading; the report is written, verdict
    // `interrupted` (exit 130).
    let crate::app::Reporting {
        dir: out_dir,
        reporters,
        incomplete,
    } = match crate::app::reporters(
        common.out.clone(),
        &format!("replay-{name}"),
        false,
        &common,
        false,
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let opts = RunOptions {
        scope: Scope::Replay,
        accel: crate::cli::Accel::Auto,
        timeout_scale: 1.0,
        only: common.only.clone(),
        skip: common.skip.clone(),
        flake: None,
        iso: None,
        out_dir,
    };
    let mut engine = match Engine::new(config, opts, Fanout::new(reporters), cancel) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bootaudit: {e}");
            return exit_codes::USAGE;
        }
    };
    engine.replay(log);
    let report = engine.run().await;
    crate::app::finish(
        &report,
        incomplete.load(std::sync::atomic::Ordering::SeqCst),
        common.format,
    )
}

/// What the two passes over the log found, per condition, whether it was an own log, the
/// boot's milestones, and the first stall line in each window of the plan.
type Findings = (
    Vec<Finding>,
    bool,
    Vec<crate::model::Milestone>,
    Vec<Option<crate::session_record::Stall>>,
);

/// Read the log: a survey pass, then the judging pass. Runs on a blocking thread; stops early
/// (with what it has) when the run is interrupted. `archived`: the log is a run's serial.raw.
fn read_log<R: std::io::Read>(
    plan: &Plan,
    open: impl Fn() -> std::io::Result<R>,
    archived: bool,
    cancel: &crate::signal::Cancel,
    mut milestones: crate::timeline::MilestoneScanner,
) -> std::io::Result<Findings> {
    let mut survey = foreign::Survey::new(&plan.facts);
    let mut own = archived;
    let mut lines: u64 = 0;
    // Checking for Ctrl-C costs a lock: every few thousand lines is often enough.
    let interrupted = |lines: &mut u64| {
        *lines += 1;
        (*lines).is_multiple_of(4096) && cancel.is_cancelled()
    };
    for_each_line(open()?, |_, line| {
        own |= own::begin_marker(line).is_some();
        survey.line(line);
        if interrupted(&mut lines) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if cancel.is_cancelled() {
        return Ok((Vec::new(), own, Vec::new(), Vec::new()));
    }
    let mut judging = Judging::new(plan, &survey, own);
    for_each_line(open()?, |no, line| {
        judging.line(no, line);
        milestones.line(line, None, Some(no));
        if interrupted(&mut lines) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    judging.finish();
    let stalls = judging.window_stalls();
    Ok((judging.findings(), own, milestones.finish(), stalls))
}

/// Both passes of a replay over a log in memory: findings per condition, own log, milestones.
pub fn judge_bytes(
    plan: &Plan,
    log: &[u8],
    milestones: crate::timeline::MilestoneScanner,
) -> (Vec<Finding>, bool, Vec<crate::model::Milestone>) {
    let cancel = crate::signal::Cancel::new();
    let (findings, own, milestones, _) =
        read_log(plan, || Ok(log), false, &cancel, milestones).expect("reading memory cannot fail");
    (findings, own, milestones)
}

/// A `serial.raw` in a report folder of `bootaudit run` (beside its serial.timing and
/// report.json) is an own log even without a single frame: a run that never got a shell (no
/// automatic login) framed nothing, and its replay must still mirror what the run did.
fn archived_by_a_run(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    path.file_name().is_some_and(|n| n == "serial.raw")
        && dir.join("serial.timing").is_file()
        && dir.join("report.json").is_file()
}

/// The boot phase over a recorded log: each condition judged from what the log shows.
pub async fn judge_log(engine: &mut Engine, defs: &[ConditionDef], path: PathBuf) {
    let archived = archived_by_a_run(&path);
    let log_path = path.clone();
    // A gigabyte takes half a minute: say what is going on.
    if let Ok(meta) = std::fs::metadata(&path) {
        let size = match meta.len() {
            b if b < 1 << 20 => format!("{} KiB", b.div_ceil(1024)),
            b => crate::config::units::Size(b).to_string(),
        };
        let note = format!(
            "reading {} ({size}){}",
            path.display(),
            if archived {
                ", a bootaudit run's console"
            } else {
                ""
            }
        );
        engine.emit(Event::Note(&note));
    }
    // The run's own side of its session (serial.events), where it wrote one.
    let record = match archived {
        true => match crate::session_record::Record::load(&path) {
            Ok(r) => r,
            Err(e) => {
                let note = format!(
                    "the run's {} could not be read: {e}",
                    crate::session_record::FILE
                );
                engine.emit(Event::Note(&note));
                None
            }
        },
        false => None,
    };
    // Judged on the host before the boot: the record's verdicts, so the boot conditions are
    // gated on them as they were live.
    let mut from_record = std::collections::BTreeSet::new();
    for (id, outcome) in record.iter().flat_map(|r| r.conditions.iter()) {
        // Only what is not a console condition in this profile: the log judges the rest.
        match engine.config.condition(id).cloned() {
            Some(def) if def.phase != crate::model::Phase::Boot && from_record.insert(id) => {
                let at = engine.now_ms();
                engine.record(&def, at, outcome.clone());
            }
            _ => {}
        }
    }
    if record.as_ref().is_some_and(|r| r.interrupted) {
        engine.facts.interrupted_live = true;
    }
    let judged = match Plan::new(&engine.config, defs) {
        Err(e) => Err(e),
        Ok(mut plan) => {
            plan.windows = record.as_ref().map(|r| r.windows()).unwrap_or_default();
            let cancel = engine.cancel.clone();
            let milestones = engine.milestone_scanner();
            tokio::task::spawn_blocking(move || {
                read_log(
                    &plan,
                    || std::fs::File::open(&path),
                    archived,
                    &cancel,
                    milestones,
                )
            })
            .await
            .map_err(|e| format!("internal error: {e}"))
            .and_then(|r| r.map_err(|e| format!("reading the log: {e}")))
        }
    };
    if let Ok((_, _, milestones, _)) = &judged {
        let mut milestones = milestones.clone();
        // A run's own console has its arrival times beside it: the milestones get theirs.
        if archived {
            let dir = log_path.parent().unwrap_or(Path::new("."));
            let timed = own::timed_milestones(
                &log_path,
                &dir.join("serial.timing"),
                engine.milestone_scanner(),
            );
            if let Ok(Some(timed)) = timed {
                for m in milestones.iter_mut() {
                    m.at_ms = timed
                        .iter()
                        .find(|t| t.name == m.name)
                        .and_then(|t| t.at_ms);
                }
                milestones.sort_by_key(|m| (m.at_ms, m.log_line));
            }
        }
        engine.facts.timeline = Some(crate::model::Timeline {
            milestones,
            ..Default::default()
        });
    }
    let mut seen_fatal: Option<String> = None;
    // The session had ended (by the record) at an earlier condition.
    let mut after_ending = false;
    // The lines each verdict rests on, for a later one that rests on it.
    let mut excerpts: std::collections::BTreeMap<String, Vec<(u64, String)>> = Default::default();
    for (i, def) in defs.iter().enumerate() {
        // Left out live (--skip, --only, not applicable): as live, whatever the log shows.
        if let Some((_, left_out)) = record
            .iter()
            .flat_map(|r| r.left_out.iter())
            .find(|(id, _)| *id == def.id)
        {
            let at = engine.begin(def);
            engine.record(def, at, left_out.clone());
            continue;
        }
        let (finding, own) = match &judged {
            // An interrupted reading has no findings: the gate says "interrupted".
            Ok((findings, own, _, _)) => (
                findings
                    .get(i)
                    .cloned()
                    .unwrap_or(Finding::NotObserved(None)),
                *own,
            ),
            Err(e) => {
                let at = engine.begin(def);
                engine.record(def, at, Outcome::error(format!("cannot replay: {e}")));
                continue;
            }
        };
        // Own logs mirror the live run: what it did not run, it blocked. A foreign harness
        // runs what it likes, so what its log shows of a condition is judged even where a
        // prerequisite failed; only what it does not show is blocked.
        // After a fatal line (a panic), the condition that saw it is what the later ones
        // fail by, as live.
        let fatal = matches!(finding, Finding::Fatal(..));
        let chosen = match (engine.gate(def), finding) {
            (Some(gate), Finding::Shown(o, e) | Finding::Named(o, e))
                if !own && gate.blocked_by.is_some() =>
            {
                Ok((o, e))
            }
            (Some(gate), _) => Err(gate),
            (None, Finding::Shown(o, e) | Finding::Named(o, e) | Finding::Fatal(o, e)) => {
                Ok((o, e))
            }
            // Not shown, and it can only pass after a condition that failed: as live.
            // It rests on the line of that failure, quoted again.
            (None, Finding::NotObserved(_)) if engine.failed_precondition(def).is_some() => {
                let first = engine.failed_precondition(def).expect("checked");
                let mut o =
                    crate::judge::console::after_failed("the log does not show it", &first.id);
                o.log_line = first.log_line;
                let quoted = excerpts.get(&first.id).cloned().unwrap_or_default();
                Ok((o, quoted))
            }
            (None, Finding::NotObserved(note)) => Ok((not_observed(note.as_deref()), Vec::new())),
            // No form could show it: whatever gated it live, the log cannot say.
            (None, Finding::OutOfReach) => Ok((Outcome::out_of_reach(OUT_OF_REACH), Vec::new())),
        };
        // Where the log leaves it open, the run's record says what the harness saw: a wait that
        // ran out, the session's end, an interrupt.
        let chosen = match (&record, chosen) {
            (Some(rec), Ok((outcome, excerpt))) => {
                let stall =
                    rec.waits
                        .iter()
                        .position(|w| w.id == def.id)
                        .and_then(|i| match &judged {
                            Ok((_, _, _, stalls)) => stalls.get(i).cloned().flatten(),
                            Err(_) => None,
                        });
                match rec.settle(&def.id, &outcome, stall.as_ref(), after_ending) {
                    Some(settled) => Ok((settled, Vec::new())),
                    None => Ok((outcome, excerpt)),
                }
            }
            (_, chosen) => chosen,
        };
        if record
            .as_ref()
            .and_then(|r| r.ended.as_ref())
            .is_some_and(|(during, _, _)| *during == def.id)
        {
            after_ending = true;
        }
        match chosen {
            Err(gate) => {
                let at = engine.now_ms();
                engine.record(def, at, gate);
            }
            Ok((outcome, excerpt)) => {
                let at = engine.begin(def);
                if !excerpt.is_empty() {
                    engine.emit(Event::LogExcerpt {
                        id: &def.id,
                        lines: &excerpt,
                    });
                }
                excerpts.insert(def.id.clone(), excerpt);
                let cause = match (fatal, &seen_fatal) {
                    (true, Some(first)) => Some(first.clone()),
                    _ => None,
                };
                let mut outcome = outcome;
                if fatal && seen_fatal.is_none() {
                    seen_fatal = Some(def.id.clone());
                    outcome.root_cause = true;
                }
                engine.record_caused_by(def, at, outcome, cause);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    /// Replay a log file through the engine (no reporters): the report.
    async fn replay_file(log: &[u8]) -> crate::model::Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, log).unwrap();
        let config = crate::config::load("pre-nixos").unwrap();
        let opts = RunOptions {
            scope: Scope::Replay,
            accel: crate::cli::Accel::Auto,
            timeout_scale: 1.0,
            only: vec![],
            skip: vec![],
            flake: None,
            iso: None,
            out_dir: dir.path().join("out"),
        };
        let cancel = crate::signal::Cancel::new();
        let mut engine = Engine::new(config, opts, Fanout::new(vec![]), cancel).unwrap();
        engine.replay(path);
        engine.run().await
    }

    /// A foreign log of a healthy boot that shows every condition a form can show.
    const HEALTHY_FOREIGN: &[u8] = b"nixos login: nixos (automatic login)\n\
        [nixos@nixos:~]$ sudo -i\n\
        [root@nixos:~]# id -u\n0\n\
        [root@nixos:~]# cat /run/pre-nixos/storage-status\nSTATE=applied\nDETAIL=auto-applied\n\
        [root@nixos:~]# vgs --noheadings -o vg_name\n  main\n\
        [root@nixos:~]# lvs --noheadings -o lv_name,vg_name\n  slash main\n\
        [root@nixos:~]# ip -4 -o addr show dev lan\n2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\n\
        LAN IPv4 address: 10.0.2.15\n\
        [root@nixos:~]# systemctl is-active pre-nixos\ninactive\n\
        [root@nixos:~]# ";

    #[tokio::test]
    async fn a_foreign_log_of_a_passing_run_passes() {
        // Before: storage.tools (no replay form) was "not observed" and the run incomplete.
        let report = replay_file(HEALTHY_FOREIGN).await;
        let tools = report
            .conditions
            .iter()
            .find(|c| c.id == "storage.tools")
            .unwrap();
        assert_eq!(tools.status, crate::model::Status::Skip);
        assert_eq!(tools.message, OUT_OF_REACH);
        assert_eq!(
            report.verdict,
            crate::model::Verdict::Pass,
            "{:?}",
            report.verdict_reason
        );
    }

    #[tokio::test]
    async fn what_a_form_could_show_but_the_log_does_not_still_leaves_it_incomplete() {
        // The same log without the lease: net.lan-ipv4 has forms, so its absence counts.
        let text = String::from_utf8_lossy(HEALTHY_FOREIGN)
            .replace(
                "[root@nixos:~]# ip -4 -o addr show dev lan\n\
                 2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\n",
                "",
            )
            .replace("LAN IPv4 address: 10.0.2.15\n", "");
        let report = replay_file(text.as_bytes()).await;
        assert_eq!(report.verdict, crate::model::Verdict::Incomplete);
        let reason = report.verdict_reason.unwrap();
        assert!(reason.contains("net.lan-ipv4"), "{reason}");
        assert!(!reason.contains("storage.tools"), "{reason}");
    }

    #[test]
    fn judges_a_log_in_memory() {
        let config = crate::config::load("pre-nixos").unwrap();
        let defs: Vec<ConditionDef> = config
            .conditions
            .iter()
            .filter(|d| d.phase == Phase::Boot)
            .cloned()
            .collect();
        let plan = Plan::new(&config, &defs).unwrap();
        let log = b"nixos login: nixos (automatic login)\r\n[nixos@nixos:~]$ id -u\r\n1000\r\n";
        let scanner = crate::timeline::MilestoneScanner::new(Vec::new());
        let (findings, own, _) = judge_bytes(&plan, log, scanner);
        assert_eq!(findings.len(), defs.len());
        assert!(!own);
        let login = defs.iter().position(|d| d.id == "boot.login").unwrap();
        assert!(
            matches!(findings[login], Finding::Shown(..)),
            "{:?}",
            findings[login]
        );
    }
}
