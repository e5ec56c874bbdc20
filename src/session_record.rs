//! A run's own side of its session, which the guest's bytes do not show: `serial.events` in the
//! report folder, one JSON object a line, written live beside serial.raw. It holds what was
//! judged before the boot (not console conditions), each boot wait that ran out and where the
//! console stood then (serial.raw byte offsets), how the session ended, and an interrupt.
//! Replay of that folder reads it so the same verdicts come back, error and interrupted
//! included; the console conditions' evidence still comes from the log alone.

use crate::model::{Outcome, Phase, SkipKind, Status};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};
use std::path::Path;

pub const FILE: &str = "serial.events";

/// One line of serial.events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Entry {
    /// A condition judged on the host, not on the console (host, virt, iso).
    Condition {
        id: String,
        phase: Phase,
        status: Status,
        message: String,
        #[serde(default)]
        skip_kind: SkipKind,
    },
    /// A boot condition's wait ran out: serial.raw held `to_byte` bytes then, `from_byte` when
    /// the condition started.
    WaitRanOut {
        id: String,
        from_byte: u64,
        to_byte: u64,
    },
    /// The session ended during `during`: the guest's doing (`image_fault`) or the
    /// infrastructure's.
    Ended {
        during: String,
        why: String,
        image_fault: bool,
    },
    /// The run was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
}

/// A wait that ran out, in log lines (1-based, as replay numbers them).
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub id: String,
    pub from_line: u64,
    pub to_line: u64,
}

/// A CPU stall line the log shows during a wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    pub name: String,
    pub line: u64,
    pub text: String,
}

/// serial.events read, its byte offsets turned into log lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Conditions judged on the host (host, virt, iso phases).
    pub conditions: Vec<(String, Outcome)>,
    /// Boot conditions the run left out (`--skip`, `--only`, what needs them, not
    /// applicable): the run's choice, which the log cannot show.
    pub left_out: Vec<(String, Outcome)>,
    /// Boot conditions the harness could not judge live (an error: a broken exchange, a write
    /// that did not finish), whatever the log shows of them since.
    pub errors: Vec<(String, Outcome)>,
    pub waits: Vec<Wait>,
    /// During which condition, why, and whether the image did it.
    pub ended: Option<(String, String, bool)>,
    pub interrupted: bool,
}

/// Said of every verdict that rests on the record rather than on the log.
const FROM_RECORD: &str = "from the run's record";

impl Record {
    /// The record beside a run's serial.raw, if the run wrote one.
    pub fn load(raw: &Path) -> std::io::Result<Option<Record>> {
        let path = raw.with_file_name(FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            // A line cut by a kill is the only one that can be incomplete: the last.
            match serde_json::from_str::<Entry>(&line) {
                Ok(e) => entries.push(e),
                Err(_) => break,
            }
        }
        let offsets: Vec<u64> = entries
            .iter()
            .flat_map(|e| match e {
                Entry::WaitRanOut {
                    from_byte, to_byte, ..
                } => vec![*from_byte, *to_byte],
                _ => vec![],
            })
            .collect();
        let lines = lines_at(std::fs::File::open(raw)?, &offsets)?;
        Ok(Some(Record::from_entries(entries, lines)))
    }

    /// Pure: the entries, with `line_of` the log line a serial.raw byte offset lies on.
    pub fn from_entries(entries: Vec<Entry>, line_of: impl Fn(u64) -> u64) -> Record {
        let mut r = Record::default();
        for e in entries {
            match e {
                Entry::Condition {
                    id,
                    phase,
                    status,
                    message,
                    skip_kind,
                } => {
                    // Of a boot condition only the harness's side counts: that it was left
                    // out, or could not be judged. What it showed is the log's to say.
                    let kept = match (phase, status) {
                        (Phase::Boot, Status::Error) => &mut r.errors,
                        (Phase::Boot, Status::Skip) if skip_kind != SkipKind::Counts => {
                            &mut r.left_out
                        }
                        (Phase::Boot, _) => continue,
                        _ => &mut r.conditions,
                    };
                    if kept.iter().any(|(seen, _)| *seen == id) {
                        continue;
                    }
                    let message = match phase {
                        Phase::Boot => format!("{message} ({FROM_RECORD})"),
                        _ => format!("{message} ({FROM_RECORD}: not a console condition)"),
                    };
                    let mut o = match status {
                        Status::Pass => Outcome::pass(message, ""),
                        Status::Fail => Outcome::fail(message, ""),
                        Status::Error => Outcome::error(message),
                        Status::Skip => Outcome::skip(message),
                    };
                    o.skip_kind = skip_kind;
                    // Its message already ends with the hint, where it has one.
                    o.suppress_hint = true;
                    kept.push((id, o));
                }
                Entry::WaitRanOut {
                    id,
                    from_byte,
                    to_byte,
                } => r.waits.push(Wait {
                    id,
                    from_line: line_of(from_byte),
                    to_line: line_of(to_byte),
                }),
                Entry::Ended {
                    during,
                    why,
                    image_fault,
                } => {
                    // The first ending is the one that counts, as live.
                    r.ended.get_or_insert((during, why, image_fault));
                }
                Entry::Interrupted => r.interrupted = true,
            }
        }
        r
    }

    /// The log lines the waits that ran out cover, where a CPU stall speaks for them.
    pub fn windows(&self) -> Vec<(u64, u64)> {
        self.waits
            .iter()
            .map(|w| (w.from_line, w.to_line))
            .collect()
    }

    /// Pure: the verdict of a boot condition where the record decides what the log cannot.
    /// `from_log` is the log's verdict (its evidence still stands where it came in time);
    /// `stall` the first stall line the log shows during this condition's wait, if it ran
    /// out; `after_ending`: the session had ended at an earlier condition. None: the log's
    /// verdict stands.
    pub fn settle(
        &self,
        id: &str,
        from_log: &Outcome,
        stall: Option<&Stall>,
        after_ending: bool,
    ) -> Option<Outcome> {
        // Not shown, or only "not yet": the log alone cannot say why it stopped.
        let undecided = from_log.timed_out
            || (from_log.status == Status::Skip
                && from_log.skip_kind == SkipKind::Counts
                && from_log.blocked_by.is_none());
        let wait = self.waits.iter().find(|w| w.id == id);
        // What the log shows after the wait ran out came too late for the live run.
        let too_late = wait.is_some_and(|w| {
            from_log.status == Status::Pass && from_log.log_line.is_some_and(|l| l > w.to_line)
        });
        let unmet = undecided || too_late;
        if let Some((during, why, image_fault)) = &self.ended {
            let message = match (during == id, after_ending) {
                (true, _) if unmet => format!("{why} ({FROM_RECORD})"),
                (false, true) if unmet => format!("not judged: {why} ({FROM_RECORD})"),
                _ => String::new(),
            };
            if !message.is_empty() {
                return Some(match image_fault {
                    true => Outcome::fail(message, ""),
                    false => Outcome::error(message),
                });
            }
        }
        if let (Some(w), true) = (wait, unmet) {
            let ran_out = Outcome::timed_out(
                format!(
                    "its wait ran out ({FROM_RECORD}) with the log at line {}, which does not \
                     show it met",
                    w.to_line
                ),
                "",
            );
            return Some(match stall {
                Some(s) => crate::judge::console::starved(
                    ran_out,
                    &s.name,
                    &format!("{} (log line {})", s.text.trim(), s.line),
                ),
                None => ran_out,
            });
        }
        if self.interrupted && undecided {
            return Some(Outcome::skip(format!("interrupted ({FROM_RECORD})")));
        }
        // Live it could not be judged (the exchange broke): the frame the log may still hold
        // was not what the run decided on.
        if let Some((_, error)) = self.errors.iter().find(|(e, _)| e == id) {
            let mut o = error.clone();
            o.log_line = from_log.log_line;
            return Some(o);
        }
        None
    }
}

/// For each byte offset, the 1-based line of the log it lies on (one more than the newlines
/// before it), in one streamed pass.
fn lines_at(mut raw: impl Read, offsets: &[u64]) -> std::io::Result<impl Fn(u64) -> u64> {
    let mut wanted: Vec<u64> = offsets.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut found: Vec<(u64, u64)> = Vec::with_capacity(wanted.len());
    let (mut at, mut newlines) = (0u64, 0u64);
    let mut next = 0;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = raw.read(&mut buf)?;
        for &b in &buf[..n] {
            while next < wanted.len() && wanted[next] == at {
                found.push((at, newlines + 1));
                next += 1;
            }
            newlines += u64::from(b == b'\n');
            at += 1;
        }
        if n == 0 {
            break;
        }
    }
    // Offsets at or past the end: the line in progress there.
    for &w in &wanted[next..] {
        found.push((w, newlines + 1));
    }
    Ok(move |offset: u64| {
        found
            .iter()
            .find(|(o, _)| *o == offset)
            .map_or(newlines + 1, |(_, l)| *l)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(entries: Vec<Entry>) -> Record {
        Record::from_entries(entries, |b| b / 10 + 1)
    }

    #[test]
    fn byte_offsets_become_log_lines() {
        let lines = lines_at(&b"a\nbc\n\nd"[..], &[0, 1, 2, 5, 6, 99]).unwrap();
        assert_eq!(
            [0, 1, 2, 5, 6, 99].map(&lines),
            [1, 1, 2, 3, 4, 4],
            "a newline belongs to the line it ends"
        );
    }

    #[test]
    fn a_wait_that_ran_out_is_the_live_failure_or_error() {
        let r = record(vec![Entry::WaitRanOut {
            id: "boot.login".into(),
            from_byte: 0,
            to_byte: 100,
        }]);
        let unseen = Outcome::skip("not observed in the log");
        let o = r.settle("boot.login", &unseen, None, false).unwrap();
        assert_eq!((o.status, o.timed_out), (Status::Fail, true));
        assert!(o.message.contains("from the run's record"), "{}", o.message);
        // A stall during the wait: the run could not judge.
        let stall = Stall {
            name: "rcu-stall".into(),
            line: 5,
            text: "rcu: INFO: rcu_preempt detected stalls".into(),
        };
        let o = r
            .settle("boot.login", &unseen, Some(&stall), false)
            .unwrap();
        assert_eq!(o.status, Status::Error);
        assert!(o.message.contains("starved of CPU"), "{}", o.message);
        // Shown after the wait ran out (at line 11): too late for the live run.
        let mut late = Outcome::pass("the log shows a login prompt", "");
        late.log_line = Some(12);
        assert_eq!(
            r.settle("boot.login", &late, None, false).unwrap().status,
            Status::Fail
        );
        // Shown in time, or another condition: the log decides.
        late.log_line = Some(11);
        assert!(r.settle("boot.login", &late, None, false).is_none());
        assert!(r.settle("boot.console", &unseen, None, false).is_none());
    }

    #[test]
    fn an_ending_and_an_interrupt_decide_only_what_the_log_leaves_open() {
        let ended = record(vec![Entry::Ended {
            during: "shell.root".into(),
            why: "QEMU was killed (SIGKILL) — not a fault of the image".into(),
            image_fault: false,
        }]);
        let unseen = Outcome::skip("not observed in the log");
        let o = ended.settle("shell.root", &unseen, None, false).unwrap();
        assert_eq!(o.status, Status::Error);
        let o = ended.settle("storage.status", &unseen, None, true).unwrap();
        assert!(
            o.message.starts_with("not judged: QEMU was killed"),
            "{}",
            o.message
        );
        let passed = Outcome::pass("shown", "");
        assert!(ended
            .settle("storage.status", &passed, None, true)
            .is_none());
        // A blocked condition stays blocked.
        let blocked = Outcome::blocked("shell.root", Status::Error);
        assert!(ended
            .settle("storage.vg-main", &blocked, None, true)
            .is_none());

        let stopped = record(vec![Entry::Interrupted]);
        let o = stopped
            .settle("storage.status", &unseen, None, false)
            .unwrap();
        assert_eq!(o.status, Status::Skip);
        assert!(o.message.starts_with("interrupted"), "{}", o.message);
        assert!(stopped.settle("boot.login", &passed, None, false).is_none());
    }

    #[test]
    fn of_a_boot_condition_only_the_harness_side_is_kept() {
        let entry = |id: &str, status, skip_kind| Entry::Condition {
            id: id.into(),
            phase: Phase::Boot,
            status,
            message: "m".into(),
            skip_kind,
        };
        let r = record(vec![
            // What the console showed is the log's to say: a recorded pass or fail is ignored.
            entry("net.lan-ipv4", Status::Fail, SkipKind::Counts),
            entry("shell.ready", Status::Pass, SkipKind::Counts),
            entry("storage.tools", Status::Skip, SkipKind::Deselected),
            entry("storage.status", Status::Error, SkipKind::Counts),
            entry("storage.status", Status::Pass, SkipKind::Counts),
        ]);
        assert!(r.conditions.is_empty(), "{r:?}");
        let ids = |v: &[(String, Outcome)]| v.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r.left_out), ["storage.tools"]);
        assert_eq!(ids(&r.errors), ["storage.status"]);
        // A broken exchange live stays an error, whatever frame the log still holds.
        let mut shown = Outcome::pass("the log shows it", "STATE=applied");
        shown.log_line = Some(90);
        let settled = r.settle("storage.status", &shown, None, false).unwrap();
        assert_eq!(
            (settled.status, settled.log_line),
            (Status::Error, Some(90))
        );
        assert!(r.settle("shell.ready", &shown, None, false).is_none());
    }

    #[test]
    fn pre_boot_conditions_say_they_come_from_the_record() {
        let r = record(vec![Entry::Condition {
            id: "iso.console".into(),
            phase: Phase::Iso,
            status: Status::Fail,
            message: "no console=ttyS0".into(),
            skip_kind: SkipKind::Counts,
        }]);
        let (id, o) = &r.conditions[0];
        assert_eq!((id.as_str(), o.status), ("iso.console", Status::Fail));
        assert_eq!(
            o.message,
            "no console=ttyS0 (from the run's record: not a console condition)"
        );
        // One line of serial.events, as written.
        let line = serde_json::to_string(&Entry::WaitRanOut {
            id: "boot.login".into(),
            from_byte: 1,
            to_byte: 2,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"event":"wait-ran-out","id":"boot.login","from_byte":1,"to_byte":2}"#
        );
    }
}
