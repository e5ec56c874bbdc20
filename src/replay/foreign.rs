//! Reading a serial log captured by another harness (pexpect, a CI console capture): no
//! bootaudit frames, so the reader recovers what the shell ran and what came back, and turns the
//! few commands that are clearly the same probe as a catalog condition into observations for
//! that condition's own `ProbeJudge`. See docs/replay.md.
//!
//! The text is segmented at shell prompts (`[nixos@nixos:~]$ `, `root@host:~# `, and any prompt
//! the log itself sets with `export PS1='…'`): the command is what follows the prompt on its
//! line, the output is every later line up to the next prompt, minus echoes (lines equal to a
//! command seen after a prompt anywhere in the log), blank lines and the profile's console
//! noise. Typed-ahead harnesses make this attribution unreliable, so every mapped command also
//! has an output *shape*: each output line must look like that command's output, or the
//! exchange is dropped as "not observed". A wrong verdict is worse than a skip.

use bootaudit_console::NoiseFilter;
use regex::Regex;
use std::collections::{BTreeMap, HashSet};

/// One command a foreign harness ran, as the log shows it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The command line echoed after the prompt.
    pub command: String,
    /// Output lines: echoes, blank lines and console noise removed.
    pub output: Vec<String>,
    /// What the prompt itself said about the user (`#` / `root@` → root), if it says.
    pub prompt_root: Option<bool>,
    /// Whether the shell was root when the command ran, when the log shows it.
    pub root: Option<bool>,
}

/// What one foreign command says for a condition, in the words of the live probe's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The foreign command (for messages).
    pub command: String,
    /// The output as the condition's judge reads it.
    pub output: String,
    /// Transcripts carry no exit codes: 0 unless the output shows an error.
    pub exit_code: i32,
}

/// The prompts a log uses.
struct Prompts {
    bracketed: Regex,
    plain: Regex,
    custom: Vec<String>,
}

impl Prompts {
    fn learn(text: &str) -> Prompts {
        let ps1 = Regex::new(r#"(?:^|[\s;])PS1=(?:'([^'\\$`]+)'|"([^"\\$`]+)")"#).expect("static");
        let mut custom: Vec<String> = Vec::new();
        for c in ps1.captures_iter(text) {
            let p = c
                .get(1)
                .or(c.get(2))
                .expect("one group")
                .as_str()
                .to_string();
            if !p.trim().is_empty() && !custom.contains(&p) {
                custom.push(p);
            }
        }
        Prompts {
            bracketed: Regex::new(r"^\[([a-z_][\w.-]*)@([\w.-]+):[^\]]*\]([$#]) ?(.*)$")
                .expect("static"),
            plain: Regex::new(r"^([a-z_][\w.-]*)@([\w.-]+):\S*?([$#]) (.*)$").expect("static"),
            custom,
        }
    }

    /// `(command, prompt_root)` when the line starts with a prompt.
    fn parse(&self, line: &str) -> Option<(String, Option<bool>)> {
        for re in [&self.bracketed, &self.plain] {
            if let Some(c) = re.captures(line) {
                let root = &c[1] == "root" || &c[3] == "#";
                return Some((c[4].trim().to_string(), Some(root)));
            }
        }
        for p in &self.custom {
            if let Some(rest) = line.strip_prefix(p.as_str()) {
                return Some((rest.trim().to_string(), None));
            }
            if line == p.trim_end() {
                return Some((String::new(), None));
            }
        }
        None
    }
}

/// Segment the normalised text into exchanges, in order.
pub fn read(text: &str, noise: &NoiseFilter) -> Vec<Exchange> {
    let prompts = Prompts::learn(text);
    let echoes: HashSet<String> = text
        .lines()
        .filter_map(|l| prompts.parse(l.trim_end()))
        .map(|(c, _)| c)
        .filter(|c| !c.is_empty())
        .collect();
    let mut out: Vec<Exchange> = Vec::new();
    let mut cur: Option<Exchange> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some((command, prompt_root)) = prompts.parse(line) {
            out.extend(cur.take());
            cur = Some(Exchange {
                command,
                output: Vec::new(),
                prompt_root,
                root: None,
            });
            continue;
        }
        let Some(ex) = cur.as_mut() else { continue };
        if line.trim().is_empty() || echoes.contains(line.trim()) || noise.is_noise(line) {
            continue;
        }
        // A console message glued onto an output line: the output is what came before it.
        let line = match noise.glued.as_ref().and_then(|g| g.find(line)) {
            Some(m) => line[..m.start()].trim_end(),
            None => line,
        };
        if !line.trim().is_empty() {
            ex.output.push(line.to_string());
        }
    }
    out.extend(cur);
    track_root(&mut out);
    out
}

fn is_escalation(cmd: &str) -> bool {
    let re = Regex::new(r"^(?:sudo(?: -[A-Za-z]+)* (?:-i|-s|su(?: -| -l)?(?: root)?)|sudo -i|su(?: -| -l)?(?: root)?)$")
        .expect("static");
    re.is_match(cmd.trim())
}

fn is_exit(cmd: &str) -> bool {
    matches!(cmd.trim(), "exit" | "logout")
}

/// The uid a command's output states: `id -u` → digits; `__ROOT__` / `__USER__` markers of an
/// `id -u` test; `__UID_MARK__<token>__<uid>__UID_MARK__<token>__` of a command naming the same
/// token. Returns the text to hand to the judge (`0`, `1000`, `__USER__`).
pub fn uid_answer(ex: &Exchange) -> Option<String> {
    let cmd = ex.command.trim();
    if !cmd.contains("id -u") {
        return None;
    }
    let digits = Regex::new(r"^\d+$").expect("static");
    if Regex::new(r"^id -u(?: 2>/dev/null)?$")
        .expect("static")
        .is_match(cmd)
    {
        return match ex.output.as_slice() {
            [one] if digits.is_match(one.trim()) => Some(one.trim().to_string()),
            _ => None,
        };
    }
    let root = ex.output.iter().any(|l| l.trim() == "__ROOT__");
    let user = ex.output.iter().any(|l| l.trim() == "__USER__");
    if cmd.contains("__ROOT__") && cmd.contains("__USER__") && root != user {
        return Some(if root { "0".into() } else { "__USER__".into() });
    }
    let mark = Regex::new(r"^__UID_MARK__(\w+?)__(\d+)__UID_MARK__(\w+?)__$").expect("static");
    let answers: Vec<String> = ex
        .output
        .iter()
        .filter_map(|l| mark.captures(l.trim()))
        .filter(|c| c[1] == c[3] && cmd.contains(&format!("__UID_MARK__{}__", &c[1])))
        .map(|c| c[2].to_string())
        .collect();
    match answers.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Who the shell was when each command ran: a prompt that names the user, a uid answer, and
/// unknown after `sudo -i` / `su -` / `exit` until the log shows it again.
fn track_root(exchanges: &mut [Exchange]) {
    let mut root: Option<bool> = None;
    for ex in exchanges.iter_mut() {
        if let Some(r) = ex.prompt_root {
            root = Some(r);
        }
        ex.root = root;
        if is_escalation(&ex.command) || is_exit(&ex.command) {
            root = None;
        } else if let Some(uid) = uid_answer(ex) {
            root = Some(uid == "0");
        }
    }
}

fn inferred_exit(output: &str) -> i32 {
    let err = Regex::new(r"(?i)\b(error|denied|failed|not found|no such|cannot|invalid|unrecognized|not permitted)\b")
        .expect("static");
    i32::from(err.is_match(output))
}

fn obs(command: &str, output: String) -> Observation {
    Observation {
        command: command.to_string(),
        exit_code: inferred_exit(&output),
        output,
    }
}

/// Every output line matches `line` (and an empty output only where `allow_empty`).
fn shaped(ex: &Exchange, line: &Regex, allow_empty: bool) -> bool {
    if ex.output.is_empty() {
        return allow_empty;
    }
    ex.output.iter().all(|l| line.is_match(l))
}

/// An optional redirect and `|| true` after a command.
const TAIL: &str = r"(?:\s+2>/dev/null|\s+2>&1)?(?:\s*\|\|\s*true)?\s*;?";
/// Environment assignments before a command (`SYSTEMD_PAGER=cat PAGER=cat systemctl …`).
const ENV: &str = r"(?:[A-Z_]+=\S+\s+)*";

fn var(vars: &BTreeMap<String, String>, name: &str) -> Option<String> {
    vars.get(name).map(|v| regex::escape(v))
}

fn ran_as_root(ex: &Exchange, sudo: bool) -> bool {
    let non_root = ex
        .output
        .iter()
        .any(|l| l.contains("Running as a non-root user") || l.contains("Permission denied"));
    !non_root && (sudo || ex.root == Some(true))
}

/// The observations the log holds for condition `id`, in order; `None` when the reader has no
/// mapping for it (the condition stays "not observed").
pub fn observations(
    id: &str,
    exchanges: &[Exchange],
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Option<Vec<Observation>> {
    let re = |s: String| Regex::new(&s).expect("escaped pattern");
    let mut found = Vec::new();
    match id {
        "shell.root" => {
            let password =
                re(r"(?i)(\[sudo\] password for|^password:|a password is required|is not in the sudoers|may not run sudo|authentication failure)".into());
            let mut pending: Option<&str> = None;
            for ex in exchanges {
                if is_escalation(&ex.command) {
                    pending = Some(&ex.command);
                    let out = ex.output.join("\n");
                    if ex.output.iter().any(|l| password.is_match(l.trim())) {
                        found.push(Observation {
                            command: ex.command.clone(),
                            output: out,
                            exit_code: 1,
                        });
                        pending = None;
                    }
                    continue;
                }
                if is_exit(&ex.command) {
                    pending = None;
                    continue;
                }
                if let Some(attempt) = pending {
                    let answer = if ex.prompt_root == Some(true) {
                        Some(("0".to_string(), format!("{attempt} → root prompt")))
                    } else {
                        uid_answer(ex).map(|u| (u, format!("{attempt} → {}", ex.command)))
                    };
                    if let Some((uid, command)) = answer {
                        found.push(Observation {
                            command,
                            output: uid,
                            exit_code: 0,
                        });
                        pending = None;
                    }
                }
            }
        }
        "storage.status" => {
            let file = var(vars, "status_file")?;
            let cmd = re(format!(r"^(?:sudo (?:-n )?)?cat {file}{TAIL}$"));
            let line = re(r"^(?:[A-Z][A-Z0-9_]*=.*|cat: .*: No such file or directory)$".into());
            for ex in exchanges {
                if cmd.is_match(&ex.command) && shaped(ex, &line, true) {
                    found.push(obs(&ex.command, ex.output.join("\n")));
                }
            }
        }
        "storage.vg-main" | "storage.lv-slash" => {
            let (tool, fields) = if id == "storage.vg-main" {
                ("vgs", "vg_name")
            } else {
                ("lvs", "lv_name,vg_name")
            };
            let cmd = re(format!(
                r"^(sudo (?:-n )?)?{tool}((?:\s+(?:--noheadings|--separator\s+\S+|-o\s*\S+|--readonly|--nolocking))*){TAIL}$"
            ));
            let sep_re = re(r#"--separator\s+(?:'([^']*)'|"([^"]*)"|(\S+))"#.into());
            let lvm_msg = re(
                r"^\s+(?:WARNING: .*|.*(?:Permission denied|open failed|[Ff]ailed|not found).*)$"
                    .into(),
            );
            for ex in exchanges {
                let Some(c) = cmd.captures(&ex.command) else {
                    continue;
                };
                let opts = &c[2];
                if !opts.contains("--noheadings")
                    || !Regex::new(&format!(r"-o\s*{}(?:\s|$)", regex::escape(fields)))
                        .expect("escaped")
                        .is_match(opts)
                {
                    continue;
                }
                let sep = sep_re
                    .captures(opts)
                    .and_then(|s| s.get(1).or(s.get(2)).or(s.get(3)))
                    .map(|m| m.as_str().to_string());
                let row = match (&sep, tool) {
                    (_, "vgs") => re(r"^\s+[\w.+-]+\s*$".into()),
                    (Some(s), _) => re(format!(
                        r"^\s+[\w.+-]+\s*{}\s*[\w.+-]+\s*$",
                        regex::escape(s)
                    )),
                    (None, _) => re(r"^\s+[\w.+-]+\s+[\w.+-]+\s*$".into()),
                };
                if !ex
                    .output
                    .iter()
                    .all(|l| row.is_match(l) || lvm_msg.is_match(l))
                {
                    continue;
                }
                if !ran_as_root(ex, c.get(1).is_some()) {
                    continue;
                }
                // The separator is formatting: the live probe's rows are space-separated.
                let output = ex
                    .output
                    .iter()
                    .map(|l| match (&sep, row.is_match(l)) {
                        (Some(s), true) if !s.is_empty() => l.replacen(s.as_str(), "  ", 1),
                        _ => l.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                found.push(obs(&ex.command, output));
            }
        }
        "net.lan-ipv4" => {
            let iface = var(vars, "iface")?;
            let cmd = re(format!(
                r"^ip((?:\s+-(?:4|o|oneline|family inet))*)\s+a(?:ddr(?:ess)?)?(?:\s+(?:show|list|s))?(?:\s+dev)?\s+{iface}{TAIL}$"
            ));
            let missing = format!(r#"Device "{iface}" does not exist\.?"#);
            let oneline = re(format!(r"^(?:\d+:\s+{iface}\s+inet6?\s.*|{missing})$"));
            let block = re(format!(
                r"^(?:\d+:\s+{iface}[:@].*|\s+(?:link/|inet6? |valid_lft|altname).*|{missing})$"
            ));
            for ex in exchanges {
                let Some(c) = cmd.captures(&ex.command) else {
                    continue;
                };
                let line = if c[1].contains('o') { &oneline } else { &block };
                if shaped(ex, line, true) {
                    found.push(obs(&ex.command, ex.output.join("\n")));
                }
            }
        }
        "unit.pre-nixos-inactive" => {
            let unit_name = vars.get("unit")?;
            let unit = regex::escape(unit_name);
            let base = regex::escape(unit_name.trim_end_matches(".service"));
            let is_active = re(format!(
                r"^{ENV}systemctl is-active {base}(?:\.service)?{TAIL}$"
            ));
            let state = re(r"^(active|inactive|activating|deactivating|failed|reloading|maintenance|refreshing)$".into());
            let show = re(format!(
                r"^{ENV}systemctl show(?:\s+(?:-p\s*\w+|--property=\w+))+\s+{base}(?:\.service)?{TAIL}$"
            ));
            let prop = re(r"^\w+=.*$".into());
            let status = re(format!(
                r"^{ENV}systemctl status {base}(?:\.service)?(?:\s+(?:--no-pager|-l|--full|-n\s*\d+))*{TAIL}$"
            ));
            let head = re(format!(r"^\S*\s*{unit} - "));
            let loaded_re = re(r"^\s+Loaded: (\S+)".into());
            let active_re = re(r"^\s+Active: (\S+)".into());
            let not_found = re(format!(r"^Unit {unit} could not be found\.$"));
            // systemd only reports a unit's messages, or states other than inactive, for a
            // loaded unit; `is-active` prints `inactive` for a unit that does not exist too.
            let systemd_line = re(format!(r"(?m)systemd\[1\]: {unit}: |^\s*\S\s{unit} - "));
            let mut loaded = systemd_line.is_match(text);
            let mut raw: Vec<(String, Option<String>, Option<String>)> = Vec::new();
            for ex in exchanges {
                if is_active.is_match(&ex.command) {
                    if let [one] = ex.output.as_slice() {
                        if state.is_match(one.trim()) {
                            let s = one.trim().to_string();
                            loaded |= s != "inactive";
                            raw.push((ex.command.clone(), None, Some(s)));
                        }
                    }
                } else if show.is_match(&ex.command) && shaped(ex, &prop, false) {
                    found.push(obs(&ex.command, ex.output.join("\n")));
                } else if status.is_match(&ex.command) {
                    if let [one] = ex.output.as_slice() {
                        if not_found.is_match(one.trim()) {
                            raw.push((ex.command.clone(), Some("not-found".into()), None));
                        }
                        continue;
                    }
                    if !ex.output.first().is_some_and(|l| head.is_match(l)) {
                        continue;
                    }
                    let top = &ex.output[..ex.output.len().min(4)];
                    let l = top.iter().find_map(|l| loaded_re.captures(l));
                    let a = top.iter().find_map(|l| active_re.captures(l));
                    if let (Some(l), Some(a)) = (l, a) {
                        loaded |= &l[1] == "loaded";
                        raw.push((
                            ex.command.clone(),
                            Some(l[1].to_string()),
                            Some(a[1].to_string()),
                        ));
                    }
                }
            }
            for (command, load, active) in raw {
                let load = load.or(loaded.then(|| "loaded".to_string()));
                // `inactive` from is-active says nothing while the unit may not exist.
                if load.is_none() && active.as_deref() == Some("inactive") {
                    continue;
                }
                let mut lines = Vec::new();
                if let Some(l) = load {
                    lines.push(format!("LoadState={l}"));
                }
                if let Some(a) = active {
                    lines.push(format!("ActiveState={a}"));
                }
                found.push(Observation {
                    command,
                    output: lines.join("\n"),
                    exit_code: 0,
                });
            }
        }
        _ => return None,
    }
    Some(found)
}

/// A command that got an answer: the shell works.
pub fn first_answer(exchanges: &[Exchange]) -> Option<&Exchange> {
    exchanges
        .iter()
        .find(|e| !e.command.is_empty() && !e.output.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("status_file", "/run/pre-nixos/storage-status"),
            ("iface", "lan"),
            ("unit", "pre-nixos.service"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn segments_at_prompts_and_drops_echoes() {
        let text = "[nixos@nixos:~]$ export PS1='P> '\nP> cat /run/pre-nixos/storage-status 2>/dev/null || true\nip -o -4 addr show dev lan\ncat /run/pre-nixos/storage-status 2>/dev/null || true\nSTATE=applied\nDETAIL=auto-applied\nP> ip -o -4 addr show dev lan\n2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\nP> ";
        let ex = read(text, &NoiseFilter::default_console());
        assert_eq!(ex[1].output, vec!["STATE=applied", "DETAIL=auto-applied"]);
        let st = observations("storage.status", &ex, text, &vars()).unwrap();
        assert_eq!(st.len(), 1);
        let net = observations("net.lan-ipv4", &ex, text, &vars()).unwrap();
        assert_eq!(net.len(), 1);
    }

    #[test]
    fn misattributed_output_is_dropped() {
        // The networkctl output landed after the ip prompt: not ip's shape, not observed.
        let text = "P> ip -o -4 addr show dev lan 2>/dev/null || true\n\u{25cf} 2: lan\n   Address: 10.0.2.15 (DHCP4)\nP> ";
        let text = format!("export PS1='P> '\n{text}");
        let ex = read(&text, &NoiseFilter::default_console());
        assert!(observations("net.lan-ipv4", &ex, &text, &vars())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn root_after_sudo() {
        let text = "[nixos@nixos:~]$ id -u\n1000\n[nixos@nixos:~]$ sudo -i\n[root@nixos:~]# vgs --noheadings -o vg_name\n  main\n[root@nixos:~]# ";
        let ex = read(text, &NoiseFilter::default_console());
        let r = observations("shell.root", &ex, text, &vars()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].output, "0");
        let vg = observations("storage.vg-main", &ex, text, &vars()).unwrap();
        assert_eq!(vg.len(), 1);
        // As the user, the same vgs is not an observation.
        let text = "[nixos@nixos:~]$ vgs --noheadings -o vg_name\n  WARNING: Running as a non-root user. Functionality may be unavailable.\n[nixos@nixos:~]$ ";
        let ex = read(text, &NoiseFilter::default_console());
        assert!(observations("storage.vg-main", &ex, text, &vars())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn is_active_inactive_needs_a_loaded_unit() {
        let text = "export PS1='P> '\nP> systemctl is-active pre-nixos\ninactive\nP> ";
        let ex = read(text, &NoiseFilter::default_console());
        assert!(observations("unit.pre-nixos-inactive", &ex, text, &vars())
            .unwrap()
            .is_empty());
        let text = "systemd[1]: pre-nixos.service: Deactivated successfully.\nexport PS1='P> '\nP> systemctl is-active pre-nixos\ninactive\nP> ";
        let ex = read(text, &NoiseFilter::default_console());
        let o = observations("unit.pre-nixos-inactive", &ex, text, &vars()).unwrap();
        assert_eq!(o[0].output, "LoadState=loaded\nActiveState=inactive");
    }
}
