//! Everything that knows QEMU: the command line (pure, tested without a VM), the live process
//! under a guard that always kills and reaps it, the QMP client, and short probes (version,
//! devices, does KVM really run a guest).

pub mod args;
pub mod ending;
pub mod firmware;
pub mod probe;
pub mod process;
pub mod qmp;
pub mod workspace;
