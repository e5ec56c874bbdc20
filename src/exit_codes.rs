//! Process exit codes: the stable contract of SPEC.md, in one place.

/// Every selected condition passed (allowed skips only).
pub const PASS: i32 = 0;
/// At least one condition failed.
pub const FAILED: i32 = 1;
/// Usage or configuration error (bad flag, unreadable profile, invalid regex).
pub const USAGE: i32 = 2;
/// The harness itself could not work (report folder not writable, internal error).
pub const HARNESS: i32 = 3;
/// Nothing failed, but some conditions could not be judged (not observed in a log, blocked by
/// a condition that could not be judged): the image is neither passed nor failed.
pub const INCOMPLETE: i32 = 4;
/// Interrupted by the user; the partial report is still written.
pub const INTERRUPTED: i32 = 130;
