//! The middleware every request passes: an oversized body is refused (413); a source past its
//! authentication failures is refused (429); the caller is authenticated, by bearer token under
//! `/api/` and by session cookie under `/console/`; and every authenticated request, and every
//! failed attempt, is written to the audit log with its result.

use super::auth::{self, Caller};
use super::{App, Peer, MAX_BODY};
use crate::store::AuditEntry;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

/// The name of the console's session cookie.
pub const SESSION_COOKIE: &str = "otscope_session";

/// What needs no token: the health check, the API's description, the console's login page and style.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/api/v1/health" | "/api/v1/openapi.json" | "/console/login" | "/console/style.css" | "/")
}

/// A console session's form token, beside the caller.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub id_sha256: String,
}

pub fn wrap(router: Router, app: App) -> Router {
    router.layer(middleware::from_fn_with_state(app, gate)).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// The value of cookie `name` in the request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn now() -> String {
    crate::pipeline::now_rfc3339()
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn gate(
    State(app): State<App>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return api_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the request body is over {MAX_BODY} bytes"));
    }
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let console = path.starts_with("/console/");
    let (method, target) = (request.method().to_string(), request.uri().to_string());
    let entry = |token_name: Option<String>, status: StatusCode| AuditEntry {
        at: now(),
        token_name,
        source: peer.ip().to_string(),
        method: method.clone(),
        target: target.clone(),
        status: status.as_u16(),
    };
    if let Some(wait) = app.failures.refused(peer.ip()) {
        let audit = entry(None, StatusCode::TOO_MANY_REQUESTS);
        app.audit(audit).await;
        let mut response =
            api_error(StatusCode::TOO_MANY_REQUESTS, "too many authentication failures from this address");
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let presented = if console {
        cookie(request.headers(), SESSION_COOKIE).map(|s| Credential::Session(s.to_string()))
    } else {
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| Credential::Token(t.trim().to_string()))
    };
    let authenticated = match presented {
        None => None,
        Some(credential) => {
            let found = app.pool.run(move |store| credential.verify(store)).await;
            match found {
                Ok(Ok(found)) => found,
                Ok(Err(e)) | Err(e) => {
                    tracing::error!("authentication: {e}");
                    return api_error(StatusCode::INTERNAL_SERVER_ERROR, "the history cannot be read");
                }
            }
            .or_else(|| {
                app.failures.fail(peer.ip());
                None
            })
        }
    };
    let Some((caller, session)) = authenticated else {
        let audit = entry(None, StatusCode::UNAUTHORIZED);
        app.audit(audit).await;
        return if console {
            Redirect::to("/console/login").into_response()
        } else {
            let mut response =
                api_error(StatusCode::UNAUTHORIZED, "a valid token is needed: Authorization: Bearer ots_...");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        };
    };
    let name = caller.name.clone();
    let mut audit = entry(Some(name), StatusCode::OK);
    let mut request = request;
    request.extensions_mut().insert(caller);
    if let Some(session) = session {
        request.extensions_mut().insert(session);
    }
    let response = next.run(request).await;
    audit.status = response.status().as_u16();
    app.audit(audit).await;
    response
}

enum Credential {
    Token(String),
    Session(String),
}

impl Credential {
    fn verify(
        self,
        store: &mut crate::store::SqliteStore,
    ) -> Result<Option<(Caller, Option<Session>)>, crate::store::StoreError> {
        let now = now();
        match self {
            Credential::Token(text) => Ok(auth::verify_token(store, &text, &now)?.map(|c| (c, None))),
            Credential::Session(id) => {
                let id_sha256 = auth::sha256_hex(&id);
                let Some(session) = store.session(&id_sha256)? else { return Ok(None) };
                if session.expires_at.as_str() <= now.as_str() {
                    return Ok(None);
                }
                let Some(token) = store.token(&session.token_id)? else { return Ok(None) };
                Ok(auth::caller_of(token, &now).map(|c| (c, Some(Session { csrf: session.csrf, id_sha256 }))))
            }
        }
    }
}
