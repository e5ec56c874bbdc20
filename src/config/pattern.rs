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
    /// Fill `{var}` placeholders with regex-escaped values and compile.
    pub fn resolve(&self, vars: &BTreeMap<String, String>) -> Result<Regex, String> {
        let text = fill(&self.0, vars, regex::escape)?;
        Regex::new(&text).map_err(|e| format!("pattern `{}`: {e}", self.0))
    }
}

/// Replace `{name}` by `escape(vars[name])`. `{{` and `}}` stay literal braces (regex
/// repetitions like `{2,3}` contain a digit first, so they are left alone too).
pub fn fill(
    text: &str,
    vars: &BTreeMap<String, String>,
    escape: impl Fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let is_var = name_len > 0
            && after[name_len..].starts_with('}')
            && after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if is_var {
            let name = &after[..name_len];
            let value = vars.get(name).ok_or_else(|| {
                format!("unknown variable `{{{name}}}`: define it under `vars:` in the profile")
            })?;
            out.push_str(&escape(value));
            rest = &after[name_len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
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
    let re = Regex::new(r"\{[A-Za-z_][A-Za-z0-9_]*\}").expect("static regex");
    re.replace_all(text, "x").into_owned()
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
        assert!(PatternSrc("{nope}".into())
            .resolve(&vars)
            .unwrap_err()
            .contains("nope"));
    }
}
