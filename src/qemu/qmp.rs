//! A minimal QMP client: the greeting, capability negotiation, and commands with their
//! answers. Asynchronous events that arrive in between are kept (the last few), for telling why
//! a session ended. Every read is bounded.

use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP: no answer within {0:?}")]
    Timeout(Duration),
    #[error("QMP: connection closed by QEMU")]
    Closed,
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: unexpected reply {0}")]
    Protocol(String),
    #[error("QMP command `{command}` failed: {desc}")]
    Command { command: String, desc: String },
}

pub struct Qmp {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    timeout: Duration,
    /// The latest events QEMU sent (SHUTDOWN, STOP, BLOCK_IO_ERROR…), oldest first.
    events: Vec<Value>,
}

/// Events kept: a guest can make QEMU emit many (RTC changes); the telling ones come last.
const EVENTS_KEPT: usize = 32;

impl Qmp {
    /// Take over a connected QMP socket: read the greeting and leave negotiation mode.
    pub async fn handshake(
        stream: UnixStream,
        timeout: Duration,
    ) -> Result<(Qmp, Value), QmpError> {
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(r),
            writer: w,
            timeout,
            events: Vec::new(),
        };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.execute("qmp_capabilities").await?;
        Ok((qmp, greeting))
    }

    async fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout(self.timeout))??;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.trim().to_string()))
    }

    /// Run a command and return its `return` value.
    pub async fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        let msg = json!({ "execute": command }).to_string() + "\n";
        self.writer.write_all(msg.as_bytes()).await?;
        loop {
            let reply = self.read_message().await?;
            if reply.get("event").is_some() {
                self.keep_event(reply);
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(QmpError::Command {
                    command: command.to_string(),
                    desc: err
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
            return Err(QmpError::Protocol(reply.to_string()));
        }
    }

    fn keep_event(&mut self, event: Value) {
        if self.events.len() == EVENTS_KEPT {
            self.events.remove(0);
        }
        self.events.push(event);
    }

    /// Read the events QEMU sent until it closes the connection or `wait` passes.
    pub async fn read_events(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Ok(msg)) = tokio::time::timeout_at(until, self.read_message()).await {
            if msg.get("event").is_some() {
                self.keep_event(msg);
            }
        }
    }

    /// The `reason` of the last SHUTDOWN event (`guest-shutdown`, `guest-reset`, `host-signal`).
    pub fn shutdown_reason(&self) -> Option<&str> {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == "SHUTDOWN")
            .and_then(|e| e["data"]["reason"].as_str())
    }

    /// A BLOCK_IO_ERROR said the host had no space left for a disk.
    pub fn saw_no_space(&self) -> bool {
        self.events
            .iter()
            .any(|e| e["event"] == "BLOCK_IO_ERROR" && e["data"]["nospace"] == true)
    }

    /// QEMU's run state (`running`, `paused`, `io-error`, `shutdown`…).
    pub async fn run_state(&mut self) -> Option<String> {
        let status = self.execute("query-status").await.ok()?;
        status["status"].as_str().map(str::to_string)
    }

    /// Ask QEMU to quit; the connection closing is the expected answer.
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit").await {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
