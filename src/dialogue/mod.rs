//! Expect-style dialogues on the serial console, as a careful person at the console would hold
//! them: wait for the login, take over the shell, run framed commands (as the user or as root
//! through the profile's escalation, answering `su`'s password prompt), with a host-side
//! deadline on every wait.
//!
//! Failure signatures are scoped: a line like "Failed to start pre-nixos.service" concerns
//! storage.status, not shell.ready. A hit that concerns the current condition ends its wait at
//! once; any other hit is acknowledged and the wait goes on — and is remembered, so a later
//! condition it concerns fails at once when it starts. Stall signatures (the guest's kernel
//! saying it was starved of CPU) concern no condition: they are only remembered, for the
//! judge of a wait that then runs out of time.

#[cfg(test)]
mod hostile_tests;
pub mod login;
pub mod menu;

use crate::config::contract::Escalation;
use crate::config::Profile;
use crate::signal::Cancel;
use bootaudit_console::{
    frame, frame_on_terminal, Console, ConsoleConfig, ExpectError, FramedOutput, Match,
    NoiseFilter, SignatureHit,
};
use regex::Regex;
use std::time::Duration;
use tokio::time::Instant;

/// After a password prompt, before typing: login and su print the prompt, then turn the echo
/// off; a password typed in between would be echoed onto the console.
pub const PASSWORD_SETTLE: Duration = Duration::from_millis(300);
/// The longest a take-over line waits for its answer before it is typed again.
const MAX_TAKE_OVER_TRY: Duration = Duration::from_secs(8);
/// After an interrupt, how long the line discipline gets before the next key is typed.
const INTERRUPT_SETTLE: Duration = Duration::from_millis(300);

/// Why a wait ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    Timeout {
        waited: Duration,
        tail: String,
    },
    /// The console ended: QEMU exited or the guest is gone.
    Closed {
        tail: String,
    },
    /// The console is still open, but the exchange could not go on: a write that did not
    /// finish, a frame whose begin marker is gone (a flood pushed it out of the bounded
    /// transcript), a command that cannot be framed. Not a closed console: nobody asks QEMU why
    /// the session ended, and later conditions are still judged.
    Broken {
        reason: String,
    },
    /// A failure signature that concerns the current condition.
    Signature {
        name: String,
        line: String,
    },
    /// sudo (or login) asked for a password it was not given, or asked again after one.
    Password {
        line: String,
        /// The harness had typed a password, and it was asked again: refused.
        refused: bool,
    },
    Cancelled,
}

impl WaitError {
    /// The unmatched console text the error carries, if any.
    pub fn tail(&self) -> &str {
        match self {
            WaitError::Timeout { tail, .. } | WaitError::Closed { tail } => tail,
            _ => "",
        }
    }
}

/// A send that failed: a closed console is the session's end; anything else (a write that did
/// not finish, no writer) leaves the console open.
fn sent_error(e: bootaudit_console::SendError) -> WaitError {
    use bootaudit_console::SendError;
    use std::io::ErrorKind;
    let closed = match &e {
        SendError::Closed(_) => true,
        // QEMU went away before the reader saw the end of the stream.
        SendError::Io(io) => matches!(
            io.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
        ),
        SendError::Timeout(_) | SendError::NoWriter => false,
    };
    match closed {
        true => WaitError::Closed {
            tail: e.to_string(),
        },
        false => WaitError::Broken {
            reason: e.to_string(),
        },
    }
}

/// The last non-empty lines of `text`, joined for a one-line message.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join(" | ")
}

/// A framed command's result.
#[derive(Debug, Clone)]
pub struct CommandRun {
    pub output: FramedOutput,
    pub took: Duration,
}

/// What a console signature hit means, by signature name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Fails every boot condition still waiting (a panic, emergency mode).
    Every,
    /// Fails these conditions only.
    Only(Vec<String>),
    /// Fails nothing: the guest reports it was starved of CPU.
    Stall,
}

impl Scope {
    /// Does a hit of this signature fail condition `id`?
    pub fn concerns(&self, id: &str) -> bool {
        match self {
            Scope::Every => true,
            Scope::Only(ids) => ids.iter().any(|i| i == id),
            Scope::Stall => false,
        }
    }
}

/// How root commands run: the profile's escalation, and the password it answers with.
#[derive(Clone)]
pub struct RootAccess {
    pub escalation: Escalation,
    /// The revealed password for an escalation that asks (`su`).
    pub password: Option<String>,
}

impl std::fmt::Debug for RootAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RootAccess({:?}, password: {})",
            self.escalation,
            self.password.is_some()
        )
    }
}

impl RootAccess {
    pub fn sudo() -> Self {
        RootAccess {
            escalation: Escalation::Sudo,
            password: None,
        }
    }
}

pub struct Dialogue {
    pub console: Console,
    /// Signature name → what its hits mean.
    scopes: Vec<(String, Scope)>,
    /// Signature name → the line that ends its report.
    ends: Vec<(String, Regex)>,
    noise: NoiseFilter,
    cancel: Cancel,
    password_prompt: Regex,
    root: RootAccess,
    /// The condition now being judged: decides which signature hits concern us.
    pub current: String,
}

impl Dialogue {
    pub fn new(
        console: Console,
        scopes: Vec<(String, Scope)>,
        noise: NoiseFilter,
        cancel: Cancel,
    ) -> Self {
        Dialogue {
            console,
            scopes,
            ends: Vec::new(),
            noise,
            cancel,
            password_prompt: Regex::new(crate::config::contract::DEFAULT_PASSWORD_PROMPT)
                .expect("static regex"),
            root: RootAccess::sudo(),
            current: String::new(),
        }
    }

    /// The lines that end the reports signatures start (see [`Dialogue::read_report_end`]).
    pub fn with_report_ends(mut self, ends: Vec<(String, Regex)>) -> Self {
        self.ends = ends;
        self
    }

    /// After a hit of `signature` on `line`: read on until the line that ends its report (a
    /// panic's end line), at most `bound` — the whole report for the transcript, no longer
    /// than it takes to arrive. Without an end line, the whole bound.
    pub async fn read_report_end(&mut self, signature: &str, line: &str, bound: Duration) {
        let until = Instant::now() + bound;
        let offset = self
            .console
            .signature_hits()
            .into_iter()
            .rfind(|h| h.pattern_name == signature && h.line == line)
            .map_or(0, |h| h.offset);
        let Some(end) = self
            .ends
            .iter()
            .find(|(n, _)| n == signature)
            .map(|(_, re)| re.clone())
        else {
            self.console.drain_for(bound).await;
            return;
        };
        let cursor = self.console.cursor();
        self.console.set_cursor(offset);
        self.console.set_signature_checking(false);
        let _ = self.console.expect(std::slice::from_ref(&end), until).await;
        self.console.set_signature_checking(true);
        self.console.set_cursor(cursor.max(self.console.cursor()));
    }

    /// Use the profile's password prompt and escalation.
    pub fn with_root(mut self, password_prompt: Regex, root: RootAccess) -> Self {
        self.password_prompt = password_prompt;
        self.root = root;
        self
    }

    fn scope(&self, signature: &str) -> &Scope {
        self.scopes
            .iter()
            .find(|(name, _)| name == signature)
            .map_or(&Scope::Every, |(_, scope)| scope)
    }

    fn concerns(&self, signature: &str, id: &str) -> bool {
        self.scope(signature).concerns(id)
    }

    /// Does this signature concern every condition (a panic, emergency mode)?
    pub fn is_global(&self, signature: &str) -> bool {
        *self.scope(signature) == Scope::Every
    }

    /// The first line since `since` by which the guest said it was starved of CPU.
    pub fn stall_since(&self, since: Instant) -> Option<SignatureHit> {
        self.console
            .signature_hits()
            .into_iter()
            .find(|h| h.at >= since && *self.scope(&h.pattern_name) == Scope::Stall)
    }

    /// The first signature hit so far that concerns condition `id`.
    pub fn earlier_hit_for(&self, id: &str) -> Option<SignatureHit> {
        self.console
            .signature_hits()
            .into_iter()
            .find(|h| self.concerns(&h.pattern_name, id))
    }

    /// Map a console error to this condition's view: `None` for a signature that concerns
    /// other conditions (acknowledged, remembered in the hits; the caller waits on).
    fn ours(&mut self, error: ExpectError) -> Option<WaitError> {
        match error {
            ExpectError::Signature {
                pattern_name, line, ..
            } => {
                if self.concerns(&pattern_name, &self.current) {
                    Some(WaitError::Signature {
                        name: pattern_name,
                        line,
                    })
                } else {
                    self.console.acknowledge_signature();
                    None
                }
            }
            ExpectError::Timeout { waited, tail } => Some(WaitError::Timeout { waited, tail }),
            ExpectError::Closed { tail, .. } => Some(WaitError::Closed { tail }),
        }
    }

    /// Wait for the first match of any pattern after the cursor.
    pub async fn expect(
        &mut self,
        patterns: &[Regex],
        deadline: Instant,
    ) -> Result<Match, WaitError> {
        loop {
            let result = tokio::select! {
                r = self.console.expect(patterns, deadline) => r,
                _ = self.cancel.cancelled() => return Err(WaitError::Cancelled),
            };
            match result {
                Ok(m) => return Ok(m),
                Err(e) => {
                    if let Some(e) = self.ours(e) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Wait for a quiet spell on the console (no bytes for `quiet`), bounded by `deadline`.
    pub async fn quiet(&mut self, quiet: Duration, deadline: Instant) -> Result<(), WaitError> {
        loop {
            let result = tokio::select! {
                r = self.console.quiet_for(quiet, deadline) => r,
                _ = self.cancel.cancelled() => return Err(WaitError::Cancelled),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if let Some(e) = self.ours(e) {
                        return Err(e);
                    }
                }
            }
        }
    }

    pub async fn send_line(&mut self, line: &str) -> Result<(), WaitError> {
        self.console.send_line(line).await.map_err(sent_error)
    }

    /// After a password prompt, before typing: let the prompting program turn the echo off
    /// (a quiet spell of [`PASSWORD_SETTLE`], at most 2 s).
    pub async fn settle_after_prompt(&mut self) {
        let _ = self
            .console
            .quiet_for(PASSWORD_SETTLE, Instant::now() + Duration::from_secs(2))
            .await;
    }

    /// Type a password: the transcripts show `[secret]`.
    pub async fn send_secret_line(&mut self, secret: &str) -> Result<(), WaitError> {
        self.console
            .send_secret_line(secret)
            .await
            .map_err(sent_error)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), WaitError> {
        self.console.send(bytes).await.map_err(sent_error)
    }

    /// Run one shell command, framed so that its echo never matches and its exit code comes
    /// back in the same round trip. `as_root` goes through the profile's escalation: `sudo -n`
    /// and `doas -n` never prompt, `su` is answered once with root's password. Any other
    /// password prompt (a wrapper, a PAM module), or a second one, ends the wait at once.
    pub async fn run(
        &mut self,
        command: &str,
        as_root: bool,
        deadline: Instant,
    ) -> Result<CommandRun, WaitError> {
        let (full, answer) = if as_root {
            (
                self.root.escalation.wrap(command),
                self.root.password.clone(),
            )
        } else {
            (command.to_string(), None)
        };
        let framed = if as_root && self.root.escalation.needs_terminal() {
            frame_on_terminal(&full)
        } else {
            frame(&full)
        }
        .map_err(|e| WaitError::Broken {
            reason: format!("cannot frame the command: {e}"),
        })?;
        let started = Instant::now();
        self.console.skip_to_end();
        let from = self.console.cursor();
        self.send_line(&framed.line).await?;
        let mut answered = false;
        let m = loop {
            let m = self
                .expect(
                    &[framed.end_re.clone(), self.password_prompt.clone()],
                    deadline,
                )
                .await;
            match (&m, &answer) {
                (Ok(p), Some(password)) if p.pattern == 1 && !answered => {
                    // Only su's own prompt gets the password: the first thing after the
                    // command's begin marker, still waiting at the end of the console once
                    // su had time to turn the echo off. A line of output that ends in
                    // "password:" is not asked of us.
                    let first = self.console.with_transcript(|t| {
                        let text = t.slice(from, p.end.max(from));
                        framed
                            .begin_re
                            .find(text)
                            .is_some_and(|b| text[b.end()..].trim() == p.matched.trim())
                    });
                    if !first {
                        continue;
                    }
                    self.settle_after_prompt().await;
                    let waiting = self
                        .console
                        .with_transcript(|t| t.text_from(p.end).trim().is_empty());
                    if !waiting {
                        continue;
                    }
                    answered = true;
                    self.send_secret_line(password).await?;
                }
                _ => break m,
            }
        };
        match m {
            Ok(m) if m.pattern == 0 => {
                let mut output = self.framed_output(&framed, from)?;
                if answered {
                    // su's own prompt is not the command's output.
                    let prompt = &self.password_prompt;
                    output.lines.retain(|l| !prompt.is_match(l.trim_end()));
                }
                Ok(CommandRun {
                    output,
                    took: started.elapsed(),
                })
            }
            Ok(m) => {
                // Abort the prompt so the shell is usable for diagnostics.
                let _ = self.send(b"\x03").await;
                Err(WaitError::Password {
                    line: m.matched.trim().to_string(),
                    refused: answered,
                })
            }
            Err(WaitError::Timeout { waited, tail }) => {
                // Interrupt whatever hangs, so the next command gets a shell.
                let _ = self.send(b"\x03").await;
                Err(WaitError::Timeout { waited, tail })
            }
            Err(e) => Err(e),
        }
    }

    /// What `framed`, typed when the console stood at `from`, printed between its markers.
    fn framed_output(
        &self,
        framed: &bootaudit_console::Framed,
        from: usize,
    ) -> Result<FramedOutput, WaitError> {
        let text = self
            .console
            .with_transcript(|t| t.text_from(from).to_string());
        framed
            .extract(&text, &self.noise)
            .ok_or_else(|| WaitError::Broken {
                reason: "the command's end marker came, but its begin marker is no longer in \
                         the transcript (a flood pushed it out) or never came"
                    .into(),
            })
    }

    /// Start `command` as root without waiting for it (its output discarded), where the
    /// escalation needs no terminal; otherwise run it as root and wait.
    pub async fn run_as_root_detached(
        &mut self,
        command: &str,
        deadline: Instant,
    ) -> Result<CommandRun, WaitError> {
        if self.root.escalation.needs_terminal() {
            return self.run(command, true, deadline).await;
        }
        let detached = format!("({} >/dev/null 2>&1 &)", self.root.escalation.wrap(command));
        self.run(&detached, false, deadline).await
    }

    /// Run `command` framed as soon as the shell reads it, on a console that may never fall
    /// quiet: the line is typed at once and typed again, in a fresh frame, whenever `first_try`
    /// (doubling each time) passes without an answer — a login may flush what was typed before
    /// its shell started — but not once a frame has begun to run. The first frame to answer
    /// tells when the shell was ready; frames typed after it run too, so their answers are
    /// awaited (briefly) before the console is handed on, lest their output land inside the
    /// next command's. The output returned is the last answering frame's: the terminal echoes
    /// a line typed while a command runs into that command's output (mid-line, too), and
    /// nothing was typed after the last frame.
    pub async fn run_when_ready(
        &mut self,
        command: &str,
        first_try: Duration,
        deadline: Instant,
    ) -> Result<CommandRun, WaitError> {
        let started = Instant::now();
        self.console.skip_to_end();
        let mut sent: Vec<(bootaudit_console::Framed, usize)> = Vec::new();
        // Frames whose end came without their begin: a key lost to the line discipline (the
        // first letter after an interrupt) garbled the line. They count as unanswered.
        let mut spoiled: Vec<bool> = Vec::new();
        let mut wait = first_try;
        let winner = loop {
            // A frame that has begun is being run: typing again would only echo into its
            // output, so wait on for its end instead.
            if sent.is_empty() || !self.frame_began(&sent) {
                // A line stuck half typed leaves the shell at its continuation prompt:
                // interrupt that first, and give the line discipline a moment, or the next
                // key is lost. Never otherwise: an interrupt while `login` still runs ends
                // the session.
                if self.at_continuation_prompt() {
                    self.send(b"\x03").await?;
                    tokio::time::sleep(INTERRUPT_SETTLE).await;
                }
                let framed = frame(command).map_err(|e| WaitError::Broken {
                    reason: format!("cannot frame the command: {e}"),
                })?;
                self.console.skip_to_end();
                let from = self.console.cursor();
                self.send_line(&framed.line).await?;
                sent.push((framed, from));
                spoiled.push(false);
            }
            let waiting: Vec<usize> = (0..sent.len()).filter(|&i| !spoiled[i]).collect();
            let mut waited_for: Vec<Regex> =
                waiting.iter().map(|&i| sent[i].0.end_re.clone()).collect();
            // A password prompt (a login that asks after all) is no shell to type into.
            waited_for.push(self.password_prompt.clone());
            // Search from the first frame: an early one may answer late.
            self.console.set_cursor(sent[0].1);
            let this_try = (Instant::now() + wait).min(deadline);
            match self.expect(&waited_for, this_try).await {
                Ok(m) if m.pattern < waiting.len() => {
                    let answered = waiting[m.pattern];
                    let (framed, from) = &sent[answered];
                    if self.framed_output(framed, *from).is_ok() {
                        break answered;
                    }
                    spoiled[answered] = true;
                }
                Ok(m) => {
                    let _ = self.send(b"\x03").await;
                    return Err(WaitError::Password {
                        line: m.matched.trim().to_string(),
                        refused: false,
                    });
                }
                Err(WaitError::Timeout { .. }) if Instant::now() < deadline => {
                    wait = (wait * 2).min(MAX_TAKE_OVER_TRY);
                }
                Err(e) => return Err(e),
            }
        };
        self.take_last_answer(sent, winner, started).await
    }

    /// Whether the console ends at a shell's continuation prompt (`> `, PS2's default).
    fn at_continuation_prompt(&self) -> bool {
        self.console.with_transcript(|t| {
            let text = t.text();
            let last = text[text.rfind('\n').map_or(0, |i| i + 1)..].trim();
            last == ">"
        })
    }

    /// Whether the begin marker of any frame typed has come.
    fn frame_began(&self, sent: &[(bootaudit_console::Framed, usize)]) -> bool {
        let from = sent[0].1;
        self.console.with_transcript(|t| {
            // The guest may erase back past where the frames began.
            let text = t.text_from(from);
            sent.iter().any(|(f, _)| f.begin_re.is_match(text))
        })
    }

    /// Once frame `winner` answered: await the frames typed after it, then return the output
    /// of the last one that answered, timed by the winner's answer.
    async fn take_last_answer(
        &mut self,
        sent: Vec<(bootaudit_console::Framed, usize)>,
        winner: usize,
        started: Instant,
    ) -> Result<CommandRun, WaitError> {
        let took = started.elapsed();
        let mut last = winner;
        let bound = Instant::now() + Duration::from_secs(5);
        for (n, (framed, from)) in sent.iter().enumerate().skip(winner + 1) {
            if self
                .expect(std::slice::from_ref(&framed.end_re), bound)
                .await
                .is_err()
            {
                break;
            }
            if self.framed_output(framed, *from).is_ok() {
                last = n;
            }
        }
        let (framed, from) = &sent[last];
        let output = self.framed_output(framed, *from)?;
        self.console.skip_to_end();
        Ok(CommandRun { output, took })
    }
}

/// The profile's failure signatures and console noise, resolved for a console — the same for a
/// live boot and a replay.
pub struct ConsoleRules {
    pub config: ConsoleConfig,
    /// Signature name → what its hits mean.
    pub scopes: Vec<(String, Scope)>,
    /// Signature name → the line that ends its report.
    pub ends: Vec<(String, Regex)>,
    pub noise: NoiseFilter,
}

pub fn console_rules(profile: &Profile) -> Result<ConsoleRules, String> {
    let mut config = ConsoleConfig::default();
    let mut scopes = Vec::new();
    let mut ends = Vec::new();
    for sig in &profile.failure_signatures {
        if let Some(end) = &sig.end {
            ends.push((sig.name.clone(), end.resolve(&profile.vars)?));
        }
        config = config.signature(sig.name.clone(), sig.pattern.resolve(&profile.vars)?);
        let scope = if sig.fails.is_empty() {
            Scope::Every
        } else {
            Scope::Only(sig.fails.clone())
        };
        scopes.push((sig.name.clone(), scope));
    }
    for sig in &profile.stall_signatures {
        config = config.signature(sig.name.clone(), sig.pattern.resolve(&profile.vars)?);
        scopes.push((sig.name.clone(), Scope::Stall));
    }
    let noise = profile
        .noise
        .iter()
        .map(|p| p.resolve(&profile.vars))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ConsoleRules {
        config,
        scopes,
        ends,
        noise: NoiseFilter::default_console().with(noise),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(bootaudit_console::shell_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn last_lines_joins_tail() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }

    /// A fake guest shell on a duplex pipe: answers framed commands like bash would, with a
    /// service line landing in the middle of the output.
    #[tokio::test]
    async fn runs_framed_command_through_noise() {
        let (harness, mut guest) = tokio::io::duplex(4096);
        let console = Console::from_stream(harness, ConsoleConfig::default());
        let noise =
            NoiseFilter::default_console().with([Regex::new("^LAN IPv4 address: ").unwrap()]);
        let mut d = Dialogue::new(console, vec![], noise, Cancel::new());
        let guest_task = tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
            let (r, mut w) = tokio::io::split(&mut guest);
            let mut lines = BufReader::new(r).lines();
            let line = lines.next_line().await.unwrap().unwrap();
            // Echo, then what the shell prints.
            let token = token_of(&line);
            w.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
            w.write_all(format!("BA_{token}_BEGIN\r\n  ma").as_bytes())
                .await
                .unwrap();
            w.write_all(b"in\r\nLAN IPv4 address: 10.0.2.15\r\n")
                .await
                .unwrap();
            w.write_all(format!("\r\nBA_{token}_END rc=0\r\n$ ").as_bytes())
                .await
                .unwrap();
        });
        let run = d
            .run(
                "vgs --noheadings -o vg_name",
                false,
                Instant::now() + Duration::from_secs(5),
            )
            .await
            .unwrap();
        guest_task.await.unwrap();
        assert_eq!(run.output.exit_code, 0);
        assert_eq!(run.output.text().trim(), "main");
        assert_eq!(
            run.output.interleaved,
            vec!["LAN IPv4 address: 10.0.2.15".to_string()]
        );
    }

    /// A frame whose begin marker is missing (pushed out by a flood, or never printed) leaves
    /// the console open: the exchange broke, the session did not end.
    #[tokio::test]
    async fn an_end_marker_without_its_begin_is_a_broken_exchange_not_a_closed_console() {
        let (mut d, mut guest) = shell_on_duplex();
        let guest_task = tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
            {
                let (r, mut w) = tokio::io::split(&mut guest);
                let mut lines = BufReader::new(r).lines();
                let line = lines.next_line().await.unwrap().unwrap();
                let token = token_of(&line);
                w.write_all(format!("main\r\nBA_{token}_END rc=0\r\n$ ").as_bytes())
                    .await
                    .unwrap();
            }
            // Kept open: the console must not close.
            guest
        });
        let r = d
            .run("vgs", false, Instant::now() + Duration::from_secs(5))
            .await;
        let _guest = guest_task.await.unwrap();
        assert!(matches!(r, Err(WaitError::Broken { .. })), "{r:?}");
        assert!(d.console.closed().is_none());
    }

    /// The token of a framed line the harness typed.
    fn token_of(line: &str) -> String {
        line.split("_BEGIN")
            .next()
            .unwrap()
            .rsplit('_')
            .next()
            .unwrap()
            .to_string()
    }

    /// A dialogue with the default console noise over an in-memory pipe, and the guest's end.
    fn shell_on_duplex() -> (Dialogue, tokio::io::DuplexStream) {
        let (harness, guest) = tokio::io::duplex(1 << 16);
        let console = Console::from_stream(harness, ConsoleConfig::default());
        let noise = NoiseFilter::default_console();
        (Dialogue::new(console, vec![], noise, Cancel::new()), guest)
    }

    /// A shell whose login flushed the first line typed, on a console a service floods with a
    /// line every 10 ms: the take-over answers on the second try, without a quiet spell, and
    /// the output is the answering frame's alone.
    #[tokio::test]
    async fn takes_over_a_flooded_shell_that_lost_the_first_line() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (mut d, guest) = shell_on_duplex();
        let (r, w) = tokio::io::split(guest);
        let w = std::sync::Arc::new(tokio::sync::Mutex::new(w));
        let flood = {
            let w = w.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let line = format!("[ {n}.000] flood: heartbeat seq={n}\r\n");
                    if w.lock().await.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let shell = tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            let mut n = 0;
            while let Ok(Some(line)) = lines.next_line().await {
                n += 1;
                if n == 1 {
                    continue; // flushed by login
                }
                let t = token_of(&line);
                let answer =
                    format!("{line}\r\nBA_{t}_BEGIN\r\n42\r\nnixos\r\nBA_{t}_END rc=0\r\n$ ");
                w.lock().await.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let started = Instant::now();
        let run = d
            .run_when_ready(
                "echo $((6*7)); id -un",
                Duration::from_millis(300),
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(
            run.output.lines,
            vec!["42".to_string(), "nixos".to_string()]
        );
        assert_eq!(run.output.exit_code, 0);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        flood.abort();
        shell.abort();
    }

    /// A shell that reads every line but answers slowly: the line typed again meanwhile runs
    /// too, and its answer is awaited, so none of it reaches the next command.
    #[tokio::test]
    async fn a_slow_shell_runs_every_typed_line_before_the_next_command() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (mut d, guest) = shell_on_duplex();
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lines_read = read.clone();
        let shell = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(guest);
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                lines_read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(400)).await;
                let t = token_of(&line);
                let out = if line.contains("id -u;") { "0" } else { "42" };
                let answer = format!("BA_{t}_BEGIN\r\n{out}\r\nBA_{t}_END rc=0\r\n$ ");
                w.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let run = d
            .run_when_ready("echo $((6*7))", Duration::from_millis(150), deadline)
            .await
            .unwrap();
        assert_eq!(run.output.lines, vec!["42".to_string()]);
        // Every line the shell read had answered before the console was handed on.
        let answered = d
            .console
            .with_transcript(|t| t.text().matches("_END rc=0").count());
        let read = read.load(std::sync::atomic::Ordering::SeqCst);
        assert!(read > 1, "it was typed again");
        assert_eq!(answered, read);
        let next = d.run("id -u; true", false, deadline).await.unwrap();
        assert_eq!(next.output.lines, vec!["0".to_string()]);
        shell.abort();
    }

    /// The line typed again while the first frame runs is echoed by the terminal into that
    /// frame's output, splitting its lines: the answer taken is the last frame's, which
    /// nothing was typed into, and the shell was not typed at again once a frame had begun.
    #[tokio::test]
    async fn a_line_echoed_into_a_running_frame_does_not_spoil_the_answer() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (mut d, guest) = shell_on_duplex();
        let typed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lines_typed = typed.clone();
        let shell = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(guest);
            let mut lines = BufReader::new(r).lines();
            let first = lines.next_line().await.unwrap().unwrap();
            // The shell reads the first line but is slow to start it: the second is typed.
            let second = lines.next_line().await.unwrap().unwrap();
            lines_typed.store(2, std::sync::atomic::Ordering::SeqCst);
            let (a, b) = (token_of(&first), token_of(&second));
            let (head, tail) = second.split_at(second.len() / 2);
            let spoiled =
                format!("BA_{a}_BEGIN\r\n{head}42\r\nnixos\r\n{tail}\r\nBA_{a}_END rc=0\r\n");
            w.write_all(spoiled.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let clean = format!("BA_{b}_BEGIN\r\n42\r\nnixos\r\nBA_{b}_END rc=0\r\n$ ");
            w.write_all(clean.as_bytes()).await.unwrap();
            while let Ok(Some(_)) = lines.next_line().await {
                lines_typed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let run = d
            .run_when_ready(
                "echo $((6*7)); id -un",
                Duration::from_millis(150),
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(
            run.output.lines,
            vec!["42".to_string(), "nixos".to_string()]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(typed.load(std::sync::atomic::Ordering::SeqCst), 2);
        shell.abort();
    }

    /// A frame whose end comes without its begin (a key lost after an interrupt garbled the
    /// line) is no answer: the line is typed again. An interrupt goes first only when the
    /// shell stands at its continuation prompt.
    #[tokio::test]
    async fn a_garbled_frame_is_typed_again_and_only_a_stuck_line_is_interrupted() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (mut d, guest) = shell_on_duplex();
        let shell = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(guest);
            let mut lines = BufReader::new(r).lines();
            let mut typed = Vec::new();
            // 1: the first letter was lost: no begin marker, the rest runs.
            let line = lines.next_line().await.unwrap().unwrap();
            let t = token_of(&line);
            let garbled = format!("-bash: rintf: command not found\r\n42\r\nBA_{t}_END rc=0\r\n> ");
            w.write_all(garbled.as_bytes()).await.unwrap();
            typed.push(line);
            // 2: typed at the continuation prompt, so an interrupt comes first.
            let line = lines.next_line().await.unwrap().unwrap();
            let t = token_of(&line);
            let answer = format!("^C\r\n$ BA_{t}_BEGIN\r\n42\r\nBA_{t}_END rc=0\r\n$ ");
            w.write_all(answer.as_bytes()).await.unwrap();
            typed.push(line);
            typed
        });
        let run = d
            .run_when_ready(
                "echo $((6*7))",
                Duration::from_millis(150),
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(run.output.lines, vec!["42".to_string()]);
        let typed = shell.await.unwrap();
        assert!(!typed[0].starts_with('\x03'), "{:?}", typed[0]);
        assert!(typed[1].starts_with('\x03'), "{:?}", typed[1]);
    }

    /// A panic is read up to its end line, not for the whole bound: the end line's arrival
    /// ends the wait, and the report's lines before it are in the transcript.
    #[tokio::test]
    async fn a_panic_is_read_up_to_its_end_line() {
        use tokio::io::AsyncWriteExt;
        let (harness, mut guest) = tokio::io::duplex(4096);
        let panic = Regex::new("Kernel panic - not syncing.*").unwrap();
        let config = ConsoleConfig::default().signature("kernel panic", panic);
        let console = Console::from_stream(harness, config);
        let end = Regex::new(r".*---\[ end Kernel panic.*").unwrap();
        let mut d = Dialogue::new(
            console,
            vec![("kernel panic".into(), Scope::Every)],
            NoiseFilter::none(),
            Cancel::new(),
        )
        .with_report_ends(vec![("kernel panic".into(), end)]);
        d.current = "boot.login".into();
        guest
            .write_all(b"[ 3.1] Kernel panic - not syncing: sysrq triggered crash\r\n[ 3.1] CPU: 0 PID: 1\r\n")
            .await
            .unwrap();
        let login = Regex::new("login: ").unwrap();
        let hit = d
            .expect(&[login], Instant::now() + Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(hit, WaitError::Signature { .. }), "{hit:?}");
        let line = d.console.signature_hits()[0].line.clone();
        d.console.clear_signature();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            guest
                .write_all(
                    b"[ 3.2] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\r\n",
                )
                .await
                .unwrap();
            guest // kept open: the console does not close
        });
        let started = Instant::now();
        d.read_report_end("kernel panic", &line, Duration::from_secs(20))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the bound"
        );
        let text = d.console.with_transcript(|t| t.text().to_string());
        assert!(text.contains("---[ end Kernel panic"), "{text}");
        drop(writer.await.unwrap());
    }

    /// A dialogue judging boot.login whose guest printed `console`, with these signatures;
    /// waits for its `login: ` (the signatures must not end the wait).
    async fn login_after(signatures: &[(&str, &str, Scope)], console: &[u8]) -> Dialogue {
        let (harness, mut guest) = tokio::io::duplex(4096);
        let mut config = ConsoleConfig::default();
        for (name, re, _) in signatures {
            config = config.signature(*name, Regex::new(re).unwrap());
        }
        let scopes = signatures
            .iter()
            .map(|(name, _, scope)| (name.to_string(), scope.clone()))
            .collect();
        let console_stream = Console::from_stream(harness, config);
        let mut d = Dialogue::new(console_stream, scopes, NoiseFilter::none(), Cancel::new());
        use tokio::io::AsyncWriteExt;
        guest.write_all(console).await.unwrap();
        guest.write_all(b"\r\nlogin: ").await.unwrap();
        d.current = "boot.login".into();
        let login = Regex::new("login: ").unwrap();
        d.expect(&[login], Instant::now() + Duration::from_secs(2))
            .await
            .expect("the signature is not boot.login's business");
        d
    }

    #[tokio::test]
    async fn scoped_signature_only_fails_its_conditions() {
        let only = Scope::Only(vec!["storage.status".to_string()]);
        let d = login_after(
            &[("unit failed", "Failed to start pre-nixos", only)],
            b"[FAILED] Failed to start pre-nixos.service",
        )
        .await;
        assert!(d.earlier_hit_for("boot.login").is_none());
        let hit = d
            .earlier_hit_for("storage.status")
            .expect("remembered for storage.status");
        assert!(hit.line.contains("Failed to start pre-nixos"));
    }

    #[tokio::test]
    async fn a_stall_ends_no_wait_and_is_remembered() {
        let d = login_after(
            &[
                ("kernel panic", "Kernel panic", Scope::Every),
                ("CPU stall", r"rcu: INFO: \w+ detected stalls", Scope::Stall),
            ],
            b"[ 212.8] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
        )
        .await;
        assert!(d.earlier_hit_for("boot.login").is_none());
        assert!(!d.is_global("CPU stall"));
        let stall = d
            .stall_since(Instant::now() - Duration::from_secs(5))
            .expect("the stall is remembered");
        assert!(stall.line.contains("detected stalls"), "{}", stall.line);
        assert!(
            d.stall_since(Instant::now()).is_none(),
            "only stalls since then"
        );
    }
}
