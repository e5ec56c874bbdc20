//! Judging is pure: given what a probe printed (or what the console showed), decide pass, fail
//! now, or not yet — with the evidence. No I/O here, so every judge is tested on recorded text
//! and replay reaches the same verdicts as a live run.

pub mod console;

use crate::config::pattern::PatternSrc;
use crate::config::{ConditionDef, ProbeDef, RunAs};
use regex::Regex;
use std::collections::BTreeMap;
use std::time::Duration;

/// A probe condition with its command and patterns resolved against the profile's vars.
#[derive(Debug, Clone)]
pub struct ProbeJudge {
    pub command: String,
    pub run_as: RunAs,
    /// Its pass proves root.
    pub grants_root: bool,
    pub pass: Vec<Regex>,
    pub fail_fast: Vec<Regex>,
    /// Final states: every pattern matches, why the pass cannot follow, and on how many
    /// checks in a row it must show.
    pub final_states: Vec<FinalStateJudge>,
    pub exit_code: Option<i32>,
    pub poll: Option<Duration>,
    pub evidence: Option<Regex>,
}

/// A final state of the catalog, resolved.
#[derive(Debug, Clone)]
pub struct FinalStateJudge {
    pub when: Vec<Regex>,
    pub why: String,
    pub in_a_row: u32,
}

/// Consecutive sightings of one final state across the checks of a condition (the live polls,
/// or the observations of a log in order).
#[derive(Debug, Clone, Default)]
pub struct FinalStreak {
    state: Option<usize>,
    count: u32,
}

/// What one run of a probe says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeVerdict {
    Pass {
        evidence: String,
    },
    /// The state will never come; `matched` quotes what shows it, `why` says why it is final
    /// (for a final state of the catalog).
    FailNow {
        matched: String,
        why: Option<String>,
    },
    /// Not (yet) as required; `observed` summarises what was seen.
    NotYet {
        observed: String,
    },
}

impl ProbeJudge {
    pub fn resolve(
        def: &ConditionDef,
        probe: &ProbeDef<'_>,
        vars: &BTreeMap<String, String>,
    ) -> Result<ProbeJudge, String> {
        let compile = |pats: &[PatternSrc]| {
            pats.iter()
                .map(|p| p.resolve(vars))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ProbeJudge {
            command: crate::config::pattern::fill(probe.run, vars, |s| s.to_string())
                .map_err(|e| format!("{}: {e}", def.id))?,
            run_as: probe.run_as,
            grants_root: probe.grants_root,
            pass: compile(probe.pass)?,
            fail_fast: compile(probe.fail_fast)?,
            final_states: probe
                .final_states
                .iter()
                .map(|f| {
                    Ok(FinalStateJudge {
                        when: compile(&f.when)?,
                        why: f.why.clone(),
                        in_a_row: f.in_a_row.unwrap_or(1).max(1),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
            exit_code: probe.exit_code,
            poll: probe.poll.map(|s| s.0),
            evidence: probe.evidence.map(|p| p.resolve(vars)).transpose()?,
        })
    }

    /// Judge one run on its own (a final state that must show several times in a row is
    /// "not yet" here).
    pub fn judge(&self, output: &str, exit_code: i32) -> ProbeVerdict {
        self.judge_next(&mut FinalStreak::default(), output, exit_code)
    }

    /// Judge the next run of a sequence: `output` is the command's output (console noise
    /// removed), `exit_code` its status; `streak` carries the final state seen on the runs
    /// before.
    pub fn judge_next(
        &self,
        streak: &mut FinalStreak,
        output: &str,
        exit_code: i32,
    ) -> ProbeVerdict {
        if let Some(m) = self.fail_fast.iter().find_map(|re| re.find(output)) {
            return ProbeVerdict::FailNow {
                matched: m.as_str().trim().to_string(),
                why: None,
            };
        }
        let exit_ok = self.exit_code.is_none_or(|want| want == exit_code);
        let missing: Vec<&Regex> = self.pass.iter().filter(|re| !re.is_match(output)).collect();
        if exit_ok && missing.is_empty() {
            return ProbeVerdict::Pass {
                evidence: self.evidence_of(output),
            };
        }
        // A final state counts only where the run does not pass: what passes, passes.
        let found = self.final_states.iter().enumerate().find_map(|(i, f)| {
            let matched: Option<Vec<&str>> = f
                .when
                .iter()
                .map(|re| re.find(output).map(|m| m.as_str().trim()))
                .collect();
            matched.map(|m| (i, f, m.join("; ")))
        });
        match found {
            Some((i, f, matched)) => {
                streak.count = if streak.state == Some(i) {
                    streak.count + 1
                } else {
                    1
                };
                streak.state = Some(i);
                if streak.count >= f.in_a_row {
                    let why = match f.in_a_row {
                        1 => f.why.clone(),
                        n => format!("{} (on {n} checks in a row)", f.why),
                    };
                    return ProbeVerdict::FailNow {
                        matched,
                        why: Some(why),
                    };
                }
            }
            None => *streak = FinalStreak::default(),
        }
        let mut observed = summarise(output);
        if !exit_ok {
            observed = format!("exit code {exit_code}; {observed}");
        }
        ProbeVerdict::NotYet { observed }
    }

    /// The evidence of a pass: the named captures (`name=value`) of the `evidence` pattern or,
    /// without one, of the pass patterns; else group 1 of `evidence`; else what the pass
    /// patterns matched.
    fn evidence_of(&self, output: &str) -> String {
        let named = |re: &Regex| -> Vec<String> {
            re.captures(output)
                .map(|c| {
                    re.capture_names()
                        .flatten()
                        .filter_map(|n| c.name(n).map(|m| format!("{n}={}", collapse(m.as_str()))))
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(re) = &self.evidence {
            let pairs = named(re);
            if !pairs.is_empty() {
                return pairs.join("; ");
            }
            if let Some(c) = re.captures(output) {
                let m = c
                    .get(1)
                    .or_else(|| c.get(0))
                    .map(|m| m.as_str())
                    .unwrap_or("");
                return collapse(m);
            }
        }
        let pairs: Vec<String> = self.pass.iter().flat_map(named).collect();
        if !pairs.is_empty() {
            return pairs.join("; ");
        }
        let matched: Vec<String> = self
            .pass
            .iter()
            .filter_map(|re| re.find(output))
            .map(|m| m.as_str().trim().to_string())
            .collect();
        if matched.is_empty() {
            summarise(output)
        } else {
            matched.join("; ")
        }
    }
}

/// The message of a probe that shows it will not pass — the same live and in replay.
/// `place` says where (replay: the log line).
pub fn will_not_pass(command: &str, matched: &str, why: Option<&str>, place: &str) -> String {
    let why = why.map(|w| format!(": final, {w}")).unwrap_or_default();
    format!(
        "`{command}` shows it will not pass: {}{why}{place}",
        console::quote(matched)
    )
}

fn collapse(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The output in one short line: "output: a; b; c" or "no output".
pub fn summarise(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.len() {
        0 => "no output".to_string(),
        n if n <= 4 => format!("output: {}", lines.join("; ")),
        n => format!(
            "output: {}; … ({} more lines)",
            lines[..4].join("; "),
            n - 4
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn judge(id: &str) -> ProbeJudge {
        let config = load("pre-nixos").unwrap();
        let def = config.condition(id).unwrap();
        let crate::config::CheckDef::Probe(p) = def.check().unwrap() else {
            panic!("{id} is no probe")
        };
        ProbeJudge::resolve(def, &p, &config.profile.vars).unwrap()
    }

    #[test]
    fn storage_status_settles() {
        let j = judge("storage.status");
        // The vars are filled in; the unit's state is asked only while not applied.
        assert!(
            j.command
                .starts_with("s=$(cat /run/pre-nixos/storage-status 2>&1);")
                && j.command.contains("systemctl is-active pre-nixos.service"),
            "{}",
            j.command
        );
        let ok = j.judge("STATE=applied\nDETAIL=auto-applied", 0);
        assert_eq!(
            ok,
            ProbeVerdict::Pass {
                evidence: "STATE=applied; DETAIL=auto-applied".into()
            }
        );
        let failed = j.judge("STATE=failed\nDETAIL=auto-applied\nunit: failed", 0);
        assert_eq!(
            failed,
            ProbeVerdict::FailNow {
                matched: "STATE=failed".into(),
                why: None,
            }
        );
        let absent = j.judge(
            "cat: /run/pre-nixos/storage-status: No such file or directory\nunit: activating",
            0,
        );
        assert!(
            matches!(absent, ProbeVerdict::NotYet { ref observed } if observed.contains("activating")),
            "{absent:?}"
        );
        let unit_failed = j.judge(
            "cat: /run/pre-nixos/storage-status: No such file or directory\nunit: failed",
            0,
        );
        assert!(matches!(unit_failed, ProbeVerdict::FailNow { .. }));
        // Plan-only is terminal (corpus T02: detection error).
        assert!(matches!(
            j.judge("STATE=plan-only\nDETAIL=detection-error\nunit: inactive", 0),
            ProbeVerdict::FailNow { .. }
        ));
    }

    #[test]
    fn lvm_names_are_exact() {
        let vg = judge("storage.vg-main");
        assert!(matches!(vg.judge("  main\n", 0), ProbeVerdict::Pass { .. }));
        assert!(matches!(
            vg.judge("  data\n  mainframe\n", 0),
            ProbeVerdict::NotYet { .. }
        ));
        assert!(matches!(
            vg.judge("  main\n", 5),
            ProbeVerdict::NotYet { .. }
        ));
        let lv = judge("storage.lv-slash");
        assert!(matches!(
            lv.judge("  slash main\n  swap  main\n", 0),
            ProbeVerdict::Pass { .. }
        ));
        assert!(matches!(
            lv.judge("  slash data\n", 0),
            ProbeVerdict::NotYet { .. }
        ));
    }

    #[test]
    fn lan_needs_a_dynamic_address() {
        let j = judge("net.lan-ipv4");
        let up = "2: lan    inet 10.0.2.15/24 metric 1024 brd 10.0.2.255 scope global dynamic lan\\       valid_lft 86391sec preferred_lft 86391sec";
        assert_eq!(
            j.judge(up, 0),
            // The evidence pattern's named capture.
            ProbeVerdict::Pass {
                evidence: "address=10.0.2.15/24".into()
            }
        );
        assert!(matches!(j.judge("", 0), ProbeVerdict::NotYet { .. }));
        assert!(matches!(
            j.judge("Device \"lan\" does not exist.", 1),
            ProbeVerdict::FailNow { .. }
        ));
        let static_addr = "2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global lan";
        assert!(matches!(
            j.judge(static_addr, 0),
            ProbeVerdict::NotYet { .. }
        ));
    }

    #[test]
    fn sudo_root() {
        let j = judge("shell.root");
        assert!(matches!(j.judge("0", 0), ProbeVerdict::Pass { .. }));
        assert!(matches!(
            j.judge("sudo: a password is required", 1),
            ProbeVerdict::FailNow { .. }
        ));
        assert!(matches!(j.judge("1000", 0), ProbeVerdict::NotYet { .. }));
    }

    #[test]
    fn unit_state() {
        let j = judge("unit.pre-nixos-inactive");
        let show =
            |a: &str| format!("LoadState=loaded\nActiveState={a}\nSubState=x\nResult=success");
        assert_eq!(
            j.judge(&show("inactive"), 0),
            ProbeVerdict::Pass {
                evidence: "ActiveState=inactive".into()
            }
        );
        assert!(matches!(
            j.judge(&show("activating"), 0),
            ProbeVerdict::NotYet { .. }
        ));
        assert!(matches!(
            j.judge(&show("failed"), 0),
            ProbeVerdict::FailNow { .. }
        ));
        assert!(matches!(
            j.judge("LoadState=not-found\nActiveState=inactive", 0),
            ProbeVerdict::FailNow { .. }
        ));
    }

    #[test]
    fn tools() {
        let j = judge("storage.tools");
        assert!(matches!(
            j.judge("all present", 0),
            ProbeVerdict::Pass { .. }
        ));
        assert_eq!(
            j.judge("missing: disko", 0),
            ProbeVerdict::FailNow {
                matched: "missing: disko".into(),
                why: None,
            }
        );
    }

    /// A oneshot that stays active (exited) is final: its message says why; what passes
    /// still passes, and a unit still running is not final.
    #[test]
    fn final_states_fail_at_once_with_their_reason() {
        let j = judge("unit.pre-nixos-inactive");
        let exited = j.judge(
            "LoadState=loaded\nActiveState=active\nSubState=exited\nResult=success",
            0,
        );
        match exited {
            ProbeVerdict::FailNow { matched, why } => {
                assert_eq!(matched, "ActiveState=active; SubState=exited");
                assert!(why.unwrap().contains("RemainAfterExit"));
            }
            other => panic!("{other:?}"),
        }
        let running = j.judge(
            "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success",
            0,
        );
        assert!(
            matches!(running, ProbeVerdict::NotYet { .. }),
            "{running:?}"
        );
        let masked = j.judge("LoadState=masked\nActiveState=inactive\nSubState=dead", 0);
        assert!(matches!(masked, ProbeVerdict::FailNow { .. }), "{masked:?}");
        let done = j.judge("LoadState=loaded\nActiveState=inactive\nSubState=dead", 0);
        assert!(matches!(done, ProbeVerdict::Pass { .. }), "{done:?}");
        // A state that must stay: final on the second check in a row, not the first; a
        // check in between that shows something else starts the count again.
        let net = judge("net.lan-ipv4");
        let unmanaged = "networkd: off (unmanaged)";
        let mut streak = FinalStreak::default();
        assert!(matches!(
            net.judge_next(&mut streak, unmanaged, 0),
            ProbeVerdict::NotYet { .. }
        ));
        assert!(matches!(
            net.judge_next(&mut streak, "networkd: routable (configuring)", 0),
            ProbeVerdict::NotYet { .. }
        ));
        assert!(matches!(
            net.judge_next(&mut streak, unmanaged, 0),
            ProbeVerdict::NotYet { .. }
        ));
        match net.judge_next(&mut streak, unmanaged, 0) {
            ProbeVerdict::FailNow { why, .. } => {
                assert!(why.unwrap().contains("2 checks in a row"))
            }
            other => panic!("{other:?}"),
        }
        // DHCP off in the .network file is final at once; an address passes whatever else.
        let off = "networkd: degraded (configured)\nnetworkd: DHCP=no in /etc/systemd/network/20-lan.network";
        assert!(matches!(net.judge(off, 0), ProbeVerdict::FailNow { .. }));
        let leased = "2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\nnetworkd: off (unmanaged)";
        assert!(matches!(net.judge(leased, 0), ProbeVerdict::Pass { .. }));
        let on = "networkd: routable (configured)\nnetworkd: DHCP=ipv4 in /etc/systemd/network/20-lan.network";
        assert!(matches!(net.judge(on, 0), ProbeVerdict::NotYet { .. }));
        assert_eq!(
            crate::judge::will_not_pass("c", "x", Some("it never changes"), ""),
            "`c` shows it will not pass: \"x\": final, it never changes"
        );
    }
}
