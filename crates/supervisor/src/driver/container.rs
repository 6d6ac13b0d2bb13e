//! The container driver: `type: container` services through the Docker Engine API (bollard).
//!
//! - The engine is found through `DOCKER_HOST` (unix:// or tcp://), else the usual sockets
//!   (on macOS also Docker Desktop, OrbStack and Colima), and the API version is negotiated
//!   (Debian's engine speaks 1.41). An engine that is not reachable is a *transient* start
//!   error: the service retries with backoff, without using up its attempts, and starts once
//!   the engine is back. Native services never depend on it.
//! - Containers are named `aurelia-<service>` and labelled with the service, the Aurelia home
//!   and the spec hash. A container of that name that Aurelia owns is replaced on start, or,
//!   if it is running with the same spec, adopted as it is (after a daemon restart, or when
//!   the engine comes back); a foreign one is an error and is never touched.
//! - Images are never pulled unless the spec says `pull: missing` or `pull: always`; a missing
//!   image is an error naming it.
//! - Output is read from the engine's log stream (with timestamps) and written into the same
//!   log files as native services. The engine keeps logs itself, so nothing is lost while no
//!   daemon reads: on re-attach the stream resumes after the last line already in the file.
//! - Exit codes come from the engine's wait API and feed the usual restart policies.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aurelia_api::ExitInfo;
use aurelia_spec::{PullPolicy, ServiceKind, Spec, expand};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use tokio::sync::Mutex;

use super::{BoxFuture, Driver, Process, StartContext, StartError, lookup_fn, resolve_env};
use crate::home::Home;
use crate::logs::relay::{LineSplitter, LogWriter};
use crate::service::Adoption;
use crate::state::StateFile;

pub const LABEL_SERVICE: &str = "dev.aurelia.service";
pub const LABEL_HOME: &str = "dev.aurelia.home";
pub const LABEL_HASH: &str = "dev.aurelia.spec-hash";

/// The container name of a service.
pub fn container_name(service: &str) -> String {
    format!("aurelia-{service}")
}

/// Where to look for the engine, in order.
pub fn engine_addresses() -> Vec<String> {
    if let Ok(h) = std::env::var("DOCKER_HOST")
        && !h.is_empty()
    {
        return vec![h];
    }
    let mut v = desktop_sockets();
    v.push("unix:///var/run/docker.sock".to_string());
    v
}

/// Docker Desktop, OrbStack, Colima and Rancher Desktop sockets (macOS).
#[cfg(target_os = "macos")]
fn desktop_sockets() -> Vec<String> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    [
        ".docker/run/docker.sock",
        ".orbstack/run/docker.sock",
        ".colima/default/docker.sock",
        ".colima/docker.sock",
        ".rd/docker.sock",
    ]
    .iter()
    .map(|p| format!("unix://{}", home.join(p).display()))
    .collect()
}

#[cfg(not(target_os = "macos"))]
fn desktop_sockets() -> Vec<String> {
    Vec::new()
}

async fn connect_to(addr: &str) -> Result<Docker, String> {
    let docker = if let Some(path) = addr.strip_prefix("unix://") {
        if !Path::new(path).exists() {
            return Err(format!("no socket at {path}"));
        }
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else if addr.starts_with("tcp://") || addr.starts_with("http://") {
        Docker::connect_with_http(
            &addr.replacen("tcp://", "http://", 1),
            120,
            bollard::API_DEFAULT_VERSION,
        )
    } else {
        return Err(format!(
            "unsupported DOCKER_HOST {addr:?} (use unix:// or tcp://)"
        ));
    }
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5s".into()),
    }
}

/// Connects to the first engine that answers.
pub async fn connect() -> Result<Docker, String> {
    let mut errors = Vec::new();
    for addr in engine_addresses() {
        match connect_to(&addr).await {
            Ok(d) => return Ok(d),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(format!(
        "the Docker engine is not reachable ({}); start Docker (or set DOCKER_HOST)",
        errors.join("; ")
    ))
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_engine_gone(e: &bollard::errors::Error) -> bool {
    !matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { .. }
            | bollard::errors::Error::DockerContainerWaitError { .. }
    )
}

/// Starts container services.
pub struct ContainerDriver {
    docker: Mutex<Option<Docker>>,
    /// Log rotation settings for container output.
    pub max_bytes: u64,
    pub max_files: u32,
}

impl ContainerDriver {
    pub fn new(max_bytes: u64, max_files: u32) -> ContainerDriver {
        ContainerDriver {
            docker: Mutex::new(None),
            max_bytes,
            max_files,
        }
    }

    async fn docker(&self) -> Result<Docker, StartError> {
        let mut g = self.docker.lock().await;
        if let Some(d) = g.as_ref()
            && tokio::time::timeout(Duration::from_secs(5), d.ping())
                .await
                .is_ok_and(|r| r.is_ok())
        {
            return Ok(d.clone());
        }
        *g = None;
        let d = connect().await.map_err(StartError::transient)?;
        *g = Some(d.clone());
        Ok(d)
    }

    async fn start_inner(&self, ctx: StartContext<'_>) -> Result<Box<dyn Process>, StartError> {
        let spec = ctx.spec;
        let docker = self.docker().await?;
        let name = container_name(&spec.name);
        let home = ctx.home.root.display().to_string();
        let hash = spec.content_hash();
        let gone = |e: bollard::errors::Error| {
            if is_engine_gone(&e) {
                StartError::transient(format!("lost the Docker engine: {e}"))
            } else {
                StartError::new(format!("Docker: {e}"))
            }
        };
        let log = LogTarget {
            service: spec.name.clone(),
            path: ctx.home.log_file(&spec.name),
            max_bytes: self.max_bytes,
            max_files: self.max_files,
        };
        match docker.inspect_container(&name, None).await {
            Ok(info) => {
                let labels = info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                if labels.get(LABEL_SERVICE) != Some(&spec.name)
                    || labels.get(LABEL_HOME) != Some(&home)
                {
                    return Err(StartError::new(format!(
                        "a container named {name} already exists and was not created by this Aurelia (home {home}); remove or rename it (docker rm -f {name})"
                    )));
                }
                let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                if running && labels.get(LABEL_HASH) == Some(&hash) {
                    let id = info.id.clone().unwrap_or_else(|| name.clone());
                    return Ok(Box::new(ContainerProcess::attach(
                        docker,
                        id,
                        started_at(&info),
                        log,
                        true,
                    )));
                }
                docker
                    .remove_container(
                        &name,
                        Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                    )
                    .await
                    .map_err(gone)?;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(gone(e)),
        }
        let image = spec
            .image
            .clone()
            .ok_or_else(|| StartError::new("no image"))?;
        self.ensure_image(&docker, &image, spec.pull).await?;

        let lookup = lookup_fn(spec, ctx.port);
        let home_dir = std::env::var("HOME").unwrap_or_else(|_| "/".into());
        let mut binds = Vec::new();
        for (host, cont) in &spec.volumes {
            let h = expand::expand(host, &home_dir, &lookup)
                .map_err(|e| StartError::new(format!("volumes.{host}: {e}")))?;
            let mut p = PathBuf::from(h);
            if p.is_relative() {
                p = spec.base_dir.join(p);
            }
            if !p.exists() {
                return Err(StartError::new(format!(
                    "volumes: host path {} does not exist; create it or fix the spec",
                    p.display()
                )));
            }
            binds.push(format!("{}:{cont}", p.display()));
        }
        let env: Vec<String> = resolve_env(spec, ctx.port, ctx.home)?
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut args = Vec::new();
        for a in &spec.args {
            args.push(
                expand::expand(a, &home_dir, &lookup)
                    .map_err(|e| StartError::new(format!("args: {e}")))?,
            );
        }
        let labels: HashMap<String, String> = [
            (LABEL_SERVICE.to_string(), spec.name.clone()),
            (LABEL_HOME.to_string(), home.clone()),
            (LABEL_HASH.to_string(), hash),
        ]
        .into();
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: if args.is_empty() { None } else { Some(args) },
            env: Some(env),
            labels: Some(labels),
            stop_signal: Some(spec.stop_signal.clone()),
            stop_timeout: Some(spec.stop_timeout.to_std().as_secs() as i64),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network_mode.clone()),
                binds: if binds.is_empty() { None } else { Some(binds) },
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| match &e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    StartError::new(format!("creating container {name}: {message}"))
                }
                _ => gone(e),
            })?;
        if let Err(e) = docker.start_container(&created.id, None).await {
            let _ = docker
                .remove_container(
                    &created.id,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await;
            return Err(match &e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    StartError::new(format!("starting container {name}: {message}"))
                }
                _ => gone(e),
            });
        }
        let started = match docker.inspect_container(&created.id, None).await {
            Ok(info) => started_at(&info),
            Err(_) => SystemTime::now(),
        };
        Ok(Box::new(ContainerProcess::attach(
            docker, created.id, started, log, false,
        )))
    }

    async fn ensure_image(
        &self,
        docker: &Docker,
        image: &str,
        pull: PullPolicy,
    ) -> Result<(), StartError> {
        let present = match docker.inspect_image(image).await {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => {
                return Err(StartError::transient(format!(
                    "lost the Docker engine: {e}"
                )));
            }
        };
        let want_pull = match pull {
            PullPolicy::Always => true,
            PullPolicy::Missing => !present,
            PullPolicy::Never => false,
        };
        if !want_pull {
            return if present {
                Ok(())
            } else {
                Err(StartError::new(format!(
                    "image {image} is not present locally; pull it (docker pull {image}) or set `pull: missing` in the spec"
                )))
            };
        }
        let (repo, tag) = split_image(image);
        let mut s = docker.create_image(
            Some(
                CreateImageOptionsBuilder::new()
                    .from_image(repo)
                    .tag(tag)
                    .build(),
            ),
            None,
            None,
        );
        while let Some(r) = s.next().await {
            if let Err(e) = r {
                return Err(StartError::new(format!("pulling image {image}: {e}")));
            }
        }
        Ok(())
    }
}

/// `repo[:tag]` (a registry port's colon is not a tag).
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    }
}

fn started_at(info: &bollard::models::ContainerInspectResponse) -> SystemTime {
    info.state
        .as_ref()
        .and_then(|s| s.started_at.as_deref())
        .and_then(crate::clock::parse_rfc3339)
        .unwrap_or_else(SystemTime::now)
}

impl Driver for ContainerDriver {
    fn start<'a>(
        &'a self,
        ctx: StartContext<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(self.start_inner(ctx))
    }
}

/// Where a container's output goes.
#[derive(Debug, Clone)]
struct LogTarget {
    service: String,
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
}

/// A running container.
pub struct ContainerProcess {
    docker: Docker,
    id: String,
    started_at: SystemTime,
    exited: Option<ExitInfo>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        // The engine keeps the logs; a later attach resumes where the file ends.
        self.pump.abort();
    }
}

impl ContainerProcess {
    fn attach(
        docker: Docker,
        id: String,
        started_at: SystemTime,
        log: LogTarget,
        resume: bool,
    ) -> ContainerProcess {
        let pump = tokio::spawn(pump_logs(docker.clone(), id.clone(), log, resume));
        ContainerProcess {
            docker,
            id,
            started_at,
            exited: None,
            pump,
        }
    }

    async fn wait_exit(docker: &Docker, id: &str) -> ExitInfo {
        let mut s = docker.wait_container(
            id,
            Some(
                WaitContainerOptionsBuilder::new()
                    .condition("not-running")
                    .build(),
            ),
        );
        let at = crate::clock::now();
        match s.next().await {
            Some(Ok(r)) => ExitInfo {
                code: Some(r.status_code as i32),
                at,
                ..Default::default()
            },
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => ExitInfo {
                code: Some(code as i32),
                at,
                ..Default::default()
            },
            Some(Err(e)) if is_not_found(&e) => ExitInfo {
                at,
                note: Some("the container was removed outside Aurelia".into()),
                ..Default::default()
            },
            Some(Err(e)) => ExitInfo {
                at,
                note: Some(format!("lost the Docker engine ({e})")),
                ..Default::default()
            },
            None => ExitInfo {
                at,
                note: Some("lost the Docker engine".into()),
                ..Default::default()
            },
        }
    }
}

impl Process for ContainerProcess {
    fn pid(&self) -> Option<u32> {
        None
    }

    fn pgid(&self) -> Option<u32> {
        None
    }

    fn container_id(&self) -> Option<String> {
        Some(self.id.clone())
    }

    fn started_at(&self) -> SystemTime {
        self.started_at
    }

    fn wait(&mut self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            if let Some(e) = &self.exited {
                return e.clone();
            }
            let e = Self::wait_exit(&self.docker, &self.id).await;
            // The log stream ends with the container: let the pump write the last lines
            // before the handle (and the pump with it) is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.pump).await;
            self.exited = Some(e.clone());
            e
        })
    }

    fn stop(&mut self, _signal: Signal, timeout: Duration) -> BoxFuture<'_, ExitInfo> {
        // The stop signal was set on the container at create time (StopSignal).
        Box::pin(async move {
            let t = timeout.as_secs().min(i32::MAX as u64) as i32;
            let _ = self
                .docker
                .stop_container(
                    &self.id,
                    Some(StopContainerOptionsBuilder::new().t(t).build()),
                )
                .await;
            let exit = match &self.exited {
                Some(e) => e.clone(),
                None => tokio::time::timeout(
                    timeout + Duration::from_secs(10),
                    Self::wait_exit(&self.docker, &self.id),
                )
                .await
                .unwrap_or_else(|_| ExitInfo {
                    at: crate::clock::now(),
                    note: Some("the engine did not report the exit".into()),
                    ..Default::default()
                }),
            };
            // let the pump write the last lines, then remove the container
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.pump).await;
            let _ = self
                .docker
                .remove_container(
                    &self.id,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await;
            self.exited = Some(exit.clone());
            exit
        })
    }
}

/// Where to resume a container's log stream: the time of the last record already in the file
/// and the lines written at that millisecond (so they are not written twice).
fn resume_point(path: &Path) -> (i64, Vec<String>, String) {
    let Ok((recs, _)) = crate::logs::reader::tail_file(path, 500, None, None) else {
        return (0, Vec::new(), String::new());
    };
    let lines: Vec<aurelia_api::LogLine> = recs
        .iter()
        .map(|r| crate::logs::parse_record("", r))
        .filter(|l| l.stream != aurelia_api::LogStream::Aurelia && !l.ts.is_empty())
        .collect();
    let Some(last) = lines.last() else {
        return (0, Vec::new(), String::new());
    };
    let ts = last.ts.clone();
    let same: Vec<String> = lines
        .iter()
        .filter(|l| l.ts == ts)
        .map(|l| l.line.clone())
        .collect();
    let secs = crate::clock::parse_rfc3339(&ts)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    (secs, same, ts)
}

/// Reads the container's log stream into the service's log file until the stream ends.
async fn pump_logs(docker: Docker, id: String, log: LogTarget, resume: bool) {
    let (since, mut skip, skip_ts) = if resume {
        let path = log.path.clone();
        tokio::task::spawn_blocking(move || resume_point(&path))
            .await
            .unwrap_or_default()
    } else {
        (0, Vec::new(), String::new())
    };
    let mut writer = match LogWriter::open(&log.path, log.max_bytes, log.max_files) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(service = %log.service, "cannot open {}: {e}", log.path.display());
            return;
        }
    };
    let opts = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(since.clamp(0, i64::from(i32::MAX)) as i32)
        .build();
    let mut stream = docker.logs(&id, Some(opts));
    let mut splitters = [LineSplitter::default(), LineSplitter::default()];
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        let (idx, tag, message) = match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                (0, b'O', message)
            }
            Ok(LogOutput::StdErr { message }) => (1, b'E', message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(_) => break,
        };
        // With timestamps, every line starts with the engine's RFC 3339 nano timestamp.
        let mut lines = Vec::new();
        splitters[idx].feed(&message, "", tag, &mut lines);
        for rec in lines.split(|b| *b == b'\n').filter(|r| r.len() >= 3) {
            let text = &rec[3..]; // "" + ' ' + tag + ' '
            let (ts_raw, line) = match text.iter().position(|b| *b == b' ') {
                Some(p) => (&text[..p], &text[p + 1..]),
                None => (text, &b""[..]),
            };
            let ts = std::str::from_utf8(ts_raw)
                .ok()
                .and_then(crate::clock::parse_rfc3339)
                .map(crate::clock::rfc3339_millis)
                .unwrap_or_else(crate::clock::now);
            if !skip_ts.is_empty() {
                if ts < skip_ts {
                    continue;
                }
                if ts == skip_ts {
                    let l = String::from_utf8_lossy(line);
                    if let Some(i) = skip.iter().position(|s| *s == l) {
                        skip.remove(i);
                        continue;
                    }
                }
            }
            crate::logs::relay::emit(&mut out, &ts, tag, line);
        }
        if !out.is_empty() {
            if let Err(e) = writer.append(&out) {
                tracing::error!(service = %log.service, "writing {}: {e}", log.path.display());
            }
            out.clear();
        }
    }
}

/// Containers this home left running, ready to adopt: running, labelled for this home and a
/// service that still has a spec. An unreachable engine adopts nothing (they are adopted when
/// it is back and the service starts).
pub async fn adoptable(
    home: &Home,
    specs: &[Spec],
    state: &StateFile,
    max_bytes: u64,
    max_files: u32,
) -> BTreeMap<String, Adoption> {
    let mut out = BTreeMap::new();
    if !specs.iter().any(|s| s.kind == ServiceKind::Container) {
        return out;
    }
    let Ok(docker) = connect().await else {
        return out;
    };
    let home_s = home.root.display().to_string();
    for spec in specs.iter().filter(|s| s.kind == ServiceKind::Container) {
        let name = container_name(&spec.name);
        let Ok(info) = docker.inspect_container(&name, None).await else {
            continue;
        };
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        if !running
            || labels.get(LABEL_SERVICE) != Some(&spec.name)
            || labels.get(LABEL_HOME) != Some(&home_s)
        {
            continue;
        }
        let Some(id) = info.id.clone() else { continue };
        let rec = state.services.get(&spec.name);
        let port = rec.and_then(|r| r.port).or_else(|| {
            info.config
                .as_ref()
                .and_then(|c| c.env.as_ref())
                .and_then(|env| {
                    env.iter()
                        .find_map(|kv| kv.strip_prefix("PORT=")?.parse().ok())
                })
        });
        tracing::info!(service = %spec.name, container = %&id[..id.len().min(12)], "re-adopted container");
        let log = LogTarget {
            service: spec.name.clone(),
            path: home.log_file(&spec.name),
            max_bytes,
            max_files,
        };
        out.insert(
            spec.name.clone(),
            Adoption {
                process: Box::new(ContainerProcess::attach(
                    docker.clone(),
                    id,
                    started_at(&info),
                    log,
                    true,
                )),
                port,
                restarts: rec.map_or(0, |r| r.restarts),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(split_image("postgres:16"), ("postgres", "16"));
        assert_eq!(split_image("postgres"), ("postgres", "latest"));
        assert_eq!(
            split_image("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/app:v2"),
            ("localhost:5000/app", "v2")
        );
    }

    #[test]
    fn resume_point_finds_the_last_output_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.log");
        std::fs::write(
            &p,
            "2026-01-01T00:00:01.000Z O a\n2026-01-01T00:00:02.500Z O b\n2026-01-01T00:00:02.500Z E c\n2026-01-01T00:00:03.000Z A stopped\n",
        )
        .expect("write");
        let (secs, same, ts) = resume_point(&p);
        assert_eq!(ts, "2026-01-01T00:00:02.500Z");
        assert_eq!(same, vec!["b".to_string(), "c".to_string()]);
        assert_eq!(secs, 1_767_225_602);
    }
}
