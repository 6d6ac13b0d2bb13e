//! `aurelia restart SERVICE`: restart one service; its hard dependents bounce with it.

use aurelia_api::ActionResult;
use aurelia_api::client::encode;

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service to restart.
    service: String,
    /// Return at once instead of waiting until it is running again.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for it (Go duration).
    #[arg(long, default_value = "2m")]
    timeout: String,
}

pub fn run(args: Args) -> CliResult {
    let c = super::client()?;
    let timeout = super::up::parse_timeout(&args.timeout)?;
    let events = if args.no_wait {
        None
    } else {
        Some(super::up::Events::open(&c)?)
    };
    let r: ActionResult = c.post::<(), _>(
        &format!("/v1/services/{}/restart", encode(&args.service)),
        None,
    )?;
    match events {
        None => {
            println!("restarting {}", r.services.join(", "));
            Ok(())
        }
        Some(ev) => ev.wait_running(&c, &r.services, timeout, true),
    }
}
