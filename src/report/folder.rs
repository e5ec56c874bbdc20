//! The report folder of SPEC.md: serial.raw (+ serial.timing), serial.log, qemu.log,
//! conditions/ID.log, diagnostics/ID/, report.json, junit.xml and report.html. A failure to
//! write (a full disk) never changes a verdict, but it is warned about and marks the report
//! incomplete, which the run's exit code says (3). report.json, junit.xml and report.html are
//! written aside and renamed, so each is whole or absent. No write follows a symlink: the
//! folder and its entries must be what they seem, or the folder is refused.

use crate::engine::events::{Event, Millis, Reporter};
use crate::model::{ConditionReport, Report};
use bootaudit_console::Normalizer;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set when something of the report could not be written.
pub type Incomplete = Arc<AtomicBool>;

/// The entries a report folder may hold (refused as symlinks).
const ENTRIES: [&str; 10] = [
    "serial.raw",
    "serial.timing",
    crate::session_record::FILE,
    "serial.log",
    "qemu.log",
    "report.json",
    "junit.xml",
    "report.html",
    "conditions",
    "diagnostics",
];

/// Marks a folder as a bootaudit report from its start.
const MARK: &str = ".bootaudit-report";

/// Why the report entries in `dir` are not a previous report of ours (None: they are, or
/// there are none). Files that only share a report's names — another harness's serial.log and
/// qemu.log, a user's own diagnostics/ — are someone's and must not be removed.
fn not_a_previous_report(dir: &Path) -> Option<String> {
    let present: Vec<&str> = ENTRIES
        .into_iter()
        .filter(|e| fs::symlink_metadata(dir.join(e)).is_ok())
        .collect();
    if present.is_empty() {
        return None;
    }
    let marked = fs::symlink_metadata(dir.join(MARK)).is_ok_and(|m| m.is_file());
    let old_report = || {
        let text = fs::read(dir.join("report.json")).ok()?;
        let json: serde_json::Value = serde_json::from_slice(&text).ok()?;
        json.get("bootaudit_version")?.as_str().map(|_| ())
    };
    if !marked && old_report().is_none() {
        return Some(format!(
            "it holds {} but neither a bootaudit report.json nor its {MARK} mark",
            present.join(", ")
        ));
    }
    // What a report puts in its subfolders, and nothing else.
    let only = |sub: &str, ok: &dyn Fn(&fs::DirEntry) -> bool| -> Option<String> {
        let entries = fs::read_dir(dir.join(sub)).ok()?;
        entries
            .flatten()
            .find(|e| !ok(e))
            .map(|e| format!("its {sub}/ holds {}", e.file_name().to_string_lossy()))
    };
    let file_ending = |e: &fs::DirEntry, ext: &str| {
        e.file_type().is_ok_and(|t| t.is_file()) && e.file_name().to_string_lossy().ends_with(ext)
    };
    only("conditions", &|e| file_ending(e, ".log")).or_else(|| {
        only("diagnostics", &|e| {
            e.file_type().is_ok_and(|t| t.is_dir())
                && fs::read_dir(e.path())
                    .map(|d| d.flatten().all(|f| file_ending(&f, ".txt")))
                    .unwrap_or(false)
        })
    })
}

/// Create (or truncate) a file without following a symlink at its name.
fn create_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A folder at `path`, made if missing; a symlink there is refused, not followed.
fn real_dir(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is a symlink; a report is never written through one",
                path.display()
            ),
        )),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a folder", path.display()),
        )),
        Err(_) => fs::create_dir(path),
    }
}

/// Write a whole file: aside first, then renamed over the name, so a full disk leaves the
/// file absent (or as it was), never cut.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written =
        create_file(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_data()));
    match written.and_then(|_| fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

pub struct FolderReporter {
    dir: PathBuf,
    raw: Option<BufWriter<File>>,
    timing: Option<BufWriter<File>>,
    serial_log: Option<BufWriter<File>>,
    qemu_log: Option<BufWriter<File>>,
    /// serial.events: the harness's side of the session, for the replay of this folder.
    events: Option<BufWriter<File>>,
    raw_offset: u64,
    /// serial.raw's length when the current condition started (where its wait began).
    started_at_byte: u64,
    /// Holds only the console's unfinished line: complete lines go out at once.
    normalizer: Normalizer,
    current: Option<String>,
    transcripts: BTreeMap<String, BoundedText>,
    pub warnings: Vec<String>,
    incomplete: Incomplete,
}

impl FolderReporter {
    /// Create the folder (and its subfolders). Failing here is a harness error (exit 3).
    /// Without `console` (replay: the log is the input, not copied) there are no serial.* or
    /// qemu.log files.
    pub fn create(dir: &Path, console: bool) -> std::io::Result<FolderReporter> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        real_dir(dir)?;
        // Anything else there is someone's: a report never mixes with it, nor removes it.
        let foreign: Vec<String> = fs::read_dir(dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !(ENTRIES.contains(&n.as_str())
                    || n == MARK
                    || n.starts_with('.') && n.ends_with(".tmp"))
            })
            .collect();
        if !foreign.is_empty() {
            let mut names = foreign;
            names.sort();
            let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "it holds files that are not part of a bootaudit report ({shown}{}) — give \
                     an empty or new folder, or a previous report's (replaced whole)",
                    if names.len() > 5 { ", …" } else { "" }
                ),
            ));
        }
        for entry in ENTRIES {
            let path = dir.join(entry);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a symlink; a report is never written through one — remove it \
                         or choose another folder",
                        path.display()
                    ),
                ));
            }
        }
        if let Some(why) = not_a_previous_report(dir) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{why}: it is not a bootaudit report and is never removed — give an empty \
                     or new folder, or a previous report's (replaced whole)"
                ),
            ));
        }
        // A previous report here is replaced whole: none of its files may pass for this run's
        // (a full disk would otherwise leave the old report.json beside the new logs).
        for entry in ENTRIES {
            let path = dir.join(entry);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
                Ok(_) => fs::remove_file(&path)?,
                Err(_) => {}
            }
        }
        // Marked first, so that a report cut short (a SIGKILL before report.json) is still
        // known for ours and replaced by the next run into this folder.
        create_file(&dir.join(MARK))?.write_all(env!("CARGO_PKG_VERSION").as_bytes())?;
        real_dir(&dir.join("conditions"))?;
        real_dir(&dir.join("diagnostics"))?;
        let open = |name: &str| {
            console
                .then(|| create_file(&dir.join(name)).map(BufWriter::new))
                .transpose()
        };
        Ok(FolderReporter {
            dir: dir.to_path_buf(),
            raw: open("serial.raw")?,
            timing: open("serial.timing")?,
            serial_log: open("serial.log")?,
            qemu_log: open("qemu.log")?,
            events: open(crate::session_record::FILE)?,
            raw_offset: 0,
            started_at_byte: 0,
            normalizer: Normalizer::new(),
            current: None,
            transcripts: BTreeMap::new(),
            warnings: Vec::new(),
            incomplete: Incomplete::default(),
        })
    }

    /// Turns true if any part of the report could not be written.
    pub fn incomplete(&self) -> Incomplete {
        self.incomplete.clone()
    }

    fn warn(&mut self, what: &str, e: std::io::Error) {
        self.incomplete.store(true, Ordering::SeqCst);
        let w = format!("could not write {what}: {e}");
        eprintln!("bootaudit: warning: {w}");
        self.warnings.push(w);
    }

    fn write(
        &mut self,
        which: fn(&mut Self) -> &mut Option<BufWriter<File>>,
        name: &str,
        bytes: &[u8],
    ) {
        if let Some(w) = which(self) {
            if let Err(e) = w.write_all(bytes) {
                *which(self) = None;
                self.warn(name, e);
            }
        }
    }

    /// One entry of serial.events, flushed at once: a killed run's record must stand as far
    /// as its serial.raw does.
    fn record(&mut self, entry: &crate::session_record::Entry) {
        let mut line = serde_json::to_string(entry).expect("an entry serialises");
        line.push('\n');
        self.write(|s| &mut s.events, "serial.events", line.as_bytes());
        if let Some(w) = &mut self.events {
            let _ = w.flush();
        }
    }

    /// A line for serial.log and the current condition's transcript.
    fn log_line(&mut self, at: Millis, dir: char, text: &str) {
        let line = format!("{:>9.3} {dir} {text}\n", at as f64 / 1000.0);
        self.write(|s| &mut s.serial_log, "serial.log", line.as_bytes());
        self.add_to_transcript(&line);
    }

    /// Append to the current condition's transcript.
    fn add_to_transcript(&mut self, text: &str) {
        if let Some(id) = &self.current {
            self.transcripts
                .entry(id.clone())
                .or_default()
                .push_str(text);
        }
    }

    /// Emit every complete normalised line received so far.
    fn flush_lines(&mut self, at: Millis, all: bool) {
        let mut chunk = String::new();
        self.normalizer.take_lines(&mut chunk, all);
        // Stamped when complete, so received and sent lines stay in time order.
        for line in chunk.lines() {
            if !line.trim().is_empty() {
                self.log_line(at, '<', &readable(line));
            }
        }
    }

    fn note(&mut self, at: Millis, text: &str) {
        let line = format!("{:>9.3} : {text}\n", at as f64 / 1000.0);
        self.add_to_transcript(&line);
    }

    fn finish_condition(&mut self, c: &ConditionReport) {
        let transcript = self
            .transcripts
            .get(&c.id)
            .map(BoundedText::to_text)
            .unwrap_or_default();
        let mut text = format!(
            "condition: {}\nphase: {}\nstatus: {}\nmessage: {}\nevidence: {}\nstarted: +{:.3}s\nduration: {:.3}s\n",
            c.id,
            c.phase,
            c.status,
            c.message,
            c.evidence,
            c.started_ms as f64 / 1000.0,
            c.duration_ms as f64 / 1000.0
        );
        if let Some(b) = &c.blocked_by {
            text.push_str(&format!("blocked_by: {b}\n"));
        }
        if let Some(l) = c.log_line {
            text.push_str(&format!("log line: {l}\n"));
        }
        for w in &c.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        if !transcript.is_empty() {
            text.push_str(
                "\n-- transcript (time in s since start; > sent, < received, : harness) --\n",
            );
            text.push_str(&transcript);
        }
        let path = self.dir.join("conditions").join(format!("{}.log", c.id));
        if let Err(e) = create_file(&path).and_then(|mut f| f.write_all(text.as_bytes())) {
            self.warn(&path.display().to_string(), e);
        }
        if self.current.as_deref() == Some(c.id.as_str()) {
            self.current = None;
        }
    }

    fn finish_run(&mut self, report: &Report) {
        self.flush_lines(report.duration_ms, true);
        if report.verdict == crate::model::Verdict::Interrupted {
            self.record(&crate::session_record::Entry::Interrupted);
        }
        let unflushed: Vec<std::io::Error> = [
            &mut self.raw,
            &mut self.timing,
            &mut self.serial_log,
            &mut self.qemu_log,
            &mut self.events,
        ]
        .into_iter()
        .flatten()
        .filter_map(|w| w.flush().err())
        .collect();
        for e in unflushed {
            self.warn("the console logs", e);
        }
        let transcripts: BTreeMap<String, String> = self
            .transcripts
            .iter()
            .map(|(id, t)| (id.clone(), t.to_text()))
            .collect();
        let xml = super::junit::render(report, &transcripts, &self.dir);
        if let Err(e) = write_whole(&self.dir.join("junit.xml"), xml.as_bytes()) {
            self.warn("junit.xml", e);
        }
        self.write_html(report, &transcripts);
        // Last, so that it can say what of the folder could not be written: the run then
        // exits 3 whatever its verdict, and report.json must not read as a plain answer.
        let mut json = serde_json::to_value(report).expect("report serialises");
        if !self.warnings.is_empty() {
            json["report_problems"] = self.warnings.clone().into();
        }
        let text = serde_json::to_string_pretty(&json).expect("report serialises");
        if let Err(e) = write_whole(&self.dir.join("report.json"), (text + "\n").as_bytes()) {
            self.warn("report.json", e);
        }
    }

    /// report.html, with the head of serial.log where the run has one. Rendering only reads
    /// the report; should it fail all the same, the verdict stands and the page is missing.
    fn write_html(&mut self, report: &Report, transcripts: &BTreeMap<String, String>) {
        let serial = self
            .serial_log
            .is_some()
            .then(|| super::html::SerialLog::read_head(&self.dir.join("serial.log")).ok())
            .flatten();
        let page = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::html::render(report, transcripts, serial.as_ref())
        }));
        let written = match page {
            Ok(page) => write_whole(&self.dir.join("report.html"), page.as_bytes()),
            Err(_) => Err(std::io::Error::other("rendering failed (a bug)")),
        };
        if let Err(e) = written {
            self.warn("report.html", e);
        }
    }
}

impl Reporter for FolderReporter {
    fn event(&mut self, event: &Event<'_>) {
        match event {
            Event::ConditionStarted { id, at, .. } => {
                self.flush_lines(*at, false);
                self.current = Some(id.to_string());
                self.started_at_byte = self.raw_offset;
                self.note(*at, &format!("{id} started"));
            }
            Event::Progress { at, detail, .. } => self.note(*at, detail),
            Event::ConsoleReceived { at, bytes } => {
                self.write(|s| &mut s.raw, "serial.raw", bytes);
                let stamp = format!("{} {}\n", self.raw_offset, at);
                self.write(|s| &mut s.timing, "serial.timing", stamp.as_bytes());
                self.raw_offset += bytes.len() as u64;
                self.normalizer.push(bytes, tokio::time::Instant::now());
                // The raw console is the evidence: keep it on disk even if we are killed.
                if let Some(raw) = &mut self.raw {
                    let _ = raw.flush();
                }
                self.flush_lines(*at, false);
            }
            Event::ConsoleSent { at, bytes } => {
                self.flush_lines(*at, false);
                let text = String::from_utf8_lossy(bytes);
                let shown = text.trim_end_matches(['\r', '\n']);
                self.log_line(*at, '>', &as_typed(&readable(shown)));
            }
            Event::QemuLog { text } => self.write(|s| &mut s.qemu_log, "qemu.log", text.as_bytes()),
            Event::LogExcerpt { id, lines } => {
                let width = lines.last().map_or(1, |(n, _)| n.to_string().len());
                let mut text = String::from("-- the log (line: text) --\n");
                for (n, line) in lines.iter() {
                    text.push_str(&format!("{n:>width$}: {line}\n"));
                }
                self.transcripts
                    .entry(id.to_string())
                    .or_default()
                    .push_str(&text);
            }
            Event::Diagnostic { id, name, content } => {
                let dir = self.dir.join("diagnostics").join(id);
                let result = real_dir(&dir).and_then(|_| {
                    create_file(&dir.join(format!("{name}.txt")))
                        .and_then(|mut f| f.write_all(content.as_bytes()))
                });
                if let Err(e) = result {
                    self.warn(&format!("diagnostics/{id}/{name}.txt"), e);
                }
            }
            Event::ConditionFinished(c) => {
                // Judged on the host, not on the console, or the harness's side of a boot
                // condition (left out, or not judged): only the record can say.
                use crate::model::{Phase, SkipKind, Status};
                let harness_side = c.status == Status::Error
                    || (c.status == Status::Skip && c.skip_kind != SkipKind::Counts);
                if c.phase != Phase::Boot || harness_side {
                    self.record(&crate::session_record::Entry::Condition {
                        id: c.id.clone(),
                        phase: c.phase,
                        status: c.status,
                        message: c.message.clone(),
                        skip_kind: c.skip_kind,
                    });
                }
                self.finish_condition(c)
            }
            Event::Session(e) => {
                use crate::engine::events::SessionEvent;
                use crate::session_record::Entry;
                let entry = match *e {
                    SessionEvent::WaitRanOut { id } => Entry::WaitRanOut {
                        id: id.to_string(),
                        from_byte: self.started_at_byte,
                        to_byte: self.raw_offset,
                    },
                    SessionEvent::Ended {
                        during,
                        why,
                        image_fault,
                    } => Entry::Ended {
                        during: during.to_string(),
                        why: why.to_string(),
                        image_fault,
                    },
                };
                self.record(&entry);
            }
            Event::RunFinished(report) => self.finish_run(report),
            Event::RunStarted { .. } | Event::PhaseStarted(_) | Event::Note(_) => {}
        }
    }
}

/// A framed command line (as typed, or as the terminal echoed it whole) shows the command as
/// the catalog gives it, with its framing named apart; serial.raw keeps the bytes. Anything
/// else, a wrapped echo included, reads as it came.
fn readable(line: &str) -> std::borrow::Cow<'_, str> {
    match bootaudit_console::find_typed_frame(line) {
        Some(f) => {
            let echo = if f.before.is_empty() { "" } else { "echo, " };
            let marker = bootaudit_console::MARKER_PREFIX;
            let (before, command, token) = (f.before, f.command, f.token);
            format!("{before}{command}    [{echo}framed {marker}_{token}]").into()
        }
        None => line.into(),
    }
}

/// A sent line as it was typed: quotes and backslashes as they are, only control characters
/// (a Ctrl-C, an escape, a stray CR) shown as `\u{3}`-style escapes so the line stays one line.
fn as_typed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push('\t'),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// A condition's transcript held in memory with a bound: a guest flooding its console for
/// minutes must not grow the harness. The head (how the wait began) and the latest tail (how it
/// ended) are kept; what lies between is counted, and serial.log has all of it.
#[derive(Debug, Default)]
struct BoundedText {
    head: String,
    tail: String,
    omitted: u64,
}

/// Bytes kept of a transcript's beginning.
const TRANSCRIPT_HEAD: usize = 1 << 20;
/// Bytes kept of its end (up to twice this between trims).
const TRANSCRIPT_TAIL: usize = 3 << 20;

impl BoundedText {
    fn push_str(&mut self, text: &str) {
        if self.tail.is_empty() && self.head.len() + text.len() <= TRANSCRIPT_HEAD {
            self.head.push_str(text);
            return;
        }
        self.tail.push_str(text);
        if self.tail.len() > 2 * TRANSCRIPT_TAIL {
            let mut cut = self.tail.len() - TRANSCRIPT_TAIL;
            // At a line start where there is one, else at a character boundary.
            cut = match self.tail[cut..].find('\n') {
                Some(i) if i < TRANSCRIPT_TAIL / 2 => cut + i + 1,
                _ => (cut..self.tail.len())
                    .find(|&i| self.tail.is_char_boundary(i))
                    .unwrap_or(self.tail.len()),
            };
            self.tail.drain(..cut);
            self.omitted += cut as u64;
        }
    }

    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    fn to_text(&self) -> String {
        let mut text = String::with_capacity(self.len() + 100);
        text.push_str(&self.head);
        if self.omitted > 0 {
            text.push_str(&format!(
                "[… {} bytes of this transcript omitted here to bound memory; serial.log has them]\n",
                self.omitted
            ));
        }
        text.push_str(&self.tail);
        text
    }
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    #[test]
    fn framed_lines_show_the_command_and_the_framing_apart() {
        let framed = bootaudit_console::frame_with_token("vgs -o vg_name", "k3j9").unwrap();
        assert_eq!(readable(&framed.line), "vgs -o vg_name    [framed BA_k3j9]");
        let echo = format!("[nixos@nixos:~]$ {}", framed.line);
        assert_eq!(
            readable(&echo),
            "[nixos@nixos:~]$ vgs -o vg_name    [echo, framed BA_k3j9]"
        );
        assert_eq!(readable("BA_k3j9_END rc=0"), "BA_k3j9_END rc=0");
    }

    #[test]
    fn sent_lines_read_as_typed() {
        assert_eq!(
            as_typed(r#"printf '%s\n' "a b"; echo \$HOME"#),
            r#"printf '%s\n' "a b"; echo \$HOME"#
        );
        assert_eq!(as_typed("\u{3}"), "\\u{3}");
        assert_eq!(as_typed("a\rb\u{1b}[A"), "a\\rb\\u{1b}[A");
    }

    #[test]
    fn a_flooded_transcript_keeps_its_head_and_latest_tail_within_bounds() {
        let mut t = BoundedText::default();
        let line = "x".repeat(99) + "\n";
        for i in 0..200_000 {
            t.push_str(&line);
            assert!(
                t.len() <= TRANSCRIPT_HEAD + 2 * TRANSCRIPT_TAIL + line.len(),
                "{i}"
            );
        }
        t.push_str("the last line\n");
        let text = t.to_text();
        assert!(text.starts_with(&line));
        assert!(text.ends_with("the last line\n"));
        assert!(text.contains("bytes of this transcript omitted"), "no note");
        assert!(t.omitted > 0);
        // Cut at line starts: every kept line is whole.
        assert!(
            text.lines().all(|l| l.len() == 99 || !l.starts_with('x')),
            "a line was cut"
        );
    }

    #[test]
    fn a_huge_line_is_cut_at_a_character_boundary() {
        let mut t = BoundedText::default();
        t.push_str(&"é".repeat(5 << 20));
        assert!(t.len() <= TRANSCRIPT_HEAD + 2 * TRANSCRIPT_TAIL);
        let _ = t.to_text();
    }
}
