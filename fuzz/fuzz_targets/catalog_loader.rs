//! `config::load_from_str` with an arbitrary condition catalog (YAML text) in place of the
//! embedded `pre-nixos` catalog, under the embedded `pre-nixos` profile: errors are fine,
//! panics are not. A catalog that loads is planned for a replay, as `bootaudit replay` would.
#![no_main]

use bootaudit::config::{self, ConditionDef};
use bootaudit::model::Phase;
use bootaudit::replay::judging::Plan;
use libfuzzer_sys::fuzz_target;

const PROFILE: &str = include_str!("../../profiles/pre-nixos.yaml");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let catalogs = [("pre-nixos", text.as_ref())];
    let Ok(config) = config::load_from_str("pre-nixos.yaml", PROFILE, &catalogs, &[]) else {
        return;
    };
    let _ = bootaudit::list::contract_line(&config);
    for def in &config.conditions {
        let _ = def.describe(&config.profile.vars);
        let _ = def.check();
    }
    let defs: Vec<ConditionDef> = config
        .conditions
        .iter()
        .filter(|d| d.phase == Phase::Boot)
        .cloned()
        .collect();
    let _ = Plan::new(&config, &defs);
});
