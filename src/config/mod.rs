//! Loading and validating configuration: profiles (`profiles/*.yaml`) and condition catalogs
//! (`checks/*.yaml`). The defaults are embedded in the binary; users may pass their own files.
//! Every error names file:line:column and what to do, and maps to exit code 2.

pub mod builtin;
pub mod catalog;
pub mod contract;
pub mod pattern;
pub mod profile;
pub mod units;

pub use builtin::{Builtin, ConsoleDialogue};
pub use catalog::{Catalog, CheckDef, CheckKind, ConditionDef, ProbeDef, RunAs};
pub use contract::Contract;
pub use profile::Profile;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// Profiles and catalogs shipped inside the binary.
const EMBEDDED_PROFILES: &[(&str, &str)] = &[
    ("pre-nixos", include_str!("../../profiles/pre-nixos.yaml")),
    ("generic", include_str!("../../profiles/generic.yaml")),
    (
        "nixos-installer",
        include_str!("../../profiles/nixos-installer.yaml"),
    ),
];
const EMBEDDED_CATALOGS: &[(&str, &str)] = &[
    ("pre-nixos", include_str!("../../checks/pre-nixos.yaml")),
    ("generic", include_str!("../../checks/generic.yaml")),
    (
        "boot-timeline",
        include_str!("../../checks/boot-timeline.yaml"),
    ),
];

/// A configuration error, always with the file it is about and, where known, the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A loaded source file: where it came from and its text (kept to locate semantic errors).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
    /// Directory for resolving relative references (None for embedded sources).
    pub dir: Option<PathBuf>,
}

impl Source {
    fn error_at(&self, needle: &str, message: String) -> ConfigError {
        let (line, column) = locate(&self.text, needle).unzip();
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            message,
        }
    }
}

impl Source {
    /// An error at the first `needle` after the first `anchor` (a field inside one condition).
    fn error_after(&self, anchor: &str, needle: &str, message: String) -> ConfigError {
        let from = find_whole(&self.text, anchor).unwrap_or(0);
        let (line, column) = match locate(&self.text[from..], needle) {
            Some((l, c)) => {
                let base = self.text[..from].matches('\n').count();
                let col = if l == 1 {
                    c + from - self.text[..from].rfind('\n').map(|i| i + 1).unwrap_or(0)
                } else {
                    c
                };
                (Some(base + l), Some(col))
            }
            None => locate(&self.text, anchor).unzip(),
        };
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            message,
        }
    }
}

/// First occurrence of `needle` not followed by a character that would continue it (so
/// `id: net.lan` is not found inside `id: net.lan-ipv4`); else the first occurrence at all.
fn find_whole(text: &str, needle: &str) -> Option<usize> {
    let continues = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_');
    text.match_indices(needle)
        .map(|(at, _)| at)
        .find(|&at| !text[at + needle.len()..].starts_with(continues))
        .or_else(|| text.find(needle))
}

/// First position of `needle` in `text`, 1-based.
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    let at = find_whole(text, needle)?;
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, col))
}

fn parse_yaml<T: serde::de::DeserializeOwned>(src: &Source) -> Result<T, ConfigError> {
    serde_yaml_ng::from_str(&src.text).map_err(|e| {
        let loc = e.location();
        let message = e.to_string();
        // serde_yaml_ng appends " at line L column C"; we print the position up front instead.
        let message = match message.find(" at line ") {
            Some(i) if loc.is_some() => message[..i].to_string(),
            _ => message,
        };
        let mut line = loc.as_ref().map(|l| l.line());
        let mut column = loc.as_ref().map(|l| l.column());
        // For errors raised while converting a value (an invalid regex, a bad duration), the
        // parser reports the start of the enclosing mapping; the value itself is quoted in
        // backticks, so point at its first occurrence from there on.
        if let (Some(l), Some(snippet)) = (line, message.split('`').nth(1)) {
            let from: usize = src
                .text
                .split_inclusive('\n')
                .take(l - 1)
                .map(str::len)
                .sum();
            if let Some((dl, dc)) = locate(&src.text[from..], snippet) {
                column = Some(dc);
                line = Some(l + dl - 1);
            }
        }
        ConfigError {
            file: src.name.clone(),
            line,
            column,
            message: format!("{message} — fix the file (see docs/profiles.md)"),
        }
    })
}

/// The resolved configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Profile,
    pub profile_source: Source,
    /// The profile's console contract, resolved against its vars.
    pub contract: Contract,
    /// Every condition of the profile's catalogs, in run order (by phase, then catalog order).
    pub conditions: Vec<ConditionDef>,
}

impl Config {
    pub fn condition(&self, id: &str) -> Option<&ConditionDef> {
        self.conditions.iter().find(|c| c.id == id)
    }

    /// A boot condition's wait before TCG and --timeout-scale: the profile's
    /// `timeouts.conditions`, else the catalog's `timeout`, else the profile default.
    pub fn base_timeout(&self, def: &ConditionDef) -> units::Span {
        let t = &self.profile.timeouts;
        t.conditions
            .get(&def.id)
            .copied()
            .or(def.timeout)
            .unwrap_or(t.default)
    }

    /// Is this condition selected by the profile?
    pub fn profile_selects(&self, id: &str) -> bool {
        self.profile.select.is_empty() || self.profile.select.iter().any(|s| s == id)
    }
}

pub fn embedded_profile_names() -> Vec<&'static str> {
    EMBEDDED_PROFILES.iter().map(|(n, _)| *n).collect()
}

/// Load a profile by embedded name or path, with its catalogs, and validate the whole.
pub fn load(profile_arg: &str) -> Result<Config, ConfigError> {
    load_with_vars(profile_arg, &[])
}

/// [`load`], with `--var NAME=VALUE` overrides of the profile's vars.
pub fn load_with_vars(
    profile_arg: &str,
    overrides: &[(String, String)],
) -> Result<Config, ConfigError> {
    let source = read_source(profile_arg, EMBEDDED_PROFILES, "profile")?;
    let dir = source.dir.clone();
    load_source(source, overrides, |reference| match &dir {
        Some(dir) if looks_like_path(reference) => read_source(
            &dir.join(reference).to_string_lossy(),
            EMBEDDED_CATALOGS,
            "catalog",
        ),
        _ => read_source(reference, EMBEDDED_CATALOGS, "catalog"),
    })
}

/// [`load_with_vars`] from a profile's text; catalogs from `catalogs` or embedded, no file read.
pub fn load_from_str(
    name: &str,
    text: &str,
    catalogs: &[(&str, &str)],
    overrides: &[(String, String)],
) -> Result<Config, ConfigError> {
    let source = Source {
        name: name.to_string(),
        text: text.to_string(),
        dir: None,
    };
    load_source(source, overrides, |reference| {
        match catalogs.iter().find(|(n, _)| *n == reference) {
            Some((n, text)) => Ok(Source {
                name: n.to_string(),
                text: text.to_string(),
                dir: None,
            }),
            None if looks_like_path(reference) => Err(ConfigError {
                file: reference.to_string(),
                line: None,
                column: None,
                message: "catalog not given (nothing is read from disk here)".into(),
            }),
            None => read_source(reference, EMBEDDED_CATALOGS, "catalog"),
        }
    })
}

/// Parses and validates a profile's source, reading the catalogs it names with `catalog`.
fn load_source(
    source: Source,
    overrides: &[(String, String)],
    catalog: impl Fn(&str) -> Result<Source, ConfigError>,
) -> Result<Config, ConfigError> {
    let mut profile: Profile = parse_profile(&source)?;
    for (name, value) in overrides {
        if !profile.vars.contains_key(name) {
            let known: Vec<&str> = profile.vars.keys().map(String::as_str).collect();
            return Err(ConfigError {
                file: source.name.clone(),
                line: None,
                column: None,
                message: format!(
                    "--var {name}=…: the profile has no variable `{name}` (its vars: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        profile.vars.insert(name.clone(), value.clone());
    }
    let mut contract =
        contract::resolve(&profile.console, &profile.boot, &profile.vars).map_err(|e| {
            // Point at the value, else at the section it belongs in, else at the profile's name.
            let section = format!("{}:", e.field.split('.').next().unwrap_or("console"));
            let needle = [e.value.as_str(), section.as_str(), "name:"]
                .into_iter()
                .find(|n| !n.is_empty() && source.text.contains(*n))
                .unwrap_or("");
            source.error_at(needle, e.message)
        })?;
    if let Some(dir) = &source.dir {
        contract.relative_to(dir);
    }
    let mut conditions = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for reference in &profile.checks {
        let catalog_src = catalog(reference)?;
        let catalog: Catalog = parse_yaml(&catalog_src)?;
        for (name, diag) in catalog.diagnostics {
            profile.diagnostics.entry(name).or_insert(diag);
        }
        let named = |p: &Profile, name: &str| {
            p.failure_signatures.iter().any(|s| s.name == name)
                || p.stall_signatures.iter().any(|s| s.name == name)
        };
        for sig in catalog.failure_signatures {
            if !named(&profile, &sig.name) {
                profile.failure_signatures.push(sig);
            }
        }
        for sig in catalog.stall_signatures {
            if !named(&profile, &sig.name) {
                profile.stall_signatures.push(sig);
            }
        }
        for m in catalog.milestones {
            if !profile.milestones.iter().any(|p| p.name == m.name) {
                profile.milestones.push(m);
            }
        }
        if profile.boot_analysis.is_none() {
            profile.boot_analysis = catalog.boot_analysis;
        }
        for mut def in catalog.conditions {
            def.source = catalog_src.name.clone();
            if let Some(first) = seen.insert(def.id.clone(), catalog_src.name.clone()) {
                return Err(catalog_src.error_at(
                    &format!("id: {}", def.id),
                    format!(
                        "condition `{}` is defined twice (also in {first}): ids must be unique",
                        def.id
                    ),
                ));
            }
            validate_condition(&catalog_src, &def, &conditions, &profile.vars)?;
            conditions.push(def);
        }
    }
    // Stable sort: phases in order, catalog order within a phase.
    conditions.sort_by_key(|c| c.phase);
    let config = Config {
        profile,
        profile_source: source,
        contract,
        conditions,
    };
    validate_profile(&config)?;
    Ok(config)
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".yaml") || s.ends_with(".yml")
}

/// How deep `extends:` may chain (a loop is caught long before: it repeats a name).
const MAX_EXTENDS: usize = 8;

/// The profile in `source`, on top of the one its `extends:` names — an embedded profile, or a
/// file relative to this one. Mappings merge key by key; anything else this profile gives
/// (a scalar, a list) replaces the base's whole. Without `extends:` it is read as it is, with
/// every error at its line and column.
fn parse_profile(source: &Source) -> Result<Profile, ConfigError> {
    let value: serde_yaml_ng::Value = parse_yaml(source)?;
    if value.get("extends").is_none() {
        return parse_yaml(source);
    }
    let merged = extended(source, value, &mut Vec::new())?;
    serde_yaml_ng::from_value(merged).map_err(|e| {
        // No positions in a merged value: point at what the message quotes, in this file.
        let message = e.to_string();
        let needle = message.split('`').nth(1).unwrap_or("").to_string();
        let mut err = source.error_at(
            &needle,
            format!("{message} — fix the file (see docs/profiles.md)"),
        );
        if needle.is_empty() || !source.text.contains(&needle) {
            err.line = None;
            err.column = None;
        }
        err
    })
}

/// `value` (parsed from `source`) merged onto what its `extends:` names, recursively.
fn extended(
    source: &Source,
    mut value: serde_yaml_ng::Value,
    chain: &mut Vec<String>,
) -> Result<serde_yaml_ng::Value, ConfigError> {
    let Some(base) = value.as_mapping_mut().and_then(|m| m.remove("extends")) else {
        return Ok(value);
    };
    let Some(base) = base.as_str().map(str::to_string) else {
        return Err(source.error_at(
            "extends:",
            "`extends` names one profile: an embedded name (pre-nixos, generic, nixos-installer) or a path".into(),
        ));
    };
    let reference = match (&source.dir, looks_like_path(&base)) {
        (Some(dir), true) => dir.join(&base).to_string_lossy().into_owned(),
        _ => base.clone(),
    };
    chain.push(source.name.clone());
    if chain.len() > MAX_EXTENDS || chain.contains(&reference) {
        return Err(source.error_at(
            "extends:",
            format!(
                "`extends: {base}` makes a loop or a chain deeper than {MAX_EXTENDS}: {} → {base}",
                chain.join(" → ")
            ),
        ));
    }
    let base_src = read_source(&reference, EMBEDDED_PROFILES, "profile")
        .map_err(|e| source.error_at(&base, format!("`extends: {base}`: {}", e.message)))?;
    let base_value: serde_yaml_ng::Value = parse_yaml(&base_src)?;
    let base_value = extended(&base_src, base_value, chain)?;
    Ok(merge(base_value, value))
}

/// `over` on top of `base`: mappings merge key by key, anything else replaces.
fn merge(base: serde_yaml_ng::Value, over: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (_, over) => over,
    }
}

fn read_source(arg: &str, embedded: &[(&str, &str)], what: &str) -> Result<Source, ConfigError> {
    if !looks_like_path(arg) {
        if let Some((name, text)) = embedded.iter().find(|(n, _)| *n == arg) {
            return Ok(Source {
                name: format!("<embedded {what} {name}>"),
                text: text.to_string(),
                dir: None,
            });
        }
        let known: Vec<&str> = embedded.iter().map(|(n, _)| *n).collect();
        return Err(ConfigError {
            file: arg.to_string(),
            line: None,
            column: None,
            message: format!(
                "no embedded {what} named `{arg}` (embedded: {}); give a path to a YAML file instead",
                known.join(", ")
            ),
        });
    }
    let path = Path::new(arg);
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: arg.to_string(),
        line: None,
        column: None,
        message: format!("cannot read {what}: {e} — check the path"),
    })?;
    Ok(Source {
        name: arg.to_string(),
        text,
        dir: path.parent().map(Path::to_path_buf),
    })
}

fn validate_condition(
    src: &Source,
    def: &ConditionDef,
    earlier: &[ConditionDef],
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let relations = [
        ("requires", &def.requires),
        ("explained_by", &def.explained_by),
        ("follows", &def.follows),
    ];
    for (key, ids) in relations {
        for req in ids {
            match earlier.iter().find(|c| &c.id == req) {
                None => {
                    return Err(src.error_at(
                        &format!("id: {}", def.id),
                        format!(
                            "condition `{}` has `{key}: [{req}]`, which is not defined before it: the conditions it names must come earlier in the list",
                            def.id
                        ),
                    ))
                }
                Some(c) if c.phase > def.phase => {
                    return Err(src.error_at(
                        &format!("id: {}", def.id),
                        format!("condition `{}` ({}) has `{key}: [{req}]` of the later phase {}", def.id, def.phase, c.phase),
                    ))
                }
                _ => {}
            }
        }
    }
    def.check().map_err(|e| {
        src.error_at(
            &format!("id: {}", def.id),
            format!("condition `{}`: {e}", def.id),
        )
    })?;
    // Every placeholder must resolve now, not in the middle of a boot.
    let anchor = format!("id: {}", def.id);
    let unknown = |text: &str, known: &dyn Fn(&str) -> bool, what: &str| {
        match pattern::placeholders(text).into_iter().find(|n| !known(n)) {
            Some(name) => Err(src.error_after(
                &anchor,
                &format!("{{{name}"),
                format!("condition `{}`: unknown {what} `{{{name}}}` — {}", def.id, if what == "variable" {
                    "define it under `vars:` in the profile".to_string()
                } else {
                    "name a capture group `(?P<name>…)` of the form's patterns, or a profile variable".to_string()
                }),
            )),
            None => Ok(()),
        }
    };
    let is_var = |n: &str| vars.contains_key(n);
    let mut texts: Vec<&str> = vec![&def.passes_when];
    texts.extend(def.run.as_deref());
    let patterns = def
        .pass
        .iter()
        .chain(&def.fail_fast)
        .chain(def.final_states.iter().flat_map(|f| &f.when))
        .chain(&def.evidence)
        .chain(&def.pattern);
    texts.extend(patterns.map(|p| p.0.as_str()));
    for form in &def.replay {
        texts.extend(form.patterns().map(|p| p.0.as_str()));
    }
    for text in texts {
        unknown(text, &is_var, "variable")?;
    }
    for form in &def.replay {
        let captures = form.capture_names();
        let known = |n: &str| vars.contains_key(n) || captures.iter().any(|c| c == n);
        for template in form.each_line.iter().chain(&form.judge_as) {
            unknown(template, &known, "name")?;
        }
    }
    Ok(())
}

fn validate_profile(config: &Config) -> Result<(), ConfigError> {
    let src = &config.profile_source;
    let p = &config.profile;
    let known: BTreeSet<&str> = config.conditions.iter().map(|c| c.id.as_str()).collect();
    let lists = [("select", &p.select), ("allowed_skips", &p.allowed_skips)];
    for (field, ids) in lists {
        for id in ids {
            if !known.contains(id.as_str()) {
                return Err(src.error_at(
                    id,
                    format!("`{field}` names unknown condition `{id}` — see `bootaudit list`"),
                ));
            }
        }
    }
    for sig in &p.failure_signatures {
        for id in &sig.fails {
            if !known.contains(id.as_str()) {
                return Err(src.error_at(
                    id,
                    format!(
                        "failure signature `{}` names unknown condition `{id}`",
                        sig.name
                    ),
                ));
            }
        }
    }
    // Their patterns must resolve now (a `{var}` the profile lacks), not when a boot starts.
    let failure_patterns = p.failure_signatures.iter().flat_map(|sig| {
        std::iter::once(&sig.pattern)
            .chain(&sig.end)
            .map(move |pattern| ("failure signature", &sig.name, pattern))
    });
    let stall_patterns = p
        .stall_signatures
        .iter()
        .map(|sig| ("stall signature", &sig.name, &sig.pattern));
    let milestone_patterns = p
        .milestones
        .iter()
        .map(|m| ("milestone", &m.name, &m.pattern));
    for (kind, name, pattern) in failure_patterns
        .chain(stall_patterns)
        .chain(milestone_patterns)
    {
        if let Err(e) = pattern.resolve(&p.vars) {
            return Err(src.error_at(&format!("name: {name}"), format!("{kind} `{name}`: {e}")));
        }
    }
    // Hits are told apart by name: a stall signature named like a failure signature would fail.
    let mut names = BTreeSet::new();
    let failures = p.failure_signatures.iter().map(|s| (&s.name, false));
    for (name, stall) in failures.chain(p.stall_signatures.iter().map(|s| (&s.name, true))) {
        if !names.insert(name.as_str()) {
            let message = format!("two signatures are named `{name}`: give each its own name");
            let needle = format!("name: {name}");
            return Err(match stall {
                true => src.error_after("stall_signatures:", &needle, message),
                false => src.error_at(&needle, message),
            });
        }
    }
    for id in p.timeouts.conditions.keys() {
        if !known.contains(id.as_str()) {
            return Err(src.error_at(
                id,
                format!("`timeouts` names unknown condition `{id}` — see `bootaudit list`"),
            ));
        }
    }
    if !(p.timeouts.tcg_scale >= 1.0 && p.timeouts.tcg_scale <= 100.0) {
        return Err(src.error_at("tcg_scale", "`tcg_scale` must be between 1 and 100".into()));
    }
    for def in &config.conditions {
        for name in &def.diagnostics {
            if !p.diagnostics.contains_key(name) {
                return Err(src.error_at(
                    "diagnostics",
                    format!("condition `{}` asks for diagnostic `{name}`, which neither the profile nor the catalog defines under `diagnostics:`", def.id),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_extends_an_embedded_one_and_overrides_only_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        std::fs::write(
            &path,
            "extends: pre-nixos\nname: mine\nmachine:\n  memory: 3G\ntimeouts:\n  conditions:\n    storage.status: 20s\n",
        )
        .unwrap();
        let mine = load(path.to_str().unwrap()).unwrap();
        let base = load("pre-nixos").unwrap();
        assert_eq!(mine.profile.name, "mine");
        assert_ne!(mine.profile.machine.memory, base.profile.machine.memory);
        assert_eq!(mine.profile.machine.cpus, base.profile.machine.cpus);
        let t = &mine.profile.timeouts.conditions;
        assert_eq!(t["storage.status"].0.as_secs(), 20);
        // The base's other per-condition timeouts stay: mappings merge.
        assert_eq!(
            t["boot.login"].0,
            base.profile.timeouts.conditions["boot.login"].0
        );
        assert_eq!(mine.conditions.len(), base.conditions.len());
    }

    #[test]
    fn extends_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "name: bad\nextends: no-such-profile\n").unwrap();
        let e = load(path.to_str().unwrap()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("no-such-profile"), "{e}");
        std::fs::write(&path, "extends: pre-nixos\nmachine:\n  cpuz: 2\n").unwrap();
        let e = load(path.to_str().unwrap()).unwrap_err();
        assert!(e.message.contains("cpuz"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        let looped = dir.path().join("loop.yaml");
        std::fs::write(&looped, "extends: loop.yaml\nname: l\n").unwrap();
        let e = load(looped.to_str().unwrap()).unwrap_err();
        assert!(e.message.contains("loop"), "{e}");
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn profile_text_loads_without_files() {
        let text = include_str!("../../profiles/pre-nixos.yaml");
        let from_text = load_from_str("p.yaml", text, &[], &[]).unwrap();
        let ids = |c: &Config| {
            c.conditions
                .iter()
                .map(|d| d.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&from_text), ids(&load("pre-nixos").unwrap()));
        // A catalog given as text replaces the embedded one of that name.
        let catalog = include_str!("../../checks/pre-nixos.yaml")
            .replace("id: storage.tools", "id: storage.tools\n    timeout: 7s");
        let given = load_from_str("p.yaml", text, &[("pre-nixos", &catalog)], &[]).unwrap();
        let tools = given.condition("storage.tools").unwrap();
        assert_eq!(tools.timeout.map(|t| t.to_string()).as_deref(), Some("7s"));
        // A path is not read.
        let by_path = text.replace("checks: [pre-nixos,", "checks: [/etc/passwd,");
        let err = load_from_str("p.yaml", &by_path, &[], &[]).unwrap_err();
        assert!(err.message.contains("not given"), "{err}");
    }

    /// Minimised from a `profile_loader` fuzz crash (a panic in `Duration::from_secs_f64`).
    #[test]
    fn out_of_range_duration_is_a_located_error() {
        let text = "timeouts:\n  default: 99999999999999999999h\n";
        let err = load_from_str("p.yaml", text, &[], &[]).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        let text = "machine:\n  memory: 99999999999T\n";
        let err = load_from_str("p.yaml", text, &[], &[]).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn embedded_default_profile_loads() {
        let config = load("pre-nixos").unwrap();
        assert!(config.condition("storage.status").is_some());
        assert!(config
            .conditions
            .windows(2)
            .all(|w| w[0].phase <= w[1].phase));
    }

    #[test]
    fn yaml_errors_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            include_str!("../../profiles/pre-nixos.yaml").replace("memory: 1536M", "memry: 1536M");
        let path = write(dir.path(), "p.yaml", &text);
        let err = load(&path).unwrap_err();
        assert_eq!(err.file, path);
        let line = text.lines().position(|l| l.contains("memry")).unwrap() + 1;
        assert_eq!(err.line, Some(line), "{err}");
        assert!(err.column.is_some());
        assert!(err.message.contains("memry"), "{err}");
    }

    #[test]
    fn invalid_regex_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../profiles/pre-nixos.yaml").replace(
            "pattern: 'Kernel panic - not syncing.*'",
            "pattern: 'Kernel panic (unclosed'",
        );
        assert!(text.contains("(unclosed"), "fixture text changed");
        let path = write(dir.path(), "p.yaml", &text);
        let err = load(&path).unwrap_err();
        let line = text.lines().position(|l| l.contains("(unclosed")).unwrap() + 1;
        assert_eq!(err.line, Some(line), "{err}");
        assert!(err.message.contains("invalid regex"), "{err}");
    }

    #[test]
    fn unknown_condition_in_select_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\nselect: [host.qemu, host.nope]\n",
            include_str!("../../profiles/pre-nixos.yaml")
        );
        let path = write(dir.path(), "p.yaml", &text);
        let err = load(&path).unwrap_err();
        assert!(err.message.contains("host.nope"), "{err}");
        assert_eq!(err.line, Some(text.lines().count()));
    }

    #[test]
    fn default_signatures_catch_what_real_consoles_print() {
        let config = load("pre-nixos").unwrap();
        let p = &config.profile;
        let hit = |line: &str| -> Vec<String> {
            p.failure_signatures
                .iter()
                .filter(|s| s.pattern.resolve(&p.vars).unwrap().is_match(line))
                .map(|s| s.name.clone())
                .collect()
        };
        assert_eq!(
            hit("[   37.59] Kernel panic - not syncing: VFS: Unable to mount root fs"),
            ["kernel panic"]
        );
        assert_eq!(
            hit("You are in emergency mode. After logging in, type \"journalctl -xb\""),
            ["emergency mode"]
        );
        assert_eq!(
            hit("ALERT!  /dev/disk/by-label/x does not exist.  Dropping to a shell!"),
            ["emergency mode"]
        );
        // systemd truncates unit names to the console width.
        assert_eq!(
            hit("[FAILED] Failed to start pre-nixos.… - Pre-NixOS storage provisioning."),
            ["pre-nixos unit failed"]
        );
        assert_eq!(
            hit("[FAILED] Failed to start Pre-NixOS setup."),
            ["pre-nixos unit failed"]
        );
        assert!(hit("[  OK  ] Finished pre-nixos.service - Pre-NixOS setup.").is_empty());
        assert!(
            hit("[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.").is_empty()
        );
    }

    #[test]
    fn default_stall_signatures_catch_a_starved_guest() {
        let config = load("pre-nixos").unwrap();
        let p = &config.profile;
        let stall = |line: &str| {
            p.stall_signatures
                .iter()
                .any(|s| s.pattern.resolve(&p.vars).unwrap().is_match(line))
        };
        // What a starved TCG guest printed on a loaded CI runner, and the kernel's other
        // stall reports.
        for line in [
            "[  190.102938] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
            "[  190.102938] rcu: INFO: rcu_sched self-detected stall on CPU",
            "[  212.882145] rcu: rcu_preempt kthread starved for 10502 jiffies! g1721 f0x0",
            "[  212.882145] rcu: rcu_preempt kthread timer wakeup didn't happen for 10499 jiffies!",
            "[   52.000001] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [systemd-udevd:212]",
        ] {
            assert!(stall(line), "{line}");
        }
        for line in [
            "[    0.1] rcu: Hierarchical RCU implementation.",
            "[    0.1] rcu: \tRCU restricting CPUs from NR_CPUS=8192 to nr_cpu_ids=2.",
            "Kernel panic - not syncing: Attempted to kill init!",
        ] {
            assert!(!stall(line), "{line}");
        }
        // A stall fails nothing by itself: no failure signature matches it.
        assert!(!p.failure_signatures.iter().any(|s| s
            .pattern
            .resolve(&p.vars)
            .unwrap()
            .is_match("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:")));
    }

    #[test]
    fn a_stall_signature_may_not_take_a_failure_signatures_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../profiles/pre-nixos.yaml")
            .replace("  - name: CPU stall", "  - name: kernel panic");
        let path = write(dir.path(), "p.yaml", &text);
        let err = load(&path).unwrap_err();
        assert!(err.message.contains("`kernel panic`"), "{err}");
        let stall_line = text.find("stall_signatures:").unwrap();
        let want = text[..stall_line].matches('\n').count() + 2;
        assert_eq!(
            err.line,
            Some(want),
            "points at the stall signature's name: {err}"
        );
    }

    #[test]
    fn unknown_profile_name_lists_embedded() {
        let err = load("nope").unwrap_err();
        assert!(err.message.contains("pre-nixos"), "{err}");
    }
}
