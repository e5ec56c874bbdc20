//! The audit pipeline: an ordered list of phases, each an ordered list of conditions with
//! prerequisites. The engine decides which conditions are in scope, gates each on its
//! prerequisites (a failed prerequisite blocks its dependents), runs the phase code, and emits
//! events; it never prints and never writes files (reporters do).

pub mod events;
pub mod phases;

use crate::cli::Accel;
use crate::config::{ConditionDef, Config};
use crate::model::{BootInfo, ConditionReport, IsoInfo, Outcome, Phase, Report, Status, Verdict};
use crate::signal::Cancel;
use events::{Event, Fanout, Millis};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Milliseconds since the run started, for every timestamp of the run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn ms(&self, at: Instant) -> Millis {
        at.saturating_duration_since(self.start).as_millis() as Millis
    }
}

/// Which part of the pipeline a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `bootaudit run`: every phase.
    Full,
    /// `bootaudit check PHASE`: that phase and the prerequisites it needs.
    Phase(Phase),
    /// `bootaudit replay`: the boot phase, judged from a recorded log.
    Replay,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scope: Scope,
    pub accel: Accel,
    pub timeout_scale: f64,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub flake: Option<String>,
    pub iso: Option<PathBuf>,
    /// The report folder (also where disks' free space is checked).
    pub out_dir: PathBuf,
}

/// The accelerator a boot will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Kvm,
    Tcg,
}

impl AccelChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        }
    }
}

/// What earlier conditions found out, for later ones to use.
#[derive(Debug, Default)]
pub struct Facts {
    pub qemu_version: Option<String>,
    pub accel: Option<AccelChoice>,
    pub iso_path: Option<PathBuf>,
    pub iso_info: Option<IsoInfo>,
    /// The boot entry the profile chose (iso.console found it).
    pub boot_entry: Option<phases::iso::ChosenEntry>,
    pub boot: Option<BootInfo>,
    /// The ISO's sha256, computed in the background from iso.resolve on (for the report).
    pub iso_sha256: Option<std::sync::mpsc::Receiver<std::io::Result<String>>>,
    /// The KVM probe started as the run began (virt.kvm takes its answer).
    pub kvm_probe: Option<std::sync::mpsc::Receiver<phases::virt::KvmVerdict>>,
    /// The boot's milestones and the guest's own account of its boot (the boot phase).
    pub timeline: Option<crate::model::Timeline>,
    /// Replay of a run's own console: the run's record says it was interrupted.
    pub interrupted_live: bool,
}

pub struct Engine {
    pub config: Config,
    pub opts: RunOptions,
    pub facts: Facts,
    pub cancel: Cancel,
    fanout: Arc<Mutex<Fanout>>,
    results: Vec<ConditionReport>,
    clock: Clock,
    started_at: chrono::DateTime<chrono::Utc>,
    in_scope: Vec<String>,
    selected: BTreeSet<String>,
    /// The recorded console of `bootaudit replay` (see [`Engine::replay`]).
    replay_log: Option<std::path::PathBuf>,
    /// The same path, for the report (replay_log is taken when the boot phase starts).
    replayed_log: Option<String>,
}

/// An error in the options that only shows once the config is known (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What only the engine can check of a configuration: the ids of --only/--skip exist (every
/// `builtin` condition has code: the catalog loader checked). Called before anything is
/// written.
pub fn validate(config: &Config, only: &[String], skip: &[String]) -> Result<(), UsageError> {
    for id in only.iter().chain(skip) {
        if config.condition(id).is_none() {
            return Err(UsageError(format!(
                "unknown condition `{id}` in --only/--skip — `bootaudit list --profile {}` shows the ids",
                config.profile.name
            )));
        }
    }
    Ok(())
}

impl Engine {
    pub fn new(
        config: Config,
        opts: RunOptions,
        fanout: Fanout,
        cancel: Cancel,
    ) -> Result<Engine, UsageError> {
        validate(&config, &opts.only, &opts.skip)?;
        let (in_scope, selected) = scope_and_selection(&config, &opts);
        Ok(Engine {
            config,
            opts,
            facts: Facts::default(),
            cancel,
            fanout: Arc::new(Mutex::new(fanout)),
            results: Vec::new(),
            clock: Clock {
                start: Instant::now(),
            },
            started_at: chrono::Utc::now(),
            in_scope,
            selected,
            replay_log: None,
            replayed_log: None,
        })
    }

    pub fn now_ms(&self) -> Millis {
        self.clock.ms(Instant::now())
    }

    /// The profile's milestones with their patterns resolved (checked when it was loaded).
    pub fn milestone_scanner(&self) -> crate::timeline::MilestoneScanner {
        let p = &self.config.profile;
        let patterns = p
            .milestones
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.pattern.resolve(&p.vars).ok()?)))
            .collect();
        crate::timeline::MilestoneScanner::new(patterns)
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The reporters, shared with the console's reader task (it emits console traffic).
    pub fn fanout(&self) -> Arc<Mutex<Fanout>> {
        self.fanout.clone()
    }

    pub fn emit(&mut self, event: Event<'_>) {
        // A reporter that panicked poisons the lock; the audit goes on without rendering.
        if let Ok(mut f) = self.fanout.lock() {
            f.emit(event);
        }
    }

    pub fn note(&mut self, text: &str) {
        self.emit(Event::Note(text));
    }

    /// Run every phase in scope and build the report.
    pub async fn run(mut self) -> Report {
        let out_dir = self.opts.out_dir.clone();
        let profile = self.config.profile.name.clone();
        self.emit(Event::RunStarted {
            profile: &profile,
            out_dir: &out_dir,
        });
        phases::start_background(&mut self);
        for phase in Phase::ALL {
            let defs: Vec<ConditionDef> = self
                .config
                .conditions
                .iter()
                .filter(|d| d.phase == phase && self.in_scope.contains(&d.id))
                .cloned()
                .collect();
            if defs.is_empty() {
                continue;
            }
            self.emit(Event::PhaseStarted(phase));
            match phase {
                Phase::Boot => match self.replay_log.take() {
                    Some(log) => crate::replay::judge_log(&mut self, &defs, log).await,
                    None => phases::boot::run(&mut self, &defs).await,
                },
                _ => {
                    for def in &defs {
                        if self.skip_if_gated(def) {
                            continue;
                        }
                        let at = self.begin(def);
                        let outcome = phases::run_builtin(&mut self, def).await;
                        self.record(def, at, outcome);
                    }
                }
            }
        }
        self.into_report()
    }

    /// Will the condition that runs this builtin run in this command (in scope, selected)?
    pub fn will_run(&self, builtin: crate::config::Builtin) -> bool {
        self.config.conditions.iter().any(|d| {
            matches!(d.check(), Ok(crate::config::CheckDef::Builtin(b)) if b == builtin)
                && self.in_scope.contains(&d.id)
                && self.selected.contains(&d.id)
        })
    }

    /// Judge the boot phase from this recorded log instead of booting.
    pub fn replay(&mut self, log: std::path::PathBuf) {
        self.replayed_log = Some(log.display().to_string());
        self.replay_log = Some(log);
    }

    /// Why this condition must not run, if so: not selected, interrupted, or blocked.
    pub fn gate(&self, def: &ConditionDef) -> Option<Outcome> {
        if self.cancel.is_cancelled() {
            return Some(Outcome::skip("interrupted before it ran"));
        }
        if !self.selected.contains(&def.id) {
            let why = if self.opts.skip.contains(&def.id) {
                "skipped with --skip"
            } else {
                "not selected"
            };
            return Some(Outcome::deselected(why));
        }
        for req in &def.requires {
            match self.results.iter().find(|r| &r.id == req) {
                Some(r) if r.satisfies_dependents() => {}
                Some(r) => return Some(blocked_by(r)),
                // A prerequisite outside the scope (e.g. in another phase of `check`) was not run.
                None => {}
            }
        }
        // What explains it must have been judged (pass or fail): its wait is what lets the
        // state settle, and without its verdict a failure here would say nothing (a guest
        // starved during storage.status has not provisioned yet). What it follows need not:
        // unjudged, the condition simply waits its own time.
        for req in &def.explained_by {
            match self.results.iter().find(|r| &r.id == req) {
                Some(r) if r.satisfies_dependents() || r.status == Status::Fail => {}
                Some(r) => return Some(blocked_by(r)),
                None => {}
            }
        }
        None
    }
}

/// Skipped behind `r`. Behind a condition the user left out, it is left out too: a `--skip`
/// never makes a run incomplete.
fn blocked_by(r: &ConditionReport) -> Outcome {
    let mut o = Outcome::blocked(&r.id, r.status);
    if r.status == Status::Skip && r.skip_kind == crate::model::SkipKind::Deselected {
        o.skip_kind = crate::model::SkipKind::Deselected;
    }
    o
}

impl Engine {
    /// If the condition must not run, record why and return true.
    pub fn skip_if_gated(&mut self, def: &ConditionDef) -> bool {
        match self.gate(def) {
            Some(skip) => {
                let at = self.now_ms();
                self.record(def, at, skip);
                true
            }
            None => false,
        }
    }

    /// Mark the start of a condition; returns its start time.
    pub fn begin(&mut self, def: &ConditionDef) -> Millis {
        let at = self.now_ms();
        self.emit(Event::ConditionStarted {
            id: &def.id,
            phase: def.phase,
            at,
        });
        at
    }

    pub fn progress(&mut self, id: &str, detail: &str) {
        let at = self.now_ms();
        self.emit(Event::Progress { id, at, detail });
    }

    /// Record a finished condition (with the hint appended to failures, and the likely cause
    /// the catalog's `explained_by`/`follows` name) and emit it.
    pub fn record(&mut self, def: &ConditionDef, started: Millis, outcome: Outcome) {
        self.record_caused_by(def, started, outcome, None);
    }

    /// [`Engine::record`], where the phase knows the earlier condition that made this one fail
    /// (the one that saw the guest panic); without one the catalog decides.
    pub fn record_caused_by(
        &mut self,
        def: &ConditionDef,
        started: Millis,
        mut outcome: Outcome,
        caused_by: Option<String>,
    ) {
        if outcome.status == Status::Fail && !outcome.suppress_hint {
            if let Some(hint) = &def.hint {
                if !outcome.message.contains(hint.as_str()) {
                    outcome.message = format!("{} — {}", outcome.message, hint);
                }
            }
        }
        let likely_cause = match outcome.status {
            Status::Fail if outcome.root_cause => None,
            Status::Fail => match caused_by {
                Some(id) => self.result(&id).map(root_through),
                None => self.likely_cause(def),
            },
            _ => None,
        };
        if let Some((root, through)) = &likely_cause {
            outcome.message = format!(
                "{} — likely cause: {root} failed first{}",
                outcome.message,
                match through {
                    Some(via) => format!(" (through {via})"),
                    None => String::new(),
                }
            );
        }
        let report = ConditionReport {
            id: def.id.clone(),
            phase: def.phase,
            status: outcome.status,
            message: outcome.message,
            evidence: outcome.evidence,
            started_ms: started,
            duration_ms: self.now_ms().saturating_sub(started),
            transcript: Some(format!("conditions/{}.log", def.id)),
            blocked_by: outcome.blocked_by,
            likely_cause: likely_cause.map(|(root, _)| root),
            log_line: outcome.log_line,
            warnings: outcome.warnings,
            diagnostics: Vec::new(),
            skip_kind: outcome.skip_kind,
        };
        self.emit(Event::ConditionFinished(&report));
        self.results.push(report);
    }

    /// The earlier failure that likely explains a failure of `def`: the first of its
    /// `follows`/`explained_by` that failed, followed back to the root of its own chain.
    /// Returns the root and, when it differs, the condition in between.
    pub fn likely_cause(&self, def: &ConditionDef) -> Option<(String, Option<String>)> {
        let failed = def
            .follows
            .iter()
            .chain(&def.explained_by)
            .filter_map(|id| self.result(id))
            .find(|r| r.status == Status::Fail)?;
        Some(root_through(failed))
    }

    /// The first of `def`'s `follows` that failed: `def` cannot pass any more than it shows now.
    pub fn failed_precondition(&self, def: &ConditionDef) -> Option<&ConditionReport> {
        def.follows
            .iter()
            .filter_map(|id| self.result(id))
            .find(|r| r.status == Status::Fail)
    }

    /// Attach diagnostics paths to an already recorded condition.
    pub fn add_diagnostic_path(&mut self, id: &str, path: String) {
        if let Some(r) = self.results.iter_mut().find(|r| r.id == id) {
            r.diagnostics.push(path);
        }
    }

    pub fn result(&self, id: &str) -> Option<&ConditionReport> {
        self.results.iter().find(|r| r.id == id)
    }

    /// The result of the condition that runs this builtin, if one did.
    pub fn result_of(&self, builtin: crate::config::Builtin) -> Option<&ConditionReport> {
        let def = self.config.conditions.iter().find(
            |d| matches!(d.check(), Ok(crate::config::CheckDef::Builtin(b)) if b == builtin),
        )?;
        self.result(&def.id)
    }

    /// Scale a boot timeout for the accelerator and --timeout-scale.
    pub fn boot_timeout(&self, def: &ConditionDef) -> Duration {
        let t = &self.config.profile.timeouts;
        let base = self.config.base_timeout(def).0;
        let tcg = if self.facts.accel == Some(AccelChoice::Kvm) {
            1.0
        } else {
            t.tcg_scale
        };
        base.mul_f64(tcg * self.opts.timeout_scale)
    }

    fn into_report(mut self) -> Report {
        if let (Some(rx), Some(info)) = (self.facts.iso_sha256.take(), &mut self.facts.iso_info) {
            // Long done unless nothing booted; an interrupted run does not wait for it.
            let wait = match self.cancel.is_cancelled() {
                true => Duration::ZERO,
                false => Duration::from_secs(120),
            };
            match rx.recv_timeout(wait) {
                Ok(Ok(digest)) => info.sha256 = Some(digest),
                Ok(Err(e)) => {
                    let note = format!("the ISO's sha256 could not be computed: {e}");
                    self.emit(Event::Note(&note));
                }
                Err(_) => {}
            }
        }
        let interrupted = self.cancel.is_cancelled() || self.facts.interrupted_live;
        let mut verdict = Report::judge_verdict(&self.results, &self.config.profile.allowed_skips);
        if interrupted {
            verdict = Verdict::Interrupted;
        }
        let verdict_reason = match verdict {
            Verdict::Incomplete => {
                Report::incomplete_reason(&self.results, &self.config.profile.allowed_skips)
            }
            _ => None,
        };
        let report = Report {
            bootaudit_version: env!("CARGO_PKG_VERSION").to_string(),
            verdict,
            verdict_reason,
            profile: self.config.profile.name.clone(),
            iso: self.facts.iso_info.clone(),
            accel: self.facts.accel.map(|a| a.as_str().to_string()),
            started_at: self
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            duration_ms: self.now_ms(),
            replayed_log: self.replayed_log.clone(),
            boot: self.facts.boot.clone(),
            hostname: hostname(),
            qemu_version: self.facts.qemu_version.clone(),
            timeline: self.facts.timeline.take(),
            conditions: std::mem::take(&mut self.results),
        };
        self.emit(Event::RunFinished(&report));
        report
    }
}

/// This machine's name, as the kernel has it.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// A failure named as a cause: the root of its own chain and, when that is another
/// condition, the failure itself in between.
fn root_through(cause: &ConditionReport) -> (String, Option<String>) {
    match &cause.likely_cause {
        Some(root) => (root.clone(), Some(cause.id.clone())),
        None => (cause.id.clone(), None),
    }
}

/// Run `work` on a thread of its own; its answer comes on the channel (for work that need
/// not hold up the conditions before the one that takes it).
pub fn in_background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The receiver may be gone (the run ended first): nothing waits for the answer.
        let _ = tx.send(work());
    });
    rx
}

/// The conditions a command reports on, and those of them that run.
fn scope_and_selection(config: &Config, opts: &RunOptions) -> (Vec<String>, BTreeSet<String>) {
    let with_prereqs = |roots: Vec<&str>| -> BTreeSet<String> {
        let mut set: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().map(String::from).collect();
        while let Some(id) = stack.pop() {
            if set.insert(id.clone()) {
                if let Some(def) = config.condition(&id) {
                    stack.extend(def.requires.iter().cloned());
                    stack.extend(def.explained_by.iter().cloned());
                    stack.extend(def.follows.iter().cloned());
                }
            }
        }
        set
    };
    let in_scope: BTreeSet<String> = match opts.scope {
        Scope::Full => config.conditions.iter().map(|c| c.id.clone()).collect(),
        Scope::Phase(p) => with_prereqs(
            config
                .conditions
                .iter()
                .filter(|c| c.phase == p)
                .map(|c| c.id.as_str())
                .collect(),
        ),
        // Prerequisites of other phases were met when the log was recorded.
        Scope::Replay => config
            .conditions
            .iter()
            .filter(|c| c.phase == Phase::Boot)
            .map(|c| c.id.clone())
            .collect(),
    };
    let mut selected: BTreeSet<String> = if opts.only.is_empty() {
        config
            .conditions
            .iter()
            .filter(|c| config.profile_selects(&c.id))
            .map(|c| c.id.clone())
            .collect()
    } else {
        with_prereqs(opts.only.iter().map(String::as_str).collect())
    };
    for s in &opts.skip {
        selected.remove(s);
    }
    let ordered = config
        .conditions
        .iter()
        .map(|c| c.id.clone())
        .filter(|id| in_scope.contains(id))
        .collect();
    (ordered, selected)
}
