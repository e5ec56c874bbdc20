//! The phases of the audit. Host, virt and iso conditions are builtin checks (code, one
//! function per condition id); the boot phase runs one QEMU session and drives the console.

pub mod boot;
pub mod host;
pub mod iso;
pub mod virt;

use super::Engine;
use crate::config::{Builtin, CheckDef, ConditionDef};
use crate::model::Outcome;

/// Start what can run in the background from the run's start (the KVM probe), so that it is
/// off the critical path; its condition takes the answer when its turn comes.
pub fn start_background(engine: &mut Engine) {
    virt::start_kvm_probe(engine);
}

/// Run a builtin check of the host, virt or iso phase.
pub async fn run_builtin(engine: &mut Engine, def: &ConditionDef) -> Outcome {
    let builtin = match def.check() {
        Ok(CheckDef::Builtin(b)) => b,
        Ok(_) => return Outcome::error(format!("`{}` is not a builtin check", def.id)),
        Err(e) => return Outcome::error(e),
    };
    match builtin {
        Builtin::HostQemu => host::qemu(engine),
        Builtin::HostQemuDevices => host::qemu_devices(engine),
        Builtin::HostResources => host::resources(engine),
        Builtin::HostNix => host::nix(engine),
        Builtin::VirtKvm => virt::kvm(engine),
        Builtin::VirtTun => virt::tun(engine),
        Builtin::VirtQemuStart => virt::qemu_start(engine).await,
        Builtin::IsoBuild => iso::build(engine),
        Builtin::IsoResolve => iso::resolve(engine),
        Builtin::IsoBootable => iso::bootable(engine),
        Builtin::IsoConsole => iso::console(engine),
        // The boot phase judges its builtins in its QEMU session (boot::judge).
        Builtin::BootConsole
        | Builtin::BootLogin
        | Builtin::BootAutologin
        | Builtin::ShellReady => Outcome::error(format!("`{}` runs in the boot session", def.id)),
    }
}
