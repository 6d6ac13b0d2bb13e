//! `aurelia logs [SERVICE] [-n N] [-f] [--since T] [-t]`: recent output, then (with `-f`) new
//! output as it is written. Without a service: every service, merged by time and prefixed.
//!
//! When the daemon is not running, the log files are read directly (logs are files; nothing is
//! lost because the daemon is down).

use std::io::Write;

use aurelia_api::client::encode;
use aurelia_api::{LogLine, LogStream, LogsResponse};

use super::{CliError, CliResult, Stream, paint};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service (default: all, each line prefixed with its service).
    service: Option<String>,
    /// How many recent lines to show.
    #[arg(short = 'n', long = "lines", default_value_t = 100)]
    lines: usize,
    /// Keep following: print new lines as they are written.
    #[arg(short, long)]
    follow: bool,
    /// Only lines since this time (RFC 3339) or this long ago (e.g. 10m, 1h).
    #[arg(long)]
    since: Option<String>,
    /// Show each line's timestamp.
    #[arg(short, long)]
    timestamps: bool,
    /// Print each line as a JSON object.
    #[arg(long)]
    json: bool,
}

const PALETTE: [&str; 6] = ["36", "35", "34", "33", "32", "96"];

fn service_color(name: &str) -> &'static str {
    let h = name
        .bytes()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
    PALETTE[h % PALETTE.len()]
}

struct Printer {
    prefix_width: Option<usize>,
    timestamps: bool,
    json: bool,
}

impl Printer {
    fn print(&self, out: &mut impl Write, l: &LogLine) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{}", serde_json::to_string(l).unwrap_or_default());
        }
        if let Some(w) = self.prefix_width {
            write!(
                out,
                "{} ",
                paint(
                    &format!("{:<w$} |", l.service),
                    service_color(&l.service),
                    Stream::Stdout
                )
            )?;
        }
        if self.timestamps && !l.ts.is_empty() {
            write!(out, "{} ", paint(&l.ts, super::DIM, Stream::Stdout))?;
        }
        match l.stream {
            LogStream::Aurelia => writeln!(
                out,
                "{}",
                paint(&format!("[aurelia] {}", l.line), super::DIM, Stream::Stdout)
            ),
            _ => writeln!(out, "{}", l.line),
        }
    }
}

pub fn run(args: Args) -> CliResult {
    let c = super::client()?;
    let mut query = format!("n={}", args.lines);
    if let Some(s) = &args.since {
        query.push_str(&format!("&since={}", encode(s)));
    }
    let path = match &args.service {
        Some(s) => format!("/v1/services/{}/logs", encode(s)),
        None => "/v1/logs".to_string(),
    };
    let mut printer = Printer {
        prefix_width: None,
        timestamps: args.timestamps,
        json: args.json,
    };
    let mut out = std::io::stdout().lock();
    if args.follow {
        let stream = c
            .with_timeout(None)
            .stream::<LogLine>(&format!("{path}?{query}&follow=true"))?;
        if args.service.is_none() {
            printer.prefix_width = Some(12);
        }
        for l in stream {
            let l = l?;
            printer.print(&mut out, &l)?;
            out.flush()?;
        }
        return Ok(());
    }
    let lines = match c.get::<LogsResponse>(&format!("{path}?{query}")) {
        Ok(r) => r.lines,
        Err(aurelia_api::ClientError::Unreachable { .. }) => {
            let _ = writeln!(
                std::io::stderr(),
                "{}",
                paint(
                    "(the daemon is not running; reading the log files directly)",
                    super::DIM,
                    Stream::Stderr
                )
            );
            read_files(&args)?
        }
        Err(e) => return Err(e.into()),
    };
    if args.service.is_none() {
        printer.prefix_width = Some(lines.iter().map(|l| l.service.len()).max().unwrap_or(0));
    }
    for l in &lines {
        printer.print(&mut out, l)?;
    }
    Ok(())
}

fn read_files(args: &Args) -> Result<Vec<LogLine>, CliError> {
    use aurelia_supervisor::logs::reader;
    let dir = super::home()?.logs_dir();
    let since = args
        .since
        .as_deref()
        .map(|s| {
            aurelia_supervisor::clock::parse_rfc3339(s)
                .or_else(|| {
                    aurelia_spec::duration::parse(s)
                        .ok()
                        .map(|d| std::time::SystemTime::now() - d.to_std())
                })
                .map(aurelia_supervisor::clock::rfc3339_millis)
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--since {s:?} is neither an RFC 3339 time nor a duration"
                    ))
                })
        })
        .transpose()?;
    let services: Vec<String> = match &args.service {
        Some(s) => vec![s.clone()],
        None => std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".log")
                            .map(str::to_string)
                    })
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if let Some(s) = &args.service
        && !dir.join(format!("{s}.log")).exists()
    {
        return Err(CliError::Usage(format!(
            "no log for a service named \"{s}\" in {}",
            dir.display()
        )));
    }
    reader::tail_many(&dir, &services, args.lines, since.as_deref()).map_err(CliError::from)
}
