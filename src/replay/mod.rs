//! `bootaudit replay`: judge a captured serial log offline with the same judges as a live run.
//!
//! A live run cannot be re-enacted against a recording (nobody answers the commands), so the
//! replay reads what the recording shows: the console conditions (output, login, autologin,
//! watches, failure signatures) from the text, and every probe from the framed commands a
//! bootaudit run left in its `serial.raw` — each echo names its command, each frame carries the
//! output and exit code, and the probe's own judge decides, run by run, as it did live. A
//! condition the log does not show is `skip` ("not observed in the log"), never a pass.
//!
//! A log captured by another tool has no frames: [`foreign`] recovers the commands that harness
//! ran and their output, maps the few that are clearly the same probe as a condition, and hands
//! that output to the condition's own `ProbeJudge` (docs/replay.md).

pub mod foreign;

use crate::cli::{Format, ReplayArgs};
use crate::config::{CheckDef, ConditionDef, RunAs};
use crate::dialogue::shell_quote;
use crate::engine::events::{Event, Fanout};
use crate::engine::{Engine, RunOptions, Scope};
use crate::exit_codes;
use crate::judge::{
    autologin_pattern, autologin_user, login_prompt_pattern, ProbeJudge, ProbeVerdict,
};
use crate::model::Outcome;
use bootaudit_console::{announced_commands, frame_with_token, Console, NoiseFilter, SignatureHit};
use std::path::Path;

pub async fn run(args: ReplayArgs) -> i32 {
    let common = args.common;
    let config = match crate::app::load_config(&common.profile) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let bytes = match std::fs::read(&args.serial_log) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bootaudit: cannot read {}: {e} — give the path of a serial log (e.g. a report's serial.raw)", args.serial_log.display());
            return exit_codes::USAGE;
        }
    };
    if let Err(e) = crate::engine::validate(&config, &common.only, &common.skip) {
        eprintln!("bootaudit: {e}");
        return exit_codes::USAGE;
    }
    let name = args
        .serial_log
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "log".into());
    let (out_dir, reporters) =
        match crate::app::reporters(common.out.clone(), &format!("replay-{name}")) {
            Ok(r) => r,
            Err(code) => return code,
        };
    let opts = RunOptions {
        scope: Scope::Replay,
        accel: common.accel,
        timeout_scale: common.timeout_scale,
        only: common.only.clone(),
        skip: common.skip.clone(),
        flake: None,
        iso: None,
        out_dir,
    };
    let mut engine = match Engine::new(
        config,
        opts,
        Fanout::new(reporters),
        crate::signal::Cancel::new(),
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bootaudit: {e}");
            return exit_codes::USAGE;
        }
    };
    engine.replay_log = Some(bytes);
    let report = engine.run().await;
    if common.format == Format::Json {
        crate::app::print_stdout(
            &serde_json::to_string_pretty(&report).expect("report serialises"),
        );
    }
    report.verdict.exit_code()
}

/// One framed command found in the log.
struct FramedRun {
    command: String,
    output: String,
    exit_code: i32,
}

/// What the recording shows, read once.
struct Recording {
    text: String,
    hits: Vec<SignatureHit>,
    runs: Vec<FramedRun>,
    /// A log without bootaudit frames: the exchanges another harness left.
    foreign: Option<Vec<foreign::Exchange>>,
}

impl Recording {
    async fn read(engine: &mut Engine, bytes: &[u8]) -> Result<Recording, String> {
        let rules = crate::dialogue::console_rules(&engine.config.profile)?;
        let (config, noise) = (rules.config, rules.noise);
        let mut console = Console::replay(std::io::Cursor::new(bytes.to_vec()), config);
        console
            .wait_closed(tokio::time::Instant::now() + std::time::Duration::from_secs(60))
            .await;
        let text = console.transcript();
        let hits = console.signature_hits();
        // The same events a live run emits, so the report folder has serial.raw and serial.log.
        let at = engine.now_ms();
        engine.emit(Event::ConsoleReceived { at, bytes });
        let runs = framed_runs(&text, &noise);
        let foreign = (runs.is_empty() && announced_commands(&text).is_empty())
            .then(|| foreign::read(&text, &noise));
        Ok(Recording {
            text,
            hits,
            runs,
            foreign,
        })
    }
}

/// Every framed command of a bootaudit run: each begin marker names its command.
fn framed_runs(text: &str, noise: &NoiseFilter) -> Vec<FramedRun> {
    announced_commands(text)
        .into_iter()
        .filter_map(|(token, command)| {
            let framed = frame_with_token(&command, &token).ok()?;
            let out = framed.extract(text, noise)?;
            Some(FramedRun {
                command,
                output: out.text(),
                exit_code: out.exit_code,
            })
        })
        .collect()
}

fn not_observed() -> Outcome {
    Outcome::skip("not observed in the log")
}

/// The boot phase over a recording: each condition judged from what the log shows.
pub async fn judge_log(engine: &mut Engine, defs: &[ConditionDef], bytes: &[u8]) {
    let rec = match Recording::read(engine, bytes).await {
        Ok(r) => r,
        Err(e) => {
            for def in defs {
                let at = engine.now_ms();
                engine.record(def, at, Outcome::error(format!("cannot replay: {e}")));
            }
            return;
        }
    };
    for def in defs {
        if engine.skip_if_gated(def) {
            continue;
        }
        let at = engine.begin(def);
        let mut outcome = judge_condition(engine, &rec, def);
        // Not shown, but a line the profile calls fatal for it is: that is the verdict.
        if outcome.message == "not observed in the log" {
            if let Some(hit) = rec
                .hits
                .iter()
                .find(|h| concerns(engine, &h.pattern_name, &def.id))
            {
                outcome = Outcome::fail(
                    format!("{}: \"{}\"", hit.pattern_name, hit.line),
                    hit.line.clone(),
                );
                outcome.suppress_hint = true;
            }
        }
        engine.record(def, at, outcome);
    }
}

fn concerns(engine: &Engine, signature: &str, id: &str) -> bool {
    engine
        .config
        .profile
        .failure_signatures
        .iter()
        .find(|s| s.name == signature)
        .is_some_and(|s| s.fails.is_empty() || s.fails.iter().any(|f| f == id))
}

fn judge_condition(engine: &Engine, rec: &Recording, def: &ConditionDef) -> Outcome {
    let vars = &engine.config.profile.vars;
    match def.check() {
        Ok(CheckDef::Builtin) => match def.id.as_str() {
            "boot.console" => match rec.text.lines().find(|l| !l.trim().is_empty()) {
                Some(first) => {
                    Outcome::pass("the log shows console output", first.trim().to_string())
                }
                None => not_observed(),
            },
            "boot.login" => {
                // The earliest of an automatic login or a prompt, as the live dialogue sees it.
                let seen = [autologin_pattern(), login_prompt_pattern()]
                    .into_iter()
                    .filter_map(|re| re.find(&rec.text))
                    .min_by_key(|m| m.start());
                match seen {
                    Some(m) => Outcome::pass(
                        "the log shows a login prompt",
                        m.as_str().trim().to_string(),
                    ),
                    None => not_observed(),
                }
            }
            "boot.autologin" => {
                let expected = vars.get("user").cloned().unwrap_or_default();
                match autologin_user(&rec.text) {
                    Some(user) if user == expected => Outcome::pass(
                        format!("automatic login of `{user}`"),
                        format!("{user} (automatic login)"),
                    ),
                    Some(user) => Outcome::fail(
                        format!("automatic login of `{user}`, expected `{expected}`"),
                        user,
                    ),
                    None => not_observed(),
                }
            }
            "shell.ready" if rec.foreign.is_some() => {
                match foreign::first_answer(rec.foreign.as_deref().unwrap_or_default()) {
                    Some(e) => Outcome::pass(
                        "the log shows a shell prompt, a command and its answer",
                        e.command.clone(),
                    ),
                    None => not_observed(),
                }
            }
            "shell.ready" => match rec.runs.iter().find(|r| r.exit_code == 0) {
                Some(r) => Outcome::pass(
                    "the log shows a command round trip with exit code 0",
                    r.command.clone(),
                ),
                None => not_observed(),
            },
            _ => not_observed(),
        },
        Ok(CheckDef::Probe(p)) => {
            let judge = match ProbeJudge::resolve(def, &p, vars) {
                Ok(j) => j,
                Err(e) => return Outcome::error(e),
            };
            if let Some(exchanges) = &rec.foreign {
                return judge_foreign(def, &judge, exchanges, &rec.text, vars);
            }
            let sent = match judge.run_as {
                RunAs::Root => format!("sudo -n sh -c {}", shell_quote(&judge.command)),
                RunAs::User => judge.command.clone(),
            };
            let mut checks = 0;
            let mut last = String::new();
            for run in rec.runs.iter().filter(|r| r.command == sent) {
                checks += 1;
                match judge.judge(&run.output, run.exit_code) {
                    ProbeVerdict::Pass { evidence } => {
                        return Outcome::pass(
                            format!("{} (check {checks} in the log)", def.describe(vars)),
                            evidence,
                        )
                    }
                    ProbeVerdict::FailNow { matched } => {
                        return Outcome::fail(
                            format!("`{}` shows it will not pass: \"{matched}\"", judge.command),
                            run.output.clone(),
                        )
                    }
                    ProbeVerdict::NotYet { observed } => last = observed,
                }
            }
            if checks == 0 {
                not_observed()
            } else {
                Outcome::fail(
                    format!(
                        "not met in {checks} check(s) in the log: `{}` last gave {last}",
                        judge.command
                    ),
                    last,
                )
            }
        }
        Ok(CheckDef::Watch { pattern }) => match pattern.resolve(vars) {
            Ok(re) => match re.captures(&rec.text) {
                Some(c) => Outcome::pass(
                    format!("the log shows \"{}\"", c[0].trim()),
                    c.get(1)
                        .unwrap_or(c.get(0).expect("group 0"))
                        .as_str()
                        .to_string(),
                ),
                None => not_observed(),
            },
            Err(e) => Outcome::error(e),
        },
        Err(e) => Outcome::error(e),
    }
}

/// A probe condition over a foreign log: every observation the reader maps to it goes to the
/// condition's own judge, and the verdict is where the state settled — the last observation,
/// except that a fail_fast match stays a fail unless a later observation passes (a state that
/// recovers, e.g. a unit restarted after a failure). Nothing mapped: not observed.
fn judge_foreign(
    def: &ConditionDef,
    judge: &ProbeJudge,
    exchanges: &[foreign::Exchange],
    text: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> Outcome {
    let Some(observations) = foreign::observations(&def.id, exchanges, text, vars) else {
        return not_observed();
    };
    let n = observations.len();
    let mut settled: Option<(usize, &foreign::Observation, ProbeVerdict)> = None;
    for (i, o) in observations.iter().enumerate() {
        let verdict = judge.judge(&o.output, o.exit_code);
        let sticky = matches!(settled, Some((_, _, ProbeVerdict::FailNow { .. })))
            && matches!(verdict, ProbeVerdict::NotYet { .. });
        if !sticky {
            settled = Some((i + 1, o, verdict));
        }
    }
    let Some((k, o, verdict)) = settled else {
        return not_observed();
    };
    match verdict {
        ProbeVerdict::Pass { evidence } => Outcome::pass(
            format!(
                "{} (`{}`, observation {k} of {n} in the log)",
                def.describe(vars),
                o.command
            ),
            evidence,
        ),
        ProbeVerdict::FailNow { matched } => Outcome::fail(
            format!(
                "`{}` shows it will not pass: \"{matched}\" (observation {k} of {n} in the log)",
                o.command
            ),
            o.output.clone(),
        ),
        ProbeVerdict::NotYet { observed } => Outcome::fail(
            format!(
                "not met in {n} observation(s) in the log: `{}` last gave {observed}",
                o.command
            ),
            observed,
        ),
    }
}

/// Used by tests: read a recording from a path.
pub fn read_log(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}
