//! The event stream from the engine to the reporters. The engine never prints; reporters render
//! and never judge (ARCHITECTURE.md). Replay produces the same events from a recorded log.

use crate::model::{ConditionReport, Phase, Report};
use std::path::Path;

/// Milliseconds since the run started.
pub type Millis = u64;

#[derive(Debug)]
pub enum Event<'a> {
    RunStarted {
        profile: &'a str,
        out_dir: &'a Path,
    },
    PhaseStarted(Phase),
    ConditionStarted {
        id: &'a str,
        phase: Phase,
        at: Millis,
    },
    /// What a running condition is doing now (shown on the progress line, kept in its log).
    Progress {
        id: &'a str,
        at: Millis,
        detail: &'a str,
    },
    /// A run-level note a person should see (e.g. "KVM does not run guests here: using TCG").
    Note(&'a str),
    /// Bytes the guest wrote to the serial console.
    ConsoleReceived {
        at: Millis,
        bytes: &'a [u8],
    },
    /// Bytes the harness typed on the serial console.
    ConsoleSent {
        at: Millis,
        bytes: &'a [u8],
    },
    /// QEMU's own command line and output lines.
    QemuLog {
        text: &'a str,
    },
    /// Replay: the lines of the log a condition's verdict rests on (line number, text).
    LogExcerpt {
        id: &'a str,
        lines: &'a [(u64, String)],
    },
    /// A diagnostic collected for a failed condition.
    Diagnostic {
        id: &'a str,
        name: &'a str,
        content: &'a str,
    },
    /// The harness's side of the boot, which the guest's bytes do not show (the report
    /// folder keeps it in serial.events, for the replay of the run's own console).
    Session(SessionEvent<'a>),
    ConditionFinished(&'a ConditionReport),
    RunFinished(&'a Report),
}

#[derive(Debug, Clone, Copy)]
pub enum SessionEvent<'a> {
    /// The condition's wait ran out (now) without a decision.
    WaitRanOut { id: &'a str },
    /// The session ended during this condition, for this reason: the guest's doing
    /// (`image_fault`) or the infrastructure's.
    Ended {
        during: &'a str,
        why: &'a str,
        image_fault: bool,
    },
}

/// Something that renders events: the terminal, the report folder, …
pub trait Reporter {
    fn event(&mut self, event: &Event<'_>);
}

/// Sends every event to every reporter, in order.
#[derive(Default)]
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter + Send>>,
}

impl Fanout {
    pub fn new(reporters: Vec<Box<dyn Reporter + Send>>) -> Self {
        Fanout { reporters }
    }
    pub fn emit(&mut self, event: Event<'_>) {
        for r in &mut self.reporters {
            r.event(&event);
        }
    }
}

/// A reporter that keeps a summary of events, for tests.
#[derive(Default, Debug, Clone)]
pub struct Recorder {
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Reporter for Recorder {
    fn event(&mut self, event: &Event<'_>) {
        let line = match event {
            Event::ConditionStarted { id, .. } => format!("start {id}"),
            Event::ConditionFinished(c) => format!("finish {} {}", c.id, c.status),
            Event::PhaseStarted(p) => format!("phase {p}"),
            Event::Note(n) => format!("note {n}"),
            _ => return,
        };
        self.log.lock().expect("recorder lock").push(line);
    }
}
