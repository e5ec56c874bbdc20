//! The private folder of one QEMU session: 0700, holding the QMP and serial sockets, the blank
//! sparse disks, the run's copy of the UEFI variable store and, for a direct boot, the kernel
//! and initrd taken from the ISO. Removed when dropped, and recorded for a later run to reap
//! if this one is killed (see `crate::cleanup`).

use super::firmware::{uefi_files, UefiFiles};
use crate::config::profile::Machine;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub struct Workspace {
    dir: crate::cleanup::OwnedDir,
    pub qmp_socket: PathBuf,
    pub serial_socket: PathBuf,
    pub disks: Vec<PathBuf>,
    pub qemu_log: PathBuf,
    /// UEFI: the firmware code and this run's own variable store.
    pub uefi: Option<UefiFiles>,
}

impl Workspace {
    pub fn create(machine: &Machine) -> std::io::Result<Workspace> {
        let firmware = uefi_files(machine).map_err(std::io::Error::other)?;
        // 0700: the sockets inside rely on it.
        let dir = crate::cleanup::OwnedDir::create()?;
        let mut disks = Vec::new();
        for (i, d) in machine.disks.iter().enumerate() {
            let path = dir.path().join(format!("disk{i}.img"));
            // A sparse file: costs no space until the guest writes.
            File::create(&path)?.set_len(d.size.0)?;
            disks.push(path);
        }
        let uefi = match firmware {
            Some(f) => {
                let vars = dir.path().join("uefi-vars.fd");
                std::fs::copy(&f.vars, &vars)?;
                std::fs::set_permissions(&vars, std::fs::Permissions::from_mode(0o600))?;
                Some(UefiFiles { code: f.code, vars })
            }
            None => None,
        };
        Ok(Workspace {
            uefi,
            qmp_socket: dir.path().join("qmp.sock"),
            serial_socket: dir.path().join("serial.sock"),
            qemu_log: dir.path().join("qemu.log"),
            disks,
            dir,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}
