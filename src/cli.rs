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
    Host(HostArgs),
    /// KVM, /dev/net/tun, and a QEMU start with QMP.
    Virt(VirtArgs),
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
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Audit only these conditions (and what they require): --only a,b or --only a --only b.
    #[arg(long, value_delimiter = ',', value_name = "ID[,ID…]")]
    pub only: Vec<String>,
    /// Do not audit these conditions (their dependents are blocked): --skip a,b or repeated.
    #[arg(long, value_delimiter = ',', value_name = "ID[,ID…]")]
    pub skip: Vec<String>,
    /// human: progress and summary on stderr; json: the report on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// GitHub Actions output: an `::error` annotation per failed condition and a job summary in
    /// $GITHUB_STEP_SUMMARY (on by itself when GITHUB_ACTIONS=true).
    #[arg(long)]
    pub github: bool,
}

/// How the boot runs: only `run` boots.
#[derive(Debug, Clone, Args)]
pub struct BootArgs {
    /// Accelerator: auto uses KVM when it really runs a guest, TCG otherwise.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Multiply every boot timeout (after TCG scaling), e.g. 2 on a slow runner.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = parse_scale)]
    pub timeout_scale: f64,
}

impl Default for BootArgs {
    fn default() -> Self {
        BootArgs {
            accel: Accel::Auto,
            timeout_scale: 1.0,
        }
    }
}

/// The image: an ISO, or a flake that builds one — exactly one of them.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ImageArgs {
    /// The ISO file, or a directory holding exactly one .iso (e.g. nix's result/iso).
    #[arg(long, value_name = "PATH")]
    pub iso: Option<PathBuf>,
    /// Build the ISO with `nix build REF` first (e.g. .#iso); instead of --iso.
    #[arg(long, value_name = "REF")]
    pub flake: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Also check that nix can build this flake (host.nix).
    #[arg(long, value_name = "REF")]
    pub flake: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct VirtArgs {
    /// Accelerator: auto uses KVM when it really runs a guest, TCG otherwise.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct IsoArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub boot: BootArgs,
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
    /// human: a readable list; json: the conditions as JSON.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand says what it is for.
    #[test]
    fn every_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "bootaudit", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn a_list_of_ids_never_swallows_the_positional_argument() {
        let cli = Cli::try_parse_from([
            "bootaudit",
            "replay",
            "--only",
            "storage.status,boot.login",
            "T31.log",
        ])
        .unwrap();
        let Command::Replay(a) = cli.command else {
            panic!("not a replay")
        };
        assert_eq!(a.serial_log, PathBuf::from("T31.log"));
        assert_eq!(a.common.only, ["storage.status", "boot.login"]);
    }

    #[test]
    fn each_subcommand_takes_only_the_flags_it_uses() {
        let refused = [
            vec!["replay", "x.log", "--accel", "kvm"],
            vec!["replay", "x.log", "--timeout-scale", "2"],
            vec!["replay", "x.log", "--flake", ".#iso"],
            vec!["check", "host", "--accel", "tcg"],
            vec!["check", "host", "--timeout-scale", "2"],
            vec!["check", "iso", "--iso", "x.iso", "--accel", "tcg"],
            vec!["run"],
            vec!["run", "--iso", "x.iso", "--flake", ".#iso"],
            vec!["check", "iso"],
        ];
        for args in refused {
            let argv = std::iter::once("bootaudit").chain(args.iter().copied());
            let err = Cli::try_parse_from(argv).expect_err(&args.join(" "));
            assert_eq!(err.exit_code(), 2, "{}: {err}", args.join(" "));
        }
    }
}
