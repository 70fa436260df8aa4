//! The web console: server-rendered pages in English and Chinese, with no script and no resource
//! from elsewhere (a strict Content-Security-Policy says so to the browser). A token logs in once
//! and gets a session cookie (HttpOnly, SameSite=Strict); every form carries a CSRF token.
//!
//! Pages read through the caller's view, exactly as the API does.

use super::auth::{self, Caller, Reach};
use super::gate::{cookie, now, Session, SESSION_COOKIE};
use super::view::{self, Denied};
use super::App;
use crate::export::{change_text, severity_text, Lang};
use crate::findings::{Finding, Severity};
use crate::html::escape;
use crate::store::{AuditEntry, FindingQuery, OwnerCount, SessionRecord};
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// No script, no frame, no resource but this server's stylesheet, forms only to this server.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";
const LOGIN_COOKIE: &str = "otscope_login";
const LANG_COOKIE: &str = "otscope_lang";
/// How long a console session lasts.
const SESSION_HOURS: i64 = 8;
/// Findings a page lists at most (the API pages through the rest).
const PAGE_FINDINGS: usize = 500;

const STYLE: &str = include_str!("console.css");

pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console/style.css", get(style))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/", get(overview))
        .route("/console/districts/{district}", get(district))
        .route("/console/enterprises/{enterprise}", get(enterprise))
        .route("/console/notices/{number}/claim", post(claim))
        .route("/console/scans", get(scans))
        .route("/console/diff", get(diff))
        .route("/console/events", get(events))
        .route("/console/events/{name}", get(event))
        .with_state(app)
}

/// Headers every console response carries.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn html(status: StatusCode, body: String) -> Response {
    secured((status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}

async fn style() -> Response {
    secured(([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response())
}

/// The language: `?lang=` (remembered in a cookie), else the cookie, else the browser's preference.
fn language(headers: &HeaderMap, asked: Option<&str>) -> Lang {
    let pick = |v: &str| match v {
        "zh" => Some(Lang::Zh),
        "en" => Some(Lang::En),
        _ => None,
    };
    asked
        .and_then(pick)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(pick))
        .or_else(|| {
            let accept = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
            accept.trim_start().starts_with("zh").then_some(Lang::Zh)
        })
        .unwrap_or(Lang::En)
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    }
}

/// Text in the page's language.
fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

fn cookie_header(app: &App, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if app.https { "; Secure" } else { "" };
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}"))
        .expect("cookie values are hex")
}

/// What every page of a signed-in caller shows around its content: who, the language, the path (for
/// the language links) and the session's form token; taken from the request the gate let through.
struct Frame {
    lang: Lang,
    caller: Caller,
    session: Session,
    here: String,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Frame {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Frame, Response> {
        let signed = parts.extensions.get::<Caller>().cloned().zip(parts.extensions.get::<Session>().cloned());
        let Some((caller, session)) = signed else { return Err(Redirect::to("/console/login").into_response()) };
        let asked = Query::<LangQuery>::try_from_uri(&parts.uri).ok().and_then(|Query(q)| q.lang);
        let lang = language(&parts.headers, asked.as_deref());
        Ok(Frame { lang, caller, session, here: parts.uri.path().to_string() })
    }
}

impl Frame {
    /// Whether a form's CSRF token is the session's: every form this console serves carries it.
    fn sent_by_own_form(&self, csrf: &str) -> bool {
        auth::same_secret(csrf.as_bytes(), self.session.csrf.as_bytes())
    }

    fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        let lang = self.lang;
        let who = match &self.caller.reach {
            Reach::Center => t(lang, "center", "中心").to_string(),
            Reach::District(d) => format!("{}{}", t(lang, "district: ", "区县："), escape(d)),
            Reach::Enterprise(e) => format!("{}{}", t(lang, "enterprise: ", "企业："), escape(e)),
        };
        let mut nav = format!(
            "<a href=\"/console/\">{}</a> <a href=\"/console/scans\">{}</a>",
            t(lang, "Overview", "概览"),
            t(lang, "Scans", "扫描记录")
        );
        if self.caller.reach == Reach::Center {
            let _ = write!(nav, " <a href=\"/console/events\">{}</a>", t(lang, "Major events", "重大活动"));
        }
        let here = escape(&self.here);
        let body = format!(
            "<!DOCTYPE html><html lang=\"{code}\"><head><meta charset=\"utf-8\"><title>{title} · otscope</title>\
             <link rel=\"stylesheet\" href=\"/console/style.css\"></head><body>\
             <header><strong>otscope</strong> <nav>{nav}</nav>\
             <span class=\"who\" id=\"who\">{name} ({who})</span>\
             <span class=\"langs\"><a href=\"{here}?lang=en\">English</a> <a href=\"{here}?lang=zh\">中文</a></span>\
             <form method=\"post\" action=\"/console/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" id=\"logout\">{logout}</button></form></header>\
             <main><h1>{title}</h1>{body}</main></body></html>",
            code = if lang == Lang::Zh { "zh-CN" } else { "en" },
            title = escape(title),
            name = escape(&self.caller.name),
            csrf = escape(&self.session.csrf),
            logout = t(lang, "Log out", "退出"),
        );
        let mut response = html(status, body);
        response.headers_mut().append(header::SET_COOKIE, language_cookie(lang));
        response
    }

    fn refusal(&self, denied: Denied) -> Response {
        let lang = self.lang;
        let (status, title) = match &denied {
            Denied::Forbidden(_) => (StatusCode::FORBIDDEN, t(lang, "Outside your reach", "超出权限范围")),
            Denied::NotFound(_) => (StatusCode::NOT_FOUND, t(lang, "Not found", "未找到")),
            Denied::Refused(message) => {
                let body = format!("<p id=\"refused\">{}</p>", escape(message));
                return self.page(StatusCode::CONFLICT, t(lang, "Nothing was changed", "未作更改"), &body);
            }
            Denied::Store(e) => {
                tracing::error!("console: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, t(lang, "The history cannot be read", "无法读取历史记录"))
            }
        };
        self.page(status, title, "")
    }
}

fn language_cookie(lang: Lang) -> HeaderValue {
    HeaderValue::from_str(&format!("{LANG_COOKIE}={}; Path=/; SameSite=Strict", lang_code(lang))).expect("ascii")
}

#[derive(Deserialize, Default)]
struct LangQuery {
    lang: Option<String>,
}

fn severity_of(text: &str) -> Option<Severity> {
    serde_json::from_value(Value::String(text.to_string())).ok()
}

const SEVERITIES: [Severity; 5] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

/// Counts by severity, and the total.
#[derive(Default)]
struct Tally {
    by: BTreeMap<Severity, u64>,
    total: u64,
}

impl Tally {
    fn add(&mut self, row: &OwnerCount) {
        if let Some(s) = severity_of(&row.severity) {
            *self.by.entry(s).or_default() += row.count;
        }
        self.total += row.count;
    }

    fn cells(&self) -> String {
        let mut out = format!("<td class=\"n\">{}</td>", self.total);
        for s in SEVERITIES {
            let count = self.by.get(&s).copied().unwrap_or(0);
            let class = if count == 0 { "zero".to_string() } else { format!("sev-{}", s.as_str()) };
            let _ = write!(out, "<td class=\"n {class}\">{count}</td>");
        }
        out
    }
}

fn tally_header(lang: Lang) -> String {
    let mut out = format!("<th>{}</th>", t(lang, "Services", "暴露服务"));
    for s in SEVERITIES {
        let _ = write!(out, "<th>{}</th>", severity_text(s, lang));
    }
    out
}

fn findings_table(lang: Lang, findings: &[Finding]) -> String {
    if findings.is_empty() {
        return format!("<p class=\"empty\">{}</p>", t(lang, "No exposed service.", "无暴露服务。"));
    }
    let mut out = format!(
        "<table class=\"findings\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t(lang, "Service", "服务"),
        t(lang, "Enterprise", "企业"),
        t(lang, "Protocol", "协议"),
        t(lang, "Identity", "识别结果"),
        t(lang, "Severity", "严重程度"),
        t(lang, "Change", "变化"),
        t(lang, "Observed", "观测时间"),
    );
    for f in findings {
        let identity: Vec<&str> =
            [&f.vendor, &f.product, &f.version].into_iter().filter_map(|v| v.as_deref()).collect();
        let _ = write!(
            out,
            "<tr><td>{}:{}/{}</td><td><a href=\"/console/enterprises/{}\">{}</a> {}</td><td>{}</td><td>{}</td>\
             <td class=\"sev-{}\">{}</td><td>{}</td><td>{}</td></tr>",
            f.ip,
            f.port,
            f.transport.as_str(),
            escape(&urlencode(&f.enterprise_id)),
            escape(&f.enterprise_id),
            escape(&f.enterprise),
            escape(&f.protocol),
            escape(&identity.join(" ")),
            f.severity.as_str(),
            severity_text(f.severity, lang),
            change_text(f.change, lang),
            escape(&f.observed_at),
        );
    }
    if findings.len() >= PAGE_FINDINGS {
        let _ = write!(
            out,
            "</tbody></table><p class=\"more\">{}</p>",
            t(lang, "The first 500 are shown; the API lists them all.", "仅显示前 500 项；API 可列出全部。")
        );
        return out;
    }
    out.push_str("</tbody></table>");
    out
}

/// A path segment, percent-encoded.
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The words for an item's state.
fn state_text(lang: Lang, state: &str) -> &'static str {
    match state {
        "open" => t(lang, "open", "待通报"),
        "notified" => t(lang, "notified", "已通报"),
        "claimed" => t(lang, "claimed fixed", "已申报整改"),
        "reopened" => t(lang, "reopened", "重新打开"),
        "excepted" => t(lang, "excepted", "已豁免"),
        "verified" => t(lang, "verified", "已核验"),
        "closed" => t(lang, "closed", "已关闭"),
        _ => "?",
    }
}

/// Notices (as the view gives them) with their items' states and deadlines; with `claim_csrf`, an
/// enterprise notice with items still to claim gets a "claim fixed" form.
fn notices_table(lang: Lang, notices: &[Value], claim_csrf: Option<&str>) -> String {
    if notices.is_empty() {
        return format!("<p class=\"empty\">{}</p>", t(lang, "No notice.", "无通报。"));
    }
    let claim_header = match claim_csrf {
        Some(_) => format!("<th>{}</th>", t(lang, "Claim", "申报整改")),
        None => String::new(),
    };
    let mut out = format!(
        "<table id=\"notices\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>{claim_header}</tr></thead><tbody>",
        t(lang, "Notice", "通报"),
        t(lang, "Status", "状态"),
        t(lang, "Deadline", "整改期限"),
        t(lang, "Items", "事项"),
    );
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for n in notices {
        let number = text(&n["number"]);
        let status = if n["status"] == "open" { t(lang, "open", "未完成") } else { t(lang, "closed", "已完成") };
        let deadline = n["deadline"].as_str().map(|d| crate::notices::day(d).to_string()).unwrap_or_else(|| "-".into());
        let mut items = String::new();
        let mut claimable = false;
        for i in n["items"].as_array().into_iter().flatten() {
            let state = text(&i["state"]);
            claimable |= matches!(state.as_str(), "open" | "notified" | "reopened");
            let advisory = i["advisory"].as_str().unwrap_or(t(lang, "(restricted advisory)", "（受限通告）"));
            let _ = write!(
                items,
                "<li>{}:{}/{} {} {} — <span class=\"state-{}\">{}</span>{}</li>",
                escape(&text(&i["ip"])),
                i["port"],
                escape(&text(&i["transport"])),
                escape(&text(&i["enterprise_id"])),
                escape(advisory),
                escape(&state),
                state_text(lang, &state),
                if i["overdue"] == true { t(lang, " (overdue)", "（已逾期）") } else { "" },
            );
        }
        let form = match claim_csrf {
            Some(csrf) if claimable && n["kind"] == "enterprise" => format!(
                "<td><form method=\"post\" action=\"/console/notices/{path}/claim\" class=\"claim\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <label>{label} <input name=\"note\" required maxlength=\"2000\" id=\"note-{id}\"></label> \
                 <button type=\"submit\" id=\"claim-{id}\">{button}</button></form></td>",
                path = escape(&urlencode(&number)),
                csrf = escape(csrf),
                id = escape(&number),
                label = t(lang, "What was fixed:", "整改说明："),
                button = t(lang, "Claim fixed", "申报已整改"),
            ),
            Some(_) => "<td></td>".to_string(),
            None => String::new(),
        };
        let _ = write!(
            out,
            "<tr id=\"notice-{id}\"><td>{id}</td><td>{status}</td><td>{deadline}</td><td><ul>{items}</ul></td>{form}</tr>",
            id = escape(&number),
        );
    }
    out.push_str("</tbody></table>");
    out
}

async fn overview(State(app): State<App>, frame: Frame) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let rows = match app.read(&caller, |view| view.summary(None)).await {
        Ok(rows) => rows,
        Err(denied) => return frame.refusal(denied),
    };
    let mut districts: BTreeMap<String, (Tally, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for row in &rows {
        let entry = districts.entry(row.district.clone()).or_default();
        entry.0.add(row);
        entry.1.insert(row.enterprise_id.clone());
    }
    let mut body = format!(
        "<p>{}</p><table id=\"districts\"><thead><tr><th>{}</th><th>{}</th>{}</tr></thead><tbody>",
        t(lang, "Current exposed services (not gone), by district.", "当前暴露服务（未消失），按区县统计。"),
        t(lang, "District", "区县"),
        t(lang, "Enterprises", "企业数"),
        tally_header(lang)
    );
    for (name, (tally, enterprises)) in &districts {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/districts/{}\">{}</a></td><td class=\"n\">{}</td>{}</tr>",
            escape(&urlencode(name)),
            escape(name),
            enterprises.len(),
            tally.cells()
        );
    }
    body.push_str("</tbody></table>");
    if districts.is_empty() {
        let _ = write!(body, "<p class=\"empty\">{}</p>", t(lang, "No exposed service.", "无暴露服务。"));
    }
    frame.page(StatusCode::OK, t(lang, "Overview by district", "区县概览"), &body)
}

async fn district(State(app): State<App>, frame: Frame, Path(name): Path<String>) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let asked = name.clone();
    let read = app
        .read(&caller, move |view| {
            let rows = view.summary(Some(&asked))?;
            let query = FindingQuery { district: Some(asked.clone()), limit: PAGE_FINDINGS, ..Default::default() };
            let notices: Vec<Value> =
                view.notices()?.into_iter().filter(|n| n["district"].as_str() == Some(asked.as_str())).collect();
            Ok((rows, view.findings(query)?, notices))
        })
        .await;
    let (rows, findings, notices) = match read {
        Ok((rows, _, _)) if rows.is_empty() && caller.reach != Reach::Center => {
            return frame.refusal(Denied::NotFound(name));
        }
        Ok(read) => read,
        Err(denied) => return frame.refusal(denied),
    };
    let mut enterprises: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for row in &rows {
        enterprises.entry((row.enterprise_id.clone(), row.enterprise.clone())).or_default().add(row);
    }
    let mut body = format!(
        "<h2>{}</h2><table id=\"enterprises\"><thead><tr><th>{}</th><th>{}</th>{}</tr></thead><tbody>",
        t(lang, "Enterprises", "企业"),
        t(lang, "Id", "企业编号"),
        t(lang, "Name", "企业名称"),
        tally_header(lang)
    );
    for ((id, enterprise), tally) in &enterprises {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/enterprises/{}\">{}</a></td><td>{}</td>{}</tr>",
            escape(&urlencode(id)),
            escape(id),
            escape(enterprise),
            tally.cells()
        );
    }
    let _ = write!(
        body,
        "</tbody></table><h2>{}</h2>{}",
        t(lang, "Exposed services", "暴露服务"),
        findings_table(lang, &findings)
    );
    let _ = write!(body, "<h2>{}</h2>{}", t(lang, "Notices", "预警通报"), notices_table(lang, &notices, None));
    let title = format!("{}{}", t(lang, "District: ", "区县："), name);
    frame.page(StatusCode::OK, &title, &body)
}

async fn enterprise(State(app): State<App>, frame: Frame, Path(id): Path<String>) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let asked = id.clone();
    let read = app
        .read(&caller, move |view| {
            let query = FindingQuery { enterprise_id: Some(asked.clone()), limit: PAGE_FINDINGS, ..Default::default() };
            let notices: Vec<Value> = view
                .notices()?
                .into_iter()
                .filter(|n| n["kind"] == "enterprise" && n["subject"].as_str() == Some(asked.as_str()))
                .collect();
            Ok((view.findings(query)?, notices))
        })
        .await;
    let (findings, notices) = match read {
        Ok((findings, _)) if findings.is_empty() => return frame.refusal(Denied::NotFound(id)),
        Ok(read) => read,
        Err(denied) => return frame.refusal(denied),
    };
    let first = &findings[0];
    let body = format!(
        "<p>{}<a href=\"/console/districts/{}\">{}</a></p><h2>{}</h2>{}<h2>{}</h2>{}",
        t(lang, "District: ", "区县："),
        escape(&urlencode(&first.district)),
        escape(&first.district),
        t(lang, "Exposed services", "暴露服务"),
        findings_table(lang, &findings),
        t(lang, "Notices", "预警通报"),
        notices_table(lang, &notices, Some(&frame.session.csrf)),
    );
    let title = format!("{} {}", first.enterprise_id, first.enterprise);
    frame.page(StatusCode::OK, &title, &body)
}

async fn scans(State(app): State<App>, frame: Frame) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let scans = match app.read(&caller, |view| view.scans()).await {
        Ok(scans) => scans,
        Err(denied) => return frame.refusal(denied),
    };
    let mut body = format!(
        "<table id=\"scans\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>",
        t(lang, "Scan", "扫描"),
        t(lang, "Kind", "类型"),
        t(lang, "Started", "开始"),
        t(lang, "Ended", "结束"),
        t(lang, "State", "状态"),
        t(lang, "Findings", "发现数"),
    );
    let mut previous: Option<i64> = None;
    for scan in &scans {
        let id = scan["id"].as_i64().unwrap_or_default();
        let diff = match previous {
            Some(p) => format!("<a href=\"/console/diff?from={p}&amp;to={id}\">{}</a>", t(lang, "changes", "变化")),
            None => String::new(),
        };
        let text = |key: &str| escape(scan[key].as_str().unwrap_or("-"));
        let _ = write!(
            body,
            "<tr><td class=\"n\">{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{diff}</td></tr>",
            text("kind"),
            text("started_at"),
            text("ended_at"),
            text("state"),
            scan["findings"].as_u64().unwrap_or_default(),
        );
        if scan["state"] == "complete" {
            previous = Some(id);
        }
    }
    body.push_str("</tbody></table>");
    frame.page(StatusCode::OK, t(lang, "Scan history", "扫描记录"), &body)
}

#[derive(Deserialize)]
struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

async fn diff(State(app): State<App>, frame: Frame, Query(q): Query<DiffQuery>) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let (from, to) = (q.from, q.to);
    let diff = match app.read(&caller, move |view| view.diff(from, to)).await {
        Ok(diff) => diff,
        Err(denied) => return frame.refusal(denied),
    };
    let entries = diff["entries"].as_array().cloned().unwrap_or_default();
    let mut body = String::new();
    if entries.is_empty() {
        let _ = write!(body, "<p class=\"empty\">{}</p>", t(lang, "No service.", "无服务。"));
    } else {
        let _ = write!(
            body,
            "<table id=\"diff\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            t(lang, "Change", "变化"),
            t(lang, "Service", "服务"),
            t(lang, "Enterprise", "企业"),
            t(lang, "Identity", "识别结果"),
        );
        for e in &entries {
            let Ok(finding) = serde_json::from_value::<Finding>(e["finding"].clone()) else { continue };
            let status = serde_json::from_value(e["status"].clone()).ok();
            let identity: Vec<&str> = [&finding.vendor, &finding.product, &finding.version]
                .into_iter()
                .filter_map(|v| v.as_deref())
                .collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}:{}/{}</td><td>{} {}</td><td>{} {}</td></tr>",
                change_text(status, lang),
                finding.ip,
                finding.port,
                finding.transport.as_str(),
                escape(&finding.enterprise_id),
                escape(&finding.enterprise),
                escape(&finding.protocol),
                escape(&identity.join(" ")),
            );
        }
        body.push_str("</tbody></table>");
    }
    let title = format!("{} {} → {}", t(lang, "Changes", "变化"), diff["from"], diff["to"]);
    frame.page(StatusCode::OK, &title, &body)
}

async fn events(State(app): State<App>, frame: Frame) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let read = app
        .read(&caller, move |view| {
            let mut out = Vec::new();
            for event in view.events()? {
                let report = view.event_report(&event.name, lang)?;
                out.push((event, report["verdict"].as_str().unwrap_or_default().to_string()));
            }
            Ok(out)
        })
        .await;
    let events = match read {
        Ok(events) => events,
        Err(denied) => return frame.refusal(denied),
    };
    let mut body = format!(
        "<table id=\"events\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t(lang, "Event", "活动"),
        t(lang, "Started", "开始"),
        t(lang, "Status", "状态"),
        t(lang, "Last 24 hours", "最近 24 小时"),
    );
    for (event, verdict) in &events {
        let status = match &event.closed_at {
            Some(_) => t(lang, "closed", "已结束"),
            None => t(lang, "open", "进行中"),
        };
        let verdict = match verdict.as_str() {
            "zero" => t(lang, "No new exposure and no change.", "无新增暴露，无变化。"),
            "drift" => t(lang, "Drift from the baseline", "偏离基线"),
            _ => t(lang, "No complete check in the window", "窗口内无完整检查"),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/events/{}\">{}</a></td><td>{}</td><td>{status}</td><td>{verdict}</td></tr>",
            escape(&urlencode(&event.name)),
            escape(&event.name),
            escape(&event.started_at),
        );
    }
    body.push_str("</tbody></table>");
    frame.page(StatusCode::OK, t(lang, "Major events", "重大活动"), &body)
}

async fn event(State(app): State<App>, frame: Frame, Path(name): Path<String>) -> Response {
    let caller = frame.caller.clone();
    let lang = frame.lang;
    let asked = name.clone();
    let report = match app.read(&caller, move |view| view.event_report(&asked, lang)).await {
        Ok(report) => report,
        Err(denied) => return frame.refusal(denied),
    };
    let body = format!("<pre id=\"report\">{}</pre>", escape(report["text"].as_str().unwrap_or_default()));
    frame.page(StatusCode::OK, &name, &body)
}

// ---- Signing in and out ----

async fn login_page(State(app): State<App>, Query(q): Query<LangQuery>, headers: HeaderMap) -> Response {
    login_form(&app, language(&headers, q.lang.as_deref()), StatusCode::OK, None)
}

fn login_form(app: &App, lang: Lang, status: StatusCode, problem: Option<&str>) -> Response {
    let csrf = auth::random_hex(16);
    let problem = problem.map(|p| format!("<p class=\"problem\" id=\"problem\">{}</p>", escape(p))).unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html><html lang=\"{code}\"><head><meta charset=\"utf-8\"><title>otscope</title>\
         <link rel=\"stylesheet\" href=\"/console/style.css\"></head><body><main class=\"login\">\
         <h1>otscope</h1>{problem}<form method=\"post\" action=\"/console/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>{label} <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required></label>\
         <button type=\"submit\" id=\"login\">{submit}</button></form>\
         <p class=\"langs\"><a href=\"/console/login?lang=en\">English</a> <a href=\"/console/login?lang=zh\">中文</a></p>\
         </main></body></html>",
        code = if lang == Lang::Zh { "zh-CN" } else { "en" },
        label = t(lang, "Token", "令牌"),
        submit = t(lang, "Log in", "登录"),
    );
    let mut response = html(status, body);
    response.headers_mut().append(header::SET_COOKIE, cookie_header(app, LOGIN_COOKIE, &csrf, Some(3600)));
    response.headers_mut().append(header::SET_COOKIE, language_cookie(lang));
    response
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    token: String,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = language(&headers, None);
    let Ok(Form(form)) = form else {
        return login_form(&app, lang, StatusCode::BAD_REQUEST, Some(t(lang, "Give a token.", "请输入令牌。")));
    };
    // Double submit: the form's token must be the one this browser got in its cookie with the form.
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::same_secret(expected.as_bytes(), form.csrf.as_bytes()) {
        let problem = t(lang, "The form expired: log in again.", "表单已过期，请重新登录。");
        return login_form(&app, lang, StatusCode::FORBIDDEN, Some(problem));
    }
    let audit = |token_name: Option<String>, status: StatusCode| AuditEntry {
        at: now(),
        token_name,
        source: peer.ip().to_string(),
        method: "POST".into(),
        target: "/console/login".into(),
        status: status.as_u16(),
    };
    if app.failures.refused(peer.ip()).is_some() {
        app.audit(audit(None, StatusCode::TOO_MANY_REQUESTS)).await;
        let problem = t(lang, "Too many failed attempts: wait a minute.", "失败次数过多，请稍后再试。");
        return login_form(&app, lang, StatusCode::TOO_MANY_REQUESTS, Some(problem));
    }
    let session_id = auth::random_hex(32);
    let csrf = auth::random_hex(16);
    let id_sha256 = auth::sha256_hex(&session_id);
    let token = form.token.trim().to_string();
    let opened = app
        .pool
        .run(move |store| -> Result<Option<Caller>, crate::store::StoreError> {
            let at = now();
            let Some(caller) = auth::verify_token(store, &token, &at)? else { return Ok(None) };
            let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(SESSION_HOURS);
            let expires_at = expires.format(&time::format_description::well_known::Rfc3339).expect("UTC formats");
            let session = SessionRecord { token_id: caller.token_id.clone(), csrf, expires_at };
            store.end_session("", &at)?;
            store.create_session(&id_sha256, &session, &at)?;
            Ok(Some(caller))
        })
        .await;
    match opened {
        Ok(Ok(Some(caller))) => {
            app.audit(audit(Some(caller.name), StatusCode::SEE_OTHER)).await;
            let mut response = secured(Redirect::to("/console/").into_response());
            let cookie = cookie_header(&app, SESSION_COOKIE, &session_id, Some(SESSION_HOURS * 3600));
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response.headers_mut().append(header::SET_COOKIE, cookie_header(&app, LOGIN_COOKIE, "", Some(0)));
            response
        }
        Ok(Ok(None)) => {
            app.failures.fail(peer.ip());
            app.audit(audit(None, StatusCode::UNAUTHORIZED)).await;
            let problem = t(lang, "This token is not valid.", "令牌无效。");
            login_form(&app, lang, StatusCode::UNAUTHORIZED, Some(problem))
        }
        Ok(Err(e)) | Err(e) => {
            tracing::error!("console login: {e}");
            html(StatusCode::INTERNAL_SERVER_ERROR, "the history cannot be read".into())
        }
    }
}

#[derive(Deserialize)]
struct ClaimForm {
    csrf: String,
    note: String,
}

/// The "claim fixed" form: the note is recorded through the same claim as the API's, and the
/// enterprise's page is shown again.
async fn claim(
    State(app): State<App>,
    frame: Frame,
    Path(number): Path<String>,
    form: Result<Form<ClaimForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = frame.lang;
    let Ok(Form(form)) = form else {
        return frame.page(StatusCode::BAD_REQUEST, t(lang, "The form is incomplete.", "表单不完整。"), "");
    };
    if !frame.sent_by_own_form(&form.csrf) {
        return frame.page(StatusCode::FORBIDDEN, t(lang, "The form expired: try again.", "表单已过期，请重试。"), "");
    }
    let note = form.note.trim().to_string();
    if note.is_empty() || note.chars().count() > 2000 {
        return frame.page(
            StatusCode::BAD_REQUEST,
            t(lang, "Say what was fixed (up to 2000 characters).", "请填写整改说明（不超过 2000 字）。"),
            "",
        );
    }
    let caller = frame.caller.clone();
    match app.write(move |store, at| view::claim(store, &caller, &number, &note, at)).await {
        Ok(claimed) => {
            let back = claimed.first().map(|i| i.detail.enterprise_id.clone()).unwrap_or_default();
            secured(Redirect::to(&format!("/console/enterprises/{}", urlencode(&back))).into_response())
        }
        Err(denied) => frame.refusal(denied),
    }
}

async fn logout(
    State(app): State<App>,
    frame: Frame,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let given = form.ok().and_then(|Form(f)| f.get("csrf").cloned()).unwrap_or_default();
    if !frame.sent_by_own_form(&given) {
        return frame.page(
            StatusCode::FORBIDDEN,
            t(frame.lang, "The form expired: try again.", "表单已过期，请重试。"),
            "",
        );
    }
    let id = frame.session.id_sha256.clone();
    if let Ok(Err(e)) | Err(e) = app.pool.run(move |store| store.end_session(&id, &now())).await {
        tracing::error!("console logout: {e}");
    }
    let mut response = secured(Redirect::to("/console/login").into_response());
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&app, SESSION_COOKIE, "", Some(0)));
    response
}
