//! Every configuration error in one run, each at its file:line:column.
//!
//! A file is read twice: by serde_yaml_ng into a `Value` (what is deserialized, merged under
//! `extends:`), and by yaml-rust2's marked events into [`Positions`] — where each node's key and
//! value start, by path (`machine.nic.device`, `conditions[3].requires[0]`). Deserializing goes
//! through `serde_path_to_error`, so a failure names its path; the path is looked up in the
//! files the value came from (the most derived one that wrote it), the node is taken out of the
//! value and the rest is read again, until it reads clean ([`deserialize_all`]). Semantic checks
//! locate their errors by path the same way ([`Chain::error`]).

use super::{ConfigError, Source};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// `machine.nic.device`, `conditions[3].requires[0]`.
pub struct Shown<'a>(pub &'a [Seg]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Map,
    Seq,
    Scalar,
}

/// Where a node is: its key (in a mapping) and its value.
#[derive(Debug, Clone, Copy)]
pub struct Spot {
    pub key: Option<Pos>,
    pub value: Pos,
    pub kind: Kind,
}

/// Which part of a node an error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The key (an unknown key; a mapping that lacks something).
    Key,
    /// The value (a wrong value).
    Value,
}

/// The position of every node of one YAML text, by path.
#[derive(Debug, Default)]
pub struct Positions(HashMap<Vec<Seg>, Spot>);

impl Positions {
    pub fn of(text: &str) -> Positions {
        let mut builder = Builder::default();
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        // A text serde_yaml_ng read but this parser does not: what was placed stays placed.
        let _ = parser.load(&mut builder, false);
        builder.positions
    }

    pub fn get(&self, path: &[Seg]) -> Option<&Spot> {
        self.0.get(path)
    }
}

enum Frame {
    Map {
        path: Vec<Seg>,
        key: Option<(String, Pos)>,
        first: bool,
    },
    Seq {
        path: Vec<Seg>,
        next: usize,
    },
    /// Inside a key that is itself a mapping or sequence: not addressable by a path.
    Skip,
}

#[derive(Default)]
struct Builder {
    positions: Positions,
    stack: Vec<Frame>,
}

impl Builder {
    fn node(&mut self, pos: Pos, scalar: Option<String>, kind: Kind) {
        let (path, key_pos) = match self.stack.last_mut() {
            None => (Some(Vec::new()), None),
            Some(Frame::Skip) => (None, None),
            Some(Frame::Map { path, key, first }) => match key.take() {
                None => {
                    // The node is a key. A block mapping's start mark is after its first key,
                    // so the mapping is placed at that key.
                    if std::mem::take(first) {
                        if let Some(spot) = self.positions.0.get_mut(path.as_slice()) {
                            spot.value = pos;
                        }
                    }
                    let name = match (scalar, kind) {
                        (Some(s), Kind::Scalar) => s,
                        _ => "\u{0}".to_string(),
                    };
                    *key = Some((name, pos));
                    if kind != Kind::Scalar {
                        self.stack.push(Frame::Skip);
                    }
                    return;
                }
                Some((name, at)) => {
                    let mut p = path.clone();
                    p.push(Seg::Key(name));
                    (Some(p), Some(at))
                }
            },
            Some(Frame::Seq { path, next }) => {
                let mut p = path.clone();
                p.push(Seg::Index(*next));
                *next += 1;
                (Some(p), None)
            }
        };
        if let Some(path) = &path {
            let spot = Spot {
                key: key_pos,
                value: pos,
                kind,
            };
            self.positions.0.entry(path.clone()).or_insert(spot);
        }
        match (kind, path) {
            (Kind::Scalar, _) => {}
            (_, None) => self.stack.push(Frame::Skip),
            (Kind::Map, Some(path)) => self.stack.push(Frame::Map {
                path,
                key: None,
                first: true,
            }),
            (Kind::Seq, Some(path)) => self.stack.push(Frame::Seq { path, next: 0 }),
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(value, ..) => self.node(pos, Some(value), Kind::Scalar),
            Event::Alias(_) => self.node(pos, None, Kind::Scalar),
            Event::MappingStart(..) => self.node(pos, None, Kind::Map),
            Event::SequenceStart(..) => self.node(pos, None, Kind::Seq),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// A source with the positions of its nodes.
#[derive(Debug)]
pub struct Doc {
    pub source: Source,
    pub positions: Positions,
}

impl Doc {
    /// The text as a YAML value, and where each of its nodes is; a syntax error is located by
    /// serde_yaml_ng (no part of a file that does not parse can be trusted).
    pub fn parse(source: Source) -> Result<(Doc, Value), ConfigError> {
        let value: Value = serde_yaml_ng::from_str(&source.text).map_err(|e| {
            let loc = e.location();
            let message = e.to_string();
            // serde_yaml_ng appends " at line L column C"; the position goes up front instead.
            let message = match message.find(" at line ") {
                Some(i) if loc.is_some() => message[..i].to_string(),
                _ => message,
            };
            ConfigError {
                file: source.name.clone(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: format!("{message} — fix the YAML (see docs/profiles.md)"),
            }
        })?;
        let positions = Positions::of(&source.text);
        Ok((Doc { source, positions }, value))
    }
}

/// The files one value was merged from, the most derived first (a profile, then what it
/// `extends`): a path is located in the file that wrote it.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a [Doc]);

impl<'a> Chain<'a> {
    /// The file that wrote `path` and the deepest node of it on the path that it holds.
    /// Mappings merge, so below a mapping any file of the chain may hold the node; a list or
    /// a scalar replaces the base's whole, so below one only the file that wrote it counts.
    fn locate(&self, path: &[Seg]) -> (&'a Doc, Option<(Spot, usize)>) {
        let mut docs: Vec<&'a Doc> = self.0.iter().collect();
        let mut best: (&'a Doc, Option<(Spot, usize)>) = (docs[0], None);
        for depth in 0..=path.len() {
            let prefix = &path[..depth];
            let Some((doc, spot)) = docs
                .iter()
                .find_map(|d| d.positions.get(prefix).map(|s| (*d, *s)))
            else {
                break;
            };
            best = (doc, Some((spot, depth)));
            if spot.kind != Kind::Map {
                docs = vec![doc];
            }
        }
        best
    }

    /// The name of the file that wrote `path` (or its nearest ancestor).
    pub fn file_of(&self, path: &[Seg]) -> String {
        self.locate(path).0.source.name.clone()
    }

    /// An error about the node at `path`; where the file lacks it, at its nearest ancestor.
    pub fn error(&self, path: &[Seg], at: At, message: String) -> ConfigError {
        let (doc, found) = self.locate(path);
        let pos = found.map(|(spot, depth)| match (at, spot.key) {
            (At::Key, Some(k)) if depth == path.len() => k,
            // An ancestor stands in: point at its key, where what is missing belongs.
            (_, Some(k)) if depth < path.len() => k,
            _ => spot.value,
        });
        ConfigError {
            file: doc.source.name.clone(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
        }
    }

    /// An error at `needle` inside the text of the value at `path` (a `{var}` in a pattern).
    pub fn error_in(&self, path: &[Seg], needle: &str, message: String) -> ConfigError {
        let mut err = self.error(path, At::Value, message);
        let (doc, _) = self.locate(path);
        if let (Some(line), Some(col)) = (err.line, err.column) {
            let text = &doc.source.text;
            let start: usize = text
                .split_inclusive('\n')
                .take(line - 1)
                .map(str::len)
                .sum();
            let start = text[start..]
                .char_indices()
                .nth(col - 1)
                .map(|(i, _)| start + i)
                .unwrap_or(text.len());
            if let Some(found) = text[start..].find(needle).map(|i| start + i) {
                err.line = Some(text[..found].matches('\n').count() + 1);
                let line_start = text[..found].rfind('\n').map(|i| i + 1).unwrap_or(0);
                err.column = Some(text[line_start..found].chars().count() + 1);
            }
        }
        err
    }
}

/// What deserializing with every error collected gives.
pub struct Parsed<T> {
    /// None when the top level itself cannot be read.
    pub value: Option<T>,
    pub errors: Vec<ConfigError>,
    /// What was taken out to read the rest.
    pub dropped: Dropped,
}

/// The nodes taken out of a value, by their paths in the file.
#[derive(Debug, Default)]
pub struct Dropped {
    paths: Vec<Vec<Seg>>,
    /// The `id`s of list entries taken out (a condition with an error): a reference to one is
    /// not reported again as unknown.
    pub ids: BTreeSet<String>,
}

impl Dropped {
    /// The path in the file of a path into what is left (list entries after a dropped one
    /// moved up).
    pub fn original(&self, current: &[Seg]) -> Vec<Seg> {
        let mut out = Vec::with_capacity(current.len());
        for seg in current {
            let seg = match seg {
                Seg::Index(i) => {
                    let gone = |n: usize| {
                        self.paths.iter().any(|p| {
                            p.len() == out.len() + 1
                                && p[..out.len()] == out[..]
                                && p[out.len()] == Seg::Index(n)
                        })
                    };
                    let n = (0..).filter(|n| !gone(*n)).nth(*i).unwrap_or(*i);
                    Seg::Index(n)
                }
                k => k.clone(),
            };
            out.push(seg);
        }
        out
    }

    fn contains(&self, path: &[Seg]) -> bool {
        self.paths.iter().any(|p| p == path)
    }

    /// Was something taken out at `path`, under it or above it? (What lacks it then was
    /// reported already.)
    pub fn touches(&self, path: &[Seg]) -> bool {
        self.paths
            .iter()
            .any(|p| p.starts_with(path) || path.starts_with(p))
    }
}

/// Each round takes a node out; a file with more errors than this is answered with these.
const MAX_ERRORS: usize = 50;

/// Deserialize `value`, collecting every error: each failing node is reported at its position
/// in `chain` and taken out, and the rest is read again. A node that lacks a required key is
/// taken out whole (a list entry, a section), and what then lacks it is not reported twice.
pub fn deserialize_all<T: DeserializeOwned>(mut value: Value, chain: Chain) -> Parsed<T> {
    let mut errors = Vec::new();
    let mut dropped = Dropped::default();
    for _ in 0..MAX_ERRORS {
        let lenient = super::scalar::Lenient(value.clone());
        let err = match serde_path_to_error::deserialize::<_, T>(lenient) {
            Ok(t) => {
                return Parsed {
                    value: Some(t),
                    errors,
                    dropped,
                }
            }
            Err(e) => e,
        };
        let current: Vec<Seg> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        let path = dropped.original(&current);
        let inner = err.into_inner().to_string();
        // A key that is no name (`true`, a list) fails its mapping: only that key goes.
        if let Some((seg, what)) = take_bad_key(&mut value, &current, &inner) {
            let of = entry_id(&value, &current)
                .map(|id| format!(" (of `{id}`)"))
                .unwrap_or_default();
            let within = match path.as_slice() {
                [] => "the top level".to_string(),
                p => format!("`{}`{of}", Shown(p)),
            };
            let key_path = [&path[..], &[seg]].concat();
            let hint = match what {
                "a boolean" | "empty (null)" => " — put it in quotes if you mean the text",
                _ => "",
            };
            let message = format!("a key in {within} is {what}: a key is a name{hint}");
            errors.push(chain.error(&key_path, At::Key, message));
            dropped.paths.push(key_path);
            continue;
        }
        match explain(&path, entry_id(&value, &current), &inner) {
            // Its key was taken out for an error already reported.
            Explained::Missing(field, _)
                if dropped.contains(&[&path[..], &[key(&field)]].concat()) => {}
            Explained::Missing(_, message) => errors.push(chain.error(&path, At::Key, message)),
            Explained::UnknownKey(message) => errors.push(chain.error(&path, At::Key, message)),
            Explained::Value(message) => errors.push(chain.error(&path, At::Value, message)),
        }
        if current.is_empty() || !take_out(&mut value, &current, &mut dropped.ids) {
            return Parsed {
                value: None,
                errors,
                dropped,
            };
        }
        dropped.paths.push(path);
    }
    if let Some(first) = errors.first() {
        errors.push(ConfigError {
            message: format!("more than {MAX_ERRORS} errors: fix these first"),
            ..first.clone()
        });
    }
    Parsed {
        value: None,
        errors,
        dropped,
    }
}

enum Explained {
    /// A mapping lacks a required key (its name, and the message).
    Missing(String, String),
    UnknownKey(String),
    Value(String),
}

/// The `id` (or `name`) of the innermost list entry on `path`, to name it in messages.
fn entry_id(value: &Value, path: &[Seg]) -> Option<String> {
    let mut node = value;
    let mut found = None;
    for seg in path {
        let next = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => {
                m.iter().find(|(key, _)| key_is(key, k)).map(|(_, v)| v)
            }
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        if matches!(seg, Seg::Index(_)) {
            let named = next.get("id").or_else(|| next.get("name"));
            found = named.and_then(Value::as_str).map(str::to_string).or(found);
        }
        node = next;
    }
    found
}

/// serde's words, put in the file's terms, with the nearest name for a typo.
fn explain(path: &[Seg], id: Option<String>, inner: &str) -> Explained {
    let quoted: Vec<&str> = inner.split('`').skip(1).step_by(2).collect();
    let of = id.map(|id| format!(" (of `{id}`)")).unwrap_or_default();
    let parent = |path: &[Seg]| match path {
        [] => "the top level".to_string(),
        p => format!("`{}`{of}", Shown(p)),
    };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = quoted.iter().skip(1).copied().collect();
        let within = parent(&path[..path.len().saturating_sub(1)]);
        let keys = match expected.is_empty() {
            true => "it takes no keys".to_string(),
            false => format!("its keys: {}", expected.join(", ")),
        };
        return Explained::UnknownKey(format!(
            "unknown key `{name}` in {within}{} ({keys}; docs/profiles.md)",
            did_you_mean(name, expected.iter().copied())
        ));
    }
    if let Some(rest) = inner.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = quoted.iter().skip(1).copied().collect();
        return Explained::Value(format!(
            "`{}`{of} is `{name}`: write one of {}{}",
            Shown(path),
            expected.join(", "),
            did_you_mean(name, expected.iter().copied())
        ));
    }
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("").to_string();
        let message = format!("{} needs `{name}` (docs/profiles.md)", parent(path));
        return Explained::Missing(name, message);
    }
    let hint = match inner.starts_with("invalid type: ") && inner.ends_with("expected a string") {
        true => " — put it in quotes if you mean the text",
        false => "",
    };
    match path {
        [] => Explained::Value(format!("{inner}{hint}")),
        p => Explained::Value(format!("`{}`{of}: {inner}{hint}", Shown(p))),
    }
}

/// The node at `path`.
fn node_mut<'v>(value: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    let mut node = value;
    for seg in path {
        let next = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => {
                m.iter_mut().find(|(key, _)| key_is(key, k)).map(|(_, v)| v)
            }
            (Seg::Index(i), Value::Sequence(s)) => s.get_mut(*i),
            (_, Value::Tagged(t)) => Some(&mut t.value),
            _ => None,
        };
        node = next?;
    }
    Some(node)
}

/// When the error at `path` is about a key of the mapping there that is no name (serde says
/// `invalid type: boolean …` of the mapping, not of the key), take that key out: its segment
/// (as the file's positions name it) and what it is.
fn take_bad_key(value: &mut Value, path: &[Seg], inner: &str) -> Option<(Seg, &'static str)> {
    let unexpected = inner.strip_prefix("invalid type: ")?;
    let Some(Value::Mapping(m)) = node_mut(value, path) else {
        return None;
    };
    let (bad, seg, what) = m.keys().find_map(|k| {
        let (word, seg, what) = match k {
            Value::Bool(b) => ("boolean", b.to_string(), "a boolean"),
            Value::Null => ("unit value", "~".to_string(), "empty (null)"),
            // yaml-rust2's events name a key that is itself a list or mapping so.
            Value::Sequence(_) => ("sequence", "\u{0}".to_string(), "a list"),
            Value::Mapping(_) => ("map", "\u{0}".to_string(), "a mapping"),
            Value::Tagged(_) => ("enum", "\u{0}".to_string(), "a tagged value"),
            Value::String(_) | Value::Number(_) => return None,
        };
        unexpected
            .starts_with(word)
            .then(|| (k.clone(), Seg::Key(seg), what))
    })?;
    m.remove(&bad);
    Some((seg, what))
}

/// Take the node at `path` out of `value`; a list entry's `id` goes into `ids`.
fn take_out(value: &mut Value, path: &[Seg], ids: &mut BTreeSet<String>) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let Some(mut node) = node_mut(value, parents) else {
        return false;
    };
    if let Value::Tagged(t) = node {
        node = &mut t.value;
    }
    match (last, node) {
        (Seg::Key(k), Value::Mapping(m)) => {
            let found = m.keys().find(|key| key_is(key, k)).cloned();
            found.and_then(|key| m.remove(&key)).is_some()
        }
        (Seg::Index(i), Value::Sequence(s)) if *i < s.len() => {
            let gone = s.remove(*i);
            if let Some(id) = gone.get("id").and_then(Value::as_str) {
                ids.insert(id.to_string());
            }
            true
        }
        _ => false,
    }
}

fn key_is(key: &Value, name: &str) -> bool {
    match key {
        Value::String(s) => s == name,
        Value::Number(n) => n.to_string() == name,
        Value::Bool(b) => b.to_string() == name,
        _ => false,
    }
}

/// The candidate nearest to `word`, if it is near enough to be what was meant.
pub fn nearest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| 3 * d <= word.chars().count().max(c.chars().count()) + 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// " — did you mean `x`?", or nothing.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    nearest(word, candidates)
        .map(|c| format!(" — did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &[Seg]) -> Vec<Seg> {
        s.to_vec()
    }

    #[test]
    fn positions_of_keys_values_and_list_entries() {
        let text = "a:\n  b: [x, 'y']\n  c:\n    - d: 1\n      e: two\n";
        let p = Positions::of(text);
        let ab = p.get(&path(&[key("a"), key("b")])).unwrap();
        assert_eq!(ab.key, Some(Pos { line: 2, column: 3 }));
        assert_eq!(ab.value, Pos { line: 2, column: 6 });
        let y = p.get(&path(&[key("a"), key("b"), Seg::Index(1)])).unwrap();
        assert_eq!(
            y.value,
            Pos {
                line: 2,
                column: 10
            }
        );
        let e = p
            .get(&path(&[key("a"), key("c"), Seg::Index(0), key("e")]))
            .unwrap();
        assert_eq!(e.key, Some(Pos { line: 5, column: 7 }));
        let a = p.get(&path(&[key("a")])).unwrap();
        assert_eq!((a.key, a.value.line), (Some(Pos { line: 1, column: 1 }), 2));
    }

    #[test]
    fn suggestions_are_near_names_only() {
        assert_eq!(
            nearest("shell.redy", ["shell.ready", "shell.root"]),
            Some("shell.ready")
        );
        assert_eq!(nearest("cpuz", ["cpus", "memory", "nic"]), Some("cpus"));
        assert_eq!(nearest("frobnicator", ["qemu", "nix", "resources"]), None);
    }
}
