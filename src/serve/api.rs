//! The JSON API under `/api/v1`. One table, [`endpoints`], lists every route with its method,
//! parameters and handler: the router and the OpenAPI document are both made from it, so neither
//! can list a route the other lacks. Every handler reads through [`App::read`] (the caller's view).

use super::auth::Caller;
use super::gate;
use super::view::{self, Denied};
use super::App;
use crate::export::Lang;
use crate::scope::Transport;
use crate::store::FindingQuery;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// A refusal, as JSON: `{"error": ..., "parameter": ...}` (the parameter when one is to blame).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub parameter: Option<String>,
}

impl ApiError {
    fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), parameter: Some(parameter.to_string()) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(p) = self.parameter {
            body["parameter"] = json!(p);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> ApiError {
        match denied {
            Denied::Forbidden(what) => ApiError {
                status: StatusCode::FORBIDDEN,
                message: denied.to_string(),
                parameter: Some(what.to_string()),
            },
            Denied::NotFound(message) => ApiError { status: StatusCode::NOT_FOUND, message, parameter: None },
            Denied::Refused(message) => ApiError { status: StatusCode::CONFLICT, message, parameter: None },
            Denied::Store(e) => {
                tracing::error!("api: {e}");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "the history cannot be read".into(),
                    parameter: None,
                }
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        Denied::Store(e).into()
    }
}

/// A parameter of an endpoint, as the OpenAPI document describes it.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// `query`, `path`, or `body` (a field of the JSON object the request carries).
    pub location: &'static str,
    /// `string` or `integer`.
    pub kind: &'static str,
    pub required: bool,
    pub description: &'static str,
}

const fn query(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, location: "query", kind, required: false, description }
}

const fn path(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, location: "path", kind, required: true, description }
}

const fn field(name: &'static str, kind: &'static str, required: bool, description: &'static str) -> Param {
    Param { name, location: "body", kind, required, description }
}

/// One route of the API.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub parameters: &'static [Param],
    /// Served without a token.
    pub public: bool,
    pub handler: MethodRouter<App>,
}

const FINDINGS_PARAMS: &[Param] = &[
    query("scan", "integer", "a scan's findings; without it, the current services (each not gone, its last finding)"),
    query("district", "string", "only this district"),
    query("enterprise", "string", "only this enterprise id"),
    query("protocol", "string", "only this protocol id (modbus, s7comm, ...)"),
    query("severity", "string", "critical, high, medium, low or info"),
    query("change", "string", "new, changed or persisting"),
    query("since", "string", "only findings observed at or after this RFC 3339 time"),
    query("cursor", "string", "the `next` of the previous page"),
    query("limit", "integer", "findings per page, 1 to 1000 (default 100)"),
];
const SCAN_PARAMS: &[Param] = &[path("id", "integer", "the scan id")];
const DIFF_PARAMS: &[Param] = &[
    query("from", "integer", "the earlier scan (with `to`; default: the last two completed scans of the same objects)"),
    query("to", "integer", "the later scan"),
];
const SERVICE_PARAMS: &[Param] = &[
    path("ip", "string", "the address"),
    path("port", "integer", "the port"),
    path("transport", "string", "tcp or udp"),
];
const ADVISORY_PARAMS: &[Param] = &[path("id", "string", "the advisory's id (its CSAF tracking id)")];
const NOTICE_PARAMS: &[Param] = &[path("id", "string", "the notice's number (PREFIX-YEAR-NNNN)")];
const CLAIM_PARAMS: &[Param] = &[
    path("id", "string", "the enterprise notice's number (PREFIX-YEAR-NNNN)"),
    field("note", "string", true, "what was done to fix it (1 to 2000 characters)"),
];
const ISSUE_PARAMS: &[Param] =
    &[field("lang", "string", false, "en (default) or zh: the language of the notices' files on the server")];
const EXCEPT_PARAMS: &[Param] = &[
    path("id", "string", "the enterprise notice's number (PREFIX-YEAR-NNNN)"),
    field("reason", "string", true, "why the risk is accepted or the finding is false (1 to 2000 characters)"),
    field("until", "string", true, "the exception's last day, YYYY-MM-DD (today or later)"),
    field("item", "integer", false, "only this item of the notice (default: every item still to fix)"),
];
const EVENT_PARAMS: &[Param] = &[path("name", "string", "the event's name")];
const EVENT_REPORT_PARAMS: &[Param] =
    &[path("name", "string", "the event's name"), query("lang", "string", "en (default) or zh")];

/// Every route of the API, in the order the OpenAPI document lists them.
pub fn endpoints() -> Vec<Endpoint> {
    let get = |path, summary, parameters, public, handler| Endpoint {
        method: Method::GET,
        path,
        summary,
        parameters,
        public,
        handler,
    };
    let post = |path, summary, parameters, handler| Endpoint {
        method: Method::POST,
        path,
        summary,
        parameters,
        public: false,
        handler,
    };
    vec![
        get("/api/v1/health", "Whether the server runs (no token needed)", &[], true, routing::get(health)),
        get("/api/v1/openapi.json", "This document (no token needed)", &[], true, routing::get(openapi)),
        get("/api/v1/token", "The token used: its name, role and reach", &[], false, routing::get(token)),
        get("/api/v1/scans", "The scans that concern the token's reach", &[], false, routing::get(scans)),
        get("/api/v1/scans/{id}", "One scan", SCAN_PARAMS, false, routing::get(scan)),
        get("/api/v1/findings", "Findings, filtered, a page at a time", FINDINGS_PARAMS, false, routing::get(findings)),
        get("/api/v1/diffs", "What changed between two scans", DIFF_PARAMS, false, routing::get(diff)),
        get(
            "/api/v1/services/{ip}/{port}/{transport}",
            "One service over time",
            SERVICE_PARAMS,
            false,
            routing::get(service),
        ),
        get("/api/v1/events", "Major events (center tokens)", &[], false, routing::get(events)),
        get("/api/v1/events/{name}", "One major event (center tokens)", EVENT_PARAMS, false, routing::get(event)),
        get(
            "/api/v1/events/{name}/report",
            "The 24-hour report of a major event, and whether it is a zero report (center tokens)",
            EVENT_REPORT_PARAMS,
            false,
            routing::get(event_report),
        ),
        get(
            "/api/v1/advisories",
            "The advisories the token may see: TLP:RED only for the center, TLP:AMBER only for an enterprise it concerns",
            &[],
            false,
            routing::get(advisories),
        ),
        get(
            "/api/v1/advisories/{id}",
            "One advisory with its match results within the token's reach",
            ADVISORY_PARAMS,
            false,
            routing::get(advisory),
        ),
        get(
            "/api/v1/notices",
            "The notices within the token's reach: status, items and deadlines",
            &[],
            false,
            routing::get(notices),
        ),
        get("/api/v1/notices/{id}", "One notice", NOTICE_PARAMS, false, routing::get(notice)),
        post(
            "/api/v1/notices",
            "Issue the notices due, as `otscope notices issue` does (center tokens); re-checks (`notices verify`) \
             run only from the command line or the daemon, never from a request",
            ISSUE_PARAMS,
            routing::post(issue),
        ),
        post(
            "/api/v1/notices/{id}/claim",
            "Claim an enterprise notice's items fixed, with a note; a re-check then decides",
            CLAIM_PARAMS,
            routing::post(claim),
        ),
        post(
            "/api/v1/notices/{id}/except",
            "Except a notice's items (or one of them) until a date, as `otscope notices except` does (center tokens)",
            EXCEPT_PARAMS,
            routing::post(except),
        ),
    ]
}

pub fn router(app: App) -> Router {
    let mut router = Router::new();
    for endpoint in endpoints() {
        router = router.route(endpoint.path, endpoint.handler);
    }
    router.fallback(unknown).with_state(app)
}

async fn unknown(uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no such endpoint: {} (see /api/v1/openapi.json)", uri.path()),
        parameter: None,
    }
}

/// The OpenAPI 3.1 document of [`endpoints`].
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for e in endpoints() {
        let parameters: Vec<Value> = e
            .parameters
            .iter()
            .filter(|p| p.location != "body")
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": p.location,
                    "required": p.required,
                    "description": p.description,
                    "schema": { "type": p.kind },
                })
            })
            .collect();
        let mut responses = json!({ "200": { "description": "OK", "content": { "application/json": {} } } });
        if !e.parameters.is_empty() {
            responses["400"] = json!({ "$ref": "#/components/responses/BadParameter" });
        }
        let path_id = e.path.trim_start_matches("/api/v1/").replace(['/', '{', '}', '.'], "_");
        let mut operation = json!({
            "summary": e.summary,
            "operationId": format!("{}_{path_id}", e.method.as_str().to_ascii_lowercase()),
            "parameters": parameters,
            "responses": responses,
        });
        if e.public {
            operation["security"] = json!([]);
        } else {
            for (code, name) in [("401", "Unauthorized"), ("403", "Forbidden"), ("404", "NotFound"), ("429", "TooMany")]
            {
                operation["responses"][code] = json!({ "$ref": format!("#/components/responses/{name}") });
            }
        }
        if e.method == Method::POST {
            let fields = e.parameters.iter().filter(|p| p.location == "body");
            let required: Vec<&str> = fields.clone().filter(|p| p.required).map(|p| p.name).collect();
            let properties: Map<String, Value> =
                fields.map(|p| (p.name.to_string(), json!({ "type": p.kind, "description": p.description }))).collect();
            operation["requestBody"] = json!({
                "required": true,
                "description": "a JSON object (Content-Type: application/json); `parameter` names a field refused",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": required,
                    "additionalProperties": false,
                    "properties": properties,
                } } }
            });
            operation["responses"]["400"] = json!({ "$ref": "#/components/responses/BadParameter" });
            operation["responses"]["409"] = json!({ "$ref": "#/components/responses/Conflict" });
            operation["responses"]["413"] = json!({ "$ref": "#/components/responses/PayloadTooLarge" });
        }
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method.as_str().to_ascii_lowercase()] = operation;
    }
    let error = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "otscope",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The scan history of otscope, each token seeing only its reach: a center token everything, a district token its district's enterprises, an enterprise token its own services. A request changes only notices: an enterprise or district token may claim one fixed; a center token may also issue notices and record exceptions. Re-checks (`otscope notices verify`) never run from a request: only from the command line or the daemon.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "a token from `otscope token create`" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": { "type": "string" },
                        "parameter": { "type": "string", "description": "the parameter to blame" }
                    }
                }
            },
            "responses": {
                "BadParameter": error("a parameter is invalid; `parameter` names it"),
                "Unauthorized": error("no valid token"),
                "Forbidden": error("the request names something outside the token's reach"),
                "NotFound": error("no such object within the token's reach"),
                "TooMany": error("too many authentication failures from this address"),
                "PayloadTooLarge": error("the request body is too large"),
                "Conflict": error("the change does not fit the object's state; nothing was changed"),
            }
        }
    })
}

/// The query parameters of a request, checked against those its endpoint takes.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(query: Result<Query<Vec<(String, String)>>, QueryRejection>, takes: &[Param]) -> Result<Params, ApiError> {
        let Query(pairs) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !takes.iter().any(|p| p.location == "query" && p.name == name) {
                let known: Vec<&str> = takes.iter().filter(|p| p.location == "query").map(|p| p.name).collect();
                let expected = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                return Err(ApiError::bad(
                    name,
                    format!("unknown parameter {name:?} (this endpoint takes: {expected})"),
                ));
            }
            if pairs[..i].iter().any(|(other, _)| other == name) {
                return Err(ApiError::bad(name, format!("parameter {name:?} is given twice")));
            }
        }
        Ok(Params(pairs))
    }

    fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) => {
                Err(ApiError::bad(name, format!("{name}: expected 1 to 256 printable characters")))
            }
            Some((_, v)) => Ok(Some(v.clone())),
        }
    }

    fn parsed<T>(&self, name: &str, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
        match self.0.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => {
                parse(v).map(Some).ok_or_else(|| ApiError::bad(name, format!("{name}={v:?}: expected {expected}")))
            }
        }
    }
}

fn scan_id(text: &str) -> Option<i64> {
    text.parse().ok().filter(|id| *id > 0)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

async fn token(
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, &[])?;
    let (district, enterprise) = match &caller.reach {
        super::auth::Reach::Center => (None, None),
        super::auth::Reach::District(d) => (Some(d.clone()), None),
        super::auth::Reach::Enterprise(e) => (None, Some(e.clone())),
    };
    Ok(Json(
        json!({ "name": caller.name, "role": caller.reach.role(), "district": district, "enterprise": enterprise }),
    ))
}

async fn scans(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, &[])?;
    let scans = app.read(&caller, |view| view.scans()).await?;
    Ok(Json(json!({ "scans": scans })))
}

async fn scan(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, SCAN_PARAMS)?;
    let id = scan_id(&id)
        .ok_or_else(|| ApiError::bad("id", format!("id={id:?}: expected a scan id (a positive integer)")))?;
    Ok(Json(app.read(&caller, move |view| view.scan(id)).await?))
}

/// The cursor: the last service of a page, as hex of `ip port transport`.
fn encode_cursor(f: &crate::findings::Finding) -> String {
    hex::encode(format!("{} {} {}", f.ip, f.port, f.transport.as_str()))
}

fn decode_cursor(text: &str) -> Option<(String, u16, String)> {
    let raw = String::from_utf8(hex::decode(text).ok()?).ok()?;
    let mut parts = raw.split(' ');
    let ip: IpAddr = parts.next()?.parse().ok()?;
    let port = parts.next()?.parse().ok()?;
    let transport = parts.next().filter(|t| matches!(*t, "tcp" | "udp"))?;
    parts.next().is_none().then(|| (ip.to_string(), port, transport.to_string()))
}

fn rfc3339(text: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    // Stored times are UTC, written as RFC 3339: compare in the same form.
    t.to_offset(time::UtcOffset::UTC).format(&time::format_description::well_known::Rfc3339).ok()
}

/// Findings per page, by default and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

async fn findings(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::of(query, FINDINGS_PARAMS)?;
    const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "info"];
    const CHANGES: &[&str] = &["new", "changed", "persisting"];
    let one_of = |list: &'static [&'static str]| move |v: &str| list.contains(&v).then(|| v.to_string());
    let limit = params
        .parsed("limit", "an integer from 1 to 1000", |v| v.parse().ok().filter(|n| (1..=MAX_PAGE).contains(n)))?
        .unwrap_or(PAGE);
    let query = FindingQuery {
        scan: params.parsed("scan", "a scan id (a positive integer)", scan_id)?,
        district: params.text("district")?,
        enterprise_id: params.text("enterprise")?,
        protocol: params.parsed("protocol", "a protocol id (lowercase letters, digits, - or _)", |v| {
            (!v.is_empty()
                && v.len() <= 32
                && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
            .then(|| v.to_string())
        })?,
        severity: params.parsed("severity", "critical, high, medium, low or info", one_of(SEVERITIES))?,
        change: params.parsed("change", "new, changed or persisting", one_of(CHANGES))?,
        since: params.parsed("since", "an RFC 3339 time such as 2026-05-01T00:00:00Z", rfc3339)?,
        after: params.parsed("cursor", "the `next` of a previous page", decode_cursor)?,
        limit: limit + 1,
    };
    let mut page = app.read(&caller, move |view| view.findings(query)).await?;
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(json!({ "findings": page, "next": next })))
}

async fn diff(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::of(query, DIFF_PARAMS)?;
    let from = params.parsed("from", "a scan id (a positive integer)", scan_id)?;
    let to = params.parsed("to", "a scan id (a positive integer)", scan_id)?;
    if from.is_some() != to.is_some() {
        let missing = if from.is_none() { "from" } else { "to" };
        return Err(ApiError::bad(missing, "give both from and to, or neither"));
    }
    Ok(Json(app.read(&caller, move |view| view.diff(from, to)).await?))
}

async fn service(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((ip, port, transport)): Path<(String, String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, SERVICE_PARAMS)?;
    let ip: IpAddr =
        ip.parse().map_err(|_| ApiError::bad("ip", format!("ip={ip:?}: expected an IPv4 or IPv6 address")))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad("port", format!("port={port:?}: expected 1 to 65535")))?;
    let transport = match transport.as_str() {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        _ => return Err(ApiError::bad("transport", format!("transport={transport:?}: expected tcp or udp"))),
    };
    Ok(Json(app.read(&caller, move |view| view.service(ip, port, transport)).await?))
}

async fn events(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, &[])?;
    let events = app.read(&caller, |view| view.events()).await?;
    Ok(Json(json!({ "events": events })))
}

async fn event(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, EVENT_PARAMS)?;
    let event = app.read(&caller, move |view| view.event(&name)).await?;
    Ok(Json(json!(event)))
}

async fn event_report(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::of(query, EVENT_REPORT_PARAMS)?;
    let lang = params
        .parsed("lang", "en or zh", |v| match v {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        })?
        .unwrap_or(Lang::En);
    Ok(Json(app.read(&caller, move |view| view.event_report(&name, lang)).await?))
}

async fn advisories(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, &[])?;
    let advisories = app.read(&caller, |view| view.advisories()).await?;
    Ok(Json(json!({ "advisories": advisories })))
}

async fn advisory(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, ADVISORY_PARAMS)?;
    Ok(Json(app.read(&caller, move |view| view.advisory(&id)).await?))
}

async fn notices(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, &[])?;
    let notices = app.read(&caller, |view| view.notices()).await?;
    Ok(Json(json!({ "notices": notices })))
}

async fn notice(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, NOTICE_PARAMS)?;
    Ok(Json(app.read(&caller, move |view| view.notice(&id)).await?))
}

/// The JSON object a request carries, its fields checked against those its endpoint takes.
struct Fields(Map<String, Value>);

impl Fields {
    fn of(body: Result<Json<Value>, JsonRejection>, takes: &[Param]) -> Result<Fields, ApiError> {
        let Json(body) = body.map_err(|e| ApiError::bad("body", e.body_text()))?;
        let Value::Object(fields) = body else {
            return Err(ApiError::bad("body", "body: expected a JSON object"));
        };
        let known: Vec<&str> = takes.iter().filter(|p| p.location == "body").map(|p| p.name).collect();
        if let Some(name) = fields.keys().find(|name| !known.contains(&name.as_str())) {
            let expected = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(ApiError::bad(name, format!("unknown field {name:?} (this endpoint takes: {expected})")));
        }
        Ok(Fields(fields))
    }

    /// A text field of 1 to `max` characters (line breaks allowed), trimmed.
    fn text(&self, name: &str, max: usize, expected: &str) -> Result<Option<String>, ApiError> {
        let refused = || ApiError::bad(name, format!("{name}: expected {expected}"));
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => {
                let text = text.trim();
                if text.is_empty() || text.chars().count() > max || text.chars().any(|c| c.is_control() && c != '\n') {
                    return Err(refused());
                }
                Ok(Some(text.to_string()))
            }
            Some(_) => Err(refused()),
        }
    }

    fn required(&self, name: &str, max: usize, expected: &str) -> Result<String, ApiError> {
        self.text(name, max, expected)?.ok_or_else(|| ApiError::bad(name, format!("{name}: expected {expected}")))
    }
}

/// The longest note or reason a request may carry.
const MAX_NOTE: usize = 2000;

/// The items a change moved, with their new states.
fn item_states(items: &[crate::store::ItemRecord]) -> Vec<Value> {
    items.iter().map(|i| json!({ "id": i.id, "state": i.state })).collect()
}

async fn claim(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, CLAIM_PARAMS)?;
    let note =
        Fields::of(body, CLAIM_PARAMS)?.required("note", MAX_NOTE, "1 to 2000 characters saying what was fixed")?;
    let (number, by) = (id.clone(), caller.name.clone());
    let claimed = app.write(move |store, at| view::claim(store, &caller, &number, &note, at)).await?;
    Ok(Json(json!({ "notice": id, "claimed": item_states(&claimed), "by": by })))
}

async fn issue(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, ISSUE_PARAMS)?;
    let lang = match Fields::of(body, ISSUE_PARAMS)?.text("lang", 2, "en or zh")?.as_deref() {
        None | Some("en") => Lang::En,
        Some("zh") => Lang::Zh,
        Some(_) => return Err(ApiError::bad("lang", "lang: expected en or zh")),
    };
    let (issuer, by) = (app.issuer.clone(), caller.name.clone());
    let issued = app.write(move |store, at| view::issue(store, &caller, issuer.as_deref(), lang, at)).await?;
    let notices: Vec<Value> = issued
        .notices
        .iter()
        .map(|n| {
            let items: usize = n.advisories.iter().map(|a| a.services.len()).sum();
            json!({ "number": n.number, "kind": n.kind.as_str(), "subject": n.subject, "district": n.district, "items": items })
        })
        .collect();
    let withheld: Vec<Value> =
        issued.withheld.iter().map(|(item, advisory, _)| json!({ "item": item, "advisory": advisory })).collect();
    let files: Vec<String> =
        issued.files.iter().filter_map(|f| f.file_name()).map(|f| f.to_string_lossy().into_owned()).collect();
    Ok(Json(json!({
        "notices": notices,
        "withheld": withheld,
        "exceptions_ended": issued.exceptions_ended,
        "files": files,
        "by": by,
    })))
}

async fn except(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Params::of(query, EXCEPT_PARAMS)?;
    let fields = Fields::of(body, EXCEPT_PARAMS)?;
    let reason = fields.required("reason", MAX_NOTE, "1 to 2000 characters saying why")?;
    let until = fields.required("until", 10, "the last day, YYYY-MM-DD")?;
    let until = crate::notices::exception_until(&until, &gate::now())
        .map_err(|why| ApiError::bad("until", format!("until={until:?}: {why}")))?;
    let item = match fields.0.get("item") {
        None => None,
        Some(value) => Some(
            value.as_i64().filter(|id| *id > 0).ok_or_else(|| ApiError::bad("item", "item: expected an item id"))?,
        ),
    };
    let (number, by, last_day) = (id.clone(), caller.name.clone(), until.clone());
    let excepted = app.write(move |store, at| view::except(store, &caller, &number, item, &reason, &until, at)).await?;
    Ok(Json(json!({ "notice": id, "excepted": item_states(&excepted), "until": last_day, "by": by })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(decode_cursor(&hex::encode("127.0.0.1 502 tcp")), Some(("127.0.0.1".into(), 502, "tcp".into())));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor(&hex::encode("127.0.0.1 502 sctp")), None);
        assert_eq!(decode_cursor(&hex::encode("127.0.0.1 502 tcp extra")), None);
    }

    #[test]
    fn every_path_parameter_appears_in_its_path() {
        for e in endpoints() {
            for p in e.parameters.iter().filter(|p| p.location == "path") {
                assert!(e.path.contains(&format!("{{{}}}", p.name)), "{} lacks {{{}}}", e.path, p.name);
            }
            let braces = e.path.matches('{').count();
            assert_eq!(braces, e.parameters.iter().filter(|p| p.location == "path").count(), "{}", e.path);
        }
    }
}
