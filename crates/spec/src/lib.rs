//! Aurelia service specs: YAML files in, validated [`Spec`]s and a dependency [`Graph`] out.
//!
//! This crate is pure (no async, no processes): the CLI's `check` and the daemon's loader and
//! reload share it, so a spec means the same thing everywhere. Every problem is reported with
//! file, line and column; loading never stops at the first one.
//!
//! - [`yaml`]: YAML text to a located node tree, with guards against hostile input.
//! - [`load`]: one file to a [`Spec`], collecting [`Diagnostic`]s.
//! - [`set`]: a directory of files, plus cross-file checks.
//! - [`graph`]: start waves, stop order, cascade sets, cycles.
//! - [`duration`]: Go-syntax durations. [`expand`]: `~` and `$VAR` expansion.
//! - [`config`]: the daemon's `config.yaml`.

pub mod config;
pub mod duration;
pub mod error;
pub mod expand;
pub mod graph;
pub mod load;
pub mod model;
pub mod set;
pub mod yaml;

pub use duration::GoDuration;
pub use error::Diagnostic;
pub use graph::Graph;
pub use model::*;
pub use set::{FileReport, SpecSet, load_files, load_path};
