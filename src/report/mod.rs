//! Reporters: they render the engine's events and never judge. `folder` writes the report
//! folder of SPEC.md, `junit` renders the JUnit XML, `progress` draws the terminal display.

pub mod folder;
pub mod github;
pub mod html;
pub mod junit;
pub mod progress;
