//! The HTTP API: one axum `Router`, served on the Unix socket (and, later, on TCP).
//!
//! Handlers are thin: reads come from the supervisor's shared registry (snapshots, no round
//! trip through the supervisor task), writes are commands to the supervisor task. Every
//! handler is annotated for utoipa, and `GET /v1/openapi.json` serves the document generated
//! from those annotations and the wire types in `aurelia-api`. Errors are one type,
//! [`ApiError`], rendered as `{"error": {"code", "message"}}`.
//!
//! Streaming routes (`follow=true` logs, `/v1/events`) answer with newline-delimited JSON over
//! chunked encoding, with an empty line every 15 s so a vanished client is noticed.

use std::convert::Infallible;
use std::time::Duration;

use aurelia_api::*;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::logs::reader;
use crate::supervisor::{Command, OpError, Supervisor};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no service named \"{name}\" (see `aurelia status` for the list)"),
        )
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the daemon's log for details",
        )
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        let (status, code) = match &e {
            OpError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            OpError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            OpError::InvalidSpec(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidSpec),
            OpError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Conflict),
        };
        let message = match &e {
            OpError::NotFound(n) => return ApiError::not_found(n),
            _ => e.to_string(),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code,
                    message: self.message,
                },
            }),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The OpenAPI document's header.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurelia API",
        description = "Control a running Aurelia daemon: services, logs, events, reload."
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, Event, LogLine, LogStream))
)]
struct ApiDoc;

/// Builds the router and the OpenAPI document.
pub fn router(sup: Supervisor) -> axum::Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(services))
        .routes(routes!(service))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .routes(routes!(up))
        .routes(routes!(down))
        .routes(routes!(reload))
        .routes(routes!(service_logs))
        .routes(routes!(logs))
        .routes(routes!(events))
        .with_state(sup)
        .split_for_parts();
    let doc = api.to_pretty_json().unwrap_or_default();
    router
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], doc.clone())
            }),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such route; see GET /v1/openapi.json",
            )
        })
}

/// The daemon's own health.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = DaemonHealth)))]
async fn health(State(sup): State<Supervisor>) -> Json<DaemonHealth> {
    let sh = &sup.shared;
    let reg = sh.registry.read().unwrap_or_else(|p| p.into_inner());
    Json(DaemonHealth {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: sh.started.elapsed().as_secs_f64(),
        home: sh.home.root.display().to_string(),
        services: reg.entries.len(),
        spec_errors: reg.spec_errors.len(),
    })
}

/// All services.
#[utoipa::path(get, path = "/v1/services", responses((status = 200, body = ServiceList)))]
async fn services(State(sup): State<Supervisor>) -> Json<ServiceList> {
    let services = sup.shared.statuses();
    let spec_errors = sup
        .shared
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .spec_errors
        .clone();
    Json(ServiceList {
        services,
        spec_errors,
    })
}

/// One service, with its health history.
#[utoipa::path(
    get,
    path = "/v1/services/{name}",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, body = ServiceDetail), (status = 404, body = ErrorBody))
)]
async fn service(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
) -> ApiResult<ServiceDetail> {
    let status = sup
        .shared
        .status(&name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    let reg = sup
        .shared
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner());
    let e = reg
        .entries
        .get(&name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    let spec = &e.spec;
    let command = match spec.kind {
        aurelia_spec::ServiceKind::Native => spec.command.as_ref().map(|c| c.join(" ")),
        aurelia_spec::ServiceKind::Container => spec.image.clone(),
        aurelia_spec::ServiceKind::External => None,
    };
    let health_check = spec
        .health
        .as_ref()
        .map(|h| crate::health::describe(h, h.port.or(status.port)));
    let history = e.history.lock().map(|h| h.clone()).unwrap_or_default();
    Ok(Json(ServiceDetail {
        spec_file: spec.source.display().to_string(),
        command,
        after: spec.after.clone(),
        requires: spec.requires.clone(),
        health_check,
        health_history: history,
        log_file: sup.shared.home.log_file(&name).display().to_string(),
        status,
    }))
}

async fn act(
    sup: &Supervisor,
    c: impl FnOnce(tokio::sync::oneshot::Sender<Result<Vec<String>, OpError>>) -> Command,
) -> ApiResult<ActionResult> {
    let services = sup.ask(c).await??;
    Ok(Json(ActionResult { services }))
}

/// Start a service (and what it starts after). Returns at once; watch `/v1/events` or poll
/// the service for progress.
#[utoipa::path(
    post,
    path = "/v1/services/{name}/start",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, body = ActionResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn start(State(sup): State<Supervisor>, Path(name): Path<String>) -> ApiResult<ActionResult> {
    act(&sup, |reply| Command::Up {
        services: vec![name],
        reply,
    })
    .await
}

/// Stop a service; services that require it are stopped first (and come back when it does).
#[utoipa::path(
    post,
    path = "/v1/services/{name}/stop",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, body = ActionResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn stop(State(sup): State<Supervisor>, Path(name): Path<String>) -> ApiResult<ActionResult> {
    act(&sup, |reply| Command::Down {
        services: vec![name],
        reply,
    })
    .await
}

/// Restart a service; its hard dependents bounce with it.
#[utoipa::path(
    post,
    path = "/v1/services/{name}/restart",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, body = ActionResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn restart(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
) -> ApiResult<ActionResult> {
    act(&sup, |reply| Command::Restart {
        service: name,
        reply,
    })
    .await
}

/// Start several services (none named: all), in dependency order.
#[utoipa::path(
    post,
    path = "/v1/up",
    request_body = ServicesRequest,
    responses((status = 200, body = ActionResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn up(
    State(sup): State<Supervisor>,
    body: Option<Json<ServicesRequest>>,
) -> ApiResult<ActionResult> {
    let services = body.map(|b| b.0.services).unwrap_or_default();
    act(&sup, |reply| Command::Up { services, reply }).await
}

/// Stop several services (none named: all), in reverse dependency order.
#[utoipa::path(
    post,
    path = "/v1/down",
    request_body = ServicesRequest,
    responses((status = 200, body = ActionResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn down(
    State(sup): State<Supervisor>,
    body: Option<Json<ServicesRequest>>,
) -> ApiResult<ActionResult> {
    let services = body.map(|b| b.0.services).unwrap_or_default();
    act(&sup, |reply| Command::Down { services, reply }).await
}

/// Re-read the spec files and apply the differences. An invalid spec changes nothing (422).
#[utoipa::path(
    post,
    path = "/v1/reload",
    responses((status = 200, body = ReloadResult), (status = 422, body = ErrorBody))
)]
async fn reload(State(sup): State<Supervisor>) -> ApiResult<ReloadResult> {
    let r = sup
        .ask(|reply| Command::Reload { reply: Some(reply) })
        .await??;
    Ok(Json(r))
}

/// Query of the log routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct LogQuery {
    /// How many recent lines (default 100).
    n: Option<usize>,
    /// Only lines at or after this time (RFC 3339) or this long ago (Go duration, e.g. `10m`).
    since: Option<String>,
    /// Keep the response open and stream new lines as they are written.
    follow: Option<bool>,
    /// `/v1/logs` only: comma-separated services (default: all).
    services: Option<String>,
}

fn since_ts(since: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(s) = since.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Some(t) = crate::clock::parse_rfc3339(s) {
        return Ok(Some(crate::clock::rfc3339_millis(t)));
    }
    match aurelia_spec::duration::parse(s) {
        Ok(d) if d.nanos() >= 0 => Ok(Some(crate::clock::rfc3339_millis(
            std::time::SystemTime::now() - d.to_std(),
        ))),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("since={s:?} is neither an RFC 3339 time nor a duration like 10m"),
        )),
    }
}

/// Recent log lines of one service (`follow=true`: then new ones, as NDJSON).
#[utoipa::path(
    get,
    path = "/v1/services/{name}/logs",
    params(("name" = String, Path, description = "Service name"), LogQuery),
    responses(
        (status = 200, body = LogsResponse, description = "Lines, oldest first; with follow=true, newline-delimited LogLine objects"),
        (status = 404, body = ErrorBody)
    )
)]
async fn service_logs(
    State(sup): State<Supervisor>,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    if sup.shared.status(&name).is_none() {
        return Err(ApiError::not_found(&name));
    }
    logs_response(&sup, vec![name], q).await
}

/// Recent log lines of several services merged by time (`follow=true`: then new ones).
#[utoipa::path(
    get,
    path = "/v1/logs",
    params(LogQuery),
    responses((status = 200, body = LogsResponse), (status = 404, body = ErrorBody))
)]
async fn logs(
    State(sup): State<Supervisor>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let names: Vec<String> = match q.services.as_deref().filter(|s| !s.is_empty()) {
        Some(list) => {
            let names: Vec<String> = list.split(',').map(str::to_string).collect();
            for n in &names {
                if sup.shared.status(n).is_none() {
                    return Err(ApiError::not_found(n));
                }
            }
            names
        }
        None => sup.shared.statuses().into_iter().map(|s| s.name).collect(),
    };
    logs_response(&sup, names, q).await
}

async fn logs_response(
    sup: &Supervisor,
    names: Vec<String>,
    q: LogQuery,
) -> Result<Response, ApiError> {
    let n = q.n.unwrap_or(100);
    let since = since_ts(q.since.as_deref())?;
    let dir = sup.shared.home.logs_dir();
    if !q.follow.unwrap_or(false) {
        let lines = tokio::task::spawn_blocking(move || {
            if names.len() == 1 {
                reader::tail_service(&dir, &names[0], n, since.as_deref(), None)
            } else {
                reader::tail_many(&dir, &names, n, since.as_deref())
            }
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        return Ok(Json(LogsResponse { lines }).into_response());
    }
    let sub = sup.shared.hub.subscribe().map_err(ApiError::internal)?;
    let crate::logs::hub::Subscription { rx, offsets, guard } = sub;
    let backlog = {
        let names = names.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<LogLine>> {
            let mut all = Vec::new();
            for s in &names {
                let limit = Some(offsets.get(s).copied().unwrap_or(0));
                all.extend(reader::tail_service(&dir, s, n, since.as_deref(), limit)?);
            }
            all.sort_by(|a, b| a.ts.cmp(&b.ts));
            let skip = all.len().saturating_sub(n);
            Ok(all.split_off(skip))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
    };
    let head = futures_util::stream::iter(backlog.into_iter().map(|l| ndjson(&l)));
    let live = live_stream(
        rx,
        move |l: &LogLine| names.contains(&l.service).then(|| ndjson(l)),
        guard,
    );
    Ok(stream_response(head.chain(live)))
}

fn ndjson<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A stream of items from a broadcast receiver, with a heartbeat; `keep` holds whatever must
/// live as long as the stream (a log subscription).
fn live_stream<T: Clone + Send + 'static, K: Send + 'static>(
    rx: broadcast::Receiver<T>,
    map: impl Fn(&T) -> Option<String> + Send + 'static,
    keep: K,
) -> impl futures_util::Stream<Item = String> + Send {
    futures_util::stream::unfold((rx, map, keep), |(mut rx, map, keep)| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
                Err(_) => return Some(("\n".to_string(), (rx, map, keep))),
                Ok(Ok(item)) => {
                    if let Some(s) = map(&item) {
                        return Some((s, (rx, map, keep)));
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    let note = LogLine {
                        service: "aurelia".into(),
                        ts: crate::clock::now(),
                        stream: LogStream::Aurelia,
                        line: format!("this client fell behind; {n} items were skipped"),
                    };
                    return Some((ndjson(&Event::Log(note)), (rx, map, keep)));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    })
}

fn stream_response(s: impl futures_util::Stream<Item = String> + Send + 'static) -> Response {
    let body = Body::from_stream(s.map(Ok::<_, Infallible>));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

/// Query of the event stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct EventQuery {
    /// Include log lines (default true).
    logs: Option<bool>,
}

/// A stream of events (state changes, log lines, reloads) as newline-delimited JSON. The
/// current state of every service is sent first.
#[utoipa::path(
    get,
    path = "/v1/events",
    params(EventQuery),
    responses((status = 200, body = Event, description = "Newline-delimited Event objects"))
)]
async fn events(
    State(sup): State<Supervisor>,
    Query(q): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let rx = sup.shared.events.subscribe();
    let initial: Vec<String> = sup
        .shared
        .statuses()
        .into_iter()
        .map(|s| ndjson(&Event::State(s)))
        .collect();
    let head = futures_util::stream::iter(initial);
    let states = live_stream(rx, |e: &Event| Some(ndjson(e)), ());
    if q.logs.unwrap_or(true) {
        let sub = sup.shared.hub.subscribe().map_err(ApiError::internal)?;
        let logs = live_stream(
            sub.rx,
            |l: &LogLine| Some(ndjson(&Event::Log(l.clone()))),
            sub.guard,
        );
        Ok(stream_response(
            head.chain(futures_util::stream::select(states, logs)),
        ))
    } else {
        Ok(stream_response(head.chain(states)))
    }
}
