//! El Torito: the boot catalog that makes an ISO bootable from (virtual) CD.
//!
//! The boot record volume descriptor points at one catalog sector. Its layout, in 32-byte
//! entries: a validation entry (platform, checksum, 0x55 0xAA), the initial/default entry (for
//! the validation entry's platform, in practice BIOS), then optional section headers (0x90 =
//! more follow, 0x91 = last), each with a platform id and N section entries (plus 0x44
//! extension entries we skip). `xorriso -b … -eltorito-alt-boot -e …` writes exactly that:
//! BIOS in the default entry, UEFI (platform 0xEF) in a section.

use crate::error::IsoError;
use crate::image::IsoImage;

/// The platform an entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// 0x00: PC BIOS (isolinux, GRUB for BIOS).
    Bios,
    /// 0x01.
    PowerPc,
    /// 0x02.
    Mac,
    /// 0xEF: UEFI (an EFI system partition image holding `EFI/BOOT/BOOTX64.EFI`).
    Uefi,
    /// Anything else.
    Other(u8),
}

impl Platform {
    fn from_id(id: u8) -> Platform {
        match id {
            0x00 => Platform::Bios,
            0x01 => Platform::PowerPc,
            0x02 => Platform::Mac,
            0xEF => Platform::Uefi,
            other => Platform::Other(other),
        }
    }
    /// The El Torito platform id byte.
    pub fn id(self) -> u8 {
        match self {
            Platform::Bios => 0x00,
            Platform::PowerPc => 0x01,
            Platform::Mac => 0x02,
            Platform::Uefi => 0xEF,
            Platform::Other(b) => b,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Platform::Bios => f.write_str("BIOS"),
            Platform::PowerPc => f.write_str("PowerPC"),
            Platform::Mac => f.write_str("Mac"),
            Platform::Uefi => f.write_str("UEFI"),
            Platform::Other(b) => write!(f, "platform 0x{b:02X}"),
        }
    }
}

/// Boot media emulation of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// 0: the image is loaded as is (isolinux.bin, efiboot.img).
    NoEmulation,
    /// 1: 1.2 MB floppy.
    Floppy1200,
    /// 2: 1.44 MB floppy.
    Floppy1440,
    /// 3: 2.88 MB floppy.
    Floppy2880,
    /// 4: hard disk.
    HardDisk,
    /// Reserved values.
    Other(u8),
}

impl MediaType {
    fn from_byte(b: u8) -> MediaType {
        match b & 0x0F {
            0 => MediaType::NoEmulation,
            1 => MediaType::Floppy1200,
            2 => MediaType::Floppy1440,
            3 => MediaType::Floppy2880,
            4 => MediaType::HardDisk,
            other => MediaType::Other(other),
        }
    }
}

/// One bootable (or explicitly non-bootable) image listed in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Platform: from the validation entry for the default entry, else from its section header.
    pub platform: Platform,
    /// Boot indicator 0x88.
    pub bootable: bool,
    pub media: MediaType,
    /// Real-mode load segment (0 means the default 0x7C0).
    pub load_segment: u16,
    /// Count of 512-byte virtual sectors loaded at boot.
    pub sector_count: u16,
    /// Sector (2048 bytes) where the boot image starts.
    pub load_rba: u32,
    /// 0 for the initial/default entry, N for the N-th section.
    pub section: usize,
    /// The file in the image that starts at `load_rba`, when one does (`isolinux/isolinux.bin`).
    pub image_path: Option<String>,
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaType::NoEmulation => f.write_str("no emulation"),
            MediaType::Floppy1200 => f.write_str("1.2 MB floppy emulation"),
            MediaType::Floppy1440 => f.write_str("1.44 MB floppy emulation"),
            MediaType::Floppy2880 => f.write_str("2.88 MB floppy emulation"),
            MediaType::HardDisk => f.write_str("hard disk emulation"),
            MediaType::Other(b) => write!(f, "media type {b}"),
        }
    }
}

/// One line for a report: `BIOS, bootable, no emulation, isolinux/isolinux.bin at sector 34
/// (4 × 512 bytes loaded)`.
impl std::fmt::Display for CatalogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {}, {}, ",
            self.platform,
            if self.bootable {
                "bootable"
            } else {
                "not bootable"
            },
            self.media
        )?;
        match &self.image_path {
            Some(p) => write!(f, "{p} at sector {}", self.load_rba)?,
            None => write!(f, "image at sector {}", self.load_rba)?,
        }
        write!(f, " ({} × 512 bytes loaded)", self.sector_count)
    }
}

/// The parsed El Torito boot catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootCatalog {
    /// Sector of the catalog.
    pub sector: u32,
    /// Initial/default entry first, then section entries in order.
    pub entries: Vec<CatalogEntry>,
}

impl BootCatalog {
    /// Entries for one platform.
    pub fn entries_for(&self, platform: Platform) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.iter().filter(move |e| e.platform == platform)
    }
    /// True when a bootable BIOS entry exists.
    pub fn has_bios(&self) -> bool {
        self.entries_for(Platform::Bios).any(|e| e.bootable)
    }
    /// True when a bootable UEFI entry exists.
    pub fn has_uefi(&self) -> bool {
        self.entries_for(Platform::Uefi).any(|e| e.bootable)
    }
}

/// How many catalog sectors we read at most: 64 entries fit in one, real catalogs use one.
const MAX_CATALOG_SECTORS: u64 = 4;

/// Parses catalog bytes (starting at the validation entry). Pure, so it can be fuzzed alone.
pub fn parse_catalog(bytes: &[u8], sector: u32) -> Result<BootCatalog, IsoError> {
    let bad = |detail: String| IsoError::BadBootCatalog {
        sector: u64::from(sector),
        detail,
    };
    if bytes.len() < 64 {
        return Err(bad("shorter than a validation and a default entry".into()));
    }
    let v = &bytes[..32];
    if v[0] != 0x01 {
        return Err(bad(format!(
            "validation entry header id is 0x{:02X}, expected 0x01",
            v[0]
        )));
    }
    if v[30] != 0x55 || v[31] != 0xAA {
        return Err(bad(format!(
            "validation entry ends in 0x{:02X} 0x{:02X}, expected the key bytes 0x55 0xAA",
            v[30], v[31]
        )));
    }
    let sum = v.chunks_exact(2).fold(0u16, |acc, w| {
        acc.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    if sum != 0 {
        return Err(bad(format!(
            "validation entry checksum does not add up (sum 0x{sum:04X}, expected 0)"
        )));
    }
    let mut entries = vec![entry(&bytes[32..64], Platform::from_id(v[1]), 0)];

    let mut pos = 64usize;
    let mut section = 0usize;
    // Running out of read sectors ends the walk: nothing more we can trust.
    while let Some(header) = bytes.get(pos..pos + 32) {
        match header[0] {
            0x90 | 0x91 => {}
            0x00 => break, // unused space: no (more) sections
            other => {
                return Err(bad(format!(
                    "unexpected header indicator 0x{other:02X} at byte {pos} (expected a \
                     section header 0x90/0x91)"
                )))
            }
        }
        let last = header[0] == 0x91;
        let platform = Platform::from_id(header[1]);
        let count = usize::from(u16::from_le_bytes([header[2], header[3]]));
        section += 1;
        pos += 32;
        let mut seen = 0usize;
        while seen < count {
            let Some(e) = bytes.get(pos..pos + 32) else {
                return Err(bad(format!(
                    "section {section} announces {count} entries but the catalog ends after {seen}"
                )));
            };
            pos += 32;
            match e[0] {
                0x88 | 0x00 => {
                    entries.push(entry(e, platform, section));
                    seen += 1;
                    // Bit 5 of the media byte: extension entries (0x44) follow; skip them.
                    let mut more = e[1] & 0x20 != 0;
                    while more {
                        match bytes.get(pos..pos + 32) {
                            Some(x) if x[0] == 0x44 => {
                                more = x[1] & 0x20 != 0;
                                pos += 32;
                            }
                            _ => more = false,
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "section {section} entry {} has boot indicator 0x{other:02X} (expected \
                         0x88 or 0x00)",
                        seen + 1
                    )))
                }
            }
        }
        if last {
            break;
        }
    }
    Ok(BootCatalog { sector, entries })
}

fn entry(e: &[u8], platform: Platform, section: usize) -> CatalogEntry {
    CatalogEntry {
        platform,
        bootable: e[0] == 0x88,
        media: MediaType::from_byte(e[1]),
        load_segment: u16::from_le_bytes([e[2], e[3]]),
        sector_count: u16::from_le_bytes([e[6], e[7]]),
        load_rba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
        section,
        image_path: None,
    }
}

impl IsoImage {
    /// The El Torito boot catalog: `Ok(None)` when the image has no El Torito boot record (it
    /// is then not bootable from CD), an error when the catalog is damaged or out of the file.
    pub fn boot_catalog(&self) -> Result<Option<BootCatalog>, IsoError> {
        let Some(sector) = self.boot_catalog_sector() else {
            return Ok(None);
        };
        let start = u64::from(sector);
        let available_sectors = (self.len() / crate::image::SECTOR).saturating_sub(start);
        if available_sectors == 0 {
            return Err(IsoError::Truncated {
                what: "El Torito boot catalog".into(),
                sector: start,
                file_len: self.len(),
            });
        }
        let n = available_sectors.min(MAX_CATALOG_SECTORS);
        let bytes = self.read_raw(start, (n * crate::image::SECTOR) as usize, || {
            "El Torito boot catalog".into()
        })?;
        let mut catalog = parse_catalog(&bytes, sector)?;
        for (i, e) in catalog.entries.iter().enumerate() {
            if u64::from(e.load_rba) * crate::image::SECTOR >= self.len() {
                return Err(IsoError::Truncated {
                    what: format!(
                        "El Torito {} boot image (catalog entry {})",
                        e.platform,
                        i + 1
                    ),
                    sector: u64::from(e.load_rba),
                    file_len: self.len(),
                });
            }
        }
        // Name the boot images; a walk failure only costs us the names.
        if let Ok(files) = self.walk() {
            for e in &mut catalog.entries {
                e.image_path = files
                    .iter()
                    .find(|f| !f.is_dir() && f.size() > 0 && f.start_sector() == e.load_rba)
                    .map(|f| f.path().to_string());
            }
        }
        Ok(Some(catalog))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validation(platform: u8) -> [u8; 32] {
        let mut v = [0u8; 32];
        v[0] = 1;
        v[1] = platform;
        v[30] = 0x55;
        v[31] = 0xAA;
        let sum = v.chunks_exact(2).fold(0u16, |a, w| {
            a.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        let ck = 0u16.wrapping_sub(sum).to_le_bytes();
        v[28] = ck[0];
        v[29] = ck[1];
        v
    }

    #[test]
    fn parses_bios_and_uefi() {
        let mut c = vec![0u8; 2048];
        c[..32].copy_from_slice(&validation(0));
        c[32] = 0x88;
        c[38] = 4;
        c[40] = 50;
        c[64] = 0x91;
        c[65] = 0xEF;
        c[66] = 1;
        c[96] = 0x88;
        c[104] = 60;
        let cat = parse_catalog(&c, 33).unwrap();
        assert_eq!(cat.entries.len(), 2);
        assert!(cat.has_bios() && cat.has_uefi());
        assert_eq!(cat.entries[0].load_rba, 50);
        assert_eq!(cat.entries[0].sector_count, 4);
        assert_eq!(cat.entries[1].platform, Platform::Uefi);
        assert_eq!(cat.entries[1].load_rba, 60);
    }

    #[test]
    fn rejects_bad_checksum_and_key() {
        let mut c = vec![0u8; 2048];
        c[..32].copy_from_slice(&validation(0));
        c[5] ^= 1;
        let e = parse_catalog(&c, 1).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        c[..32].copy_from_slice(&validation(0));
        c[31] = 0;
        let e = parse_catalog(&c, 1).unwrap_err().to_string();
        assert!(e.contains("0x55 0xAA"), "{e}");
    }

    #[test]
    fn section_overrun_is_an_error_not_a_panic() {
        let mut c = vec![0u8; 96];
        c[..32].copy_from_slice(&validation(0));
        c[64] = 0x91;
        c[66] = 0xFF;
        c[67] = 0xFF;
        assert!(parse_catalog(&c, 1).is_err());
    }
}
