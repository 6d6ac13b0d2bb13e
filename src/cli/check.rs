//! `aurelia check [FILE|DIR] [--json]`: validate specs without running anything.
//!
//! One line per file (ok, or its errors as `file:line:col: key: message (hint: ...)`), then a
//! summary. Exit 0 when every file is valid, 2 when any is not.

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, CliResult, DIM, GREEN, RED, Stream, paint};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A spec file or a directory of them (default: the home's services directory).
    path: Option<PathBuf>,
    /// Print a JSON list of files with their errors.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let path = match args.path {
        Some(p) => p,
        None => super::home()?.services_dir(),
    };
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "{} does not exist (give a spec file or a directory of them)",
            path.display()
        )));
    }
    let set = aurelia_spec::load_path(&path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    if args.json {
        super::print_json(&set.reports)?;
    } else {
        let mut out = std::io::stdout().lock();
        for r in &set.reports {
            let name = r
                .service
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            if r.ok {
                writeln!(
                    out,
                    "{}      {}{}",
                    paint("ok", GREEN, Stream::Stdout),
                    r.file.display(),
                    paint(&name, DIM, Stream::Stdout)
                )?;
            } else {
                writeln!(
                    out,
                    "{} {}{}",
                    paint("invalid", RED, Stream::Stdout),
                    r.file.display(),
                    name
                )?;
                for e in &r.errors {
                    writeln!(out, "  {}", e.render(&r.file))?;
                }
            }
        }
        let invalid = set.reports.iter().filter(|r| !r.ok).count();
        let total = set.reports.len();
        if total == 0 {
            writeln!(out, "no spec files (*.yaml, *.yml) in {}", path.display())?;
        } else {
            writeln!(
                out,
                "{total} file{} checked: {} valid, {invalid} invalid ({} error{})",
                if total == 1 { "" } else { "s" },
                total - invalid,
                set.error_count(),
                if set.error_count() == 1 { "" } else { "s" },
            )?;
        }
    }
    if set.is_valid() {
        Ok(())
    } else {
        Err(CliError::Exit(2))
    }
}
