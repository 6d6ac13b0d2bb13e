//! `aurelia down [SERVICE...]`: stop services (all if none named), in reverse dependency order.
//! Waits until they are stopped unless `--no-wait`.

use aurelia_api::{ActionResult, ServicesRequest};

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services to stop (default: all).
    services: Vec<String>,
    /// Return at once instead of waiting until they are stopped.
    #[arg(long)]
    no_wait: bool,
}

pub fn run(args: Args) -> CliResult {
    let c = super::client()?;
    let events = if args.no_wait {
        None
    } else {
        Some(super::up::Events::open(&c)?)
    };
    let r: ActionResult = c.post(
        "/v1/down",
        Some(&ServicesRequest {
            services: args.services,
        }),
    )?;
    match events {
        None => {
            println!("stopping {}", r.services.join(", "));
            Ok(())
        }
        Some(ev) => ev.wait_stopped(&c, &r.services),
    }
}
