//! The report folder of SPEC.md: serial.raw (+ serial.timing), serial.log, qemu.log,
//! conditions/ID.log, diagnostics/ID/, report.json and junit.xml. A failure to write a side
//! output is remembered as a warning; it never changes a verdict.

use crate::engine::events::{Event, Millis, Reporter};
use crate::model::{ConditionReport, Report};
use bootaudit_console::Normalizer;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct FolderReporter {
    dir: PathBuf,
    raw: Option<BufWriter<File>>,
    timing: Option<BufWriter<File>>,
    serial_log: Option<BufWriter<File>>,
    qemu_log: Option<BufWriter<File>>,
    raw_offset: u64,
    normalizer: Normalizer,
    /// How much of the normaliser's text has been written out as lines.
    emitted: usize,
    current: Option<String>,
    transcripts: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

impl FolderReporter {
    /// Create the folder (and its subfolders). Failing here is a harness error (exit 3).
    /// Without `console` (replay: the log is the input, not copied) there are no serial.* or
    /// qemu.log files.
    pub fn create(dir: &Path, console: bool) -> std::io::Result<FolderReporter> {
        fs::create_dir_all(dir.join("conditions"))?;
        fs::create_dir_all(dir.join("diagnostics"))?;
        let open = |name: &str| {
            console
                .then(|| File::create(dir.join(name)).map(BufWriter::new))
                .transpose()
        };
        Ok(FolderReporter {
            dir: dir.to_path_buf(),
            raw: open("serial.raw")?,
            timing: open("serial.timing")?,
            serial_log: open("serial.log")?,
            qemu_log: open("qemu.log")?,
            raw_offset: 0,
            normalizer: Normalizer::new(),
            emitted: 0,
            current: None,
            transcripts: BTreeMap::new(),
            warnings: Vec::new(),
        })
    }

    fn warn(&mut self, what: &str, e: std::io::Error) {
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

    /// A line for serial.log and the current condition's transcript.
    fn log_line(&mut self, at: Millis, dir: char, text: &str) {
        let line = format!("{:>9.3} {dir} {text}\n", at as f64 / 1000.0);
        self.write(|s| &mut s.serial_log, "serial.log", line.as_bytes());
        if let Some(id) = &self.current {
            self.transcripts
                .entry(id.clone())
                .or_default()
                .push_str(&line);
        }
    }

    /// Emit every complete normalised line received so far.
    fn flush_lines(&mut self, at: Millis, all: bool) {
        let text = self.normalizer.text();
        let end = if all {
            text.len()
        } else {
            text[self.emitted..]
                .rfind('\n')
                .map(|i| self.emitted + i + 1)
                .unwrap_or(self.emitted)
        };
        if end <= self.emitted {
            return;
        }
        let chunk = text[self.emitted..end].to_string();
        self.emitted = end;
        // Stamped when complete, so received and sent lines stay in time order.
        for line in chunk.lines() {
            if !line.trim().is_empty() {
                self.log_line(at, '<', line);
            }
        }
    }

    fn note(&mut self, at: Millis, text: &str) {
        let line = format!("{:>9.3} : {text}\n", at as f64 / 1000.0);
        if let Some(id) = &self.current {
            self.transcripts
                .entry(id.clone())
                .or_default()
                .push_str(&line);
        }
    }

    fn finish_condition(&mut self, c: &ConditionReport) {
        let transcript = self.transcripts.get(&c.id).cloned().unwrap_or_default();
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
        if let Err(e) = fs::write(&path, text) {
            self.warn(&path.display().to_string(), e);
        }
        if self.current.as_deref() == Some(c.id.as_str()) {
            self.current = None;
        }
    }

    fn finish_run(&mut self, report: &Report) {
        self.flush_lines(report.duration_ms, true);
        for w in [
            &mut self.raw,
            &mut self.timing,
            &mut self.serial_log,
            &mut self.qemu_log,
        ]
        .into_iter()
        .flatten()
        {
            let _ = w.flush();
        }
        let json = serde_json::to_string_pretty(report).expect("report serialises");
        if let Err(e) = fs::write(self.dir.join("report.json"), json + "\n") {
            self.warn("report.json", e);
        }
        let xml = super::junit::render(report, &self.transcripts, &self.dir);
        if let Err(e) = fs::write(self.dir.join("junit.xml"), xml) {
            self.warn("junit.xml", e);
        }
        self.write_html(report);
    }

    /// report.html, with the head of serial.log where the run has one. Rendering only reads
    /// the report; should it fail all the same, the verdict stands and the page is missing.
    fn write_html(&mut self, report: &Report) {
        let serial = self
            .serial_log
            .is_some()
            .then(|| super::html::SerialLog::read_head(&self.dir.join("serial.log")).ok())
            .flatten();
        let transcripts = &self.transcripts;
        let page = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::html::render(report, transcripts, serial.as_ref())
        }));
        let written = match page {
            Ok(page) => fs::write(self.dir.join("report.html"), page),
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
                self.log_line(*at, '>', &shown.escape_debug().to_string());
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
                let result = fs::create_dir_all(&dir)
                    .and_then(|_| fs::write(dir.join(format!("{name}.txt")), content));
                if let Err(e) = result {
                    self.warn(&format!("diagnostics/{id}/{name}.txt"), e);
                }
            }
            Event::ConditionFinished(c) => self.finish_condition(c),
            Event::RunFinished(report) => self.finish_run(report),
            Event::RunStarted { .. } | Event::PhaseStarted(_) | Event::Note(_) => {}
        }
    }
}
