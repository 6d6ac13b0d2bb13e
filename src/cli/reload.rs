//! `aurelia reload`: re-read the spec files and apply what changed.

use std::io::Write;

use aurelia_api::ReloadResult;

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let c = super::client()?;
    let r: ReloadResult = c.post::<(), _>("/v1/reload", None)?;
    if args.json {
        return super::print_json(&r);
    }
    let mut out = std::io::stdout().lock();
    let list = |v: &Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    writeln!(out, "added:     {}", list(&r.added))?;
    writeln!(out, "removed:   {}", list(&r.removed))?;
    writeln!(out, "restarted: {}", list(&r.restarted))?;
    writeln!(out, "unchanged: {}", r.unchanged.len())?;
    Ok(())
}
