//! QEMU (and probe) processes that never outlive bootaudit.
//!
//! Three layers, because each covers a way the others can miss:
//! - the child gets its own process group, so a kill takes any helpers it forked;
//! - the child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`). That
//!   signal fires when the *thread* that spawned it exits, so each child is spawned from a
//!   keeper thread that lives exactly as long as the child (it waits on it);
//! - [`QemuProcess`] kills the group on drop, on every error path, and a second Ctrl-C kills
//!   every live group before exiting.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Process groups of live children, for the last-resort kill on a second Ctrl-C.
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kill every live child group at once (used when exiting without unwinding).
pub fn kill_all_now() {
    if let Ok(live) = LIVE.lock() {
        for &pgid in live.iter() {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

fn prepare(cmd: &mut Command) {
    cmd.process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// The child's piped output streams, if piped.
struct Pipes {
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
}

/// A running child under guard. Dropping it kills the process group and reaps the child.
pub struct QemuProcess {
    pid: i32,
    exit: Option<ExitStatus>,
    exit_rx: mpsc::Receiver<std::io::Result<ExitStatus>>,
    /// Flips to true when the child has exited, for async waiters.
    exited: tokio::sync::watch::Receiver<bool>,
    keeper: Option<std::thread::JoinHandle<()>>,
}

impl QemuProcess {
    /// Spawn `program args` with stdout and stderr into `log` (stdin closed).
    pub fn spawn(program: &str, args: &[String], log: File) -> std::io::Result<QemuProcess> {
        let log2 = log.try_clone()?;
        Self::spawn_with(program, args, Stdio::from(log), Stdio::from(log2)).map(|(p, _)| p)
    }

    /// Spawn with stdout piped back to the caller.
    fn spawn_piped(program: &str, args: &[String]) -> std::io::Result<(QemuProcess, Pipes)> {
        Self::spawn_with(program, args, Stdio::piped(), Stdio::piped())
    }

    fn spawn_with(
        program: &str,
        args: &[String],
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<(QemuProcess, Pipes)> {
        let (started_tx, started_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        let (exited_tx, exited) = tokio::sync::watch::channel(false);
        let program = program.to_string();
        let args = args.to_vec();
        let keeper = std::thread::Builder::new()
            .name("qemu-keeper".into())
            .spawn(move || {
                let mut cmd = Command::new(&program);
                cmd.args(&args)
                    .stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(stderr);
                prepare(&mut cmd);
                match cmd.spawn() {
                    Ok(mut child) => {
                        let pid = child.id() as i32;
                        LIVE.lock().map(|mut l| l.push(pid)).ok();
                        crate::cleanup::track_process(pid);
                        let _ =
                            started_tx.send(Ok((pid, child.stdout.take(), child.stderr.take())));
                        // This thread must outlive the child: its exit would fire PDEATHSIG.
                        let status = child.wait();
                        LIVE.lock().map(|mut l| l.retain(|&p| p != pid)).ok();
                        crate::cleanup::untrack_process(pid);
                        let _ = exit_tx.send(status);
                        exited_tx.send_replace(true);
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
            })?;
        match started_rx.recv() {
            Ok(Ok((pid, stdout, stderr))) => Ok((
                QemuProcess {
                    pid,
                    exit: None,
                    exit_rx,
                    exited,
                    keeper: Some(keeper),
                },
                Pipes { stdout, stderr },
            )),
            Ok(Err(e)) => {
                let _ = keeper.join();
                Err(e)
            }
            Err(_) => Err(std::io::Error::other(
                "the keeper thread ended before spawning",
            )),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The exit status, if the child has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Ok(status)) = self.exit_rx.try_recv() {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Resolves when the child has exited (without blocking a thread).
    pub async fn exited(&mut self) {
        let _ = self.exited.wait_for(|e| *e).await;
    }

    /// Wait up to `timeout` for the child to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Ok(status)) = self.exit_rx.recv_timeout(timeout) {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Kill the whole process group and reap the child.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            // SAFETY: signals our own child's process group.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
            self.wait_timeout(Duration::from_secs(5));
        }
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a short-lived probe printed, and whether it said what was awaited in time.
#[derive(Debug)]
pub struct ProbeRun {
    pub output: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
    /// The awaited output appeared before the deadline.
    pub matched: bool,
    /// The process exited by itself before the deadline (None: killed at the deadline or
    /// after the match).
    pub exit: Option<ExitStatus>,
}

/// Run a command with a hard deadline, reading stdout until `done(output)` says enough (then
/// the process is killed) or it exits; killed at the deadline whatever happens.
pub fn run_probe(
    program: &str,
    args: &[String],
    deadline: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<ProbeRun> {
    run_probe_until(program, args, || deadline, done)
}

/// [`run_probe`] with a deadline that may move while it runs (`deadline()` is asked again at
/// least every 25 ms): a race against another probe ends it early.
pub fn run_probe_until(
    program: &str,
    args: &[String],
    deadline: impl Fn() -> Duration,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<ProbeRun> {
    let start = Instant::now();
    let (mut proc, pipes) = QemuProcess::spawn_piped(program, args)?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    if let Some(out) = pipes.stdout {
        forward(out, tx);
    }
    // stderr is collected apart (and drained, so the child never blocks on a full pipe).
    let (err_tx, err_rx) = mpsc::channel::<Vec<u8>>();
    if let Some(err) = pipes.stderr {
        forward(err, err_tx);
    }
    let mut output = Vec::new();
    let mut matched = false;
    loop {
        let left = deadline().saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(25))) {
            Ok(chunk) => {
                output.extend_from_slice(&chunk);
                if done(&output) {
                    matched = true;
                    break;
                }
            }
            // stdout closed: the process is exiting.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                proc.wait_timeout(deadline().saturating_sub(start.elapsed()));
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let exit = proc.try_exit();
    proc.kill();
    let mut stderr = Vec::new();
    // The group is dead, so the pipe is closing; bound the wait anyway.
    while let Ok(chunk) = err_rx.recv_timeout(Duration::from_millis(200)) {
        stderr.extend_from_slice(&chunk);
    }
    Ok(ProbeRun {
        output,
        stderr,
        elapsed: start.elapsed(),
        matched,
        exit,
    })
}

fn forward(mut from: impl Read + Send + 'static, to: mpsc::Sender<Vec<u8>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks existence.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn probe_is_killed_at_deadline_with_its_group() {
        let args = vec![
            "-c".to_string(),
            "sleep 30 & echo started; wait".to_string(),
        ];
        let run = run_probe("sh", &args, Duration::from_millis(300), |_| false).unwrap();
        assert!(!run.matched);
        assert!(run.elapsed < Duration::from_secs(2), "{:?}", run.elapsed);
        assert_eq!(String::from_utf8_lossy(&run.output).trim(), "started");
    }

    #[test]
    fn probe_stops_on_match() {
        let args = vec!["-c".to_string(), "echo ready; sleep 30".to_string()];
        let run = run_probe("sh", &args, Duration::from_secs(5), |o| {
            o.starts_with(b"ready")
        })
        .unwrap();
        assert!(run.matched);
        assert!(run.elapsed < Duration::from_secs(2));
    }

    #[test]
    fn dropping_the_guard_kills_the_child() {
        let log = tempfile::tempfile().unwrap();
        let p = QemuProcess::spawn("sleep", &["30".to_string()], log).unwrap();
        let pid = p.pid();
        assert!(alive(pid));
        drop(p);
        assert!(!alive(pid), "child {pid} survived the guard");
    }

    #[test]
    fn missing_program_is_an_error() {
        let log = tempfile::tempfile().unwrap();
        assert!(QemuProcess::spawn("/nonexistent/qemu", &[], log).is_err());
    }
}
