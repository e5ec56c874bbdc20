//! Regex patterns as written in profiles and catalogs. A pattern is validated while the YAML is
//! read, so an invalid one is reported at its file:line:column; `{var}` placeholders are filled
//! in (regex-escaped) when the plan is resolved.

use regex::Regex;
use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Pattern source text, known to compile once its `{var}` placeholders are filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSrc(pub String);

impl PatternSrc {
    /// The names of its capture groups.
    pub fn group_names(&self) -> Vec<String> {
        Regex::new(&fill_any(&self.0))
            .map(|re| re.capture_names().flatten().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Fill `{var}` placeholders with regex-escaped values and compile.
    pub fn resolve(&self, vars: &BTreeMap<String, String>) -> Result<Regex, String> {
        let text = fill(&self.0, vars, regex::escape)?;
        Regex::new(&text).map_err(|e| format!("pattern `{}`: {e}", self.0))
    }
}

/// Replace `{name}` by `escape(vars[name])`, and `{name%suffix}` by the value without that
/// suffix (as in the shell: `{unit%.service}` is `pre-nixos` for `pre-nixos.service`). Braces
/// that do not enclose such a name stay literal (regex repetitions like `{2,3}` start with a
/// digit).
pub fn fill(
    text: &str,
    vars: &BTreeMap<String, String>,
    escape: impl Fn(&str) -> String,
) -> Result<String, String> {
    fill_with(text, |name| vars.get(name).cloned(), escape)
}

/// [`fill`] with any lookup (replay templates look in captures first, then the vars).
pub fn fill_with(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    escape: impl Fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match placeholder(after) {
            Some((name, suffix, len)) => {
                let value = lookup(name).ok_or_else(|| {
                    format!("unknown variable `{{{name}}}`: define it under `vars:` in the profile")
                })?;
                let value = suffix.and_then(|s| value.strip_suffix(s)).unwrap_or(&value);
                out.push_str(&escape(value));
                rest = &after[len..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholder at the start of `after` (the text after a `{`): name, optional `%suffix`,
/// and the length up to and including the closing `}`.
fn placeholder(after: &str) -> Option<(&str, Option<&str>, usize)> {
    let name_len = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    if name_len == 0 || !after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let name = &after[..name_len];
    let tail = &after[name_len..];
    if tail.starts_with('}') {
        return Some((name, None, name_len + 1));
    }
    let suffix = tail.strip_prefix('%')?;
    let end = suffix.find(['}', '{'])?;
    suffix[end..]
        .starts_with('}')
        .then(|| (name, Some(&suffix[..end]), name_len + 1 + end + 1))
}

/// The names of every placeholder in `text`, in order.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match placeholder(after) {
            Some((name, _, len)) => {
                names.push(name);
                rest = &after[len..];
            }
            None => rest = after,
        }
    }
    names
}

impl<'de> Deserialize<'de> for PatternSrc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // Validate with every placeholder standing in as a plain word.
        let probe = fill_any(&text);
        Regex::new(&probe).map_err(|e| {
            de::Error::custom(format!(
                "invalid regex `{text}`: {}",
                first_line(&e.to_string())
            ))
        })?;
        Ok(PatternSrc(text))
    }
}

fn fill_any(text: &str) -> String {
    fill_with(text, |_| Some("x".into()), |s| s.to_string()).unwrap_or_else(|_| text.into())
}

fn first_line(s: &str) -> String {
    // regex errors are multi-line drawings; keep the last line, which says what is wrong.
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_escapes() {
        let vars = BTreeMap::from([("vg".to_string(), "ma.in".to_string())]);
        let re = PatternSrc(r"^\s*{vg}\s*$".into()).resolve(&vars).unwrap();
        assert!(re.is_match(" ma.in "));
        assert!(!re.is_match(" maXin "));
        let re = PatternSrc(r"a{2,3}".into()).resolve(&vars).unwrap();
        assert!(re.is_match("aa"));
        let vars = BTreeMap::from([("unit".to_string(), "pre-nixos.service".to_string())]);
        let re = PatternSrc(r"^{unit%.service}(\.service)?$".into())
            .resolve(&vars)
            .unwrap();
        assert!(re.is_match("pre-nixos") && re.is_match("pre-nixos.service"));
        assert_eq!(placeholders("a{unit%.service}{2}{x}"), vec!["unit", "x"]);
        assert!(PatternSrc("{nope}".into())
            .resolve(&vars)
            .unwrap_err()
            .contains("nope"));
    }
}
