//! Where does a kernel command line send the console?
//!
//! Linux registers every `console=` device, and the **last** one becomes `/dev/console` — the
//! device init (systemd) writes to and where the login prompt of a serial-only VM appears. So
//! `console=ttyS0,115200n8 console=tty0` prints kernel messages on the serial port but boots
//! into a silent serial line: that is the warning case. No `console=` naming the port at all is
//! the failure case. The port is the caller's (`ttyS0`, `ttyS1`, `hvc0`).
//!
//! Only real command lines are analysed (see [`crate::configs`]): a menu label saying
//! "console=ttyS0" proves nothing.

use crate::configs::BootEntry;

/// The console devices one command line selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsoleUse {
    /// Every `console=` value in order, options included (`ttyS0,115200n8`).
    pub consoles: Vec<String>,
    /// Some `console=` names the port.
    pub has_port: bool,
    /// The last `console=` names the port, so it becomes /dev/console.
    pub port_last: bool,
}

impl ConsoleUse {
    /// The value of the last `console=` (the one that becomes /dev/console).
    pub fn primary(&self) -> Option<&str> {
        self.consoles.last().map(String::as_str)
    }
}

/// Splits a kernel command line the way the kernel does: on spaces, with double quotes
/// grouping; `--` ends the kernel's parameters (the rest goes to init).
pub fn kernel_params(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut has = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                has = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if has {
                    if cur == "--" {
                        return out;
                    }
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has && cur != "--" {
        out.push(cur);
    }
    out
}

/// Splits a command line into its words as written: quotes kept, and the `--` tail (init's
/// arguments) kept too — for passing a command line on (a direct boot), not for reading it.
pub fn cmdline_words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                cur.push(c);
            }
            c if c.is_whitespace() && !in_quote => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The PC's legacy UART I/O ports, in the order the kernel numbers them (COM1 … COM4).
const LEGACY_UART_PORTS: [&str; 4] = ["0x3f8", "0x2f8", "0x3e8", "0x2e8"];

/// The device part of a `console=` value, normalised like the kernel does: `ttyS0,115200n8`
/// → `ttyS0`; a bare number means `ttyS<n>`; `uart[8250],io,0x3f8…` at COM<n+1>'s port is
/// `ttyS<n>`.
pub fn console_device(value: &str) -> String {
    let dev = value.split(',').next().unwrap_or("");
    if dev.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("ttyS{dev}");
    }
    if dev == "uart" || dev == "uart8250" {
        let port = value.split(',').nth(2).unwrap_or("");
        if let Some(n) = LEGACY_UART_PORTS
            .iter()
            .position(|p| p.eq_ignore_ascii_case(port))
        {
            return format!("ttyS{n}");
        }
    }
    dev.to_string()
}

/// Analyses one kernel command line for the console device `port` (`ttyS0`, `hvc0`).
pub fn analyse(cmdline: &str, port: &str) -> ConsoleUse {
    let consoles: Vec<String> = kernel_params(cmdline)
        .into_iter()
        .filter_map(|p| p.strip_prefix("console=").map(str::to_string))
        .collect();
    let is_port = |v: &String| console_device(v) == port;
    ConsoleUse {
        has_port: consoles.iter().any(is_port),
        port_last: consoles.last().is_some_and(is_port),
        consoles,
    }
}

/// Overall outcome of [`judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleStatus {
    /// Every Linux boot entry sends the console to the port (warnings may still exist).
    Pass,
    /// At least one Linux boot entry does not.
    Fail,
    /// No Linux boot entry was found at all, so nothing proves a serial console.
    NoEntries,
}

/// One finding about one boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleFinding {
    /// Config file path inside the image.
    pub config: String,
    /// 1-based line of the kernel command line (or of the entry when it has none).
    pub line: usize,
    pub label: String,
    /// What is wrong, in one line.
    pub message: String,
}

impl std::fmt::Display for ConsoleFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} '{}': {}",
            self.config, self.line, self.label, self.message
        )
    }
}

/// The verdict over all boot entries of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleVerdict {
    pub status: ConsoleStatus,
    /// Entries without the port.
    pub failures: Vec<ConsoleFinding>,
    /// Entries where the port is present but not the last `console=`.
    pub warnings: Vec<ConsoleFinding>,
    /// How many Linux entries were judged.
    pub checked: usize,
}

impl ConsoleVerdict {
    /// True for [`ConsoleStatus::Pass`].
    pub fn is_pass(&self) -> bool {
        self.status == ConsoleStatus::Pass
    }
}

fn shown(consoles: &[String]) -> String {
    if consoles.is_empty() {
        "no console= at all, so the kernel uses tty0".into()
    } else {
        consoles
            .iter()
            .map(|c| format!("console={c}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Judges Linux boot entries for the console device `port`: pass when every one sends the
/// console there, fail listing those that do not, warn for those where it is not the last
/// `console=`.
pub fn judge(entries: &[BootEntry], port: &str) -> ConsoleVerdict {
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for e in entries {
        let use_ = analyse(&e.cmdline, port);
        let finding = |message: String| ConsoleFinding {
            config: e.config.clone(),
            line: e.cmdline_line,
            label: e.label.clone(),
            message,
        };
        let example = if port.starts_with("ttyS") {
            format!("console={port},115200n8")
        } else {
            format!("console={port}")
        };
        if !use_.has_port {
            failures.push(finding(format!(
                "kernel command line has no console={port} ({}) — add {example} as the last \
                 console=",
                shown(&use_.consoles)
            )));
        } else if !use_.port_last {
            warnings.push(finding(format!(
                "{port} is not the last console= ({}): the kernel makes {} /dev/console, so \
                 init's output and the login prompt go there, not to {port} — put {example} last",
                shown(&use_.consoles),
                use_.primary().map(console_device).unwrap_or_default()
            )));
        }
    }
    let status = if entries.is_empty() {
        ConsoleStatus::NoEntries
    } else if failures.is_empty() {
        ConsoleStatus::Pass
    } else {
        ConsoleStatus::Fail
    };
    ConsoleVerdict {
        status,
        failures,
        warnings,
        checked: entries.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_console_wins() {
        let u = analyse(
            "init=/x console=tty0 console=ttyS0,115200n8 loglevel=4",
            "ttyS0",
        );
        assert_eq!(u.consoles, vec!["tty0", "ttyS0,115200n8"]);
        assert!(u.has_port && u.port_last);
        let u = analyse("console=ttyS0,115200n8 console=tty0", "ttyS0");
        assert!(u.has_port && !u.port_last);
        assert_eq!(u.primary(), Some("tty0"));
        let u = analyse("quiet splash", "ttyS0");
        assert!(!u.has_port && u.consoles.is_empty());
        let u = analyse("console=ttyS0 console=ttyS1,115200", "ttyS1");
        assert!(u.has_port && u.port_last);
        assert!(!analyse("console=ttyS0", "hvc0").has_port);
        assert!(analyse("console=tty0 console=hvc0", "hvc0").port_last);
    }

    #[test]
    fn words_keep_quotes_and_inits_arguments() {
        assert_eq!(
            cmdline_words(r#"a=1  opt="x y" -- single"#),
            ["a=1", r#"opt="x y""#, "--", "single"]
        );
    }

    #[test]
    fn lookalikes_are_not_ttys0() {
        let has = |c: &str| analyse(c, "ttyS0").has_port;
        assert!(!has("console=ttyS01"));
        assert!(!has("console=ttys0"));
        assert!(!has("earlycon=ttyS0 xconsole=ttyS0"));
        assert!(!has("console=tty0 -- console=ttyS0"));
        assert!(has("console=0,115200"));
        assert!(has("console=uart8250,io,0x3f8,115200n8"));
        assert!(!has("console=uart8250,io,0x2f8,115200n8"));
        assert!(analyse("console=uart,io,0x2f8", "ttyS1").port_last);
        assert!(analyse("a=\"x y\" console=ttyS0", "ttyS0").port_last);
    }
}
