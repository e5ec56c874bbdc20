//! The replay of a log captured by another harness (`src/replay/foreign.rs`) over arbitrary
//! text: the survey, the segmenter cutting it into exchanges at prompts, the uid and
//! escalation readers; then the whole pure replay judging (`replay::judge_bytes`: own frames,
//! foreign forms, console conditions, signatures, milestones) of the same bytes against the
//! embedded default profile. Never a panic; one finding per condition.
#![no_main]

use bootaudit::config::{self, ConditionDef, Config};
use bootaudit::model::Phase;
use bootaudit::replay::foreign::{answered, uid_answer, Escalations, Segmenter, Survey};
use bootaudit::replay::judging::Plan;
use bootaudit::timeline::MilestoneScanner;
use libfuzzer_sys::fuzz_target;
use regex::Regex;
use std::sync::OnceLock;

struct Fixture {
    plan: Plan,
    defs: Vec<ConditionDef>,
    /// The milestone patterns, compiled once (a Regex clone is cheap).
    milestones: Vec<(String, Regex)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = config::load("pre-nixos").expect("the embedded profile loads");
        let defs: Vec<ConditionDef> = config
            .conditions
            .iter()
            .filter(|d| d.phase == Phase::Boot)
            .cloned()
            .collect();
        let plan = Plan::new(&config, &defs).expect("the embedded profile plans");
        Fixture {
            milestones: milestones(&config),
            plan,
            defs,
        }
    })
}

/// The patterns `Engine::milestone_scanner` scans for.
fn milestones(config: &Config) -> Vec<(String, Regex)> {
    let p = &config.profile;
    p.milestones
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.pattern.resolve(&p.vars).ok()?)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let text = String::from_utf8_lossy(data);

    // No `log_shows` facts here (judge_bytes asks them): segmenting does not depend on them.
    let mut survey = Survey::new(&[]);
    text.lines().for_each(|l| survey.line(l));
    let mut segmenter = Segmenter::new(&survey, &f.plan.noise);
    let mut escalations = Escalations::default();
    let mut last_line = 0;
    let mut exchange = |ex: bootaudit::replay::foreign::Exchange| {
        assert!(ex.line >= last_line, "exchanges out of order");
        last_line = ex.line;
        let _ = (uid_answer(&ex), answered(&ex));
        let _ = escalations.exchange(&ex);
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(ex) = segmenter.line(i as u64 + 1, line).closed {
            exchange(ex);
        }
    }
    if let Some(ex) = segmenter.finish() {
        exchange(ex);
    }

    let (findings, _own, _milestones) =
        bootaudit::replay::judge_bytes(&f.plan, data, MilestoneScanner::new(f.milestones.clone()));
    assert_eq!(findings.len(), f.defs.len(), "one finding per condition");
});
