//! Process exit codes: the stable contract of SPEC.md, in one place.

/// Every selected condition passed (allowed skips only).
pub const PASS: i32 = 0;
/// At least one condition failed.
pub const FAILED: i32 = 1;
/// Usage or configuration error (bad flag, unreadable profile, invalid regex).
pub const USAGE: i32 = 2;
/// The harness itself could not work (report folder not writable, internal error).
pub const HARNESS: i32 = 3;
/// Interrupted by the user; the partial report is still written.
pub const INTERRUPTED: i32 = 130;
