//! The profile: the image contract (machine, users, vars, timeouts, failure signatures) and
//! which catalog conditions it selects.

use super::contract::{BootSrc, ConsoleSrc};
use super::pattern::PatternSrc;
use super::scalar;
use super::units::{Size, Span};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Shown in reports; default: the file's name without `.yaml`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Catalogs to draw conditions from: an embedded name (`pre-nixos`) or a path relative to
    /// the profile file.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Conditions of the profile's own, after the catalogs' (a profile adds a probe without a
    /// catalog file of its own).
    #[serde(default)]
    pub conditions: Vec<super::catalog::ConditionDef>,
    /// Condition ids this profile audits, in catalog order; empty means all of them.
    #[serde(default)]
    pub select: Vec<String>,
    /// Conditions whose skip still lets the run pass (e.g. no KVM on a CI runner).
    #[serde(default)]
    pub allowed_skips: Vec<String>,
    /// Values for `{name}` placeholders in probe commands and patterns.
    #[serde(default, deserialize_with = "scalar::text_map")]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub machine: Machine,
    /// The console contract: port, login, escalation, prompts (docs/profiles.md).
    #[serde(default)]
    pub console: ConsoleSrc,
    /// What boots: the entry, and whether through the boot menu or directly.
    #[serde(default)]
    pub boot: BootSrc,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub failure_signatures: Vec<Signature>,
    /// Console lines by which the guest says it did not get the CPU it needed (RCU stalls,
    /// soft lockups). They end no wait; a condition whose wait runs out after one appeared
    /// during it is an error, not a failure: the run cannot tell a starved guest from a broken
    /// image.
    #[serde(default)]
    pub stall_signatures: Vec<StallSignature>,
    /// Console lines that may land in the middle of command output (service banners,
    /// announcements); they are set aside, not taken as output.
    #[serde(default)]
    pub noise: Vec<PatternSrc>,
    /// Named commands run (as root when possible) when a condition that names them fails.
    #[serde(default)]
    pub diagnostics: BTreeMap<String, Diagnostic>,
    /// The boot's milestones, in boot order: each is the first console line its pattern
    /// matches (report.json's `timeline`).
    #[serde(default)]
    pub milestones: Vec<MilestoneDef>,
    /// A command the user's shell runs once the boot conditions are judged, telling how the
    /// guest's own boot went (systemd-analyze); its output goes in the timeline.
    #[serde(default)]
    pub boot_analysis: Option<BootAnalysis>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Machine {
    pub qemu: String,
    pub machine_type: String,
    /// `bios` (SeaBIOS, QEMU's default) or `uefi` (OVMF).
    #[serde(default)]
    pub firmware: Firmware,
    /// OVMF's code image; default: the first of Debian's `ovmf` files found.
    pub uefi_code: Option<std::path::PathBuf>,
    /// OVMF's variable store template, copied for every run.
    pub uefi_vars: Option<std::path::PathBuf>,
    pub memory: Size,
    pub cpus: u32,
    pub disks: Vec<Disk>,
    pub nic: Nic,
    /// The virtio-rng device model, if any.
    #[serde(deserialize_with = "scalar::optional_device")]
    pub rng: Option<String>,
    /// Extra arguments appended verbatim.
    #[serde(deserialize_with = "scalar::text_list")]
    pub extra_args: Vec<String>,
}

/// The embedded profiles' machine: what a profile need not repeat.
impl Default for Machine {
    fn default() -> Self {
        Machine {
            qemu: "qemu-system-x86_64".into(),
            machine_type: "pc".into(),
            firmware: Firmware::Bios,
            uefi_code: None,
            uefi_vars: None,
            memory: Size(1536 << 20),
            cpus: 2,
            disks: Vec::new(),
            nic: Nic::default(),
            rng: None,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    #[default]
    Bios,
    Uefi,
}

impl Firmware {
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub size: Size,
    #[serde(default = "default_disk_device", deserialize_with = "scalar::device")]
    pub device: String,
}

fn default_disk_device() -> String {
    "virtio-blk-pci".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Nic {
    #[serde(deserialize_with = "scalar::device")]
    pub device: String,
    pub network: Network,
    /// Host port forwards for user networking, `tcp:HOSTPORT-:GUESTPORT`; always bound to
    /// 127.0.0.1.
    pub forwards: Vec<String>,
}

impl Default for Nic {
    fn default() -> Self {
        Nic {
            device: "virtio-net-pci".into(),
            network: Network::User,
            forwards: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    User,
    Tap,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Resources {
    /// Free disk needed in the work folder (disks are sparse, but may fill).
    pub disk: Size,
    /// Memory needed beyond the guest's own.
    pub memory_overhead: Size,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            disk: Size(2 << 30),
            memory_overhead: Size(512 << 20),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Timeouts {
    /// Default for boot conditions the catalog gives no timeout.
    pub default: Span,
    /// Multiplier applied to every boot timeout when the guest runs under TCG.
    pub tcg_scale: f64,
    /// Per-condition overrides, by id.
    pub conditions: BTreeMap<String, Span>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            default: Span(std::time::Duration::from_secs(60)),
            tcg_scale: 3.0,
            conditions: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub name: String,
    pub pattern: PatternSrc,
    /// The conditions this signature fails; empty means every boot condition still waiting.
    #[serde(default)]
    pub fails: Vec<String>,
    /// The line that ends the report the signature starts (a panic's `---[ end Kernel panic`):
    /// the verdict waits for it, so the transcript holds the whole report; at most a few
    /// seconds when it never comes.
    pub end: Option<PatternSrc>,
}

/// How the guest tells of its own boot: `run` always (cheap), `slow.run` as well when the
/// login prompt came later than `slow.after` from power-on (scaled like the boot timeouts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootAnalysis {
    #[serde(deserialize_with = "scalar::text")]
    pub run: String,
    pub slow: Option<SlowBoot>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowBoot {
    pub after: Span,
    #[serde(deserialize_with = "scalar::text")]
    pub run: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilestoneDef {
    pub name: String,
    pub pattern: PatternSrc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallSignature {
    pub name: String,
    pub pattern: PatternSrc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnostic {
    /// A shell command: `run: true` is the command `true`.
    #[serde(deserialize_with = "scalar::text")]
    pub run: String,
}
