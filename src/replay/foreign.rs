//! Reading a serial log captured by another harness (pexpect, a CI console capture): no
//! bootaudit frames, so the reader recovers what the shell ran and what came back. Which of
//! those exchanges show a condition's probe is catalog data (`replay:` forms, [`super::forms`]);
//! this module only knows shells: prompts, echoes, console noise, who the user is.
//!
//! The text is segmented at shell prompts (`[nixos@nixos:~]$ `, `root@host:~# `, and any prompt
//! the log itself sets with `export PS1='…'`): the command is what follows the prompt on its
//! line, the output is every later line up to the next prompt, minus echoes (lines equal to a
//! command seen after a prompt anywhere in the log), blank lines and the profile's console
//! noise. Typed-ahead harnesses make this attribution unreliable, which is why every form also
//! checks the output's *shape*: a wrong verdict is worse than "not observed".
//!
//! Everything here streams: a first pass ([`Survey`]) learns the prompts, the echoes and the
//! facts forms ask about (`log_shows`); the second ([`Segmenter`]) hands on one exchange at a
//! time. Memory is bounded by the caps below, not by the log.

use bootaudit_console::NoiseFilter;
use regex::{Regex, RegexSet};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Output kept per exchange, in lines and bytes (a pager dumping a journal, a `cat` of a binary
/// is no probe's output anyway: such an exchange is marked truncated and observes nothing).
const MAX_OUTPUT_LINES: usize = 2000;
const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Commands remembered to recognise echoes: how many, the longest, and all of them in bytes.
const MAX_COMMANDS: usize = 100_000;
const MAX_COMMAND_BYTES: usize = 4096;
const MAX_COMMANDS_BYTES: usize = 16 << 20;
/// Prompts a log may set with `PS1=` (every line is compared with each).
const MAX_PROMPTS: usize = 32;

/// One command a foreign harness ran, as the log shows it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// The command line echoed after the prompt.
    pub command: String,
    /// The command as forms match it, and whether it was typed with sudo
    /// ([`super::forms::plain_command`], once per exchange).
    pub plain: String,
    pub sudo: bool,
    /// Output lines: echoes, blank lines and console noise removed.
    pub output: Vec<String>,
    /// The output was more than is kept: not any probe's output.
    pub truncated: bool,
    output_bytes: usize,
    /// What the prompt itself said about the user (`#` / `root@` → root), if it says.
    pub prompt_root: Option<bool>,
    /// Whether the shell was root when the command ran, when the log shows it.
    pub root: Option<bool>,
    /// Log line of the prompt.
    pub line: u64,
    /// The log's lines for this exchange (numbered, capped), for the condition's transcript.
    pub excerpt: Vec<(u64, String)>,
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
    /// Log line where it starts.
    pub line: u64,
    pub excerpt: Vec<(u64, String)>,
}

/// Shell prompts: the usual `user@host` forms and those the log sets itself.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    custom: Vec<String>,
    /// The log shows a bare `# ` or `$ ` prompt waiting alone on a line (dash, a root login
    /// without a PS1): lines starting with one are prompts too. Learned, never assumed: a
    /// comment in a printed file also starts with `# `.
    bare: bool,
}

fn bracketed() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\[([a-z_][\w.-]*)@([\w.-]+):[^\]]*\]([$#]) ?(.*)$").expect("static regex")
    })
}

fn plain() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([a-z_][\w.-]*)@([\w.-]+):\S*?([$#]) (.*)$").expect("static regex")
    })
}

/// busybox ash's default `\w \$ ` (`~ # `, `/tmp $ `).
fn working_dir() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(~|/\S*) ([$#]) (.*)$").expect("static regex"))
}

fn ps1() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?:^|[\s;])PS1=(?:'([^'\\$`]+)'|"([^"\\$`]+)")"#).expect("static regex")
    })
}

impl Prompts {
    /// Learn a prompt the line sets (`export PS1='P> '`).
    fn learn(&mut self, line: &str) {
        if matches!(line, "# " | "$ " | "#" | "$") {
            self.bare = true;
        }
        if !line.contains("PS1=") {
            return;
        }
        for c in ps1().captures_iter(line) {
            let p = c.get(1).or(c.get(2)).expect("one group").as_str();
            if !p.trim().is_empty()
                && !self.custom.iter().any(|k| k == p)
                && self.custom.len() < MAX_PROMPTS
            {
                self.custom.push(p.to_string());
            }
        }
    }

    /// `(command, prompt_root)` when the line starts with a prompt.
    fn parse(&self, line: &str) -> Option<(String, Option<bool>)> {
        // Both built-in forms contain `@` before `:`; most lines have neither.
        if line.contains('@') {
            for re in [bracketed(), plain()] {
                if let Some(c) = re.captures(line) {
                    let root = &c[1] == "root" || &c[3] == "#";
                    return Some((c[4].trim().to_string(), Some(root)));
                }
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
        if let Some(c) = working_dir().captures(line) {
            return Some((c[3].trim().to_string(), Some(&c[2] == "#")));
        }
        if self.bare {
            for (p, root) in [("# ", true), ("$ ", false)] {
                if let Some(rest) = line.strip_prefix(p) {
                    return Some((rest.trim().to_string(), Some(root)));
                }
                if line == p.trim_end() {
                    return Some((String::new(), Some(root)));
                }
            }
        }
        None
    }
}

/// First pass over the log: what the second needs to know in advance.
#[derive(Debug)]
pub struct Survey {
    pub prompts: Prompts,
    /// Every command seen after a prompt: a line equal to one is an echo, wherever it is.
    pub commands: HashSet<String>,
    commands_bytes: usize,
    /// For each `log_shows` pattern of the forms: does some line match it?
    pub facts: Vec<bool>,
    fact_patterns: RegexSet,
}

impl Survey {
    pub fn new(fact_patterns: &[Regex]) -> Survey {
        Survey {
            prompts: Prompts::default(),
            commands: HashSet::new(),
            commands_bytes: 0,
            facts: vec![false; fact_patterns.len()],
            fact_patterns: RegexSet::new(fact_patterns.iter().map(Regex::as_str))
                .expect("patterns compiled before"),
        }
    }

    pub fn line(&mut self, line: &str) {
        let line = line.trim_end();
        if let Some((command, _)) = self.prompts.parse(line) {
            if !command.is_empty()
                && command.len() <= MAX_COMMAND_BYTES
                && self.commands.len() < MAX_COMMANDS
                && self.commands_bytes + command.len() <= MAX_COMMANDS_BYTES
            {
                self.commands_bytes += command.len();
                self.commands.insert(command);
            }
        }
        self.prompts.learn(line);
        // is_match first: the overlapping search that says which is dearer, and rarely needed.
        if !self.facts.iter().all(|f| *f) && self.fact_patterns.is_match(line) {
            for i in self.fact_patterns.matches(line).iter() {
                self.facts[i] = true;
            }
        }
    }
}

/// What the segmenter made of one line.
#[derive(Debug, Default)]
pub struct Segmented {
    /// The harness typed it: a prompt line, or the echo of a command seen after a prompt.
    pub typed: bool,
    /// The exchange this line's prompt ended.
    pub closed: Option<Exchange>,
}

/// Second pass: cuts the log into exchanges, in order, and tracks who the user is.
pub struct Segmenter<'a> {
    survey: &'a Survey,
    noise: &'a NoiseFilter,
    current: Option<Exchange>,
    /// Whether the shell is root, as far as the log has shown.
    root: Option<bool>,
}

impl<'a> Segmenter<'a> {
    pub fn new(survey: &'a Survey, noise: &'a NoiseFilter) -> Self {
        Segmenter {
            survey,
            noise,
            current: None,
            root: None,
        }
    }

    /// Feed one log line: whether the harness typed it (a prompt line or an echo), and the
    /// exchange this line's prompt ended, if any.
    pub fn line(&mut self, no: u64, line: &str) -> Segmented {
        let line = line.trim_end();
        if let Some((command, prompt_root)) = self.survey.prompts.parse(line) {
            let closed = self.current.take().map(|ex| self.close(ex));
            self.current = Some(Exchange {
                command,
                prompt_root,
                line: no,
                excerpt: vec![super::quoted(no, line)],
                ..Exchange::default()
            });
            return Segmented {
                typed: true,
                closed,
            };
        }
        let typed = self.survey.commands.contains(line.trim());
        let seen = Segmented {
            typed,
            closed: None,
        };
        let Some(ex) = self.current.as_mut() else {
            return seen;
        };
        super::quote_into(&mut ex.excerpt, no, line);
        // Blank lines and line noise (nothing but bytes that were not text) say nothing.
        if typed
            || line.chars().all(|c| c.is_whitespace() || c == '\u{FFFD}')
            || self.noise.is_noise(line)
        {
            return seen;
        }
        // A console message glued onto an output line: the output is what came before it.
        let line = match self.noise.glued.as_ref().and_then(|g| g.find(line)) {
            Some(m) => line[..m.start()].trim_end(),
            None => line,
        };
        if !line.trim().is_empty() && !ex.truncated {
            ex.output_bytes += line.len();
            if ex.output.len() < MAX_OUTPUT_LINES && ex.output_bytes <= MAX_OUTPUT_BYTES {
                ex.output.push(line.to_string());
            } else {
                // Too much to be a probe's output: keep nothing of it.
                ex.truncated = true;
                ex.output = Vec::new();
            }
        }
        seen
    }

    /// End of the log: the last exchange.
    pub fn finish(&mut self) -> Option<Exchange> {
        self.current.take().map(|ex| self.close(ex))
    }

    /// Who ran it: a prompt that names the user, a uid answer, and unknown after `sudo -i` /
    /// `su -` / `exit` until the log shows it again.
    fn close(&mut self, mut ex: Exchange) -> Exchange {
        (ex.plain, ex.sudo) = super::forms::plain_command(&ex.command);
        if let Some(r) = ex.prompt_root {
            self.root = Some(r);
        }
        ex.root = self.root;
        if is_escalation(&ex.command) || is_exit(&ex.command) {
            self.root = None;
        } else if let Some(uid) = uid_answer(&ex) {
            self.root = Some(uid == "0");
        }
        ex
    }
}

fn is_escalation(cmd: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:sudo(?: -[A-Za-z]+)* (?:-i|-s|su(?: -| -l)?(?: root)?)|sudo -i|su(?: -| -l)?(?: root)?)$")
            .expect("static regex")
    })
    .is_match(cmd.trim())
}

fn is_exit(cmd: &str) -> bool {
    matches!(cmd.trim(), "exit" | "logout")
}

/// The uid a command's output states: `id -u` → digits; `__ROOT__` / `__USER__` markers of an
/// `id -u` test; `__UID_MARK__<token>__<uid>__UID_MARK__<token>__` of a command naming the same
/// token. Returns the text to hand to the judge (`0`, `1000`, `__USER__`).
pub fn uid_answer(ex: &Exchange) -> Option<String> {
    static ID_U: OnceLock<Regex> = OnceLock::new();
    static MARK: OnceLock<Regex> = OnceLock::new();
    let cmd = ex.command.trim();
    if !cmd.contains("id -u") {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let id_u = ID_U.get_or_init(|| Regex::new(r"^id -u(?: 2>/dev/null)?$").expect("static regex"));
    if id_u.is_match(cmd) {
        return match ex.output.as_slice() {
            [one] if digits(one.trim()) => Some(one.trim().to_string()),
            _ => None,
        };
    }
    let root = ex.output.iter().any(|l| l.trim() == "__ROOT__");
    let user = ex.output.iter().any(|l| l.trim() == "__USER__");
    if cmd.contains("__ROOT__") && cmd.contains("__USER__") && root != user {
        return Some(if root { "0".into() } else { "__USER__".into() });
    }
    let mark = MARK.get_or_init(|| {
        Regex::new(r"^__UID_MARK__(\w+?)__(\d+)__UID_MARK__(\w+?)__$").expect("static regex")
    });
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

/// `from: escalation`: each `sudo -i` / `sudo su -` / `sudo -s` and what it led to — `0` for a
/// root prompt, the uid a later command shows, or the refusal text (exit code 1). `su` alone
/// is no evidence about sudo; a user prompt after the attempt ends it without a verdict.
#[derive(Debug, Default)]
pub struct Escalations {
    pending: Option<Attempt>,
}

/// An escalation waiting for its answer.
#[derive(Debug)]
struct Attempt {
    command: String,
    line: u64,
    excerpt: Vec<(u64, String)>,
}

impl Escalations {
    pub fn exchange(&mut self, ex: &Exchange) -> Option<Observation> {
        static REFUSAL: OnceLock<Regex> = OnceLock::new();
        let refusal = REFUSAL.get_or_init(|| {
            Regex::new(r"(?i)(\[sudo\] password for|^password:|a password is required|is not in the sudoers|may not run sudo|authentication failure)")
                .expect("static regex")
        });
        if is_escalation(&ex.command) {
            self.pending = None;
            if !ex.command.trim_start().starts_with("sudo") {
                return None;
            }
            if ex.output.iter().any(|l| refusal.is_match(l.trim())) {
                return Some(Observation {
                    command: ex.command.clone(),
                    output: ex.output.join("\n"),
                    exit_code: 1,
                    line: ex.line,
                    excerpt: ex.excerpt.clone(),
                });
            }
            self.pending = Some(Attempt {
                command: ex.command.clone(),
                line: ex.line,
                excerpt: ex.excerpt.clone(),
            });
            return None;
        }
        if is_exit(&ex.command) || ex.prompt_root == Some(false) {
            self.pending = None;
            return None;
        }
        self.pending.as_ref()?;
        let (uid, how) = if ex.prompt_root == Some(true) {
            ("0".to_string(), "root prompt".to_string())
        } else {
            (uid_answer(ex)?, ex.command.clone())
        };
        let mut attempt = self.pending.take()?;
        attempt.excerpt.extend(ex.excerpt.iter().take(3).cloned());
        Some(Observation {
            command: format!("{} → {how}", attempt.command),
            output: uid,
            exit_code: 0,
            line: attempt.line,
            excerpt: attempt.excerpt,
        })
    }
}

/// A command that got an answer: the shell works.
pub fn answered(ex: &Exchange) -> bool {
    !ex.command.is_empty() && !ex.output.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_prompts_of_posix_shells_and_root_logins() {
        let mut p = Prompts::default();
        assert_eq!(
            p.parse("root@edge:~# id -u"),
            Some(("id -u".to_string(), Some(true)))
        );
        assert_eq!(
            p.parse("~ # id -u"),
            Some(("id -u".to_string(), Some(true)))
        );
        assert_eq!(p.parse("/tmp $ ls"), Some(("ls".to_string(), Some(false))));
        // A bare prompt only once the log shows one waiting alone (else `# ` is a comment).
        assert_eq!(p.parse("# id -u"), None);
        p.learn("# ");
        assert_eq!(p.parse("# id -u"), Some(("id -u".to_string(), Some(true))));
        assert_eq!(p.parse("$ echo"), Some(("echo".to_string(), Some(false))));
    }

    pub fn exchanges(text: &str) -> Vec<Exchange> {
        let noise = NoiseFilter::default_console();
        let mut survey = Survey::new(&[]);
        text.lines().for_each(|l| survey.line(l));
        let mut seg = Segmenter::new(&survey, &noise);
        let mut out: Vec<Exchange> = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| seg.line(i as u64 + 1, l).closed)
            .collect();
        out.extend(seg.finish());
        out
    }

    #[test]
    fn segments_at_prompts_and_drops_echoes() {
        let text = "[nixos@nixos:~]$ export PS1='P> '\nP> cat /run/pre-nixos/storage-status 2>/dev/null || true\nip -o -4 addr show dev lan\ncat /run/pre-nixos/storage-status 2>/dev/null || true\nSTATE=applied\nDETAIL=auto-applied\nP> ip -o -4 addr show dev lan\n2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\nP> ";
        let ex = exchanges(text);
        assert_eq!(ex[1].output, vec!["STATE=applied", "DETAIL=auto-applied"]);
        assert_eq!(ex[1].line, 2);
        assert_eq!(ex[2].output.len(), 1);
    }

    #[test]
    fn who_ran_it() {
        let text = "[nixos@nixos:~]$ id -u\n1000\n[nixos@nixos:~]$ sudo -i\n[root@nixos:~]# vgs\n  main\n[root@nixos:~]# exit\nP> ";
        let ex = exchanges(text);
        assert_eq!(ex[0].root, Some(false));
        assert_eq!(ex[2].root, Some(true));
        let mut esc = Escalations::default();
        let seen: Vec<Observation> = ex.iter().filter_map(|e| esc.exchange(e)).collect();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].output, "0");
        assert_eq!(seen[0].line, 3);
    }

    #[test]
    fn refused_escalation() {
        let text = "[nixos@nixos:~]$ sudo -i\n[sudo] password for nixos: \n";
        let mut esc = Escalations::default();
        let seen: Vec<Observation> = exchanges(text)
            .iter()
            .filter_map(|e| esc.exchange(e))
            .collect();
        assert_eq!(seen[0].exit_code, 1);
    }
}
