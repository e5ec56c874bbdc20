//! bootaudit: tells, with evidence, whether a bootable OS image works. It checks the host, the
//! virtualisation, the ISO's own boot configs, then boots the image in QEMU and judges a catalog
//! of named conditions over the serial console. See docs/architecture.md for the event flow.

pub mod app;
pub mod cleanup;
pub mod cli;
pub mod compare;
pub mod config;
pub mod dialogue;
pub mod engine;
pub mod exit_codes;
pub mod judge;
pub mod list;
pub mod model;
pub mod qemu;
pub mod replay;
pub mod report;
pub mod session_record;
pub mod signal;
pub mod timeline;
