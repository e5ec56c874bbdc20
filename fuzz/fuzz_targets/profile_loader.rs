//! `config::load_from_str` over an arbitrary profile (YAML text; catalogs from the embedded
//! ones, no file read): errors are fine, panics are not. A profile that loads is planned for
//! a replay and listed, as `bootaudit replay` and `bootaudit list` would.
#![no_main]

use bootaudit::config::{self, ConditionDef};
use bootaudit::model::Phase;
use bootaudit::replay::judging::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = config::load_from_str("fuzz-profile.yaml", &text, &[], &[]) else {
        return;
    };
    let _ = bootaudit::list::contract_line(&config);
    for def in &config.conditions {
        let _ = def.describe(&config.profile.vars);
        let _ = config.base_timeout(def);
    }
    let defs: Vec<ConditionDef> = config
        .conditions
        .iter()
        .filter(|d| d.phase == Phase::Boot)
        .cloned()
        .collect();
    let _ = Plan::new(&config, &defs);
});
