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
use judging::{not_observed, Finding, Judging, Plan};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

pub async fn run(args: ReplayArgs) -> i32 {
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
    // Ctrl-C stops the reading; the report is written, verdict `interrupted` (exit 130).
    let cancel = crate::signal::Cancel::new();
    crate::signal::install(cancel.clone());
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

/// What the two passes over the log found, per condition, whether it was an own log, and the
/// boot's milestones.
type Findings = (Vec<Finding>, bool, Vec<crate::model::Milestone>);

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
        return Ok((Vec::new(), own, Vec::new()));
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
    Ok((judging.findings(), own, milestones.finish()))
}

/// Both passes of a replay over a log in memory: findings per condition, own log, milestones.
pub fn judge_bytes(
    plan: &Plan,
    log: &[u8],
    milestones: crate::timeline::MilestoneScanner,
) -> (Vec<Finding>, bool, Vec<crate::model::Milestone>) {
    let cancel = crate::signal::Cancel::new();
    read_log(plan, || Ok(log), false, &cancel, milestones).expect("reading memory cannot fail")
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
    let judged = match Plan::new(&engine.config, defs) {
        Err(e) => Err(e),
        Ok(plan) => {
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
    if let Ok((_, _, milestones)) = &judged {
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
    // The lines each verdict rests on, for a later one that rests on it.
    let mut excerpts: std::collections::BTreeMap<String, Vec<(u64, String)>> = Default::default();
    for (i, def) in defs.iter().enumerate() {
        let (finding, own) = match &judged {
            // An interrupted reading has no findings: the gate says "interrupted".
            Ok((findings, own, _)) => (
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
        };
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
