//! Human-written quantities in profiles and catalogs: durations ("90s", "5m", "1m30s", "500ms")
//! and sizes ("8G", "512M"). Parse errors surface through serde, so the YAML loader reports
//! them with file:line:column.

use serde::{de, Deserialize, Deserializer};
use std::time::Duration;

/// The longest duration a profile may write: longer waits are typos, and the engine scales
/// waits (TCG, --timeout-scale) without overflow only below some bound.
const MAX_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);

/// A duration as written in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    pub fn parse(text: &str) -> Result<Span, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "`{text}` is not a duration: write e.g. 30s, 5m, 1m30s, 500ms"
                ));
            }
            let number: f64 = rest[..digits]
                .parse()
                .map_err(|_| format!("`{text}`: bad number `{}`", &rest[..digits]))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let seconds = match unit {
                "ms" => number / 1000.0,
                "s" | "" => number,
                "m" | "min" => number * 60.0,
                "h" => number * 3600.0,
                other => {
                    return Err(format!(
                        "`{text}`: unknown unit `{other}` (use ms, s, m or h)"
                    ))
                }
            };
            total = Duration::try_from_secs_f64(seconds)
                .ok()
                .and_then(|d| total.checked_add(d))
                .filter(|t| *t <= MAX_SPAN)
                .ok_or_else(|| too_long(text))?;
        }
        Ok(Span(total))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Some(Duration::from_secs(s))
                .filter(|t| *t <= MAX_SPAN)
                .map(Span)
                .ok_or_else(|| de::Error::custom(too_long(&s.to_string()))),
            Raw::Text(t) => Span::parse(&t).map_err(de::Error::custom),
        }
    }
}

fn too_long(text: &str) -> String {
    format!("`{text}` is longer than a year (366 days): write a shorter duration")
}

/// A byte size as written in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(text: &str) -> Result<Size, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let number: u64 = t[..split]
            .parse()
            .map_err(|_| format!("`{text}` is not a size: write e.g. 8G, 512M"))?;
        let factor: u64 = match t[split..]
            .trim()
            .trim_end_matches("iB")
            .trim_end_matches('B')
        {
            "" => 1,
            "K" | "k" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            "T" => 1 << 40,
            other => {
                return Err(format!(
                    "`{text}`: unknown size unit `{other}` (use K, M, G, T)"
                ))
            }
        };
        number
            .checked_mul(factor)
            .map(Size)
            .ok_or_else(|| format!("`{text}` is too large a size (at most 16 EiB)"))
    }

    pub fn mib(self) -> u64 {
        self.0 >> 20
    }
}

impl std::fmt::Display for Span {
    /// As written in profiles: `90s`, `1m30s`, `500ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        let (m, s, rest) = (ms / 60_000, ms / 1000 % 60, ms % 1000);
        match (m, s, rest) {
            (0, 0, r) => write!(f, "{r}ms"),
            (0, s, 0) => write!(f, "{s}s"),
            (m, 0, 0) => write!(f, "{m}m"),
            (m, s, 0) => write!(f, "{m}m{s}s"),
            _ => write!(f, "{:.3}s", self.0.as_secs_f64()),
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0 as f64;
        if self.0 >= 1 << 30 {
            write!(f, "{:.1} GiB", b / (1u64 << 30) as f64)
        } else {
            write!(f, "{:.0} MiB", b / (1u64 << 20) as f64)
        }
    }
}

/// `8G`, or a number of bytes (`1610612736`).
impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size such as 8G or 512M, or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("`{v}` is not a size: write e.g. 8G, 512M")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Size::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Span::parse("90s").unwrap().0, Duration::from_secs(90));
        assert_eq!(Span::parse("1m30s").unwrap().0, Duration::from_secs(90));
        assert_eq!(Span::parse("500ms").unwrap().0, Duration::from_millis(500));
        assert!(Span::parse("ten").is_err());
        assert!(Span::parse("5 parsecs").is_err());
    }

    /// Found with `fuzz/` (profile_loader): these panicked in `Duration::from_secs_f64`, in the
    /// `Duration` sum and in the size product (overflow) instead of being errors.
    #[test]
    fn out_of_range_values_are_errors() {
        for text in [
            "99999999999999999999h",
            "18446744073709551615s18446744073709551615s",
            "8784h1s",
        ] {
            assert!(Span::parse(text).is_err(), "{text}");
        }
        let year = Duration::from_secs(366 * 24 * 3600);
        assert_eq!(Span::parse("8784h").unwrap().0, year);
        let yaml = |y: &str| serde_yaml_ng::from_str::<Span>(y).map(|s| s.0);
        assert!(yaml("31622401").is_err());
        assert_eq!(yaml("31622400").unwrap(), year);
        for text in ["99999999999T", "18446744073709551616", "16777216T"] {
            assert!(Size::parse(text).is_err(), "{text}");
        }
        assert_eq!(Size::parse("16777215T").unwrap().0, 16777215 << 40);
    }

    #[test]
    fn sizes() {
        let yaml = |y: &str| serde_yaml_ng::from_str::<Size>(y).map(|s| s.0);
        // A number of bytes, as a profile wrote `memory: 1610612736` before.
        assert_eq!(yaml("1610612736").unwrap(), 1536 << 20);
        assert_eq!(yaml("'1610612736'").unwrap(), 1536 << 20);
        assert!(yaml("-1").is_err() && yaml("true").is_err() && yaml("1.5").is_err());
        assert_eq!(Size::parse("8G").unwrap().0, 8 << 30);
        assert_eq!(Size::parse("512MiB").unwrap().0, 512 << 20);
        assert!(Size::parse("lots").is_err());
    }
}
