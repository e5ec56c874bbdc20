//! The ISO 9660 reader: volume descriptors, directories, names, lookups, file contents.
//!
//! Design rules, all driven by the fact that the input may be a half-written download or a
//! corrupt build artefact:
//! - every offset read from the image is bounds-checked against the file length before use,
//!   with checked arithmetic (a `u32` sector times 2048 does not fit a `u32`);
//! - every loop has a bound (descriptor count, directory size, SUSP continuation count, walk
//!   depth and entry count) and directory cycles are broken by a visited set;
//! - nothing is mounted and no external tool runs: `bootaudit check iso` must work in a CI
//!   container without loop devices, FUSE or xorriso.
//!
//! Names: Rock Ridge `NM` names when the image has Rock Ridge (that is what Linux shows after a
//! mount, and what boot loaders such as GRUB see), else Joliet names, else plain ISO 9660 names
//! with the `;1` version and a trailing `.` removed. Lookups ignore case, because boot loaders
//! differ (`EFI/BOOT` vs `EFI/boot`) and firmware FAT lookups are case-insensitive too.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::IsoError;

/// ISO 9660 sector size. El Torito addresses and the system area are always in 2048-byte
/// sectors; we also require the logical block size to be 2048 (every real-world image is).
pub const SECTOR: u64 = 2048;

/// Default cap for [`IsoImage::read_file`]: boot configs are a few KiB, so 1 MiB is generous
/// while keeping a hostile size field from making us allocate gigabytes.
pub const DEFAULT_READ_LIMIT: u64 = 1024 * 1024;

const FIRST_DESCRIPTOR: u64 = 16;
const MAX_DESCRIPTORS: u64 = 64;
/// A directory larger than this is treated as corrupt (real ones are a few hundred KiB at most).
const MAX_DIR_BYTES: u64 = 16 * 1024 * 1024;
const MAX_WALK_DEPTH: usize = 128;
const MAX_WALK_ENTRIES: usize = 500_000;
/// Rock Ridge continuation areas (`CE`) chained per directory record.
const MAX_CONTINUATIONS: usize = 16;

/// Which name space the reader uses for names and lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Primary tree with Rock Ridge `NM` names (POSIX names, as after a Linux mount).
    RockRidge,
    /// Joliet tree (UCS-2 names) from a supplementary volume descriptor.
    Joliet,
    /// Primary tree with plain ISO 9660 names (`;1` and trailing `.` stripped).
    Iso9660,
}

/// One volume descriptor of the set starting at sector 16, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeDescriptorKind {
    /// Type 0; `el_torito` tells whether it is the El Torito boot record.
    BootRecord { el_torito: bool },
    /// Type 1.
    Primary,
    /// Type 2; `joliet` when its escape sequences mark a Joliet descriptor.
    Supplementary { joliet: bool },
    /// Type 3.
    Partition,
    /// Type 255, the end of the set.
    Terminator,
    /// Any other type byte.
    Unknown(u8),
}

/// A file or directory found in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    path: String,
    name: String,
    is_dir: bool,
    size: u64,
    /// (first sector, byte length) of each extent, in order.
    extents: Vec<(u32, u32)>,
    interleaved: bool,
}

impl Entry {
    /// Path from the image root, `/`-separated, without a leading slash (`EFI/BOOT/grub.cfg`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The last path component.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }
    /// Size in bytes (sum of all extents).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// First sector of the content (used to match El Torito load addresses to file names).
    pub fn start_sector(&self) -> u32 {
        self.extents.first().map(|e| e.0).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct DirLoc {
    sector: u32,
    size: u32,
}

enum Source {
    // A Mutex rather than `FileExt::read_at` keeps this portable and `IsoImage: Sync`.
    File(Mutex<File>),
    Memory(Vec<u8>),
}

/// An opened ISO 9660 image. Cheap to keep around; reads happen on demand.
pub struct IsoImage {
    path: Option<PathBuf>,
    source: Source,
    len: u64,
    volume_id: String,
    volume_sectors: u64,
    descriptors: Vec<VolumeDescriptorKind>,
    boot_catalog_sector: Option<u32>,
    namespace: Namespace,
    root: DirLoc,
    has_joliet: bool,
    /// SUSP `SP` skip length: bytes to ignore at the start of each system use area.
    rr_skip: usize,
}

impl std::fmt::Debug for IsoImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsoImage")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("volume_id", &self.volume_id)
            .field("namespace", &self.namespace)
            .field("descriptors", &self.descriptors)
            .finish_non_exhaustive()
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl IsoImage {
    /// Opens an image file and validates its volume descriptor set.
    ///
    /// Fails when the file is not ISO 9660, is shorter than its primary volume descriptor
    /// declares (a cut-off download), or its descriptors are inconsistent.
    pub fn open(path: impl AsRef<Path>) -> Result<IsoImage, IsoError> {
        let path = path.as_ref();
        let io_err = |source| IsoError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(std::io::Error::other(
                "is a directory, not an image file",
            )));
        }
        Self::from_source(
            Source::File(Mutex::new(file)),
            meta.len(),
            Some(path.into()),
        )
    }

    /// Like [`IsoImage::open`], for an image already in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<IsoImage, IsoError> {
        let len = bytes.len() as u64;
        Self::from_source(Source::Memory(bytes), len, None)
    }

    fn from_source(source: Source, len: u64, path: Option<PathBuf>) -> Result<IsoImage, IsoError> {
        if len == 0 {
            return Err(IsoError::Empty);
        }
        let min = (FIRST_DESCRIPTOR + 1) * SECTOR;
        let mut image = IsoImage {
            path,
            source,
            len,
            volume_id: String::new(),
            volume_sectors: 0,
            descriptors: Vec::new(),
            boot_catalog_sector: None,
            namespace: Namespace::Iso9660,
            root: DirLoc { sector: 0, size: 0 },
            has_joliet: false,
            rr_skip: 0,
        };
        if len < min {
            return Err(match image.sniff() {
                Some(kind) => IsoError::NotIso {
                    hint: format!(" (the file is {len} bytes and looks like {kind})"),
                },
                None => IsoError::TooSmall { len, min },
            });
        }

        let mut primary: Option<Vec<u8>> = None;
        let mut joliet_root: Option<DirLoc> = None;
        let mut terminated = false;
        for i in 0..MAX_DESCRIPTORS {
            let sector = FIRST_DESCRIPTOR + i;
            let vd = image.read_sectors(sector, SECTOR as usize, || {
                "volume descriptor (the set has no terminator yet)".to_string()
            })?;
            if &vd[1..6] != b"CD001" {
                if i == 0 {
                    let hint = image
                        .sniff()
                        .map(|k| format!(" (it looks like {k})"))
                        .unwrap_or_default();
                    return Err(IsoError::NotIso { hint });
                }
                return Err(IsoError::malformed(format!(
                    "volume descriptor at sector {sector} lacks the CD001 signature (the set \
                     must end with a terminator, type 255)"
                )));
            }
            let kind = match vd[0] {
                0 => {
                    let el_torito = vd[7..].starts_with(b"EL TORITO SPECIFICATION");
                    if el_torito && image.boot_catalog_sector.is_none() {
                        image.boot_catalog_sector = Some(le32(&vd, 0x47));
                    }
                    VolumeDescriptorKind::BootRecord { el_torito }
                }
                1 => {
                    if primary.is_none() {
                        primary = Some(vd.clone());
                    }
                    VolumeDescriptorKind::Primary
                }
                2 => {
                    let esc = &vd[88..91];
                    let joliet = esc == b"%/@" || esc == b"%/C" || esc == b"%/E";
                    if joliet && joliet_root.is_none() && vd[156] >= 34 {
                        joliet_root = Some(DirLoc {
                            sector: le32(&vd, 158),
                            size: le32(&vd, 166),
                        });
                    }
                    VolumeDescriptorKind::Supplementary { joliet }
                }
                3 => VolumeDescriptorKind::Partition,
                255 => VolumeDescriptorKind::Terminator,
                other => VolumeDescriptorKind::Unknown(other),
            };
            image.descriptors.push(kind);
            if vd[0] == 255 {
                terminated = true;
                break;
            }
        }
        if !terminated {
            return Err(IsoError::malformed(format!(
                "no volume descriptor set terminator (type 255) in the first {MAX_DESCRIPTORS} \
                 descriptors"
            )));
        }
        let pvd = primary.ok_or_else(|| {
            IsoError::malformed(
                "the volume descriptor set has no primary volume descriptor (type 1)",
            )
        })?;

        let block = le16(&pvd, 128);
        if u64::from(block) != SECTOR {
            return Err(IsoError::Unsupported {
                detail: format!("logical block size {block} (only 2048 is supported)"),
            });
        }
        let sectors = le32(&pvd, 80);
        if sectors != be32(&pvd, 84) {
            return Err(IsoError::malformed(format!(
                "the primary volume descriptor's volume size fields disagree ({} vs {})",
                sectors,
                be32(&pvd, 84)
            )));
        }
        image.volume_sectors = u64::from(sectors);
        let declared_bytes = image.volume_sectors * SECTOR;
        if declared_bytes > len {
            return Err(IsoError::VolumeTruncated {
                declared_sectors: image.volume_sectors,
                declared_bytes,
                file_len: len,
            });
        }
        image.volume_id = String::from_utf8_lossy(&pvd[40..72])
            .trim_end_matches(['\0', ' '])
            .to_string();
        if pvd[156] < 34 {
            return Err(IsoError::malformed(format!(
                "the root directory record in the primary volume descriptor has length {} \
                 (at least 34 expected)",
                pvd[156]
            )));
        }
        let root = DirLoc {
            sector: le32(&pvd, 158),
            size: le32(&pvd, 166),
        };
        if root.sector != be32(&pvd, 162) {
            return Err(IsoError::malformed(
                "the root directory's location fields disagree (little- vs big-endian copy)",
            ));
        }
        image.root = root;

        // Rock Ridge is announced by a SUSP `SP` entry in the root's "." record.
        let first = image.read_sectors(u64::from(root.sector), SECTOR as usize, || {
            "root directory".to_string()
        })?;
        let rec_len = usize::from(first[0]);
        if rec_len >= 34 {
            let name_len = usize::from(first[32]);
            let su_start = 33 + name_len + usize::from(name_len % 2 == 0);
            if su_start + 7 <= rec_len
                && &first[su_start..su_start + 2] == b"SP"
                && first[su_start + 4] == 0xBE
                && first[su_start + 5] == 0xEF
            {
                image.namespace = Namespace::RockRidge;
                image.rr_skip = usize::from(first[su_start + 6]);
            }
        }
        image.has_joliet = joliet_root.is_some();
        if image.namespace != Namespace::RockRidge {
            if let Some(j) = joliet_root {
                image.namespace = Namespace::Joliet;
                image.root = j;
            }
        }
        Ok(image)
    }

    /// Guesses what a non-ISO file is, for a friendlier error.
    fn sniff(&self) -> Option<&'static str> {
        let n = self.len.min(1024) as usize;
        let mut head = vec![0u8; n];
        self.read_exact_at(0, &mut head).ok()?;
        let kind = if head.starts_with(b"QFI\xfb") {
            "a qcow2 disk image"
        } else if head.starts_with(b"\x1f\x8b") {
            "a gzip archive (decompress it first)"
        } else if head.starts_with(b"\xfd7zXZ") {
            "an xz archive (decompress it first)"
        } else if head.starts_with(b"\x28\xb5\x2f\xfd") {
            "a zstd archive (decompress it first)"
        } else if head.starts_with(b"\x7fELF") {
            "an ELF executable"
        } else if head.starts_with(b"PK\x03\x04") {
            "a zip archive"
        } else if head.len() >= 512 && head[510] == 0x55 && head[511] == 0xAA {
            "a disk image with a boot sector but no ISO 9660 file system"
        } else if head.starts_with(b"<!DOCTYPE") || head.starts_with(b"<html") {
            "an HTML page (a failed download?)"
        } else if !head.is_empty()
            && head
                .iter()
                .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
        {
            "a text file"
        } else {
            return None;
        };
        Some(kind)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match &self.source {
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).map_err(|_| eof())?;
                let end = start.checked_add(buf.len()).ok_or_else(eof)?;
                let src = bytes.get(start..end).ok_or_else(eof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Source::File(file) => {
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(buf)
            }
        }
    }

    /// Reads `len` bytes starting at `sector`, failing with [`IsoError::Truncated`] when they
    /// are not all inside the file.
    fn read_sectors(
        &self,
        sector: u64,
        len: usize,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, IsoError> {
        self.read_at(sector, 0, len, what)
    }

    fn read_at(
        &self,
        sector: u64,
        offset: u64,
        len: usize,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, IsoError> {
        let start = sector
            .checked_mul(SECTOR)
            .and_then(|s| s.checked_add(offset));
        let end = start.and_then(|s| s.checked_add(len as u64));
        // Bounds first: a hostile length must not reach the allocation below.
        let start = match (start, end) {
            (Some(s), Some(e)) if e <= self.len => s,
            _ => {
                return Err(IsoError::Truncated {
                    what: what(),
                    sector,
                    file_len: self.len,
                })
            }
        };
        let mut buf = vec![0u8; len];
        match self.read_exact_at(start, &mut buf) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(IsoError::Truncated {
                what: what(),
                sector,
                file_len: self.len,
            }),
            Err(source) => Err(IsoError::Io {
                path: self
                    .path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("<memory>")),
                source,
            }),
        }
    }

    /// The file this image was opened from (None for [`IsoImage::from_bytes`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// File length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Always false for an opened image (an empty file fails to open); here for clippy.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The primary volume descriptor's volume identifier, trailing blanks removed.
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }
    /// Volume size in sectors as the primary volume descriptor declares it.
    pub fn volume_sectors(&self) -> u64 {
        self.volume_sectors
    }
    /// The volume descriptors from sector 16 up to and including the terminator.
    pub fn descriptors(&self) -> &[VolumeDescriptorKind] {
        &self.descriptors
    }
    /// The name space used for names and lookups.
    pub fn namespace(&self) -> Namespace {
        self.namespace
    }
    /// True when the primary tree carries Rock Ridge.
    pub fn has_rock_ridge(&self) -> bool {
        self.namespace == Namespace::RockRidge
    }
    /// True when a Joliet supplementary descriptor exists.
    pub fn has_joliet(&self) -> bool {
        self.has_joliet
    }
    /// Sector of the El Torito boot catalog, if the image has an El Torito boot record.
    pub fn boot_catalog_sector(&self) -> Option<u32> {
        self.boot_catalog_sector
    }

    pub(crate) fn read_raw(
        &self,
        sector: u64,
        len: usize,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, IsoError> {
        self.read_sectors(sector, len, what)
    }

    /// Reads one directory's entries (without "." and "..").
    fn read_dir(&self, dir: DirLoc, dir_path: &str) -> Result<Vec<(Entry, DirLoc)>, IsoError> {
        let shown = if dir_path.is_empty() { "/" } else { dir_path };
        if u64::from(dir.size) > MAX_DIR_BYTES {
            return Err(IsoError::malformed(format!(
                "directory {shown} at sector {} claims {} bytes (more than {MAX_DIR_BYTES})",
                dir.sector, dir.size
            )));
        }
        let buf = self.read_sectors(u64::from(dir.sector), dir.size as usize, || {
            format!("directory extent of {shown}")
        })?;
        let mut out: Vec<(Entry, DirLoc)> = Vec::new();
        let mut pending: Option<(Entry, DirLoc)> = None;
        let mut off = 0usize;
        while off < buf.len() {
            let rec_len = usize::from(buf[off]);
            if rec_len == 0 {
                // Records never cross a sector boundary; a zero length pads to the next one.
                off = (off / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let rec = match buf.get(off..off + rec_len) {
                Some(r) if rec_len >= 34 => r,
                _ => {
                    return Err(IsoError::malformed(format!(
                        "directory {shown} (sector {}) has a record of length {rec_len} at byte \
                         {off} that does not fit",
                        dir.sector
                    )))
                }
            };
            off += rec_len;
            let name_len = usize::from(rec[32]);
            if 33 + name_len > rec_len {
                return Err(IsoError::malformed(format!(
                    "directory {shown} (sector {}) has a record whose name ({name_len} bytes) \
                     overruns the record ({rec_len} bytes)",
                    dir.sector
                )));
            }
            let raw_name = &rec[33..33 + name_len];
            if name_len == 1 && (raw_name[0] == 0 || raw_name[0] == 1) {
                continue; // "." and ".."
            }
            let flags = rec[25];
            if flags & 0x04 != 0 {
                continue; // associated file (resource fork), not a name of its own
            }
            let mut is_dir = flags & 0x02 != 0;
            let mut loc = DirLoc {
                sector: le32(rec, 2).saturating_add(u32::from(rec[1])),
                size: le32(rec, 10),
            };
            let mut name = None;
            if self.namespace == Namespace::RockRidge {
                let su_start = (33 + name_len + usize::from(name_len % 2 == 0)).min(rec_len);
                let rr = self.parse_susp(&rec[su_start..]);
                if rr.relocated {
                    continue; // the real name is the CL placeholder in the parent
                }
                if let Some(child) = rr.child_link {
                    is_dir = true;
                    loc = DirLoc {
                        sector: child,
                        size: self.dot_size(child).unwrap_or(0),
                    };
                }
                name = rr.name;
            }
            let name = match name {
                Some(n) if !n.is_empty() => n,
                _ => match self.namespace {
                    Namespace::Joliet => clean_iso_name(&decode_ucs2(raw_name)),
                    _ => clean_iso_name(&String::from_utf8_lossy(raw_name)),
                },
            };
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                continue; // unusable name: skip rather than build confusing paths
            }
            let path = if dir_path.is_empty() {
                name.clone()
            } else {
                format!("{dir_path}/{name}")
            };
            let extent = (loc.sector, loc.size);
            if let Some((p, _)) = pending.as_mut() {
                if p.name == name && !is_dir {
                    p.extents.push(extent);
                    p.size += u64::from(loc.size);
                    if flags & 0x80 == 0 {
                        out.extend(pending.take());
                    }
                    continue;
                }
                out.extend(pending.take());
            }
            let entry = Entry {
                path,
                name,
                is_dir,
                size: u64::from(loc.size),
                extents: vec![extent],
                interleaved: rec[26] != 0 || rec[27] != 0,
            };
            if flags & 0x80 != 0 && !is_dir {
                pending = Some((entry, loc));
            } else {
                out.push((entry, loc));
            }
        }
        out.extend(pending.take());
        Ok(out)
    }

    /// Size of a directory as its own "." record says (for Rock Ridge `CL` child links).
    fn dot_size(&self, sector: u32) -> Option<u32> {
        let rec = self.read_sectors(u64::from(sector), 34, String::new).ok()?;
        (rec[0] >= 34).then(|| le32(&rec, 10))
    }

    /// Parses a SUSP system use area (plus `CE` continuations) for the Rock Ridge bits we need.
    fn parse_susp(&self, area: &[u8]) -> RockRidge {
        let mut rr = RockRidge::default();
        let mut name: Vec<u8> = Vec::new();
        let mut have_name = false;
        let mut area: Vec<u8> = area.get(self.rr_skip..).unwrap_or(&[]).to_vec();
        let mut continuations = 0;
        loop {
            let mut next: Option<(u32, u32, u32)> = None;
            let mut pos = 0usize;
            while pos + 4 <= area.len() {
                let sig = [area[pos], area[pos + 1]];
                let len = usize::from(area[pos + 2]);
                if len < 4 || pos + len > area.len() {
                    break;
                }
                let data = &area[pos + 4..pos + len];
                match &sig {
                    b"NM" if !data.is_empty() => {
                        let flags = data[0];
                        if flags & 0x06 == 0 {
                            name.extend_from_slice(&data[1..]);
                            have_name = true;
                        }
                    }
                    b"CE" if data.len() >= 24 => {
                        next = Some((le32(data, 0), le32(data, 8), le32(data, 16)));
                    }
                    b"RE" => rr.relocated = true,
                    b"CL" if data.len() >= 4 => rr.child_link = Some(le32(data, 0)),
                    b"ST" => break,
                    _ => {}
                }
                pos += len;
            }
            continuations += 1;
            match next {
                Some((block, offset, length)) if continuations <= MAX_CONTINUATIONS => {
                    let length = (length as usize).min(SECTOR as usize);
                    match self.read_at(u64::from(block), u64::from(offset), length, String::new) {
                        Ok(bytes) => area = bytes,
                        Err(_) => break,
                    }
                }
                _ => break,
            }
        }
        if have_name {
            rr.name = Some(String::from_utf8_lossy(&name).into_owned());
        }
        rr
    }

    /// Looks up a file or directory by path, ignoring case (an exact-case match wins when a
    /// directory holds names differing only in case). Leading `/`, `.` and empty components are
    /// ignored.
    pub fn find(&self, path: &str) -> Result<Entry, IsoError> {
        let comps = normalise(path);
        if comps.is_empty() {
            return Ok(Entry {
                path: String::new(),
                name: String::new(),
                is_dir: true,
                size: u64::from(self.root.size),
                extents: vec![(self.root.sector, self.root.size)],
                interleaved: false,
            });
        }
        let mut dir = self.root;
        let mut dir_path = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let entries = self.read_dir(dir, &dir_path)?;
            let found = entries
                .iter()
                .find(|(e, _)| e.name == *comp)
                .or_else(|| entries.iter().find(|(e, _)| names_equal(&e.name, comp)));
            let Some((entry, loc)) = found else {
                return Err(IsoError::NotFound {
                    path: path.to_string(),
                });
            };
            if i + 1 == comps.len() {
                return Ok(entry.clone());
            }
            if !entry.is_dir {
                return Err(IsoError::NotFound {
                    path: path.to_string(),
                });
            }
            dir = *loc;
            dir_path = entry.path.clone();
        }
        unreachable!("loop returns on the last component")
    }

    /// True when `path` exists (case-insensitive). Read errors count as "no".
    pub fn exists(&self, path: &str) -> bool {
        self.find(path).is_ok()
    }

    /// Lists one directory (case-insensitive path; `""` or `/` for the root).
    pub fn list_dir(&self, path: &str) -> Result<Vec<Entry>, IsoError> {
        let (entry, loc) = self.locate_dir(path)?;
        Ok(self
            .read_dir(loc, &entry.path)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    fn locate_dir(&self, path: &str) -> Result<(Entry, DirLoc), IsoError> {
        let entry = self.find(path)?;
        if !entry.is_dir {
            return Err(IsoError::NotFound {
                path: format!("{path} (not a directory)"),
            });
        }
        let (sector, size) = entry.extents[0];
        Ok((entry, DirLoc { sector, size }))
    }

    /// Every file and directory of the image, sorted by path.
    ///
    /// Directory cycles (an entry pointing back at an ancestor, which only a corrupt or hostile
    /// image has) are visited once; depth and entry count are bounded.
    pub fn walk(&self) -> Result<Vec<Entry>, IsoError> {
        let mut out = Vec::new();
        let mut visited: HashSet<u32> = HashSet::new();
        visited.insert(self.root.sector);
        let mut stack: Vec<(DirLoc, String, usize)> = vec![(self.root, String::new(), 0)];
        while let Some((loc, path, depth)) = stack.pop() {
            for (entry, child) in self.read_dir(loc, &path)? {
                if entry.is_dir && depth + 1 < MAX_WALK_DEPTH && visited.insert(child.sector) {
                    stack.push((child, entry.path.clone(), depth + 1));
                }
                out.push(entry);
                if out.len() > MAX_WALK_ENTRIES {
                    return Err(IsoError::malformed(format!(
                        "more than {MAX_WALK_ENTRIES} directory entries (a directory loop?)"
                    )));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Reads a file by path (case-insensitive), refusing files over [`DEFAULT_READ_LIMIT`].
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, IsoError> {
        let entry = self.find(path)?;
        self.read_entry(&entry, DEFAULT_READ_LIMIT)
    }

    /// Reads the content of an entry from [`IsoImage::walk`] / [`IsoImage::find`], refusing
    /// files larger than `limit` bytes.
    pub fn read_entry(&self, entry: &Entry, limit: u64) -> Result<Vec<u8>, IsoError> {
        if entry.is_dir {
            return Err(IsoError::NotAFile {
                path: entry.path.clone(),
            });
        }
        if entry.size > limit {
            return Err(IsoError::TooLarge {
                path: entry.path.clone(),
                size: entry.size,
                limit,
            });
        }
        if entry.interleaved {
            return Err(IsoError::Unsupported {
                detail: format!("{} is recorded in interleaved mode", entry.path),
            });
        }
        let mut data = Vec::with_capacity(entry.size as usize);
        for &(sector, len) in &entry.extents {
            let part = self.read_sectors(u64::from(sector), len as usize, || {
                format!("content of {}", entry.path)
            })?;
            data.extend_from_slice(&part);
        }
        Ok(data)
    }

    /// Copies a file's content to `out` in bounded pieces (a kernel or an initrd of any size,
    /// in flat memory); returns the bytes written.
    pub fn copy_entry(
        &self,
        entry: &Entry,
        out: &mut impl std::io::Write,
    ) -> Result<u64, IsoError> {
        if entry.is_dir {
            return Err(IsoError::NotAFile {
                path: entry.path.clone(),
            });
        }
        if entry.interleaved {
            return Err(IsoError::Unsupported {
                detail: format!("{} is recorded in interleaved mode", entry.path),
            });
        }
        const PIECE_SECTORS: u64 = 512; // 1 MiB
        let mut written = 0u64;
        for &(sector, len) in &entry.extents {
            let mut done = 0u64;
            let len = u64::from(len);
            while done < len {
                let n = (len - done).min(PIECE_SECTORS * SECTOR);
                let part = self.read_at(u64::from(sector), done, n as usize, || {
                    format!("content of {}", entry.path)
                })?;
                out.write_all(&part).map_err(|source| IsoError::Io {
                    path: PathBuf::from(&entry.path),
                    source,
                })?;
                done += n;
                written += n;
            }
        }
        Ok(written)
    }
}

fn eof() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
}

#[derive(Default)]
struct RockRidge {
    name: Option<String>,
    relocated: bool,
    child_link: Option<u32>,
}

fn decode_ucs2(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// `FOO.CFG;1` → `FOO.CFG`, `BZIMAGE.` → `BZIMAGE`.
fn clean_iso_name(name: &str) -> String {
    let base = match name.rfind(';') {
        Some(i) if name[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &name[..i],
        _ => name,
    };
    let base = base.trim_end_matches('\0');
    let base = if base.len() > 1 {
        base.strip_suffix('.').unwrap_or(base)
    } else {
        base
    };
    base.to_string()
}

pub(crate) fn names_equal(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// Splits a path into components, dropping empty and `.` ones and resolving `..`.
pub(crate) fn normalise(path: &str) -> Vec<&str> {
    let mut comps: Vec<&str> = Vec::new();
    for c in path.split(['/', '\\']) {
        match c {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            other => comps.push(other),
        }
    }
    comps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_names_are_cleaned() {
        assert_eq!(clean_iso_name("ISOLINUX.CFG;1"), "ISOLINUX.CFG");
        assert_eq!(clean_iso_name("BZIMAGE.;1"), "BZIMAGE");
        assert_eq!(clean_iso_name("A;B"), "A;B");
        assert_eq!(clean_iso_name("."), ".");
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            normalise("/EFI//BOOT/./grub.cfg"),
            vec!["EFI", "BOOT", "grub.cfg"]
        );
        assert_eq!(normalise("a/../b"), vec!["b"]);
        assert!(normalise("/").is_empty());
    }

    #[test]
    fn tiny_inputs_fail_cleanly() {
        assert!(matches!(IsoImage::from_bytes(vec![]), Err(IsoError::Empty)));
        assert!(matches!(
            IsoImage::from_bytes(vec![0; 100]),
            Err(IsoError::TooSmall { .. })
        ));
        assert!(matches!(
            IsoImage::from_bytes(vec![0; 40 * 1024]),
            Err(IsoError::NotIso { .. })
        ));
        let mut text = b"hello world\n".repeat(4000);
        text.truncate(40000);
        let err = IsoImage::from_bytes(text).unwrap_err().to_string();
        assert!(err.contains("text file"), "{err}");
    }
}
