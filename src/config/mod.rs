//! Loading and validating configuration: profiles (`profiles/*.yaml`) and condition catalogs
//! (`checks/*.yaml`). The defaults are embedded in the binary; users may pass their own files.
//! Every error names file:line:column and what to do, every error found is reported in one run
//! (`located`), and all of them map to exit code 2.

pub mod builtin;
pub mod catalog;
pub mod contract;
pub mod located;
pub mod pattern;
pub mod profile;
pub mod scalar;
pub mod units;

pub use builtin::{Builtin, ConsoleDialogue};
pub use catalog::{Catalog, CheckDef, CheckKind, ConditionDef, ProbeDef, RunAs};
pub use contract::Contract;
pub use profile::Profile;

use located::{did_you_mean, key, At, Chain, Doc, Seg};
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// Every error a load found (at least one), in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn first(&self) -> &ConfigError {
        &self.0[0]
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// A loaded source file: where it came from and its text (kept to locate semantic errors).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
    /// Directory for resolving relative references (None for embedded sources).
    pub dir: Option<PathBuf>,
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
pub fn load(profile_arg: &str) -> Result<Config, ConfigErrors> {
    load_with_vars(profile_arg, &[])
}

/// [`load`], with `--var NAME=VALUE` overrides of the profile's vars.
pub fn load_with_vars(
    profile_arg: &str,
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
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
) -> Result<Config, ConfigErrors> {
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

/// The path of a condition's field, in the file it was written in.
fn at(def: &ConditionDef, rest: &[Seg]) -> Vec<Seg> {
    let mut path = vec![key("conditions"), Seg::Index(def.index)];
    path.extend_from_slice(rest);
    path
}

/// Parses and validates a profile's source, reading the catalogs it names with `catalog`;
/// every error found is collected, and the load fails with all of them.
fn load_source(
    source: Source,
    overrides: &[(String, String)],
    catalog: impl Fn(&str) -> Result<Source, ConfigError>,
) -> Result<Config, ConfigErrors> {
    let (docs, value) = profile_chain(source)?;
    let chain = Chain(&docs);
    let parsed = located::deserialize_all::<Profile>(value, chain);
    let mut errors = parsed.errors;
    let Some(mut profile) = parsed.value else {
        return Err(ConfigErrors(errors));
    };
    let mut dropped = parsed.dropped.ids.clone();
    let user_file = docs[0].source.name.clone();
    if profile.name.is_empty() {
        profile.name = Path::new(&user_file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| user_file.clone());
    }
    for (name, value) in overrides {
        if !profile.vars.contains_key(name) {
            let known: Vec<&str> = profile.vars.keys().map(String::as_str).collect();
            errors.push(ConfigError {
                file: user_file.clone(),
                line: None,
                column: None,
                message: format!(
                    "--var {name}=…: the profile has no variable `{name}` (its vars: {}){}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                    did_you_mean(name, known.iter().copied())
                ),
            });
            continue;
        }
        profile.vars.insert(name.clone(), value.clone());
    }
    let vars = profile.vars.clone();
    // What was taken out of the profile for an error already reported is not reported again
    // as missing: a variable whose value was wrong, a contract field, a condition's field.
    let removed = &parsed.dropped;
    let var_gone = |name: &str| removed.touches(&[key("vars"), key(name)]);
    let contract = match contract::resolve(&profile.console, &profile.boot, &vars) {
        Ok(mut c) => {
            if let Some(dir) = &docs[0].source.dir {
                c.relative_to(dir);
            }
            Some(c)
        }
        Err(e) => {
            let path: Vec<Seg> = e.field.split('.').map(key).collect();
            // A missing field is lacked by its parent: a typo of its key was taken out there.
            let node = match e.missing {
                true => &path[..path.len() - 1],
                false => &path[..],
            };
            let caused = removed.touches(node) || unknown_var(&e.message).is_some_and(var_gone);
            if !caused || errors.is_empty() {
                let message = suggest_var(e.message, &vars);
                errors.push(chain.error(&path, At::Value, message));
            }
            None
        }
    };
    // The profile's own signatures and milestones, before the catalogs' join them.
    check_extras(
        chain,
        &profile_extras(&profile),
        &vars,
        &var_gone,
        &mut errors,
    );

    // The catalogs, then the profile's own conditions.
    let mut catalog_docs: Vec<Doc> = Vec::new();
    let mut from_catalogs: Vec<ConditionDef> = Vec::new();
    // Conditions something was taken out of: their kind's own checks would report the gap.
    let mut damaged: BTreeSet<(String, usize)> = BTreeSet::new();
    for (i, reference) in profile.checks.clone().iter().enumerate() {
        let src = match catalog(reference) {
            Ok(src) => src,
            Err(e) => {
                let message = format!("`checks` names `{reference}`: {}: {}", e.file, e.message);
                errors.push(chain.error(&[key("checks"), Seg::Index(i)], At::Value, message));
                continue;
            }
        };
        let (doc, value) = match Doc::parse(src) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let here = Chain(std::slice::from_ref(&doc));
        let parsed = located::deserialize_all::<Catalog>(value, here);
        errors.extend(parsed.errors);
        dropped.extend(parsed.dropped.ids.iter().cloned());
        let Some(catalog) = parsed.value else {
            catalog_docs.push(doc);
            continue;
        };
        let extras = Extras {
            failure: &catalog.failure_signatures,
            stall: &catalog.stall_signatures,
            milestones: &catalog.milestones,
            diagnostics: &catalog.diagnostics,
        };
        check_extras(here, &extras, &vars, &var_gone, &mut errors);
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
        for (i, mut def) in catalog.conditions.into_iter().enumerate() {
            def.source = doc.source.name.clone();
            def.index = index_in_file(&parsed.dropped, i);
            if parsed.dropped.touches(&at(&def, &[])) {
                damaged.insert((def.source.clone(), def.index));
            }
            from_catalogs.push(def);
        }
        catalog_docs.push(doc);
    }
    let own_file = chain.file_of(&[key("conditions")]);
    let own: Vec<ConditionDef> = std::mem::take(&mut profile.conditions)
        .into_iter()
        .enumerate()
        .map(|(i, mut def)| {
            def.source = own_file.clone();
            def.index = index_in_file(&parsed.dropped, i);
            if parsed.dropped.touches(&at(&def, &[])) {
                damaged.insert((def.source.clone(), def.index));
            }
            def
        })
        .collect();
    let chain_of = |def: &ConditionDef| -> Chain {
        match catalog_docs
            .iter()
            .position(|d| d.source.name == def.source)
        {
            Some(k) if def.source != own_file => Chain(&catalog_docs[k..k + 1]),
            _ => chain,
        }
    };

    // Each condition on its own: its kind and phase, its fields, its placeholders.
    let mut conditions: Vec<ConditionDef> = Vec::new();
    let mut first_of: HashMap<String, String> = HashMap::new();
    for mut def in from_catalogs.into_iter().chain(own) {
        let c = chain_of(&def);
        if let Some(first) = first_of.get(&def.id) {
            errors.push(c.error(
                &at(&def, &[key("id")]),
                At::Value,
                format!(
                    "condition `{}` is defined twice (also in {first}): ids must be unique",
                    def.id
                ),
            ));
            continue;
        }
        first_of.insert(def.id.clone(), def.source.clone());
        let before = errors.len();
        settle_phase(c, &mut def, &mut errors);
        let whole = !damaged.contains(&(def.source.clone(), def.index));
        if errors.len() == before && whole {
            if let Err(e) = def.check() {
                let message = format!("condition `{}`: {e}", def.id);
                errors.push(c.error(&at(&def, &[]), At::Value, message));
            }
        }
        check_placeholders(c, &def, &vars, &var_gone, &mut errors);
        conditions.push(def);
    }
    // Stable sort: phases in order, catalog order within a phase (then the profile's own).
    conditions.sort_by_key(|c| c.phase);
    check_relations(&conditions, &dropped, &chain_of, &mut errors);
    check_profile(
        chain,
        &profile,
        &conditions,
        &dropped,
        &chain_of,
        &mut errors,
    );
    if conditions.is_empty() && errors.is_empty() {
        errors.push(chain.error(
            &[],
            At::Value,
            "the profile audits nothing: name catalogs under `checks:` (e.g. `checks: [generic, boot-timeline]`) or write `conditions:` of its own".into(),
        ));
    }
    // In the order of the files and of their lines, as a reader fixes them.
    let files: Vec<String> = errors
        .iter()
        .map(|e| e.file.clone())
        .fold(Vec::new(), |mut v, f| {
            if !v.contains(&f) {
                v.push(f);
            }
            v
        });
    errors.sort_by_key(|e| (files.iter().position(|f| *f == e.file), e.line, e.column));
    match (contract, errors.is_empty()) {
        (Some(contract), true) => Ok(Config {
            profile,
            profile_source: docs
                .into_iter()
                .next()
                .expect("the profile's own file")
                .source,
            contract,
            conditions,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// Where the `i`-th entry left of a `conditions:` list is in its file.
fn index_in_file(dropped: &located::Dropped, i: usize) -> usize {
    match dropped.original(&[key("conditions"), Seg::Index(i)]).get(1) {
        Some(Seg::Index(n)) => *n,
        _ => i,
    }
}

/// The name in an unknown-variable message.
fn unknown_var(message: &str) -> Option<&str> {
    message
        .split("unknown variable `{")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
}

/// The unknown-variable message with the nearest variable, if one is near.
fn suggest_var(message: String, vars: &BTreeMap<String, String>) -> String {
    let Some(name) = unknown_var(&message) else {
        return message;
    };
    let hint = did_you_mean(name, vars.keys().map(String::as_str));
    format!("{message}{hint}")
}

/// A condition's phase: as written, else its kind's; a kind that cannot run in the written
/// phase is an error at `phase`, an unknown builtin kind one at `builtin`.
fn settle_phase(chain: Chain, def: &mut ConditionDef, errors: &mut Vec<ConfigError>) {
    let (natural, why) = match (def.check, def.builtin.as_deref()) {
        (CheckKind::Builtin, Some(kind)) => match Builtin::from_kind(kind) {
            Some(b) => (b.phase(), None),
            None => {
                let phase = def.phase_written.unwrap_or(crate::model::Phase::Boot);
                let message = Builtin::resolve(kind, phase).err().unwrap_or_default();
                let near = did_you_mean(kind, Builtin::ALL.iter().map(|b| b.kind()));
                errors.push(chain.error(
                    &at(def, &[key("builtin")]),
                    At::Value,
                    format!("condition `{}`: {message}{near}", def.id),
                ));
                def.phase = phase;
                return;
            }
        },
        (kind, _) => match kind.runs_only_in() {
            Some((phase, why)) => (phase, Some(why)),
            None => (def.phase_written.unwrap_or(crate::model::Phase::Boot), None),
        },
    };
    def.phase = def.phase_written.unwrap_or(natural);
    if def.phase == natural {
        return;
    }
    let message = match why {
        Some(why) => format!(
            "condition `{}`: a `{}` check {why}, which only the {natural} phase has: write `phase: {natural}` or leave `phase` out (the {} phase runs builtin checks only)",
            def.id,
            def.check.name(),
            def.phase,
        ),
        None => format!(
            "condition `{}`: the builtin check `{}` runs in the {natural} phase, not {}: write `phase: {natural}` or leave `phase` out",
            def.id,
            def.builtin.as_deref().unwrap_or(""),
            def.phase,
        ),
    };
    errors.push(chain.error(&at(def, &[key("phase")]), At::Value, message));
    // Reported once: the rest is checked as if it were right.
    def.phase = natural;
}

/// Every `{placeholder}` of a condition must resolve now, not in the middle of a boot.
fn check_placeholders(
    chain: Chain,
    def: &ConditionDef,
    vars: &BTreeMap<String, String>,
    gone: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ConfigError>,
) {
    let mut texts: Vec<(Vec<Seg>, &str)> = vec![(vec![key("passes_when")], &def.passes_when)];
    texts.extend(def.run.as_deref().map(|r| (vec![key("run")], r)));
    let list = |name: &str, items: &'_ [pattern::PatternSrc]| -> Vec<(Vec<Seg>, String)> {
        items
            .iter()
            .enumerate()
            .map(|(i, p)| (vec![key(name), Seg::Index(i)], p.0.clone()))
            .collect()
    };
    let mut owned: Vec<(Vec<Seg>, String)> = Vec::new();
    owned.extend(list("pass", &def.pass));
    owned.extend(list("fail_fast", &def.fail_fast));
    for (k, f) in def.final_states.iter().enumerate() {
        for (m, p) in f.when.iter().enumerate() {
            let path = vec![
                key("final_states"),
                Seg::Index(k),
                key("when"),
                Seg::Index(m),
            ];
            owned.push((path, p.0.clone()));
        }
    }
    owned.extend(
        def.evidence
            .iter()
            .map(|p| (vec![key("evidence")], p.0.clone())),
    );
    owned.extend(
        def.pattern
            .iter()
            .map(|p| (vec![key("pattern")], p.0.clone())),
    );
    let mut templates: Vec<(Vec<Seg>, String, Vec<String>)> = Vec::new();
    for (k, form) in def.replay.iter().enumerate() {
        let base = |rest: Vec<Seg>| [vec![key("replay"), Seg::Index(k)], rest].concat();
        let one = [
            ("command", &form.command),
            ("console", &form.console),
            ("block_start", &form.block_start),
            ("block_end", &form.block_end),
            ("first_line", &form.first_line),
            ("lines", &form.lines),
            ("log_shows", &form.log_shows),
        ];
        for (name, p) in one {
            owned.extend(p.iter().map(|p| (base(vec![key(name)]), p.0.clone())));
        }
        for (name, items) in [
            ("reject", &form.reject),
            ("ignore", &form.ignore),
            ("find", &form.find),
        ] {
            owned.extend(list(name, items).into_iter().map(|(p, t)| (base(p), t)));
        }
        let captures = form.capture_names();
        for (name, t) in [("each_line", &form.each_line), ("judge_as", &form.judge_as)] {
            templates.extend(
                t.iter()
                    .map(|t| (base(vec![key(name)]), t.clone(), captures.clone())),
            );
        }
    }
    let all = texts
        .into_iter()
        .map(|(p, t)| (p, t.to_string(), None))
        .chain(owned.into_iter().map(|(p, t)| (p, t, None)))
        .chain(templates.into_iter().map(|(p, t, c)| (p, t, Some(c))));
    for (path, text, captures) in all {
        for name in pattern::placeholders(&text) {
            let is_capture = captures
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c == name));
            if vars.contains_key(name) || is_capture || gone(name) {
                continue;
            }
            let candidates: Vec<&str> = vars
                .keys()
                .map(String::as_str)
                .chain(captures.iter().flatten().map(String::as_str))
                .collect();
            let near = did_you_mean(name, candidates);
            let message = match captures {
                None => format!(
                    "condition `{}`: unknown variable `{{{name}}}` — define it under `vars:` in the profile{near}",
                    def.id
                ),
                Some(_) => format!(
                    "condition `{}`: unknown name `{{{name}}}` — name a capture group `(?P<name>…)` of the form's patterns, or a profile variable{near}",
                    def.id
                ),
            };
            errors.push(chain.error_in(&at(def, &path), &format!("{{{name}"), message));
        }
    }
}

/// `requires`, `explained_by` and `follows` name other conditions that run before: each
/// mistake in its own words — an unknown id (with the nearest), the condition itself, one
/// that waits for this one (a cycle), one of a later phase, one listed after it.
fn check_relations<'a>(
    conditions: &[ConditionDef],
    dropped: &BTreeSet<String>,
    chain_of: &dyn Fn(&ConditionDef) -> Chain<'a>,
    errors: &mut Vec<ConfigError>,
) {
    let order: HashMap<&str, usize> = conditions
        .iter()
        .enumerate()
        .map(|(n, c)| (c.id.as_str(), n))
        .collect();
    let ids: Vec<&str> = conditions.iter().map(|c| c.id.as_str()).collect();
    for (n, def) in conditions.iter().enumerate() {
        let relations = [
            ("requires", &def.requires),
            ("explained_by", &def.explained_by),
            ("follows", &def.follows),
        ];
        for (field, named) in relations {
            for (j, other) in named.iter().enumerate() {
                let path = at(def, &[key(field), Seg::Index(j)]);
                let id = &def.id;
                let message = match order.get(other.as_str()) {
                    _ if other == id => format!(
                        "condition `{id}` names itself in `{field}`: a condition cannot wait for its own verdict — take `{other}` out"
                    ),
                    None if dropped.contains(other) => continue,
                    None => format!(
                        "condition `{id}`: `{field}` names `{other}`, which no catalog of the profile and none of its `conditions:` defines (`bootaudit list` shows the ids){}",
                        did_you_mean(other, ids.iter().copied())
                    ),
                    Some(&m) if m < n => continue,
                    Some(&m) => match waits_for(conditions, &order, m, id) {
                        Some(cycle) => format!(
                            "condition `{id}`: `{field}: [{other}]` makes a cycle ({id} → {}): no condition of it could ever be judged first — take one of the links out",
                            cycle.join(" → ")
                        ),
                        None if conditions[m].phase > def.phase => format!(
                            "condition `{id}` ({} phase) has `{field}: [{other}]` of the later {} phase: phases run in order host, virt, iso, boot, so it would never be judged in time",
                            def.phase, conditions[m].phase
                        ),
                        None => format!(
                            "condition `{id}`: `{field}` names `{other}`, which runs after it: list `{other}` before `{id}` (conditions run in phase order, then in the order written)"
                        ),
                    },
                };
                errors.push(chain_of(def).error(&path, At::Value, message));
            }
        }
    }
}

/// The chain by which the condition at `from` waits for `target` (its ids, `from` first).
fn waits_for(
    conditions: &[ConditionDef],
    order: &HashMap<&str, usize>,
    from: usize,
    target: &str,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(from, vec![conditions[from].id.clone()])];
    while let Some((n, trail)) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        let c = &conditions[n];
        for next in c.requires.iter().chain(&c.explained_by).chain(&c.follows) {
            if next == target {
                let mut done = trail.clone();
                done.push(target.to_string());
                return Some(done);
            }
            if let Some(&m) = order.get(next.as_str()) {
                let mut t = trail.clone();
                t.push(next.clone());
                stack.push((m, t));
            }
        }
    }
    None
}

/// Signatures, milestones and diagnostics of one file (the profile's own, or a catalog's).
struct Extras<'a> {
    failure: &'a [profile::Signature],
    stall: &'a [profile::StallSignature],
    milestones: &'a [profile::MilestoneDef],
    diagnostics: &'a BTreeMap<String, profile::Diagnostic>,
}

fn profile_extras(p: &Profile) -> Extras<'_> {
    Extras {
        failure: &p.failure_signatures,
        stall: &p.stall_signatures,
        milestones: &p.milestones,
        diagnostics: &p.diagnostics,
    }
}

/// Their placeholders resolve now (a `{var}` the profile lacks), not when a boot starts, and
/// hits are told apart by name (a stall signature named like a failure signature would fail).
fn check_extras(
    chain: Chain,
    e: &Extras,
    vars: &BTreeMap<String, String>,
    gone: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ConfigError>,
) {
    let mut patterns: Vec<(Vec<Seg>, String, &pattern::PatternSrc)> = Vec::new();
    for (k, sig) in e.failure.iter().enumerate() {
        let base = [key("failure_signatures"), Seg::Index(k)];
        patterns.push((
            [&base[..], &[key("pattern")]].concat(),
            format!("failure signature `{}`", sig.name),
            &sig.pattern,
        ));
        if let Some(end) = &sig.end {
            patterns.push((
                [&base[..], &[key("end")]].concat(),
                format!("failure signature `{}`", sig.name),
                end,
            ));
        }
    }
    for (k, sig) in e.stall.iter().enumerate() {
        let path = vec![key("stall_signatures"), Seg::Index(k), key("pattern")];
        patterns.push((
            path,
            format!("stall signature `{}`", sig.name),
            &sig.pattern,
        ));
    }
    for (k, m) in e.milestones.iter().enumerate() {
        let path = vec![key("milestones"), Seg::Index(k), key("pattern")];
        patterns.push((path, format!("milestone `{}`", m.name), &m.pattern));
    }
    let diag_runs = e.diagnostics.iter().map(|(name, d)| {
        (
            vec![key("diagnostics"), key(name), key("run")],
            format!("diagnostic `{name}`"),
            d.run.as_str(),
        )
    });
    let texts = patterns
        .iter()
        .map(|(p, what, pat)| (p.clone(), what.clone(), pat.0.as_str()))
        .chain(diag_runs);
    for (path, what, text) in texts {
        for name in pattern::placeholders(text) {
            if !vars.contains_key(name) && !gone(name) {
                let near = did_you_mean(name, vars.keys().map(String::as_str));
                let message = format!(
                    "{what}: unknown variable `{{{name}}}` — define it under `vars:` in the profile{near}"
                );
                errors.push(chain.error_in(&path, &format!("{{{name}"), message));
            }
        }
    }
    let mut names = BTreeSet::new();
    let failures = e
        .failure
        .iter()
        .enumerate()
        .map(|(k, s)| (&s.name, "failure_signatures", k));
    let stalls = e
        .stall
        .iter()
        .enumerate()
        .map(|(k, s)| (&s.name, "stall_signatures", k));
    for (name, list, k) in failures.chain(stalls) {
        if !names.insert(name.as_str()) {
            errors.push(chain.error(
                &[key(list), Seg::Index(k), key("name")],
                At::Value,
                format!("two signatures are named `{name}`: give each its own name"),
            ));
        }
    }
}

/// What the profile names must exist: conditions, diagnostics; and its values be in range.
fn check_profile<'a>(
    chain: Chain,
    p: &Profile,
    conditions: &[ConditionDef],
    dropped: &BTreeSet<String>,
    chain_of: &dyn Fn(&ConditionDef) -> Chain<'a>,
    errors: &mut Vec<ConfigError>,
) {
    let ids: Vec<&str> = conditions.iter().map(|c| c.id.as_str()).collect();
    let known = |id: &str| ids.contains(&id) || dropped.contains(id);
    let unknown = |field: &str, id: &str| {
        format!(
            "`{field}` names unknown condition `{id}` — see `bootaudit list`{}",
            did_you_mean(id, ids.iter().copied())
        )
    };
    for field in ["select", "allowed_skips"] {
        let list = if field == "select" {
            &p.select
        } else {
            &p.allowed_skips
        };
        for (i, id) in list.iter().enumerate() {
            if !known(id) {
                errors.push(chain.error(
                    &[key(field), Seg::Index(i)],
                    At::Value,
                    unknown(field, id),
                ));
            }
        }
    }
    for (k, sig) in p.failure_signatures.iter().enumerate() {
        for (j, id) in sig.fails.iter().enumerate() {
            if !known(id) {
                let path = [
                    key("failure_signatures"),
                    Seg::Index(k),
                    key("fails"),
                    Seg::Index(j),
                ];
                let field = format!("failure signature `{}`: `fails`", sig.name);
                errors.push(chain.error(&path, At::Value, unknown(&field, id)));
            }
        }
    }
    for id in p.timeouts.conditions.keys() {
        if !known(id) {
            let path = [key("timeouts"), key("conditions"), key(id)];
            errors.push(chain.error(&path, At::Key, unknown("timeouts.conditions", id)));
        }
    }
    if !(p.timeouts.tcg_scale >= 1.0 && p.timeouts.tcg_scale <= 100.0) {
        errors.push(chain.error(
            &[key("timeouts"), key("tcg_scale")],
            At::Value,
            "`tcg_scale` must be between 1 and 100".into(),
        ));
    }
    let names: Vec<&str> = p.diagnostics.keys().map(String::as_str).collect();
    for def in conditions {
        for (j, name) in def.diagnostics.iter().enumerate() {
            if !p.diagnostics.contains_key(name) {
                let message = format!(
                    "condition `{}` asks for diagnostic `{name}`, which neither the profile nor a catalog defines under `diagnostics:`{}",
                    def.id,
                    did_you_mean(name, names.iter().copied())
                );
                let path = at(def, &[key("diagnostics"), Seg::Index(j)]);
                errors.push(chain_of(def).error(&path, At::Value, message));
            }
        }
    }
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".yaml") || s.ends_with(".yml")
}

/// How deep `extends:` may chain (a loop is caught long before: it repeats a name).
const MAX_EXTENDS: usize = 8;

/// The profile in `source` with the files its `extends:` names — an embedded profile, or a
/// file relative to this one — the most derived first, and their values merged: mappings merge
/// key by key; anything else a file gives (a scalar, a list) replaces the base's whole. The
/// bases' `name`s are left out.
fn profile_chain(source: Source) -> Result<(Vec<Doc>, Value), ConfigError> {
    let mut docs: Vec<Doc> = Vec::new();
    let mut values = Vec::new();
    let mut next = Some(source);
    while let Some(source) = next.take() {
        let (doc, mut value) = Doc::parse(source)?;
        let base = value.as_mapping_mut().and_then(|m| m.remove("extends"));
        if !docs.is_empty() {
            // A profile's name is its own (else its file's), never its base's.
            value.as_mapping_mut().and_then(|m| m.remove("name"));
        }
        values.push(value);
        let here = Chain(std::slice::from_ref(&doc));
        let at_extends = |message: String| here.error(&[key("extends")], At::Value, message);
        if let Some(base) = base {
            let Some(base) = base.as_str().map(str::to_string) else {
                return Err(at_extends(format!(
                    "`extends` names one profile: an embedded name ({}) or a path",
                    embedded_profile_names().join(", ")
                )));
            };
            let reference = match (&doc.source.dir, looks_like_path(&base)) {
                (Some(dir), true) => dir.join(&base).to_string_lossy().into_owned(),
                _ => base.clone(),
            };
            let mut names: Vec<String> = docs.iter().map(|d| d.source.name.clone()).collect();
            names.push(doc.source.name.clone());
            if names.len() >= MAX_EXTENDS || names.contains(&reference) {
                return Err(at_extends(format!(
                    "`extends: {base}` makes a loop or a chain deeper than {MAX_EXTENDS}: {} → {base}",
                    names.join(" → ")
                )));
            }
            next = Some(
                read_source(&reference, EMBEDDED_PROFILES, "profile").map_err(|e| {
                    let near = did_you_mean(&base, EMBEDDED_PROFILES.iter().map(|(n, _)| *n));
                    let message =
                        e.message
                            .replacen(&format!("`{base}`"), &format!("`{base}`{near}"), 1);
                    at_extends(format!("`extends: {base}`: {message}"))
                })?,
            );
        }
        docs.push(doc);
    }
    let merged = values
        .into_iter()
        .rev()
        .reduce(merge)
        .expect("at least the profile itself");
    Ok((docs, merged))
}

/// `over` on top of `base`: mappings merge key by key, anything else replaces. A key left empty
/// over a mapping (`machine:` with every line under it commented out: a YAML null) is an empty
/// mapping, which merges nothing: the base's stays (a null over a scalar or a list replaces it,
/// as `rng:` drops the base's device).
fn merge(base: serde_yaml_ng::Value, over: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(b), Value::Null) => Value::Mapping(b),
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
        let e = load(path.to_str().unwrap()).unwrap_err().first().clone();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("no-such-profile"), "{e}");
        std::fs::write(&path, "extends: pre-nixos\nmachine:\n  cpuz: 2\n").unwrap();
        let e = load(path.to_str().unwrap()).unwrap_err().first().clone();
        assert!(e.message.contains("cpuz"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        let looped = dir.path().join("loop.yaml");
        std::fs::write(&looped, "extends: loop.yaml\nname: l\n").unwrap();
        let e = load(looped.to_str().unwrap()).unwrap_err().first().clone();
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
        let err = load_from_str("p.yaml", &by_path, &[], &[])
            .unwrap_err()
            .first()
            .clone();
        assert!(err.message.contains("not given"), "{err}");
    }

    /// Minimised from a `profile_loader` fuzz crash (a panic in `Duration::from_secs_f64`).
    #[test]
    fn out_of_range_duration_is_a_located_error() {
        for text in [
            "extends: generic\ntimeouts:\n  default: 99999999999999999999h\n",
            "extends: generic\nmachine:\n  memory: 99999999999T\n",
        ] {
            let errs = load_from_str("p.yaml", text, &[], &[]).unwrap_err();
            assert_eq!(errs.0.len(), 1, "{errs}");
            assert_eq!(errs.first().line, Some(3), "{errs}");
        }
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
        let err = load(&path).unwrap_err().first().clone();
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
        let err = load(&path).unwrap_err().first().clone();
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
        let err = load(&path).unwrap_err().first().clone();
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
        let err = load(&path).unwrap_err().first().clone();
        assert!(err.message.contains("`kernel panic`"), "{err}");
        let stall_line = text.find("stall_signatures:").unwrap();
        let want = text[..stall_line].matches('\n').count() + 2;
        assert_eq!(
            err.line,
            Some(want),
            "points at the stall signature's name: {err}"
        );
    }

    /// Loads `text` as `mine.yaml` and returns its errors (it must not load).
    fn errors_of(text: &str) -> Vec<ConfigError> {
        load_from_str("mine.yaml", text, &[], &[]).unwrap_err().0
    }

    /// The one error whose message has `words`, at `line` of mine.yaml.
    fn error_with<'a>(errors: &'a [ConfigError], words: &str, line: usize) -> &'a ConfigError {
        let all = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let found: Vec<_> = errors
            .iter()
            .filter(|e| e.message.contains(words))
            .collect();
        assert_eq!(found.len(), 1, "one error with `{words}`:\n{all}");
        assert_eq!(
            (found[0].file.as_str(), found[0].line),
            ("mine.yaml", Some(line)),
            "{all}"
        );
        assert!(found[0].column.is_some(), "{all}");
        found[0]
    }

    #[test]
    fn every_key_with_a_default_is_optional() {
        // No name, machine, checks, phase: each has a default.
        let text = "console: {login: {mode: none}}\nconditions:\n  - id: console.seen\n    check: watch\n    pattern: 'login: '\n    passes_when: a login prompt shows\n";
        let config = load_from_str("mine.yaml", text, &[], &[]).unwrap();
        assert_eq!(config.profile.name, "mine");
        assert_eq!(config.profile.machine.cpus, 2);
        assert_eq!(config.profile.machine.nic.device, "virtio-net-pci");
        let def = config.condition("console.seen").unwrap();
        assert_eq!(def.phase, crate::model::Phase::Boot);
        // A builtin's phase is its kind's.
        let text = "console: {login: {mode: none}}\nconditions:\n  - id: q\n    check: builtin\n    builtin: qemu\n    passes_when: q\n";
        let config = load_from_str("mine.yaml", text, &[], &[]).unwrap();
        assert_eq!(config.conditions[0].phase, crate::model::Phase::Host);
        // A profile's name is its own, not its base's.
        let config = load_from_str("mine.yaml", "extends: pre-nixos\n", &[], &[]).unwrap();
        assert_eq!(config.profile.name, "mine");
    }

    #[test]
    fn a_profile_adds_conditions_of_its_own_after_the_catalogs() {
        let text = "extends: pre-nixos\nvars:\n  hostname: pre-nixos\nconditions:\n  - id: system.hostname\n    requires: [shell.ready]\n    check: probe\n    run: hostname\n    pass: ['(?m)^{hostname}$']\n    passes_when: the hostname is {hostname}\n  - id: console.provisioned\n    requires: [boot.login]\n    check: watch\n    pattern: 'Finished pre-nixos.*'\n    passes_when: the console shows the provisioning finished\n";
        let config = load_from_str("mine.yaml", text, &[], &[]).unwrap();
        let ids: Vec<&str> = config.conditions.iter().map(|c| c.id.as_str()).collect();
        let base = load("pre-nixos").unwrap();
        assert_eq!(ids.len(), base.conditions.len() + 2);
        assert_eq!(
            &ids[ids.len() - 2..],
            ["system.hostname", "console.provisioned"]
        );
        assert_eq!(
            config.condition("system.hostname").unwrap().source,
            "mine.yaml"
        );
        // Their errors are in the profile file.
        let bad = text.replace("requires: [boot.login]", "requires: [boot.logn]");
        let errors = errors_of(&bad);
        error_with(&errors, "did you mean `boot.login`?", 12);
    }

    #[test]
    fn every_error_is_reported_in_one_run_each_at_its_place() {
        let text = "extends: pre-nixos\nmachine:\n  cpuz: 2\n  memroy: 2G\ntimeouts:\n  conditions:\n    storage.statuz: 9s\nselect: [host.qemu, shell.redy]\nconditions:\n  - id: my.probe\n    requires: [shell.ready]\n    check: probe\n    run: cat {status_fil}\n    pass: ['x']\n    diagnostics: [lsblkk]\n    passes_when: x\n";
        let errors = errors_of(text);
        assert_eq!(errors.len(), 6, "{}", ConfigErrors(errors.clone()));
        let e = error_with(&errors, "`cpuz`", 3);
        assert!(e.message.contains("did you mean `cpus`?"), "{e}");
        assert_eq!(e.column, Some(3));
        let e = error_with(&errors, "`memroy`", 4);
        assert!(e.message.contains("did you mean `memory`?"), "{e}");
        let e = error_with(&errors, "`storage.statuz`", 7);
        assert!(e.message.contains("did you mean `storage.status`?"), "{e}");
        let e = error_with(&errors, "`shell.redy`", 8);
        assert!(e.message.contains("did you mean `shell.ready`?"), "{e}");
        assert_eq!(e.column, Some(21));
        let e = error_with(&errors, "{status_fil}", 13);
        assert!(e.message.contains("did you mean `status_file`?"), "{e}");
        assert_eq!(e.column, Some(14), "at the placeholder itself: {e}");
        let e = error_with(&errors, "`lsblkk`", 15);
        assert!(e.message.contains("did you mean `lsblk`?"), "{e}");
    }

    #[test]
    fn errors_of_each_kind_are_collected() {
        // A condition lacking a required key is reported and left out; the rest is checked.
        let text = "extends: generic\nconditions:\n  - id: a\n    check: probes\n    run: true\n    exit_code: 0\n    passes_when: a\n  - id: b\n    check: probe\n    run: true\n  - id: c\n    check: watch\n    pattern: 'x'\n    requires: [b, a]\n    passes_when: c\n";
        let errors = errors_of(text);
        assert_eq!(errors.len(), 2, "{}", ConfigErrors(errors.clone()));
        let e = error_with(&errors, "`probes`", 4);
        assert!(e.message.contains("did you mean `probe`?"), "{e}");
        error_with(&errors, "needs `passes_when`", 8);
    }

    #[test]
    fn a_probe_or_watch_outside_the_boot_phase_is_a_load_error() {
        for (kind, fields) in [
            ("watch", "pattern: 'x'"),
            ("probe", "run: 'true'\n    exit_code: 0"),
        ] {
            let text = format!("extends: pre-nixos\nconditions:\n  - id: my.check\n    phase: host\n    check: {kind}\n    {fields}\n    passes_when: x\n");
            let errors = errors_of(&text);
            let e = error_with(&errors, "only the boot phase has", 4);
            assert!(e.message.contains(&format!("a `{kind}` check")), "{e}");
            assert!(e.message.contains("phase: boot"), "{e}");
        }
    }

    #[test]
    fn a_builtin_of_another_phase_or_an_unknown_kind_is_located() {
        let text = "conditions:\n  - id: my.q\n    phase: boot\n    check: builtin\n    builtin: qemu\n    passes_when: x\n  - id: my.l\n    check: builtin\n    builtin: login-promt\n    passes_when: x\n";
        let errors = errors_of(text);
        let e = error_with(&errors, "runs in the host phase, not boot", 3);
        assert!(e.message.contains("phase: host"), "{e}");
        let e = error_with(&errors, "no builtin check `login-promt`", 9);
        assert!(e.message.contains("did you mean `login-prompt`?"), "{e}");
    }

    #[test]
    fn a_device_given_as_a_boolean_is_a_load_error() {
        let text = include_str!("../../profiles/pre-nixos.yaml")
            .replace("rng: virtio-rng-pci", "rng: true");
        let line = text.lines().position(|l| l.contains("rng: true")).unwrap() + 1;
        let errors = load_from_str("mine.yaml", &text, &[], &[]).unwrap_err().0;
        let e = error_with(&errors, "named by its QEMU model", line);
        assert!(
            e.message.contains("machine.rng") && e.message.contains("virtio-rng-pci"),
            "{e}"
        );
        let errors = errors_of("extends: pre-nixos\nmachine:\n  nic: {device: false}\n");
        error_with(&errors, "named by its QEMU model", 3);
        // Text stays text where a number is plainly meant as one.
        let ok = "extends: pre-nixos\nvars:\n  port: 2222\n";
        assert_eq!(
            load_from_str("mine.yaml", ok, &[], &[])
                .unwrap()
                .profile
                .vars["port"],
            "2222"
        );
    }

    #[test]
    fn relations_name_each_mistake_in_its_own_words() {
        let text = "extends: pre-nixos\nconditions:\n  - id: my.a\n    requires: [shell.redy]\n    check: probe\n    run: 'true'\n    exit_code: 0\n    passes_when: a\n  - id: my.b\n    requires: [my.b]\n    check: probe\n    run: 'true'\n    exit_code: 0\n    passes_when: b\n  - id: my.c\n    requires: [my.d]\n    check: probe\n    run: 'true'\n    exit_code: 0\n    passes_when: c\n  - id: my.d\n    follows: [my.c]\n    check: probe\n    run: 'true'\n    exit_code: 0\n    passes_when: d\n  - id: my.e\n    explained_by: [my.f]\n    check: probe\n    run: 'true'\n    exit_code: 0\n    passes_when: e\n  - id: my.f\n    check: probe\n    run: 'true'\n    exit_code: 0\n    passes_when: f\n  - id: host.mine\n    check: builtin\n    builtin: resources\n    requires: [shell.ready]\n    passes_when: g\n";
        let errors = errors_of(text);
        assert_eq!(errors.len(), 5, "{}", ConfigErrors(errors.clone()));
        let e = error_with(&errors, "`shell.redy`", 4);
        assert!(
            e.message.contains("no catalog") && e.message.contains("did you mean `shell.ready`?"),
            "{e}"
        );
        error_with(&errors, "names itself", 10);
        let e = error_with(&errors, "makes a cycle", 16);
        assert!(e.message.contains("my.c → my.d → my.c"), "{e}");
        let e = error_with(&errors, "runs after it", 28);
        assert!(e.message.contains("list `my.f` before `my.e`"), "{e}");
        error_with(&errors, "of the later boot phase", 41);
    }

    #[test]
    fn a_number_is_text_wherever_text_is_wanted() {
        // Each loaded before the loader read a merged value, and must load still.
        let text = "extends: pre-nixos\nname: 2024\ndescription: 7\nvars: {1: x}\nmachine:\n  memory: 1610612736\n  machine_type: 440\nconsole:\n  login:\n    user: 1000\nboot:\n  entry: 2\ndiagnostics:\n  x:\n    run: true\nfailure_signatures:\n  - name: 5\n    pattern: 123\nnoise: [123]\nboot_analysis:\n  run: 1\n  slow: {after: 60s, run: 2.50}\n";
        let config = load_from_str("mine.yaml", text, &[], &[]).unwrap();
        let p = &config.profile;
        assert_eq!((p.name.as_str(), p.description.as_str()), ("2024", "7"));
        assert_eq!(p.vars["1"], "x");
        assert_eq!(p.machine.memory.0, 1536 << 20);
        assert_eq!(p.machine.machine_type, "440");
        assert_eq!(
            config.contract.login,
            contract::Login::Automatic {
                user: "1000".into()
            }
        );
        assert!(
            matches!(&config.contract.boot.entry, contract::EntryChoice::Label(re) if re.as_str() == "2")
        );
        assert_eq!(p.diagnostics["x"].run, "true");
        assert_eq!(p.failure_signatures[0].name, "5");
        assert_eq!(p.failure_signatures[0].pattern.0, "123");
        assert_eq!(p.noise[0].0, "123");
        let analysis = p.boot_analysis.as_ref().unwrap();
        assert_eq!(analysis.run, "1");
        assert_eq!(analysis.slow.as_ref().unwrap().run, "2.5");
        // A boolean where a name is wanted is no text: `yes`/`true` there is a mistake.
        let errors = errors_of("extends: pre-nixos\nconsole:\n  login:\n    user: true\n");
        assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
        let e = error_with(&errors, "put it in quotes", 4);
        assert!(e.message.contains("boolean `true`"), "{e}");
    }

    #[test]
    fn what_a_removal_caused_is_not_reported_again() {
        let one = |text: &str, words: &str, line: usize| {
            let errors = errors_of(text);
            assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
            error_with(&errors, words, line);
        };
        // The only pass pattern is no regex: not also "needs `pass` patterns".
        one(
            "extends: pre-nixos\nconditions:\n  - id: my.p\n    requires: [shell.ready]\n    check: probe\n    run: x\n    pass: ['(']\n    passes_when: x\n",
            "invalid regex",
            7,
        );
        // A wrong user: not also "an automatic login needs `console.login.user`".
        one(
            "extends: pre-nixos\nconsole:\n  login:\n    user: [nixos]\n",
            "`console.login.user`: invalid type: sequence",
            4,
        );
        // A typo of the password's key: not also "a password login needs …".
        one(
            "extends: pre-nixos\nconsole:\n  login:\n    mode: password\n    pasword: {env: PW}\n",
            "did you mean `password`?",
            5,
        );
        // A key that is no name: only it goes, not the whole `vars` (the base's with it).
        one(
            "extends: pre-nixos\nvars:\n  true: x\n",
            "a key in `vars` is a boolean",
            3,
        );
        one(
            "extends: pre-nixos\nmachine:\n  [a]: 1\n",
            "a key in `machine` is a list",
            3,
        );
        // A variable whose value was wrong: its placeholders are not unknown.
        one("extends: pre-nixos\nvars:\n  unit: [a]\n", "`vars.unit`", 3);
    }

    #[test]
    fn an_empty_section_under_extends_keeps_the_base() {
        let base = load("pre-nixos").unwrap();
        let text = "extends: pre-nixos\nmachine:\n  # memory: 2G\n  # cpus: 4\ntimeouts:\n";
        let mine = load_from_str("mine.yaml", text, &[], &[]).unwrap();
        let (m, b) = (&mine.profile.machine, &base.profile.machine);
        assert!(!b.disks.is_empty(), "the base has disks");
        assert_eq!(m.disks.len(), b.disks.len());
        assert_eq!((m.memory, m.rng.as_deref()), (b.memory, b.rng.as_deref()));
        assert_eq!(
            mine.profile.timeouts.conditions.len(),
            base.profile.timeouts.conditions.len()
        );
        // A null over a scalar still replaces it: `rng:` drops the base's device.
        let mine = load_from_str(
            "mine.yaml",
            "extends: pre-nixos\nmachine:\n  rng:\n",
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(mine.profile.machine.rng, None);
        assert!(b.rng.is_some(), "the base has an rng");
    }

    #[test]
    fn an_unknown_var_override_suggests_the_nearest() {
        let over = [("vgg".to_string(), "x".to_string())];
        let errs = load_from_str("mine.yaml", "extends: pre-nixos\n", &[], &over).unwrap_err();
        assert!(
            errs.first().message.contains("did you mean `vg`?"),
            "{errs}"
        );
    }

    #[test]
    fn unknown_profile_name_lists_embedded() {
        let err = load("nope").unwrap_err().first().clone();
        assert!(err.message.contains("pre-nixos"), "{err}");
    }
}
