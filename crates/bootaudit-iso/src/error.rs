//! The one error type of this crate.
//!
//! Every variant's message says what is wrong *and* what to do about it, because the
//! messages end up verbatim in `iso.bootable` / `iso.console` failures that a person reads.

use std::path::PathBuf;

/// Everything that can go wrong while reading an image.
///
/// Hostile or damaged input always ends in one of these — never in a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IsoError {
    /// The operating system refused to open or read the file.
    #[error("cannot read {path}: {source} — check that the file exists and is readable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A 0-byte file.
    #[error(
        "not an ISO 9660 image: the file is empty (0 bytes) — the download or build wrote nothing"
    )]
    Empty,

    /// Too short to even hold the system area and the first volume descriptor.
    #[error(
        "not an ISO 9660 image: the file has only {len} bytes, fewer than the {min} bytes \
         (16 system sectors + 1 volume descriptor) every ISO 9660 image has — is this the right \
         file, or was it cut short?"
    )]
    TooSmall { len: u64, min: u64 },

    /// Sector 16 does not carry the ISO 9660 signature.
    #[error("not an ISO 9660 image: no CD001 at sector 16{hint} — is this the right file?")]
    NotIso {
        /// A short guess at what the file is instead (may be empty).
        hint: String,
    },

    /// Something the image points at lies beyond the end of the file.
    #[error(
        "truncated: {what} at sector {sector} beyond end of file ({file_len} bytes) — the \
         download or build was cut short"
    )]
    Truncated {
        what: String,
        sector: u64,
        file_len: u64,
    },

    /// The primary volume descriptor declares more sectors than the file has.
    #[error(
        "truncated: the volume descriptor declares {declared_sectors} sectors ({declared_bytes} \
         bytes) but the file has only {file_len} bytes — the download or build was cut short"
    )]
    VolumeTruncated {
        declared_sectors: u64,
        declared_bytes: u64,
        file_len: u64,
    },

    /// A structure is internally inconsistent.
    #[error(
        "malformed ISO 9660 image: {detail} — the image is corrupt; rebuild or re-download it"
    )]
    Malformed { detail: String },

    /// Valid ISO 9660, but a variant this reader does not handle.
    #[error("unsupported ISO 9660 feature: {detail}")]
    Unsupported { detail: String },

    /// The boot record points at a catalog that is not a valid El Torito catalog.
    #[error(
        "invalid El Torito boot catalog at sector {sector}: {detail} — the image will not boot \
         from CD; rebuild it (xorriso -as mkisofs -b … -c …)"
    )]
    BadBootCatalog { sector: u64, detail: String },

    /// No file or directory with that name (case-insensitive) exists.
    #[error("{path}: no such file in the image")]
    NotFound { path: String },

    /// The path names a directory where a file was expected.
    #[error("{path}: is a directory, not a file")]
    NotAFile { path: String },

    /// The file is larger than the caller's read limit.
    #[error("{path}: {size} bytes is more than the {limit}-byte limit for reading it")]
    TooLarge { path: String, size: u64, limit: u64 },
}

impl IsoError {
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        IsoError::Malformed {
            detail: detail.into(),
        }
    }
}
