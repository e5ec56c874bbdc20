//! The boot conditions over a recorded log: a plan made from the catalog — the live run's own
//! judges — fed one line at a time, ending in one outcome per condition with the lines of the
//! log it rests on. Nothing here holds the log: each condition keeps its first sighting or its
//! settled observation, so memory does not grow with the log.

use super::foreign::{answered, Escalations, Exchange, Observation, Segmenter, Survey};
use super::forms::Form;
use super::own::{FramedRun, Frames};
use crate::config::catalog::ReaderEvidence;
use crate::config::contract::{Login, Prompts};
use crate::config::{CheckDef, ConditionDef, Config, ConsoleDialogue, RunAs};
use crate::dialogue::Scope;
use crate::judge::{console as verdicts, ProbeJudge, ProbeVerdict};
use crate::model::Outcome;
use bootaudit_console::NoiseFilter;
use regex::Regex;
use std::collections::VecDeque;

pub const NOT_OBSERVED: &str = "not observed in the log";
/// The skip of a probe no foreign log can show: the catalog gives it no `replay:` form.
pub const OUT_OF_REACH: &str =
    "outside replay's reach: no form of the catalog shows it in a foreign log";

/// The skip of a condition the log does not show, with what the log shows instead.
pub fn not_observed(note: Option<&str>) -> Outcome {
    match note {
        Some(note) => Outcome::skip(format!("{NOT_OBSERVED}; {note}")),
        None => Outcome::skip(NOT_OBSERVED),
    }
}
/// Lines of context quoted before a console sighting.
const CONTEXT_LINES: usize = 2;

/// What the log is checked for, per condition, in catalog order.
pub struct Plan {
    conditions: Vec<Planned>,
    signatures: Vec<PlannedSignature>,
    pub noise: NoiseFilter,
    /// The `log_shows` patterns of every form; the survey answers them.
    pub facts: Vec<Regex>,
    login: Login,
    prompts: Prompts,
    /// Root commands went through `su`, whose password prompt the live run kept out of the
    /// output: so does the replay.
    su: bool,
    /// Log lines (from, to) of the waits a run's record says ran out: the first CPU stall in
    /// each is kept, as live asks whether the guest stalled during the wait.
    pub windows: Vec<(u64, u64)>,
}

struct Planned {
    id: String,
    describe: String,
    check: Check,
}

struct PlannedSignature {
    name: String,
    re: Regex,
    scope: Scope,
}

enum Check {
    Console,
    Login,
    Autologin,
    ShellReady,
    Watch(Regex),
    Probe {
        judge: Box<ProbeJudge>,
        /// The command line as a live run frames it.
        sent: String,
        forms: Vec<Form>,
    },
    /// A builtin of another phase: a log cannot show it.
    NotInLogs,
    Invalid(String),
}

impl Plan {
    pub fn new(config: &Config, defs: &[ConditionDef]) -> Result<Plan, String> {
        let profile = &config.profile;
        let vars = &profile.vars;
        let rules = crate::dialogue::console_rules(profile)?;
        let signatures = rules
            .config
            .signatures
            .iter()
            .zip(rules.scopes)
            .map(|(sig, (_, scope))| PlannedSignature {
                name: sig.name.clone(),
                re: sig.re.clone(),
                scope,
            })
            .collect();
        let mut facts = Vec::new();
        let mut conditions = Vec::new();
        for def in defs {
            let check = match def.check() {
                Ok(CheckDef::Builtin(builtin)) => match builtin.dialogue() {
                    Some(ConsoleDialogue::Console) => Check::Console,
                    Some(ConsoleDialogue::Login) => Check::Login,
                    Some(ConsoleDialogue::Autologin) => Check::Autologin,
                    Some(ConsoleDialogue::ShellReady) => Check::ShellReady,
                    // Host, virt and iso are judged on the host: a log cannot show them.
                    None => Check::NotInLogs,
                },
                Ok(CheckDef::Watch { pattern }) => match pattern.resolve(vars) {
                    Ok(re) => Check::Watch(re),
                    Err(e) => Check::Invalid(e),
                },
                Ok(CheckDef::Probe(p)) => {
                    let resolved = ProbeJudge::resolve(def, &p, vars).and_then(|judge| {
                        let forms = def
                            .replay
                            .iter()
                            .map(|f| Form::compile(f, vars, &mut facts))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok((judge, forms))
                    });
                    match resolved {
                        Ok((judge, forms)) => Check::Probe {
                            sent: match judge.run_as {
                                RunAs::Root => config.contract.root.wrap(&judge.command),
                                RunAs::User => judge.command.clone(),
                            },
                            judge: Box::new(judge),
                            forms,
                        },
                        Err(e) => Check::Invalid(e),
                    }
                }
                Err(e) => Check::Invalid(e),
            };
            conditions.push(Planned {
                id: def.id.clone(),
                describe: def.describe(vars),
                check,
            });
        }
        Ok(Plan {
            conditions,
            signatures,
            noise: rules.noise,
            facts,
            login: config.contract.login.clone(),
            prompts: config.contract.prompts.clone(),
            su: config.contract.root.needs_terminal(),
            windows: Vec::new(),
        })
    }
}

/// What the log says of one condition.
#[derive(Debug, Clone)]
pub enum Finding {
    /// Its own evidence: a console line, a probe's output (with the log lines).
    Shown(Outcome, Vec<(u64, String)>),
    /// A failure signature that names this condition.
    Named(Outcome, Vec<(u64, String)>),
    /// A failure signature for every condition (a panic): nothing after it could happen.
    Fatal(Outcome, Vec<(u64, String)>),
    /// Not in the log; the note says what the log shows instead (a CPU stall).
    NotObserved(Option<String>),
    /// A foreign log cannot show it by construction (a probe without `replay:` forms), so its
    /// absence says nothing: it neither counts against the run nor blocks what needs it.
    OutOfReach,
}

/// The first line that shows a console condition.
#[derive(Debug, Clone)]
struct Sighting {
    line: u64,
    /// What matched.
    text: String,
    /// The value (the user of an automatic login, a watch's capture).
    value: String,
    excerpt: Vec<(u64, String)>,
}

/// Where a probe condition stands after the observations so far.
#[derive(Debug, Default)]
struct ProbeState {
    observations: usize,
    /// The observation the verdict rests on, and its verdict.
    settled: Option<(Observation, ProbeVerdict)>,
    /// Own logs: the first pass or fail-now is the verdict, as it was live.
    decided: bool,
    /// A final state seen on the observations before, in log order.
    streak: crate::judge::FinalStreak,
}

#[derive(Debug)]
struct SignatureHit {
    name: String,
    line: u64,
    text: String,
}

/// The streaming judge: one per replay.
pub struct Judging<'a> {
    plan: &'a Plan,
    survey: &'a Survey,
    /// The log has bootaudit frames: probes are read from them only.
    own: bool,
    frames: Frames,
    segmenter: Segmenter<'a>,
    escalations: Escalations,
    sightings: Vec<Option<Sighting>>,
    probes: Vec<ProbeState>,
    hits: Vec<SignatureHit>,
    shell_ready: Option<Sighting>,
    /// Login prompts without an automatic login, while none has been seen: a second one is
    /// what the live dialogue takes as "nobody is logged in automatically".
    plain_prompts: (u32, Option<Sighting>),
    autologin_seen: bool,
    /// Password logins: the last password prompt's line, and a refusal after it.
    password_prompt: Option<u64>,
    refused: Option<Sighting>,
    recent: VecDeque<(u64, String)>,
    /// Per window of the plan, the first stall line in it.
    window_stalls: Vec<Option<crate::session_record::Stall>>,
}

impl<'a> Judging<'a> {
    pub fn new(plan: &'a Plan, survey: &'a Survey, own: bool) -> Self {
        let n = plan.conditions.len();
        Judging {
            plan,
            survey,
            own,
            frames: Frames::default(),
            segmenter: Segmenter::new(survey, &plan.noise),
            escalations: Escalations::default(),
            sightings: vec![None; n],
            probes: (0..n).map(|_| ProbeState::default()).collect(),
            hits: Vec::new(),
            shell_ready: None,
            plain_prompts: (0, None),
            autologin_seen: false,
            password_prompt: None,
            refused: None,
            recent: VecDeque::with_capacity(CONTEXT_LINES + 1),
            window_stalls: vec![None; plan.windows.len()],
        }
    }

    pub fn line(&mut self, no: u64, line: &str) {
        // In a foreign log, what the harness typed (a prompt line, an echo) is no evidence of
        // the guest, even if it contains the words (`grep 'Failed to start pre-nixos'`). An own
        // log is judged as live, where every console line counts.
        if self.own {
            self.console(no, line, false);
            if let Some(run) = self.frames.line(no, line, &self.plan.noise) {
                self.framed(run);
            }
        } else {
            // Observations are settled in log order, so the exchange this line closed may be
            // handled after the line's own console evidence.
            let seen = self.segmenter.line(no, line);
            self.console(no, line, seen.typed);
            if !seen.typed {
                self.console_forms(no, line);
            }
            if let Some(ex) = seen.closed {
                self.exchange(ex);
            }
        }
        // Reuse the oldest line's buffer: no allocation per line.
        let mut kept = match self.recent.len() {
            CONTEXT_LINES => self.recent.pop_front().map(|(_, s)| s).unwrap_or_default(),
            _ => String::new(),
        };
        kept.clear();
        super::quote_to(&mut kept, line);
        self.recent.push_back((no, kept));
    }

    /// End of the log.
    pub fn finish(&mut self) {
        if !self.own {
            if let Some(ex) = self.segmenter.finish() {
                self.exchange(ex);
            }
        }
    }

    /// The line quoted with the lines before it.
    fn in_context(&self, no: u64, line: &str) -> Vec<(u64, String)> {
        let mut excerpt: Vec<(u64, String)> = self.recent.iter().cloned().collect();
        excerpt.push(super::quoted(no, line));
        excerpt
    }

    fn sighting(&self, no: u64, line: &str, text: &str, value: &str) -> Sighting {
        Sighting {
            line: no,
            text: text.trim().to_string(),
            value: value.to_string(),
            excerpt: self.in_context(no, line),
        }
    }

    /// Console conditions and failure signatures: what a line shows by itself.
    fn console(&mut self, no: u64, line: &str, typed: bool) {
        let prompts = &self.plan.prompts;
        // As live: the first refusal before any shell ends the login.
        if matches!(self.plan.login, Login::Password { .. })
            && self.shell_ready.is_none()
            && self.refused.is_none()
        {
            if prompts.password.is_match(line.trim_end()) {
                self.password_prompt = Some(no);
            } else if let Some(m) = prompts.login_incorrect.find(line) {
                self.refused = Some(self.sighting(no, line, m.as_str(), ""));
            }
        }
        if !self.autologin_seen {
            if prompts.autologin.is_match(line) {
                self.autologin_seen = true;
            } else if let Some(m) = prompts.login.find(line) {
                self.plain_prompts.0 += 1;
                if self.plain_prompts.0 == 2 {
                    self.plain_prompts.1 = Some(self.sighting(no, line, m.as_str(), ""));
                }
            }
        }
        for (i, c) in self.plan.conditions.iter().enumerate() {
            if self.sightings[i].is_some() {
                continue;
            }
            let seen = match &c.check {
                Check::Console if !line.trim().is_empty() => {
                    Some((line.to_string(), String::new()))
                }
                // The earlier of an automatic login or a prompt, as the live dialogue sees it.
                Check::Login => [&prompts.autologin, &prompts.login]
                    .into_iter()
                    .filter_map(|re| re.find(line))
                    .min_by_key(|m| m.start())
                    .map(|m| (m.as_str().to_string(), String::new())),
                // is_match first: captures cost more, and nearly every line has none.
                Check::Autologin if prompts.autologin.is_match(line) => {
                    prompts.autologin.captures(line).map(|c| {
                        (
                            c[0].to_string(),
                            c.get(1).map_or("", |m| m.as_str()).to_string(),
                        )
                    })
                }
                Check::Watch(re) if !typed && re.is_match(line) => re.captures(line).map(|c| {
                    let value = c.get(1).or(c.get(0)).map_or("", |m| m.as_str());
                    (c[0].to_string(), value.to_string())
                }),
                _ => None,
            };
            if let Some((text, value)) = seen {
                self.sightings[i] = Some(self.sighting(no, line, &text, &value));
            }
        }
        for sig in &self.plan.signatures {
            if !typed && sig.scope == Scope::Stall && self.window_stalls.iter().any(Option::is_none)
            {
                let open = self.plan.windows.iter().zip(&mut self.window_stalls);
                for (&(from, to), stall) in open {
                    if stall.is_none() && (from..=to).contains(&no) && sig.re.is_match(line) {
                        *stall = Some(crate::session_record::Stall {
                            name: sig.name.clone(),
                            line: no,
                            text: line.to_string(),
                        });
                    }
                }
            }
            if !typed && !self.hits.iter().any(|h| h.name == sig.name) && sig.re.is_match(line) {
                self.hits.push(SignatureHit {
                    name: sig.name.clone(),
                    line: no,
                    text: line.to_string(),
                });
            }
        }
    }

    /// Lines that show a probe's state by themselves (`console:` forms; foreign logs only, an
    /// own log has the probe's own runs).
    fn console_forms(&mut self, no: u64, line: &str) {
        let line = line.trim_end();
        for i in 0..self.plan.conditions.len() {
            let Check::Probe { forms, .. } = &self.plan.conditions[i].check else {
                continue;
            };
            let facts = &self.survey.facts;
            let seen = forms
                .iter()
                .filter(|f| {
                    f.console.is_some()
                        && f.log_shows
                            .is_none_or(|k| facts.get(k).copied().unwrap_or(false))
                })
                .find_map(|f| {
                    if !f.console.as_ref().is_some_and(|re| re.is_match(line)) {
                        return None;
                    }
                    f.observe_line(no, line, self.in_context(no, line))
                });
            if let Some(o) = seen {
                self.observe(i, o);
            }
        }
    }

    fn framed(&mut self, run: FramedRun) {
        if self.shell_ready.is_none() && run.exit_code == 0 {
            self.shell_ready = Some(Sighting {
                line: run.line,
                text: run.command.clone(),
                value: String::new(),
                excerpt: run.excerpt.clone(),
            });
        }
        let mut output = run.output;
        if self.plan.su && run.command.starts_with("su ") {
            let prompt = &self.plan.prompts.password;
            output = output
                .lines()
                .filter(|l| !prompt.is_match(l.trim_end()))
                .collect::<Vec<_>>()
                .join("\n");
        }
        let observation = Observation {
            command: run.command,
            output,
            exit_code: run.exit_code,
            line: run.line,
            excerpt: run.excerpt,
        };
        for i in 0..self.plan.conditions.len() {
            if let Check::Probe { sent, .. } = &self.plan.conditions[i].check {
                if *sent == observation.command {
                    self.observe(i, observation.clone());
                }
            }
        }
    }

    fn exchange(&mut self, ex: Exchange) {
        if self.shell_ready.is_none() && answered(&ex) {
            self.shell_ready = Some(Sighting {
                line: ex.line,
                text: ex.command.clone(),
                value: String::new(),
                excerpt: ex.excerpt.clone(),
            });
        }
        let escalation = self.escalations.exchange(&ex);
        for i in 0..self.plan.conditions.len() {
            let Check::Probe { forms, .. } = &self.plan.conditions[i].check else {
                continue;
            };
            let seen = forms.iter().find_map(|form| match form.from {
                Some(ReaderEvidence::Escalation) => escalation.clone(),
                None if ex.truncated || form.console.is_some() => None,
                None if form
                    .log_shows
                    .is_some_and(|f| !self.survey.facts.get(f).copied().unwrap_or(false)) =>
                {
                    None
                }
                None => form.observe(&ex),
            });
            if let Some(o) = seen {
                self.observe(i, o);
            }
        }
    }

    /// Hand one observation to the condition's judge. Own logs: the first decisive run is the
    /// verdict, as live. Foreign logs: where the state settled — the decisive observation (a
    /// pass or a fail-now) latest in the log (a unit restarted after a failure passes, a status
    /// that turns to failed fails), else the latest "not yet". "Not yet" never undoes a
    /// decision: a typed-ahead harness leaves empty or displaced outputs after the real one,
    /// and live polling stops at the first decision too. Order is the log's, not arrival's: a
    /// console line is seen before the exchange around it is complete.
    fn observe(&mut self, i: usize, o: Observation) {
        let Check::Probe { judge, .. } = &self.plan.conditions[i].check else {
            return;
        };
        let state = &mut self.probes[i];
        if state.decided {
            return;
        }
        state.observations += 1;
        let verdict = judge.judge_next(&mut state.streak, &o.output, o.exit_code);
        let decisive = |v: &ProbeVerdict| !matches!(v, ProbeVerdict::NotYet { .. });
        let replaces = match &state.settled {
            None => true,
            Some(_) if self.own => true,
            Some((prev, pv)) => match (decisive(&verdict), decisive(pv)) {
                (true, false) => true,
                (false, true) => false,
                _ => o.line >= prev.line,
            },
        };
        if self.own {
            state.decided = decisive(&verdict);
        }
        if replaces {
            state.settled = Some((o, verdict));
        }
    }

    /// The first stall line of each window of the plan.
    pub fn window_stalls(&self) -> Vec<Option<crate::session_record::Stall>> {
        self.window_stalls.clone()
    }

    /// What the log says of every condition, in plan order.
    pub fn findings(self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, c) in self.plan.conditions.iter().enumerate() {
            if let Some((outcome, excerpt)) = self.outcome(i, c) {
                out.push(Finding::Shown(outcome, excerpt));
                continue;
            }
            // Not shown, but a line the profile calls fatal for it is: that is the verdict.
            // A signature that names the condition (`fails:`) speaks of it directly; one for
            // every condition only of what could not happen after it.
            let scope = |h: &SignatureHit| {
                self.plan
                    .signatures
                    .iter()
                    .find(|s| s.name == h.name)
                    .map(|s| &s.scope)
            };
            let hit = self
                .hits
                .iter()
                .filter(|h| scope(h).is_some_and(|s| s.concerns(&c.id)))
                .min_by_key(|h| h.line);
            out.push(match hit {
                Some(hit) => {
                    // The live words, with the line of the log.
                    let mut outcome = verdicts::signature(&hit.name, hit.text.trim(), false);
                    outcome.message = format!("{} (log line {})", outcome.message, hit.line);
                    outcome.suppress_hint = true;
                    outcome.log_line = Some(hit.line);
                    let excerpt = vec![(hit.line, hit.text.clone())];
                    if matches!(scope(hit), Some(Scope::Only(_))) {
                        Finding::Named(outcome, excerpt)
                    } else {
                        Finding::Fatal(outcome, excerpt)
                    }
                }
                None if self.out_of_reach(c) => Finding::OutOfReach,
                None => Finding::NotObserved(self.stall_note()),
            });
        }
        out
    }

    /// No foreign log can show it: a probe whose catalog entry has no `replay:` form (an own
    /// log has the probe's frames, so nothing is out of its reach).
    fn out_of_reach(&self, c: &Planned) -> bool {
        !self.own && matches!(&c.check, Check::Probe { forms, .. } if forms.is_empty())
    }

    /// A live run that timed out after a CPU stall could not judge; a replay says why the log
    /// may end short of a condition.
    fn stall_note(&self) -> Option<String> {
        let stall = self.hits.iter().find(|h| {
            self.plan
                .signatures
                .iter()
                .any(|s| s.name == h.name && s.scope == Scope::Stall)
        })?;
        Some(format!(
            "the guest was starved of CPU ({}: \"{}\", log line {})",
            stall.name,
            stall.text.trim(),
            stall.line
        ))
    }

    /// The condition's own evidence in the log, if any: the outcome and the lines it rests on.
    fn outcome(&self, i: usize, c: &Planned) -> Option<(Outcome, Vec<(u64, String)>)> {
        let sighted = |s: &Option<Sighting>, pass: &dyn Fn(&Sighting) -> Outcome| {
            s.as_ref().map(|s| {
                let mut o = pass(s);
                o.message = format!("{} (log line {})", o.message, s.line);
                o.log_line = Some(s.line);
                (o, s.excerpt.clone())
            })
        };
        let seen = &self.sightings[i];
        let no_login = || {
            Some((
                Outcome::not_applicable(
                    "no login on this console: the profile says a shell is on it already (console.login.mode: none)",
                ),
                Vec::new(),
            ))
        };
        match (&c.check, &self.plan.login) {
            (Check::Login | Check::Autologin, Login::None) => no_login(),
            (Check::Autologin, Login::Password { user, .. }) => {
                // A refusal before any shell is a refused login (live stops there); else a
                // shell is an accepted one.
                match (&self.refused, &self.shell_ready) {
                    (Some(_), _) => sighted(&self.refused, &|s| {
                        verdicts::login_refused(user, s.text.clone())
                    }),
                    (None, Some(_)) => {
                        sighted(&self.shell_ready, &|_| verdicts::password_login(user, None))
                    }
                    (None, None) => None,
                }
            }
            (Check::Console, _) => sighted(seen, &|s| {
                Outcome::pass("the log shows console output", s.text.clone())
            }),
            (Check::Login, _) => sighted(seen, &|s| {
                Outcome::pass("the log shows a login prompt", s.text.clone())
            }),
            // Like the live dialogue: a second login prompt and still nobody logged in.
            (Check::Autologin, Login::Automatic { user })
                if seen.is_none() && self.plain_prompts.1.is_some() =>
            {
                sighted(&self.plain_prompts.1, &|s| {
                    verdicts::no_autologin(user, s.text.clone())
                })
            }
            (Check::Autologin, Login::Automatic { user: expected }) => sighted(seen, &|s| {
                verdicts::autologin(&s.value, expected, format!("{} (automatic login)", s.value))
            }),
            (Check::Watch(_), _) => sighted(seen, &|s| {
                Outcome::pass(format!("the log shows \"{}\"", s.text), s.value.clone())
            }),
            (Check::ShellReady, _) => sighted(&self.shell_ready, &|s| {
                let what = if self.own {
                    "the log shows a command round trip with exit code 0"
                } else {
                    "the log shows a shell prompt, a command and its answer"
                };
                Outcome::pass(what, s.text.clone())
            }),
            (Check::Probe { judge, .. }, _) => self.probe_outcome(&self.probes[i], c, judge),
            (Check::NotInLogs, _) => None,
            (Check::Invalid(e), _) => Some((Outcome::error(e.clone()), Vec::new())),
        }
    }

    fn probe_outcome(
        &self,
        state: &ProbeState,
        c: &Planned,
        judge: &ProbeJudge,
    ) -> Option<(Outcome, Vec<(u64, String)>)> {
        let Some((o, verdict)) = &state.settled else {
            return None;
        };
        let n = state.observations;
        let place = match n {
            1 => format!("log line {}", o.line),
            n => format!("log line {}, one of {n} observations", o.line),
        };
        let mut outcome = match verdict {
            // Own logs ran the catalog's command: the line number finds it.
            ProbeVerdict::Pass { evidence } if self.own => {
                Outcome::pass(format!("{} ({place})", c.describe), evidence.clone())
            }
            ProbeVerdict::Pass { evidence } => Outcome::pass(
                format!("{} (`{}`, {place})", c.describe, o.command),
                evidence.clone(),
            ),
            ProbeVerdict::FailNow { matched, why } => Outcome::fail(
                crate::judge::will_not_pass(
                    &o.command,
                    matched,
                    why.as_deref(),
                    &format!(" ({place})"),
                ),
                o.output.clone(),
            ),
            // Never decided: the log ended while it still waited, as a wait that ran out.
            ProbeVerdict::NotYet { observed } => Outcome::timed_out(
                format!(
                    "not met in {n} observation(s) in the log: `{}` last gave {observed} (log line {})",
                    if self.own { &judge.command } else { &o.command },
                    o.line
                ),
                observed.clone(),
            ),
        };
        outcome.log_line = Some(o.line);
        Some((outcome, o.excerpt.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Phase, Status};
    use std::collections::BTreeMap;

    /// Replay `log` with the embedded pre-nixos catalog: status, message and log line per id
    /// (before prerequisites gate anything).
    fn replay(log: &[u8]) -> BTreeMap<String, (Status, String, Option<u64>)> {
        let config = crate::config::load("pre-nixos").unwrap();
        let defs: Vec<ConditionDef> = config
            .conditions
            .iter()
            .filter(|d| d.phase == Phase::Boot)
            .cloned()
            .collect();
        let plan = Plan::new(&config, &defs).unwrap();
        let mut survey = Survey::new(&plan.facts);
        let mut own = false;
        bootaudit_console::for_each_line(log, |_, l| {
            own |= super::super::own::begin_marker(l).is_some();
            survey.line(l);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        let mut judging = Judging::new(&plan, &survey, own);
        bootaudit_console::for_each_line(log, |n, l| {
            judging.line(n, l);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        judging.finish();
        defs.iter()
            .zip(judging.findings())
            .map(|(d, f)| {
                let o = match f {
                    Finding::Shown(o, _) | Finding::Named(o, _) | Finding::Fatal(o, _) => o,
                    Finding::NotObserved(note) => not_observed(note.as_deref()),
                    Finding::OutOfReach => Outcome::out_of_reach(OUT_OF_REACH),
                };
                (d.id.clone(), (o.status, o.message, o.log_line))
            })
            .collect()
    }

    fn status(r: &BTreeMap<String, (Status, String, Option<u64>)>, id: &str) -> Status {
        r[id].0
    }

    /// Everything real consoles do to a transcript, in one log of a healthy image.
    #[test]
    fn a_hard_healthy_log() {
        let mut log: Vec<u8> = Vec::new();
        // An ISOLINUX menu drawn with cursor moves and line-drawing characters.
        log.extend_from_slice(
            b"\x1b[2J\x1b[1;1H\x1b)0\x0e lqqqqk\x0f\x1b[2;1H NixOS pre-nixos (console=ttyS0)\r\r\n",
        );
        log.extend_from_slice(b"[    0.000000] Linux version 6.1\r\r\n");
        log.extend_from_slice(b"\r\r\n<<< Welcome to NixOS >>>\r\r\n\r\nnixos login: nixos (automatic login)\r\r\n\r\n");
        // A coloured prompt; the harness types ahead; the echo comes twice.
        log.extend_from_slice(b"\x1b[1;32m[nixos@nixos:~]$\x1b[0m sudo -i\r\n");
        log.extend_from_slice(b"\x1b[1;31m[root@nixos:~]#\x1b[0m id -u\r\nid -u\r\n");
        // A uid with an escape code inside and a kernel line spliced after it.
        log.extend_from_slice(b"\x1b[0m0[   42.123456] random: crng init done\r\r\n");
        log.extend_from_slice(
            b"\x1b[1;31m[root@nixos:~]#\x1b[0m cat /run/pre-nixos/storage-status\r\n",
        );
        log.extend_from_slice(b"STATE=applied\r\nDETAIL=auto-applied\r\n");
        log.extend_from_slice(
            b"\x1b[1;31m[root@nixos:~]#\x1b[0m vgs --noheadings -o vg_name\r\n  main\r\n",
        );
        log.extend_from_slice(b"\x1b[1;31m[root@nixos:~]#\x1b[0m lvs --noheadings -o lv_name,vg_name --separator :\r\n  slash:main\r\n");
        // NUL bytes and invalid UTF-8 in the middle.
        log.extend_from_slice(b"\0\0\xff\xfe\r\n");
        log.extend_from_slice(b"\x1b[1;31m[root@nixos:~]#\x1b[0m ip -4 -o addr show dev lan\r\n");
        log.extend_from_slice(b"2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\\       valid_lft 86395sec preferred_lft 86395sec\r\n");
        log.extend_from_slice(b"LAN IPv4 address: 10.0.2.15\r\n");
        log.extend_from_slice(
            b"\x1b[1;31m[root@nixos:~]#\x1b[0m systemctl status pre-nixos --no-pager\r\n",
        );
        log.extend_from_slice("\u{25cb} pre-nixos.service - Pre-NixOS setup\r\n     Loaded: loaded (/etc/systemd/system/pre-nixos.service; enabled)\r\n     Active: inactive (dead) since Sat 2025-10-11\r\n".as_bytes());
        // Truncated in the middle of the next output.
        log.extend_from_slice(b"\x1b[1;31m[root@nixos:~]#\x1b[0m journalctl -b\r\nOct 11 ");
        let r = replay(&log);
        for id in [
            "boot.console",
            "boot.login",
            "boot.autologin",
            "shell.ready",
            "shell.root",
            "storage.status",
            "storage.vg-main",
            "storage.lv-slash",
            "net.lan-ipv4",
            "unit.pre-nixos-inactive",
            "console.lan-announce",
        ] {
            assert_eq!(status(&r, id), Status::Pass, "{id}: {:?}", r[id]);
        }
        // storage.tools has no replay form: outside replay's reach, never a pass.
        assert_eq!(status(&r, "storage.tools"), Status::Skip);
        assert_eq!(r["storage.tools"].1, OUT_OF_REACH);
        assert_eq!(r["shell.root"].2, Some(8), "the line of `sudo -i`");
        assert_eq!(r["storage.status"].2, Some(12));
        assert!(
            r["storage.status"].1.contains("log line 12"),
            "{}",
            r["storage.status"].1
        );
    }

    #[test]
    fn a_uid_with_an_escape_code_and_a_spliced_kernel_line() {
        // The old harness read this uid as "0[" or as a kernel message.
        let log = b"[nixos@nixos:~]$ sudo id -u\r\n\x1b[0m0[   42.123456] random: crng init done\r\r\n[nixos@nixos:~]$ ";
        let r = replay(log);
        assert_eq!(
            status(&r, "shell.root"),
            Status::Pass,
            "{:?}",
            r["shell.root"]
        );
        // Without sudo the same answer says nothing about sudo.
        let log = b"[nixos@nixos:~]$ id -u\r\n\x1b[0m0\r\n[nixos@nixos:~]$ ";
        assert_eq!(status(&replay(log), "shell.root"), Status::Skip);
    }

    #[test]
    fn output_of_the_wrong_shape_or_user_is_not_evidence() {
        let log = b"nixos login: nixos (automatic login)\n\
            [nixos@nixos:~]$ vgs --noheadings -o vg_name\n  WARNING: Running as a non-root user. Functionality may be unavailable.\n  main\n\
            [nixos@nixos:~]$ ip -o -4 addr show dev lan\n3: wan    inet 10.0.3.15/24 brd 10.0.3.255 scope global dynamic wan\n\
            [nixos@nixos:~]$ journalctl -u pre-nixos\npre-nixos[9]: STATE=applied\npre-nixos[9]: DETAIL=auto-applied\n\
            [nixos@nixos:~]$ systemctl is-active pre-nixos\ninactive\n\
            [nixos@nixos:~]$ ";
        let r = replay(log);
        for id in [
            "storage.vg-main",
            "net.lan-ipv4",
            "storage.status",
            "unit.pre-nixos-inactive",
            "shell.root",
        ] {
            assert_eq!(status(&r, id), Status::Skip, "{id}: {:?}", r[id]);
            assert_eq!(r[id].1, NOT_OBSERVED);
        }
    }

    #[test]
    fn a_stall_fails_nothing_and_explains_what_the_log_lacks() {
        let log = b"[    1.2] Run /init as init process\n\
            [  212.8] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n\
            [  212.8] rcu: rcu_preempt kthread starved for 10502 jiffies!\n\
            [  230.1] Welcome to Debian GNU/Linux 12 (bookworm)!\n";
        let r = replay(log);
        assert_eq!(status(&r, "boot.console"), Status::Pass);
        let (login, message, line) = &r["boot.login"];
        assert_eq!(*login, Status::Skip, "a stall is no failure: {message}");
        assert!(message.starts_with(NOT_OBSERVED), "{message}");
        assert!(
            message.contains("starved of CPU") && message.contains("log line 2"),
            "the first stall line is quoted: {message}"
        );
        assert_eq!(*line, None);
        // Without a stall, nothing is said.
        let r = replay(b"[    1.2] Run /init as init process\n");
        assert_eq!(r["boot.login"].1, NOT_OBSERVED);
    }

    #[test]
    fn outputs_that_name_their_subject_count_under_any_command() {
        // Typed ahead: networkctl's and systemctl's blocks land under other prompts, after
        // echoes the log never shows after a prompt.
        let log = "[nixos@nixos:~]$ journalctl -b\nnetworkctl status lan\n\u{25cf} 2: lan\n        Link File: x\n          Address: 10.0.2.15 (DHCP4 via 10.0.2.2)\n\
            [nixos@nixos:~]$ true\nsystemctl status pre-nixos\n\u{25cb} pre-nixos.service - Pre-NixOS setup\n     Loaded: loaded (/etc/x; enabled)\n     Active: inactive (dead)\n\
            [nixos@nixos:~]$ ";
        let r = replay(log.as_bytes());
        assert_eq!(
            status(&r, "net.lan-ipv4"),
            Status::Pass,
            "{:?}",
            r["net.lan-ipv4"]
        );
        assert_eq!(r["net.lan-ipv4"].2, Some(3), "the block's own line");
        assert_eq!(status(&r, "unit.pre-nixos-inactive"), Status::Pass);
        // Lines that show the lease by themselves.
        let r = replay(b"Oct 13 23:01:09 nixos systemd-networkd[856]: lan: DHCPv4 address 10.0.2.15/2\xe2\x80\xa62.2\n");
        assert_eq!(status(&r, "net.lan-ipv4"), Status::Pass);
        let r = replay(b"LAN IPv4 address: 10.0.2.15\n");
        assert_eq!(status(&r, "net.lan-ipv4"), Status::Pass);
        // The image's login notice states the provisioning result in words.
        let r = replay(b"pre-nixos: Storage provisioning completed automatically.\n");
        assert_eq!(status(&r, "storage.status"), Status::Pass);
        let r = replay(b"pre-nixos: Provisioning failed.\n");
        assert_eq!(status(&r, "storage.status"), Status::Fail);
        let r = replay(b"wan: DHCPv4 address 10.0.3.15/24\n");
        assert_eq!(status(&r, "net.lan-ipv4"), Status::Skip);
    }

    #[test]
    fn inactive_counts_where_the_log_shows_the_unit_loaded() {
        let log = b"[  5.1] systemd[1]: pre-nixos.service: Deactivated successfully.\n\
            [nixos@nixos:~]$ SYSTEMD_PAGER=cat systemctl is-active pre-nixos 2>/dev/null || true\ninactive\n\
            [nixos@nixos:~]$ ";
        assert_eq!(
            status(&replay(log), "unit.pre-nixos-inactive"),
            Status::Pass
        );
    }

    #[test]
    fn settled_state_and_failures() {
        // Still empty, then failed: a fail-now quoted with its line.
        let log = b"[nixos@nixos:~]$ cat /run/pre-nixos/storage-status\n\
            [nixos@nixos:~]$ cat /run/pre-nixos/storage-status\nSTATE=failed\nDETAIL=disko\n\
            [nixos@nixos:~]$ sudo -n id -u\nsudo: a password is required\n\
            [nixos@nixos:~]$ ";
        let r = replay(log);
        assert_eq!(status(&r, "storage.status"), Status::Fail);
        assert!(
            r["storage.status"].1.contains("STATE=failed"),
            "{}",
            r["storage.status"].1
        );
        assert_eq!(r["storage.status"].2, Some(2));
        assert_eq!(
            status(&r, "shell.root"),
            Status::Fail,
            "{:?}",
            r["shell.root"]
        );
        // Applied, then an empty output typed ahead under the next `cat`: still applied.
        let log = b"[nixos@nixos:~]$ cat /run/pre-nixos/storage-status\nSTATE=applied\nDETAIL=auto-applied\n\
            [nixos@nixos:~]$ cat /run/pre-nixos/storage-status\n[nixos@nixos:~]$ ";
        let r = replay(log);
        assert_eq!(
            status(&r, "storage.status"),
            Status::Pass,
            "{:?}",
            r["storage.status"]
        );
        assert!(r["storage.status"]
            .1
            .contains("log line 1, one of 2 observations"));
        // Never shown, but the console says the unit failed: fail, quoting the line.
        let log = b"[  9.9] systemd[1]: Failed to start Pre-NixOS setup.\nnixos login: nixos (automatic login)\n";
        let r = replay(log);
        assert_eq!(status(&r, "storage.status"), Status::Fail);
        assert_eq!(r["storage.status"].2, Some(1));
        assert_eq!(status(&r, "net.lan-ipv4"), Status::Skip);
    }

    #[test]
    fn an_active_lv_in_lsblk_shows_the_vg_and_the_lv() {
        let log = "[nixos@nixos:~]$ lsblk\nNAME           MAJ:MIN RM  SIZE RO TYPE MOUNTPOINTS\nvda            253:0    0    8G  0 disk\n\u{2514}\u{2500}vda1         253:1    0    8G  0 part\n  \u{2514}\u{2500}main-slash 254:0    0    8G  0 lvm  /mnt\n[nixos@nixos:~]$ lsblk -o NAME,TYPE\nNAME TYPE\nvda  disk\n[nixos@nixos:~]$ ";
        let r = replay(log.as_bytes());
        assert_eq!(
            status(&r, "storage.vg-main"),
            Status::Pass,
            "{:?}",
            r["storage.vg-main"]
        );
        assert_eq!(status(&r, "storage.lv-slash"), Status::Pass);
        // Only a disk without LVM: no proof either way.
        let log = b"[nixos@nixos:~]$ lsblk\nNAME TYPE\nvda  disk\n[nixos@nixos:~]$ ";
        assert_eq!(status(&replay(log), "storage.vg-main"), Status::Skip);
    }

    #[test]
    fn review_cases_that_must_not_become_evidence() {
        // networkctl of two links: lan has no lease, wan's address must not be lan's.
        let log = "[nixos@nixos:~]$ networkctl status lan wan\n\u{25cf} 2: lan\n          State: carrier\n\u{25cf} 3: wan\n        Address: 10.0.3.15 (DHCP4 via 10.0.3.2)\n[nixos@nixos:~]$ ";
        assert_eq!(
            status(&replay(log.as_bytes()), "net.lan-ipv4"),
            Status::Skip
        );
        // A typed grep for the failure line or the announcement is no console evidence.
        let log = b"[nixos@nixos:~]$ journalctl -b | grep 'Failed to start pre-nixos'\n[nixos@nixos:~]$ grep 'LAN IPv4 address: 10.0.2.15' /tmp/x\n[nixos@nixos:~]$ ";
        let r = replay(log);
        assert_eq!(
            status(&r, "storage.status"),
            Status::Skip,
            "{:?}",
            r["storage.status"]
        );
        assert_eq!(status(&r, "console.lan-announce"), Status::Skip);
        assert_eq!(status(&r, "net.lan-ipv4"), Status::Skip);
        // `su -` says nothing about sudo, whether it asks for a password or not.
        let log = b"[nixos@nixos:~]$ su -\nPassword: \n[root@nixos:~]# id -u\n0\n[root@nixos:~]# ";
        assert_eq!(status(&replay(log), "shell.root"), Status::Skip);
        // A refused `sudo -i` and back at the user's prompt: no root later is credited to it.
        let log = b"[nixos@nixos:~]$ sudo -i\nsudo: a terminal is required\n[nixos@nixos:~]$ true\n[nixos@nixos:~]$ su -\n[root@nixos:~]# ";
        assert_eq!(status(&replay(log), "shell.root"), Status::Skip);
    }

    #[test]
    fn the_latest_decision_in_the_log_wins_whatever_arrives_first() {
        // The lease line is read before the exchange around it closes; the earlier ip output
        // (no such device) must not override it.
        let log = b"[nixos@nixos:~]$ ip -o -4 addr show dev lan\nDevice \"lan\" does not exist.\nlan: DHCPv4 address 10.0.2.15/24, gateway 10.0.2.2\n[nixos@nixos:~]$ ";
        let r = replay(log);
        assert_eq!(
            status(&r, "net.lan-ipv4"),
            Status::Pass,
            "{:?}",
            r["net.lan-ipv4"]
        );
        assert_eq!(r["net.lan-ipv4"].2, Some(3));
    }

    #[test]
    fn a_second_login_prompt_means_no_automatic_login() {
        let r = replay(b"nixos login: \nnixos login: \n");
        assert_eq!(status(&r, "boot.autologin"), Status::Fail);
        assert_eq!(r["boot.autologin"].2, Some(2));
        // One prompt and the log ends: it does not show what came next.
        let r = replay(b"nixos login: \n");
        assert_eq!(status(&r, "boot.autologin"), Status::Skip);
        assert_eq!(status(&r, "boot.login"), Status::Pass);
    }

    #[test]
    fn a_pager_that_swallowed_the_next_commands() {
        // `systemctl status` without --no-pager: `less` takes the typed-ahead commands as keys.
        let log = b"[nixos@nixos:~]$ systemctl status pre-nixos\n\
            \xe2\x97\x8b pre-nixos.service - Pre-NixOS setup\n     Loaded: loaded (/etc/systemd/system/pre-nixos.service; enabled)\n     Active: active (running) since Sat\nlines 1-3/3 (END)\n\
            cat /run/pre-nixos/storage-status\nip -o -4 addr show dev lan\n";
        let r = replay(log);
        assert_eq!(status(&r, "unit.pre-nixos-inactive"), Status::Fail);
        assert!(r["unit.pre-nixos-inactive"]
            .1
            .contains("ActiveState=active"));
        assert_eq!(status(&r, "storage.status"), Status::Skip);
        assert_eq!(status(&r, "net.lan-ipv4"), Status::Skip);
    }
}
