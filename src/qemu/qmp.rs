//! A minimal QMP client: the greeting, capability negotiation, and commands with their
//! answers. Asynchronous events that arrive in between are skipped. Every read is bounded.

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
}

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

    /// Ask QEMU to quit; the connection closing is the expected answer.
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit").await {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
