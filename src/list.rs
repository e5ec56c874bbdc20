//! `bootaudit list`: what a profile audits and why — every condition in run order, whether the
//! profile selects it, what it needs first, and (for the ids asked about, or all with JSON) how
//! it is checked: the command, the patterns, the waits, the diagnostics, the replay forms.

use crate::cli::{Format, ListArgs};
use crate::config::{CheckDef, ConditionDef, Config, RunAs};
use crate::exit_codes;
use serde_json::{json, Value};

pub fn run(args: ListArgs) -> i32 {
    let config = match crate::app::load_config(&args.profile, &args.vars) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(unknown) = args.ids.iter().find(|id| config.condition(id).is_none()) {
        eprintln!(
            "bootaudit: no condition `{unknown}` in profile {} — `bootaudit list` shows the ids",
            config.profile.name
        );
        return exit_codes::USAGE;
    }
    let shown: Vec<&ConditionDef> = if args.ids.is_empty() {
        config.conditions.iter().collect()
    } else {
        config
            .conditions
            .iter()
            .filter(|c| args.ids.contains(&c.id))
            .collect()
    };
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&Value::Array(
            shown.iter().map(|c| details_json(&config, c)).collect(),
        ))
        .expect("list serialises"),
        Format::Human if args.ids.is_empty() => table(&config),
        Format::Human => shown
            .iter()
            .map(|c| details_text(&config, c))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    crate::app::print_stdout(text.trim_end());
    exit_codes::PASS
}

/// The profile's console contract in one line.
pub fn contract_line(config: &Config) -> String {
    use crate::config::contract::{BootMode, EntryChoice, IsoConsolePolicy, Login};
    let c = &config.contract;
    let login = match &c.login {
        Login::Automatic { user } => format!("autologin of `{user}`"),
        Login::Password { user, password } => {
            format!("`{user}` with the password from {}", password.source())
        }
        Login::None => "none (a shell is on the console)".into(),
    };
    let entry = match &c.boot.entry {
        EntryChoice::Default => "the default entry".to_string(),
        EntryChoice::Label(re) => format!("the entry /{}/", re.as_str()),
    };
    let how = match c.boot.mode {
        BootMode::Menu => "through the boot menu",
        BootMode::Direct => "directly (kernel and initrd from the ISO)",
    };
    let policy = match c.boot.iso_console {
        IsoConsolePolicy::EveryEntry => "every entry",
        IsoConsolePolicy::BootedEntry => "the booted entry",
    };
    format!(
        "console {} · login: {login} · root: {} · boots {entry} {how} ({}) · {policy} must use {}",
        c.port.device(),
        c.root.name(),
        config.profile.machine.firmware.as_str(),
        c.port.device()
    )
}

fn table(config: &Config) -> String {
    let p = &config.profile;
    let mut text = format!(
        "profile {} ({}), catalogs: {}\n{}\n",
        p.name,
        config.profile_source.name,
        p.checks.join(", "),
        contract_line(config)
    );
    for c in &config.conditions {
        let mark = if !config.profile_selects(&c.id) {
            "-"
        } else if p.allowed_skips.contains(&c.id) {
            "~"
        } else {
            " "
        };
        let req = if c.requires.is_empty() {
            String::new()
        } else {
            format!("  (requires {})", c.requires.join(", "))
        };
        text.push_str(&format!(
            "{mark}{:<5} {:<26} {}{req}\n",
            c.phase.as_str(),
            c.id,
            c.describe(&p.vars)
        ));
    }
    text.push_str(
        "\n- not selected by the profile   ~ may skip without failing the run\n\
         `bootaudit list ID…` shows how a condition is checked.\n",
    );
    text
}

/// The kind of check and its data, in words and as JSON.
fn check_fields(config: &Config, c: &ConditionDef) -> Vec<(&'static str, Value)> {
    let vars = &config.profile.vars;
    let fill =
        |s: &str| crate::config::pattern::fill(s, vars, |v| v.to_string()).unwrap_or(s.into());
    let patterns = |ps: &[crate::config::pattern::PatternSrc]| {
        Value::from(ps.iter().map(|p| fill(&p.0)).collect::<Vec<_>>())
    };
    let mut fields = Vec::new();
    match c.check() {
        Ok(CheckDef::Builtin(_)) => fields.push(("check", json!("builtin (in code)"))),
        Ok(CheckDef::Watch { pattern }) => {
            fields.push(("check", json!("watch the console")));
            fields.push(("pattern", json!(fill(&pattern.0))));
        }
        Ok(CheckDef::Probe(p)) => {
            fields.push(("check", json!("probe: a command in the guest")));
            fields.push(("run", json!(fill(p.run))));
            let who = match p.run_as {
                RunAs::User => "the logged-in user".to_string(),
                RunAs::Root => format!(
                    "root, through {} (console.root)",
                    config.contract.root.wrap("…")
                ),
            };
            fields.push(("run_as", json!(who)));
            fields.push(("pass", patterns(p.pass)));
            if !p.fail_fast.is_empty() {
                fields.push(("fail_fast", patterns(p.fail_fast)));
            }
            if !p.final_states.is_empty() {
                let states: Vec<Value> = p
                    .final_states
                    .iter()
                    .map(|f| {
                        let when: Vec<String> = f.when.iter().map(|w| fill(&w.0)).collect();
                        json!(format!("{} — {}", when.join(" and "), f.why))
                    })
                    .collect();
                fields.push(("final_states", Value::from(states)));
            }
            if let Some(code) = p.exit_code {
                fields.push(("exit_code", json!(code)));
            }
            if let Some(poll) = p.poll {
                fields.push(("poll", json!(poll.to_string())));
            }
            let forms: Vec<Value> = c
                .replay
                .iter()
                .map(|f| match (&f.command, &f.console, f.from) {
                    (Some(cmd), _, _) => {
                        let cmd = match cmd.0.as_str() {
                            ".*" => "any command".to_string(),
                            other => fill(other),
                        };
                        match &f.block_start {
                            Some(b) => json!(format!("{cmd}, the block from: {}", fill(&b.0))),
                            None => json!(cmd),
                        }
                    }
                    (None, Some(line), _) => json!(format!("console line: {}", fill(&line.0))),
                    (None, None, Some(from)) => json!(format!("{from:?}").to_lowercase()),
                    (None, None, None) => Value::Null,
                })
                .collect();
            fields.push(("replay", Value::from(forms)));
        }
        Err(e) => fields.push(("invalid", json!(e))),
    }
    fields
}

fn timeout(config: &Config, c: &ConditionDef) -> Option<String> {
    (c.phase == crate::model::Phase::Boot).then(|| {
        format!(
            "{} (×{} under TCG)",
            config.base_timeout(c),
            config.profile.timeouts.tcg_scale
        )
    })
}

fn details_json(config: &Config, c: &ConditionDef) -> Value {
    let p = &config.profile;
    let mut v = json!({
        "id": c.id,
        "phase": c.phase,
        "passes_when": c.describe(&p.vars),
        "requires": c.requires,
        "explained_by": c.explained_by,
        "follows": c.follows,
        "selected": config.profile_selects(&c.id),
        "allowed_skip": p.allowed_skips.contains(&c.id),
        "source": c.source,
        "timeout": timeout(config, c),
        "hint": c.hint,
        "diagnostics": c.diagnostics,
    });
    for (k, val) in check_fields(config, c) {
        v[k] = val;
    }
    v
}

fn details_text(config: &Config, c: &ConditionDef) -> String {
    let p = &config.profile;
    let mut lines = vec![
        format!("{} ({} phase)", c.id, c.phase),
        format!("  passes when:  {}", c.describe(&p.vars)),
    ];
    if !c.requires.is_empty() {
        lines.push(format!(
            "  requires:     {} (a failure there skips this one)",
            c.requires.join(", ")
        ));
    }
    if !c.explained_by.is_empty() {
        lines.push(format!(
            "  explained by: {} (judged anyway; a failure there is named as the likely cause)",
            c.explained_by.join(", ")
        ));
    }
    if !c.follows.is_empty() {
        lines.push(format!(
            "  follows:      {} (passes only after them; when one failed, judged at once)",
            c.follows.join(", ")
        ));
    }
    let selection = match (
        config.profile_selects(&c.id),
        p.allowed_skips.contains(&c.id),
    ) {
        (false, _) => "not selected by the profile",
        (true, true) => "audited; a skip does not fail the run",
        (true, false) => "audited",
    };
    lines.push(format!("  selection:    {selection}"));
    for (k, v) in check_fields(config, c) {
        let shown = match &v {
            Value::Array(items) if items.is_empty() => continue,
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or(i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("\n                "),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let label = match k {
            "pass" => "pass if all",
            "fail_fast" => "fail at once",
            "final_states" => "final states",
            "run_as" => "run as",
            "exit_code" => "exit code",
            "poll" => "re-run every",
            "replay" => "foreign logs",
            other => other,
        };
        lines.push(format!("  {:<13} {shown}", format!("{label}:")));
    }
    if let Some(t) = timeout(config, c) {
        lines.push(format!("  waits up to:  {t}"));
    }
    if !c.diagnostics.is_empty() {
        lines.push(format!(
            "  on failure:   collects {}",
            c.diagnostics.join(", ")
        ));
    }
    if let Some(h) = &c.hint {
        lines.push(format!("  hint:         {h}"));
    }
    lines.push(format!("  defined in:   {}", c.source));
    lines.join("\n") + "\n"
}
