//! The guest's firmware files. BIOS is SeaBIOS, built into QEMU; UEFI is OVMF, two files: the
//! code (read-only) and a variable store that the firmware writes, so every run boots from its
//! own copy of the store's template.

use crate::config::profile::{Firmware, Machine};
use std::path::{Path, PathBuf};

/// Where Debian's `ovmf` package (and other distributions') put OVMF: code and its matching
/// variable store, in order of preference (the 4 MiB build first, as QEMU's own descriptors).
const OVMF_PAIRS: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd",
        "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd",
    ),
];

/// OVMF's two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UefiFiles {
    pub code: PathBuf,
    /// The variable store: the template, or in a workspace the run's own copy.
    pub vars: PathBuf,
}

/// The UEFI firmware files the machine needs (`None` for BIOS), or what to install.
pub fn uefi_files(machine: &Machine) -> Result<Option<UefiFiles>, String> {
    if machine.firmware == Firmware::Bios {
        return Ok(None);
    }
    let found = |p: &Path| p.is_file();
    let pair = match (&machine.uefi_code, &machine.uefi_vars) {
        (Some(code), Some(vars)) => (code.clone(), vars.clone()),
        (code, vars) => {
            let default = OVMF_PAIRS
                .iter()
                .map(|(c, v)| (PathBuf::from(c), PathBuf::from(v)))
                .find(|(c, v)| match (code, vars) {
                    (Some(x), _) => x == c && found(v),
                    (None, Some(x)) => x == v && found(c),
                    (None, None) => found(c) && found(v),
                })
                .unwrap_or_else(|| {
                    let (c, v) = OVMF_PAIRS[0];
                    (PathBuf::from(c), PathBuf::from(v))
                });
            (
                code.clone().unwrap_or(default.0),
                vars.clone().unwrap_or(default.1),
            )
        }
    };
    for (what, path) in [("code", &pair.0), ("variable store", &pair.1)] {
        if !found(path) {
            return Err(format!(
                "the UEFI firmware's {what} {} is missing — install Debian's `ovmf` package (apt-get install ovmf), or set machine.uefi_code and machine.uefi_vars",
                path.display()
            ));
        }
    }
    Ok(Some(UefiFiles {
        code: pair.0,
        vars: pair.1,
    }))
}
