//! Crash-safe cleanup. Everything a run owns outside its report folder — the children it spawns
//! (QEMU, probes, nix) and its private folders (sockets, sparse disks, firmware variables) — is
//! written down, as it is acquired, in a record in a per-user state folder. A run that ends
//! normally removes its record with the last thing it owned; a run killed with SIGKILL leaves
//! it, and the next run (or `bootaudit clean`) reaps what it names, once, and says so.
//!
//! Identity is never a name. A run is its pid, its start time and the boot it ran in; a child is
//! its pid, its start time and its command line, all of which must still match before it is
//! killed; a folder is the exact path the record names, removed only if it is still a folder
//! (not a symlink). Records are replaced atomically (written aside, then renamed).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The environment variable that moves the state folder (tests, several users of one account).
pub const STATE_DIR_ENV: &str = "BOOTAUDIT_STATE_DIR";

/// A process as the kernel knows it: pid numbers are reused, the start time within one boot
/// and the command line tell one process from another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: i32,
    /// Clock ticks after the boot (`/proc/PID/stat`, field 22).
    pub start_time: u64,
    pub cmdline: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    pid: i32,
    start_time: u64,
    /// `/proc/sys/kernel/random/boot_id`: start times count from the boot.
    boot_id: String,
}

/// What one run owns, as written in `<state>/runs/<pid>-<start time>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    version: u32,
    owner: Owner,
    /// The run's command line, for the report of a reaping.
    command: Vec<String>,
    started_at: String,
    processes: Vec<ProcessIdentity>,
    folders: Vec<PathBuf>,
}

/// What reaping a dead run's record did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    pub record: PathBuf,
    pub owner_pid: i32,
    pub started_at: String,
    pub command: String,
    pub killed: Vec<ProcessIdentity>,
    pub removed: Vec<PathBuf>,
    /// What could not be done (a folder that would not go), and unreadable records.
    pub problems: Vec<String>,
}

impl std::fmt::Display for Reaped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No run behind it: an unreadable record, or a state folder not trusted.
        if self.owner_pid == 0 {
            return write!(f, "cleanup: {}", self.problems.join("; "));
        }
        write!(
            f,
            "an earlier run (pid {}, started {}, `{}`) ended without cleaning up",
            self.owner_pid, self.started_at, self.command
        )?;
        let mut did: Vec<String> = self
            .killed
            .iter()
            .map(|p| {
                format!(
                    "killed pid {} ({})",
                    p.pid,
                    p.cmdline.first().map(String::as_str).unwrap_or("?")
                )
            })
            .collect();
        did.extend(
            self.removed
                .iter()
                .map(|d| format!("removed {}", d.display())),
        );
        if did.is_empty() {
            did.push("nothing of it was left".into());
        }
        write!(f, ": {}", did.join(", "))?;
        for p in &self.problems {
            write!(f, "; {p}")?;
        }
        Ok(())
    }
}

/// The per-user state folder: `$BOOTAUDIT_STATE_DIR`, else `$XDG_STATE_HOME/bootaudit`, else
/// `~/.local/state/bootaudit`, else a 0700 folder in the temporary folder named by the uid.
pub fn state_dir() -> PathBuf {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = from_env(STATE_DIR_ENV) {
        return d;
    }
    if let Some(d) = from_env("XDG_STATE_HOME") {
        return d.join("bootaudit");
    }
    if let Some(h) = from_env("HOME") {
        return h.join(".local/state/bootaudit");
    }
    std::env::temp_dir().join(format!("bootaudit-state-{}", my_uid()))
}

fn runs_dir() -> PathBuf {
    state_dir().join("runs")
}

/// The start time of a process and its command line, if it exists (and is not a zombie).
pub fn identify(pid: i32) -> Option<ProcessIdentity> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces or parentheses itself.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // Field 22 of stat is the 20th after the name (state is field 3).
    let start_time = fields.get(19)?.parse().ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(ProcessIdentity {
        pid,
        start_time,
        cmdline,
    })
}

/// The process group a process leads, if it leads one (`/proc/PID/stat` field 5 is its pgrp).
fn leads_group(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(") ")?;
            rest.split(' ').nth(2)?.parse::<i32>().ok()
        })
        .is_some_and(|pgrp| pgrp == pid)
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This run's record, written while it owns anything.
struct Registry {
    path: PathBuf,
    record: Record,
    /// A failure to write was reported (once).
    warned: bool,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry(change: impl FnOnce(&mut Record)) {
    let Ok(mut guard) = REGISTRY.lock() else {
        return;
    };
    let reg = guard.get_or_insert_with(|| {
        let me = identify(std::process::id() as i32);
        // Without its own start time a record could not tell this run from a dead one with
        // the same pid: every other run would reap this one's folders mid-boot. None is kept.
        let warned = me.is_none();
        if warned {
            eprintln!(
                "bootaudit: warning: cannot read this process's start time in /proc: no cleanup \
                 record is kept, so what a SIGKILL leaves will not be reaped"
            );
        }
        let owner = Owner {
            pid: std::process::id() as i32,
            start_time: me.as_ref().map_or(0, |m| m.start_time),
            boot_id: boot_id(),
        };
        Registry {
            path: runs_dir().join(format!("{}-{}.json", owner.pid, owner.start_time)),
            record: Record {
                version: 1,
                owner,
                command: me.map(|m| m.cmdline).unwrap_or_default(),
                started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                processes: Vec::new(),
                folders: Vec::new(),
            },
            warned,
        }
    });
    change(&mut reg.record);
    if reg.record.owner.start_time == 0 {
        return;
    }
    let result = if reg.record.processes.is_empty() && reg.record.folders.is_empty() {
        match std::fs::remove_file(&reg.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        write_record(&reg.path, &reg.record)
    };
    if let Err(e) = result {
        if !reg.warned {
            reg.warned = true;
            eprintln!(
                "bootaudit: warning: cannot keep the cleanup record {}: {e} — if this run is \
                 killed, what it leaves in {} will not be reaped (set {STATE_DIR_ENV} to a \
                 writable folder)",
                reg.path.display(),
                std::env::temp_dir().display()
            );
        }
    }
}

fn write_record(path: &Path, record: &Record) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().expect("a record is in the runs folder");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Record a child this run spawned (called right after the spawn, before anything can wait).
pub fn track_process(pid: i32) {
    let Some(id) = settled_identity(pid) else {
        return;
    };
    with_registry(|r| r.processes.push(id));
}

/// [`identify`], waiting a moment for the command line: right after a spawn, under load, the
/// kernel may not show the new program's yet, and a record without it could never match.
fn settled_identity(pid: i32) -> Option<ProcessIdentity> {
    let mut id = identify(pid);
    for _ in 0..40 {
        if id.as_ref().is_none_or(|i| !i.cmdline.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        id = identify(pid);
    }
    id
}

/// The child has been reaped.
pub fn untrack_process(pid: i32) {
    with_registry(|r| r.processes.retain(|p| p.pid != pid));
}

fn track_folder(path: &Path) {
    with_registry(|r| r.folders.push(path.to_path_buf()));
}

fn untrack_folder(path: &Path) {
    with_registry(|r| r.folders.retain(|f| f != path));
}

/// How an owned folder's name begins; [`OWNED_NAME_CHARS`] random letters and digits follow.
const OWNED_PREFIX: &str = "bootaudit-";
const OWNED_NAME_CHARS: usize = 10;

/// Could this be a folder [`OwnedDir`] made? A record is only data on disk: reaping removes
/// nothing else, whatever a record names.
fn is_owned_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(OWNED_PREFIX))
        .is_some_and(|rest| {
            rest.len() == OWNED_NAME_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// A private folder (0700) in the temporary folder, recorded before it exists and removed on
/// drop.
pub struct OwnedDir {
    path: PathBuf,
}

impl OwnedDir {
    pub fn create() -> std::io::Result<OwnedDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let path = base.join(format!("{OWNED_PREFIX}{}", fastrand_name()));
            // Recorded first: a SIGKILL between the two leaves a record naming a folder that may
            // not exist, never a folder no record names.
            track_folder(&path);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(OwnedDir { path }),
                Err(e) => {
                    untrack_folder(&path);
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                }
            }
        }
        Err(std::io::Error::other(format!(
            "no free name for a private folder in {}",
            base.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn fastrand_name() -> String {
    (0..OWNED_NAME_CHARS)
        .map(|_| fastrand::alphanumeric())
        .collect::<String>()
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        untrack_folder(&self.path);
    }
}

/// Remove every folder this run owns, now (a second Ctrl-C exits without unwinding).
pub fn remove_owned_now() {
    let folders = match REGISTRY.lock() {
        Ok(g) => g
            .as_ref()
            .map(|r| r.record.folders.clone())
            .unwrap_or_default(),
        Err(_) => return,
    };
    for f in &folders {
        let _ = std::fs::remove_dir_all(f);
    }
    // The children were killed just before (`kill_all_now`): nothing is left to reap.
    with_registry(|r| {
        r.folders.clear();
        r.processes.clear();
    });
}

fn my_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail.
    unsafe { libc::getuid() }
}

fn owned_by_me(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.uid() == my_uid()
}

/// Is this state folder ours alone: a real folder, owned by this user, writable by nobody
/// else? Records in any other could name anything, and reaping removes what they name.
fn is_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if m.file_type().is_symlink() || !m.is_dir() {
        return Err(format!("{} is not a folder (a symlink?)", dir.display()));
    }
    if !owned_by_me(&m) || m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} belongs to uid {} with mode {:o}: it must be yours and writable by you alone",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Whether the run a record belongs to still runs.
fn owner_alive(owner: &Owner, this_boot: &str) -> bool {
    owner.boot_id == this_boot
        && identify(owner.pid).is_some_and(|p| p.start_time == owner.start_time)
}

/// The records of runs that still run (this one included), as (pid, started at, folders).
pub fn live_runs() -> Vec<(i32, String, Vec<PathBuf>)> {
    let this_boot = boot_id();
    records(&runs_dir())
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .filter(|r| owner_alive(&r.owner, &this_boot))
        .map(|r| (r.owner.pid, r.started_at, r.folders))
        .collect()
}

type ReadRecord = Result<Record, String>;

fn records(dir: &Path) -> Vec<(PathBuf, ReadRecord)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") || orphaned_claim(p))
        .map(|p| {
            let r = std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
            (p, r)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A record's own name, `<pid>-<start>.json`, also when it has been claimed.
fn unclaimed(record: &Path) -> PathBuf {
    let name = record
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once(".reaping-") {
        Some((base, _)) => record.with_file_name(base),
        None => record.to_path_buf(),
    }
}

/// The name a record is claimed under: `<pid>-<start>.json.reaping-<reaper>`.
fn claim_name(record: &Path, reaper: i32) -> PathBuf {
    let base = unclaimed(record);
    let name = base.file_name().unwrap_or_default().to_string_lossy();
    base.with_file_name(format!("{name}.reaping-{reaper}"))
}

/// A record claimed for reaping (`….json.reaping-PID`) by a reaper that died before it was
/// done: listed again, or what it names would never be reaped.
fn orphaned_claim(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .and_then(|x| x.strip_prefix("reaping-"))
        .and_then(|pid| pid.parse::<i32>().ok())
        .is_some_and(|pid| identify(pid).is_none())
}

/// Reap the records of runs that no longer run: kill what still matches, remove the named
/// folders, delete the record. Each is reported once, because its record goes.
pub fn reap_stale() -> Vec<Reaped> {
    reap_stale_in(&runs_dir())
}

fn reap_stale_in(dir: &Path) -> Vec<Reaped> {
    let this_boot = boot_id();
    let me = std::process::id() as i32;
    let mut reaped = Vec::new();
    if !dir.exists() {
        return reaped;
    }
    let trusted = dir
        .parent()
        .map_or(Ok(()), is_private)
        .and_then(|()| is_private(dir));
    if let Err(why) = trusted {
        reaped.push(Reaped {
            record: dir.to_path_buf(),
            problems: vec![format!(
                "nothing reaped: {why} — fix it, or set {STATE_DIR_ENV} to a private folder"
            )],
            ..Default::default()
        });
        return reaped;
    }
    for (path, record) in records(dir) {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                // Written atomically, so it was never one of ours: leave it, but say so.
                reaped.push(Reaped {
                    record: path.clone(),
                    problems: vec![format!(
                        "the record {} is unreadable ({e}); remove it by hand",
                        path.display()
                    )],
                    ..Default::default()
                });
                continue;
            }
        };
        // A start time of 0 was never written by a run (see `with_registry`).
        if record.owner.start_time == 0 || owner_alive(&record.owner, &this_boot) {
            continue;
        }
        // Claimed by a rename, so that of two runs starting together one reaps and reports it.
        let claimed = claim_name(&path, me);
        if std::fs::rename(&path, &claimed).is_err() {
            continue;
        }
        let (original, path) = (path, claimed);
        let mut done = Reaped {
            record: original.clone(),
            owner_pid: record.owner.pid,
            started_at: record.started_at.clone(),
            command: record.command.join(" "),
            ..Default::default()
        };
        if record.owner.boot_id == this_boot {
            for p in &record.processes {
                if identify(p.pid).as_ref() == Some(p) {
                    let target = if leads_group(p.pid) { -p.pid } else { p.pid };
                    // SAFETY: kill(2) of a process whose pid, start time and command line
                    // all match what its dead owner recorded.
                    unsafe { libc::kill(target, libc::SIGKILL) };
                    done.killed.push(p.clone());
                }
            }
        }
        for f in &record.folders {
            if !is_owned_name(f) {
                done.problems.push(format!(
                    "left {}: not a folder a run makes ({OWNED_PREFIX}…)",
                    f.display()
                ));
                continue;
            }
            match std::fs::symlink_metadata(f) {
                Ok(m) if m.is_dir() && !owned_by_me(&m) => done
                    .problems
                    .push(format!("left {}: it belongs to another user", f.display())),
                Ok(m) if m.is_dir() => match std::fs::remove_dir_all(f) {
                    Ok(()) => done.removed.push(f.clone()),
                    Err(e) => done
                        .problems
                        .push(format!("could not remove {}: {e}", f.display())),
                },
                Ok(_) => done
                    .problems
                    .push(format!("left {}: it is no longer a folder", f.display())),
                Err(_) => {}
            }
        }
        if let Err(e) = std::fs::remove_file(&path) {
            done.problems.push(format!(
                "could not remove the record {}: {e}",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(unclaimed(&original).with_extension("json.tmp"));
        reaped.push(done);
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_itself_and_not_a_missing_pid() {
        let me = identify(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
        assert!(!me.cmdline.is_empty());
        assert!(identify(i32::MAX).is_none());
    }

    /// A record written by a process that has exited, naming a folder and a process that is
    /// not the recorded one (same pid, other start time): the folder goes, nothing is killed.
    #[test]
    fn a_dead_runs_record_is_reaped_once_and_kills_only_what_matches() {
        let state = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        let left = victim.path().join("bootaudit-left012345");
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("disk0.img"), b"x").unwrap();
        // A live process that must survive: its identity differs from the record's.
        let mut bystander = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut wrong = settled_identity(bystander.id() as i32).unwrap();
        wrong.start_time += 1;
        // A dead owner: a child that has already exited.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id() as i32;
        let gone_start = identify(gone_pid).map_or(1, |p| p.start_time);
        gone.wait().unwrap();
        let record = Record {
            version: 1,
            owner: Owner {
                pid: gone_pid,
                start_time: gone_start,
                boot_id: boot_id(),
            },
            command: vec!["bootaudit".into(), "run".into()],
            started_at: "2026-12-02T20:00:00Z".into(),
            processes: vec![wrong],
            folders: vec![left.clone()],
        };
        let path = state.path().join("runs/1-1.json");
        write_record(&path, &record).unwrap();
        let first = reap_stale_in(&state.path().join("runs"));
        let second = reap_stale_in(&state.path().join("runs"));
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].removed, vec![left.clone()]);
        assert!(first[0].killed.is_empty(), "{first:?}");
        assert!(!left.exists());
        assert!(!path.exists());
        assert!(second.is_empty(), "reported twice: {second:?}");
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "a bystander was killed"
        );
        bystander.kill().unwrap();
        bystander.wait().unwrap();
        assert!(first[0].to_string().contains("removed"), "{}", first[0]);
    }

    fn dead_owner() -> Owner {
        Owner {
            pid: i32::MAX,
            start_time: 1,
            boot_id: boot_id(),
        }
    }

    /// The record of a run that no longer runs, naming these folders.
    fn dead_runs_record(folders: Vec<PathBuf>) -> Record {
        Record {
            version: 1,
            owner: dead_owner(),
            command: vec!["bootaudit".into()],
            started_at: "2026-12-02T20:00:00Z".into(),
            processes: vec![],
            folders,
        }
    }

    /// A record is only data: one naming a folder no run makes (a user's work), or kept in a
    /// state folder others may write, removes nothing.
    #[test]
    fn a_record_never_removes_what_a_run_does_not_make() {
        let state = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        let work = victim.path().join("src");
        std::fs::create_dir(&work).unwrap();
        let record = dead_runs_record(vec![work.clone()]);
        let runs = state.path().join("runs");
        write_record(&runs.join("4-1.json"), &record).unwrap();
        let reaped = reap_stale_in(&runs);
        assert!(work.is_dir(), "a user's folder was removed");
        assert!(
            reaped[0].problems[0].contains("not a folder a run makes"),
            "{reaped:?}"
        );
        // A state folder others may write: nothing is reaped, and it says why.
        let made = victim.path().join("bootaudit-abcdefghij");
        std::fs::create_dir(&made).unwrap();
        let record = dead_runs_record(vec![made.clone()]);
        write_record(&runs.join("5-1.json"), &record).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o777)).unwrap();
        let reaped = reap_stale_in(&runs);
        assert!(made.is_dir());
        assert_eq!(reaped.len(), 1, "{reaped:?}");
        assert!(
            reaped[0].to_string().contains("nothing reaped"),
            "{}",
            reaped[0]
        );
        assert!(runs.join("5-1.json").exists());
    }

    /// A reaper killed between claiming a record and finishing leaves the claim: the next
    /// reaping takes it over. A claim whose reaper still runs is its reaper's.
    #[test]
    fn a_claim_whose_reaper_died_is_reaped_again() {
        let state = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        let left = victim.path().join("bootaudit-0123456789");
        std::fs::create_dir(&left).unwrap();
        let record = dead_runs_record(vec![left.clone()]);
        let runs = state.path().join("runs");
        let mut dead_reaper = std::process::Command::new("true").spawn().unwrap();
        let dead = dead_reaper.id() as i32;
        dead_reaper.wait().unwrap();
        write_record(&runs.join(format!("6-1.json.reaping-{dead}")), &record).unwrap();
        let me = std::process::id();
        write_record(&runs.join(format!("7-1.json.reaping-{me}")), &record).unwrap();
        let reaped = reap_stale_in(&runs);
        assert_eq!(reaped.len(), 1, "{reaped:?}");
        assert_eq!(
            reaped[0].record,
            runs.join(format!("6-1.json.reaping-{dead}"))
        );
        assert!(!left.exists());
        let names: Vec<String> = std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [format!("7-1.json.reaping-{me}")],
            "a live claim is left"
        );
    }

    #[test]
    fn a_recorded_child_that_still_matches_is_killed() {
        let state = tempfile::tempdir().unwrap();
        let mut orphan = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = settled_identity(orphan.id() as i32).unwrap();
        let record = Record {
            version: 1,
            owner: Owner {
                pid: i32::MAX,
                start_time: 1,
                boot_id: boot_id(),
            },
            command: vec!["bootaudit".into()],
            started_at: "2026-12-02T20:00:00Z".into(),
            processes: vec![id.clone()],
            folders: vec![],
        };
        write_record(&state.path().join("runs/2-1.json"), &record).unwrap();
        let reaped = reap_stale_in(&state.path().join("runs"));
        assert_eq!(reaped[0].killed, vec![id]);
        let status = orphan.wait().unwrap();
        assert!(!status.success(), "{status:?}");
    }

    #[test]
    fn a_live_runs_record_is_left_alone() {
        let state = tempfile::tempdir().unwrap();
        let mut runner = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = settled_identity(runner.id() as i32).unwrap();
        let folder = state.path().join("owned");
        std::fs::create_dir(&folder).unwrap();
        let record = Record {
            version: 1,
            owner: Owner {
                pid: id.pid,
                start_time: id.start_time,
                boot_id: boot_id(),
            },
            command: vec![],
            started_at: String::new(),
            processes: vec![],
            folders: vec![folder.clone()],
        };
        write_record(&state.path().join("runs/3-1.json"), &record).unwrap();
        assert!(reap_stale_in(&state.path().join("runs")).is_empty());
        assert!(folder.exists());
        runner.kill().unwrap();
        runner.wait().unwrap();
    }
}
