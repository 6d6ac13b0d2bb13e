//! `aurelia status [SERVICE] [--json]`: the table of services, or one service in detail.

use std::io::Write;

use aurelia_api::client::encode;
use aurelia_api::{ServiceDetail, ServiceList, ServiceStatus};

use super::{CliResult, DIM, RED, Stream, YELLOW, human_duration, paint, state_color};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show one service in detail (health history, command, dependencies).
    service: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let c = super::client()?;
    if let Some(name) = args.service {
        let d: ServiceDetail = c.get(&format!("/v1/services/{}", encode(&name)))?;
        return if args.json {
            super::print_json(&d)
        } else {
            detail(&d)
        };
    }
    let list: ServiceList = c.get("/v1/services")?;
    if args.json {
        return super::print_json(&list);
    }
    table(&list)
}

fn cells(s: &ServiceStatus) -> [String; 8] {
    let dash = || "-".to_string();
    [
        s.name.clone(),
        s.kind.clone(),
        s.state.as_str().to_string(),
        s.health.map_or_else(dash, |h| h.as_str().to_string()),
        s.pid.map_or_else(
            || {
                s.container_id
                    .as_ref()
                    .map_or_else(dash, |c| c[..c.len().min(12)].to_string())
            },
            |p| p.to_string(),
        ),
        s.port.map_or_else(dash, |p| p.to_string()),
        s.uptime_secs.map_or_else(dash, human_duration),
        s.restarts.to_string(),
    ]
}

fn table(list: &ServiceList) -> CliResult {
    let mut out = std::io::stdout().lock();
    if list.services.is_empty() {
        writeln!(
            out,
            "no services defined (put spec files in the services directory, then `aurelia reload`)"
        )?;
    } else {
        let header = [
            "NAME", "TYPE", "STATE", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS",
        ];
        let rows: Vec<[String; 8]> = list.services.iter().map(cells).collect();
        let mut w = header.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{h:<0$}", w[i]))
            .collect();
        writeln!(
            out,
            "{}",
            paint(line.join("  ").trim_end(), DIM, Stream::Stdout)
        )?;
        for (s, r) in list.services.iter().zip(&rows) {
            let mut parts = Vec::with_capacity(8);
            for (i, c) in r.iter().enumerate() {
                let padded = format!("{c:<0$}", w[i]);
                parts.push(match i {
                    2 => paint(&padded, state_color(s.state), Stream::Stdout),
                    3 if c == "unhealthy" => paint(&padded, RED, Stream::Stdout),
                    _ => padded,
                });
            }
            writeln!(out, "{}", parts.join("  ").trim_end())?;
            let note = match s.state {
                aurelia_api::ServiceState::Waiting if !s.waiting_for.is_empty() => {
                    Some(format!("waiting for {}", s.waiting_for.join(", ")))
                }
                aurelia_api::ServiceState::Failed | aurelia_api::ServiceState::Backoff => {
                    s.last_error.clone()
                }
                _ if s.health == Some(aurelia_api::HealthState::Unhealthy) => s.last_error.clone(),
                _ => None,
            };
            if let Some(n) = note {
                writeln!(
                    out,
                    "  {}",
                    paint(
                        &format!("└ {n}"),
                        if s.state == aurelia_api::ServiceState::Failed {
                            RED
                        } else {
                            DIM
                        },
                        Stream::Stdout
                    )
                )?;
            }
        }
    }
    if !list.spec_errors.is_empty() {
        writeln!(
            out,
            "{}",
            paint(
                &format!(
                    "{} problem{} in spec files kept some services from loading; run `aurelia check`:",
                    list.spec_errors.len(),
                    if list.spec_errors.len() == 1 { "" } else { "s" }
                ),
                YELLOW,
                Stream::Stdout
            )
        )?;
        for e in &list.spec_errors {
            writeln!(out, "  {e}")?;
        }
    }
    Ok(())
}

fn detail(d: &ServiceDetail) -> CliResult {
    let s = &d.status;
    let mut out = std::io::stdout().lock();
    let kv = |out: &mut std::io::StdoutLock, k: &str, v: &str| {
        writeln!(out, "{:<12} {v}", paint(k, DIM, Stream::Stdout))
    };
    kv(&mut out, "name", &s.name)?;
    kv(&mut out, "type", &s.kind)?;
    kv(
        &mut out,
        "state",
        &paint(s.state.as_str(), state_color(s.state), Stream::Stdout),
    )?;
    if let Some(h) = s.health {
        kv(&mut out, "health", h.as_str())?;
    }
    kv(&mut out, "wanted", if s.wanted { "up" } else { "down" })?;
    if let Some(c) = &d.command {
        kv(&mut out, "command", c)?;
    }
    if let Some(p) = s.pid {
        kv(
            &mut out,
            "pid",
            &format!(
                "{p}{}",
                if s.adopted {
                    " (re-adopted after a daemon restart)"
                } else {
                    ""
                }
            ),
        )?;
    }
    if let Some(c) = &s.container_id {
        kv(&mut out, "container", c)?;
    }
    if let Some(p) = s.port {
        kv(&mut out, "port", &p.to_string())?;
    }
    if let Some(u) = s.uptime_secs {
        kv(&mut out, "uptime", &human_duration(u))?;
    }
    kv(&mut out, "restarts", &s.restarts.to_string())?;
    if let Some(e) = &s.last_exit {
        kv(&mut out, "last exit", &format!("{e} at {}", e.at))?;
    }
    if let Some(e) = &s.last_error {
        kv(&mut out, "last error", e)?;
    }
    if !s.waiting_for.is_empty() {
        kv(&mut out, "waiting for", &s.waiting_for.join(", "))?;
    }
    if !d.after.is_empty() {
        kv(&mut out, "after", &d.after.join(", "))?;
    }
    if !d.requires.is_empty() {
        kv(&mut out, "requires", &d.requires.join(", "))?;
    }
    kv(&mut out, "spec", &d.spec_file)?;
    kv(&mut out, "log", &d.log_file)?;
    if let Some(h) = &d.health_check {
        kv(&mut out, "health check", h)?;
    }
    if !d.health_history.is_empty() {
        writeln!(out, "{}", paint("recent probes:", DIM, Stream::Stdout))?;
        for r in &d.health_history {
            let mark = if r.ok {
                paint("ok  ", super::GREEN, Stream::Stdout)
            } else {
                paint("fail", RED, Stream::Stdout)
            };
            writeln!(
                out,
                "  {} {mark} {:>8.1}ms {}",
                r.at,
                r.latency_ms,
                r.error.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}
