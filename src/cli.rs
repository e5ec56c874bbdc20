//! Command-line interface (clap). Parsing only: `app` turns these into a run.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "bootaudit",
    version,
    about = "Boot an OS image in QEMU and audit it, with evidence, over the serial console",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit an image end to end: host, virt, iso, then a serial-console boot.
    Run(RunArgs),
    /// Run one phase alone, without booting.
    Check {
        #[command(subcommand)]
        phase: CheckPhase,
    },
    /// Judge a captured serial log offline against the same checks.
    Replay(ReplayArgs),
    /// List the conditions of a profile, in run order; with ids, how each is checked.
    List(ListArgs),
    /// Compare two runs: conditions whose verdict changed, boot milestones and condition times
    /// that grew. Exit 1 on a regression, 0 when none, 2 on bad input.
    Compare(CompareArgs),
    /// Reap what earlier runs that were killed (SIGKILL, a host crash) left behind: their QEMU
    /// and probe processes, matched by pid, start time and command line, and their private
    /// temporary folders. Every run, check and replay does this as it starts.
    Clean,
}

#[derive(Debug, Subcommand)]
pub enum CheckPhase {
    /// Host tooling and resources.
    Host(CommonArgs),
    /// KVM, /dev/net/tun, and a QEMU start with QMP.
    Virt(CommonArgs),
    /// The ISO's structure and boot configs (serial console), without booting.
    Iso(IsoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Profile: an embedded name (pre-nixos, generic, nixos-installer) or a YAML file.
    #[arg(long, default_value = "pre-nixos")]
    pub profile: String,
    /// Set one of the profile's vars (repeatable), e.g. --var user=admin.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Report folder (default: audit-reports/<UTC time>-<image name>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Accelerator: auto uses KVM when it really runs a guest, TCG otherwise.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Multiply every boot timeout (after TCG scaling).
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    pub timeout_scale: f64,
    /// Audit only these conditions (and what they require).
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub only: Vec<String>,
    /// Do not audit these conditions (their dependents are blocked).
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub skip: Vec<String>,
    /// Build the ISO with `nix build FLAKE` first.
    #[arg(long, value_name = "REF")]
    pub flake: Option<String>,
    /// human: progress and summary on stderr; json: the report on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// GitHub Actions output: an `::error` annotation per failed condition and a job summary in
    /// $GITHUB_STEP_SUMMARY (on by itself when GITHUB_ACTIONS=true).
    #[arg(long)]
    pub github: bool,
}

#[derive(Debug, Clone, Args)]
pub struct IsoArgs {
    /// The ISO file, or a directory holding exactly one .iso.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The ISO file, or a directory holding exactly one .iso (e.g. nix's result/iso).
    #[arg(long)]
    pub iso: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A serial log: bootaudit's serial.raw or a capture by another tool.
    pub serial_log: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Show how these conditions are checked (command, patterns, waits, replay forms).
    pub ids: Vec<String>,
    /// Profile: an embedded name (pre-nixos, generic, nixos-installer) or a YAML file.
    #[arg(long, default_value = "pre-nixos")]
    pub profile: String,
    /// Set one of the profile's vars (repeatable), e.g. --var user=admin.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The earlier run: a report folder or its report.json.
    pub old: PathBuf,
    /// The later run: a report folder or its report.json.
    pub new: PathBuf,
    /// A time counts as slower when it grew by more than PERCENT of the old time …
    #[arg(long, value_name = "PERCENT", default_value_t = 25.0, value_parser = parse_amount)]
    pub slower_by: f64,
    /// … and by more than SECONDS.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = parse_amount)]
    pub at_least: f64,
    /// human: a readable list on stdout; json: the comparison as one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write the comparison as a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// A threshold: a number ≥ 0, optionally written with its unit (`25%`, `2s`).
fn parse_amount(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches(['%', 's']).trim_end();
    match n.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of at least 0")),
    }
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{s}`: write NAME=VALUE")),
    }
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err("must be greater than 0 and at most 100".into())
    }
}
