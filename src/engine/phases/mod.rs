//! The phases of the audit. Host, virt and iso conditions are builtin checks (code, one
//! function per condition id); the boot phase runs one QEMU session and drives the console.

pub mod boot;
pub mod host;
pub mod iso;
pub mod virt;

use super::Engine;
use crate::config::ConditionDef;
use crate::model::Outcome;

/// Condition ids implemented in code.
pub const BUILTIN_IDS: &[&str] = &[
    "host.qemu",
    "host.qemu-devices",
    "host.resources",
    "host.nix",
    "virt.kvm",
    "virt.tun",
    "virt.qemu-start",
    "iso.build",
    "iso.resolve",
    "iso.bootable",
    "iso.console",
    "boot.console",
    "boot.login",
    "boot.autologin",
    "shell.ready",
];

pub fn is_builtin(id: &str) -> bool {
    BUILTIN_IDS.contains(&id)
}

/// Run a builtin check of the host, virt or iso phase.
pub async fn run_builtin(engine: &mut Engine, def: &ConditionDef) -> Outcome {
    match def.id.as_str() {
        "host.qemu" => host::qemu(engine),
        "host.qemu-devices" => host::qemu_devices(engine),
        "host.resources" => host::resources(engine),
        "host.nix" => host::nix(engine),
        "virt.kvm" => virt::kvm(engine),
        "virt.tun" => virt::tun(engine),
        "virt.qemu-start" => virt::qemu_start(engine).await,
        "iso.build" => iso::build(engine),
        "iso.resolve" => iso::resolve(engine),
        "iso.bootable" => iso::bootable(engine),
        "iso.console" => iso::console(engine),
        other => Outcome::error(format!(
            "`{other}` is not a builtin check of the {} phase",
            def.phase
        )),
    }
}
