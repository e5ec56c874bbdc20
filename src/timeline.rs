//! The boot timeline, pure: which console lines mark the profile's milestones (the first line
//! each pattern matches), the slowest units in the guest's own boot analysis, and the
//! one-line summary. The live boot and the replay feed it the same normalised lines.

use crate::model::{Milestone, Timeline, UnitTime};
use regex::Regex;

/// How many of the guest's slowest units the timeline keeps.
pub const SLOWEST_UNITS: usize = 10;
/// A milestone quotes at most this much of its line (a flood line may be 64 KiB).
const MAX_LINE_CHARS: usize = 300;

/// Finds each milestone at its first line, in a stream of console lines.
pub struct MilestoneScanner {
    patterns: Vec<(String, Regex)>,
    found: Vec<Option<Milestone>>,
    left: usize,
}

impl MilestoneScanner {
    pub fn new(patterns: Vec<(String, Regex)>) -> Self {
        let left = patterns.len();
        MilestoneScanner {
            found: vec![None; left],
            patterns,
            left,
        }
    }

    /// Whether every milestone has been found (the rest of the log need not be read).
    pub fn done(&self) -> bool {
        self.left == 0
    }

    /// One normalised console line, with its time (ms since the run started) where known and
    /// its line in a replayed log.
    pub fn line(&mut self, line: &str, at_ms: Option<u64>, log_line: Option<u64>) {
        if self.done() {
            return;
        }
        // One line marks one milestone, the first of the profile's it matches: GRUB's
        // "Welcome to GRUB!" is the loader, not userspace's "Welcome to …!".
        for ((name, re), found) in self.patterns.iter().zip(&mut self.found) {
            if found.is_none() && re.is_match(line) {
                let mut text = crate::model::one_line(line);
                if let Some((cut, _)) = text.char_indices().nth(MAX_LINE_CHARS) {
                    text.truncate(cut);
                    text.push('…');
                }
                *found = Some(Milestone {
                    name: name.clone(),
                    at_ms,
                    line: text,
                    log_line,
                });
                self.left -= 1;
                break;
            }
        }
    }

    /// The milestones found, in the order they came (the profile's for equal times).
    pub fn finish(self) -> Vec<Milestone> {
        let mut found: Vec<Milestone> = self.found.into_iter().flatten().collect();
        found.sort_by_key(|m| (m.at_ms, m.log_line));
        found
    }
}

/// Scan normalised console text line by line, each line timed by `time_at(its offset)`, up to
/// the last milestone: the live boot over its transcript, the replay over a run's serial.raw
/// normalised again with its recorded arrival times, so both time a line alike (a screen drawn
/// with cursor moves is one raw line long before its text is complete).
pub fn scan_text(
    scanner: &mut MilestoneScanner,
    text: &str,
    time_at: impl Fn(usize) -> Option<u64>,
) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if scanner.done() {
            break;
        }
        let at = time_at(offset);
        offset += line.len();
        scanner.line(line.trim_end_matches(['\n', '\r']), at, None);
    }
}

/// How long the boot took up to its last milestone, from power-on.
pub fn boot_took(
    power_on_ms: Option<u64>,
    milestones: &[Milestone],
) -> Option<std::time::Duration> {
    let last = milestones.iter().filter_map(|m| m.at_ms).max()?;
    Some(std::time::Duration::from_millis(
        last.saturating_sub(power_on_ms?),
    ))
}

/// A systemd time span (`1min 2.345s`, `812ms`, `1.2s`, `3us`) in ms.
pub fn parse_span(text: &str) -> Option<u64> {
    let mut total = 0.0;
    let mut any = false;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit) = part.split_at(split);
        let value: f64 = number.parse().ok()?;
        let ms = match unit {
            "h" => 3_600_000.0,
            "min" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            _ => return None,
        };
        total += value * ms;
        any = true;
    }
    any.then_some(total.round() as u64)
}

/// The slowest units of a boot analysis: lines `<span> <unit>` (systemd-analyze blame), slowest
/// first, at most [`SLOWEST_UNITS`].
pub fn slowest_units(output: &str) -> Vec<UnitTime> {
    let mut units: Vec<UnitTime> = output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            // The unit is the last word; the span is everything before it.
            let (span, unit) = line.rsplit_once(char::is_whitespace)?;
            let has_kind = unit.rsplit_once('.').is_some_and(|(n, kind)| {
                !n.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase())
            });
            if !has_kind {
                return None;
            }
            Some(UnitTime {
                unit: unit.to_string(),
                ms: parse_span(span.trim())?,
            })
        })
        .collect();
    units.sort_by_key(|u| std::cmp::Reverse(u.ms));
    units.truncate(SLOWEST_UNITS);
    units
}

/// The milestones in one line, timed from power-on where known: `firmware +0.4s · … · login
/// prompt +45.2s`. None when there are none.
pub fn summary_line(t: &Timeline) -> Option<String> {
    if t.milestones.is_empty() {
        return None;
    }
    let parts: Vec<String> = t
        .milestones
        .iter()
        .map(|m| match (m.at_ms, m.log_line) {
            (Some(at), _) => {
                let from = t.power_on_ms.unwrap_or(0);
                format!(
                    "{} +{:.1}s",
                    m.name,
                    at.saturating_sub(from) as f64 / 1000.0
                )
            }
            (None, Some(line)) => format!("{} (line {line})", m.name),
            (None, None) => m.name.clone(),
        })
        .collect();
    let from = match t.power_on_ms {
        Some(_) => "from power-on",
        None => "from the run's start",
    };
    let timed = t.milestones.iter().any(|m| m.at_ms.is_some());
    Some(match timed {
        true => format!("{} ({from})", parts.join(" · ")),
        false => parts.join(" · "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> MilestoneScanner {
        MilestoneScanner::new(vec![
            ("bootloader".into(), Regex::new("ISOLINUX \\d").unwrap()),
            ("kernel".into(), Regex::new("Linux version \\d").unwrap()),
            ("login prompt".into(), Regex::new("\\S login: ").unwrap()),
        ])
    }

    #[test]
    fn each_milestone_is_its_first_line_in_the_profiles_order() {
        let mut s = scanner();
        s.line("host login: ", Some(9000), None);
        s.line("ISOLINUX 6.04 Copyright", Some(800), None);
        s.line("ISOLINUX 6.04 again", Some(900), None);
        s.line("host login: nixos (automatic login)", Some(9500), None);
        assert!(!s.done(), "the kernel was never seen");
        // A line marks one milestone only.
        let mut both = MilestoneScanner::new(vec![
            ("bootloader".into(), Regex::new("GRUB").unwrap()),
            ("userspace".into(), Regex::new("Welcome to .+!").unwrap()),
        ]);
        both.line("Welcome to GRUB!", Some(1), None);
        both.line("Welcome to Debian!", Some(2), None);
        let got: Vec<_> = both
            .finish()
            .into_iter()
            .map(|m| (m.name, m.at_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("bootloader".into(), Some(1)),
                ("userspace".into(), Some(2))
            ]
        );
        let found = s.finish();
        let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["bootloader", "login prompt"]);
        assert_eq!(found[0].at_ms, Some(800));
        assert_eq!(found[1].at_ms, Some(9000));
        assert_eq!(found[1].line, "host login:");
    }

    #[test]
    fn reads_systemd_spans() {
        assert_eq!(parse_span("1min 2.345s"), Some(62_345));
        assert_eq!(parse_span("812ms"), Some(812));
        assert_eq!(parse_span("1h 1min"), Some(3_660_000));
        assert_eq!(parse_span("3us"), Some(0));
        assert_eq!(parse_span("fast"), None);
        assert_eq!(parse_span(""), None);
    }

    #[test]
    fn keeps_the_slowest_units_from_blame_lines() {
        let out = "Startup finished in 2.1s (kernel) + 14.3s (userspace) = 16.4s\n\
                   graphical.target reached after 14.2s in userspace.\n\
                   \x20    5.012s pre-nixos.service\n\
                   \x20  812ms systemd-udev-settle.service\n\
                   1min 2.5s slow-thing.service\n\
                   no systemd-analyze\n";
        let units = slowest_units(out);
        let got: Vec<_> = units.iter().map(|u| (u.unit.as_str(), u.ms)).collect();
        assert_eq!(
            got,
            [
                ("slow-thing.service", 62_500),
                ("pre-nixos.service", 5012),
                ("systemd-udev-settle.service", 812)
            ]
        );
    }

    #[test]
    fn summary_times_from_power_on_or_names_log_lines() {
        let m = |name: &str, at_ms, log_line| Milestone {
            name: name.into(),
            at_ms,
            line: String::new(),
            log_line,
        };
        let t = Timeline {
            power_on_ms: Some(2000),
            milestones: vec![
                m("bootloader", Some(2800), None),
                m("login prompt", Some(47_200), None),
            ],
            guest: None,
        };
        assert_eq!(
            summary_line(&t).unwrap(),
            "bootloader +0.8s · login prompt +45.2s (from power-on)"
        );
        let replayed = Timeline {
            power_on_ms: None,
            milestones: vec![m("userspace", None, Some(14))],
            guest: None,
        };
        assert_eq!(summary_line(&replayed).unwrap(), "userspace (line 14)");
        assert_eq!(summary_line(&Timeline::default()), None);
    }
}
