//! `bootaudit-iso`: what `bootaudit` learns from an ISO image *before* booting it.
//!
//! It backs two conditions of the contract (`shared/SPEC.md`):
//! - `iso.bootable` — [`IsoImage::open`] validates the ISO 9660 volume descriptor set, and
//!   [`IsoImage::boot_catalog`] parses the El Torito catalog (BIOS and UEFI entries);
//! - `iso.console` — [`boot_configs`] finds the isolinux/syslinux, GRUB and systemd-boot configs
//!   in the image and extracts every Linux entry's kernel command line; [`console::judge`] says
//!   whether each one sends the console to `ttyS0` (and warns when ttyS0 is not the last
//!   `console=`, which would leave init's output on another device).
//!
//! Pure Rust, no mounting, no external tools at run time, no printing: the caller decides how
//! to report. Hostile input yields an [`IsoError`] whose message says what to do, never a panic
//! (see `tests/mutations.rs`). Why an own reader and not a crate: see `docs/iso.md`.
//!
//! ```no_run
//! use bootaudit_iso::{boot_configs, console, IsoImage};
//! let image = IsoImage::open("result/iso/nixos.iso")?;
//! match image.boot_catalog()? {
//!     None => println!("{}", bootaudit_iso::NO_BOOT_CATALOG),
//!     Some(cat) => println!("BIOS {} UEFI {}", cat.has_bios(), cat.has_uefi()),
//! }
//! let scan = boot_configs(&image)?;
//! let verdict = console::judge(&scan.entries(), "ttyS0");
//! for f in &verdict.failures {
//!     println!("{f}");
//! }
//! # Ok::<(), bootaudit_iso::IsoError>(())
//! ```

pub mod configs;
pub mod console;
pub mod eltorito;
mod error;
pub mod image;

pub use configs::{
    boot_configs, parse_config, BootConfig, BootConfigScan, BootEntry, ConfigKind, ConfigWarning,
    SkippedEntry,
};
pub use console::{ConsoleStatus, ConsoleUse, ConsoleVerdict};
pub use eltorito::{BootCatalog, CatalogEntry, MediaType, Platform};
pub use error::IsoError;
pub use image::{Entry, IsoImage, Namespace, VolumeDescriptorKind, DEFAULT_READ_LIMIT};

/// The `iso.bootable` failure message for an image without an El Torito boot record.
pub const NO_BOOT_CATALOG: &str =
    "no El Torito boot catalog: the image is not bootable from CD — build it with \
     `xorriso -as mkisofs -b <boot image> -c <catalog> …` (and `-eltorito-alt-boot -e \
     <efi image>` for UEFI)";
