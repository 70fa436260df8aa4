//! `otscope serve`: tokens and reach, the JSON API (filters, pages, refusals by name), its OpenAPI
//! document against the routes, the audit log, the failure limit, TLS, the console's cookies and
//! CSRF, and the binary's readiness line and clean stop. Every server listens on its own 127.119.x.y.

mod serve_fixture;

use otscope::serve::api::endpoints;
use otscope::store::SqliteStore;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use serve_fixture::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(20)).build().unwrap()
}

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let response = client().get(server.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client().post(server.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A valid body for a POST: a claim's note, an exception's reason and last day, nothing to issue notices.
fn valid_body(path: &str) -> Value {
    if path.ends_with("/claim") {
        json!({ "note": "firmware updated" })
    } else if path.ends_with("/except") {
        json!({ "reason": "the device is behind a data diode", "until": "2099-12-31" })
    } else {
        json!({})
    }
}

/// A request as its endpoint takes it: a GET, or a POST with a valid body.
async fn call(server: &Server, token: &str, method: &str, path: &str) -> (StatusCode, Value) {
    if method == "GET" {
        return get(server, token, path).await;
    }
    post(server, token, path, valid_body(path)).await
}

struct Lab {
    _dir: tempfile::TempDir,
    server: Server,
    center: String,
    pudong: String,
    e1: String,
}

async fn lab(host: &str) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let center = token(&db, "ops", "center", None, None);
    let pudong = token(&db, "pudong", "district", Some(PUDONG), None);
    let e1 = token(&db, "e1", "enterprise", None, Some("E1"));
    let server = Server::start(options(&db, host)).await;
    Lab { _dir: dir, server, center, pudong, e1 }
}

/// Every finding of the listing, page after page of `limit`; fails on a repeated service.
async fn all_pages(server: &Server, token: &str, filter: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/api/v1/findings?limit={limit}{filter}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = get(server, token, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let page = body["findings"].as_array().unwrap();
        assert!(page.len() <= limit);
        out.extend(page.iter().cloned());
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), limit, "a page before the last is full");
                cursor = Some(next.to_string());
            }
            None => {
                let keys: BTreeSet<String> = out.iter().map(key).collect();
                assert_eq!(keys.len(), out.len(), "no service twice across pages");
                return out;
            }
        }
    }
    panic!("more than 100 pages");
}

fn key(f: &Value) -> String {
    format!("{}:{}/{}", f["ip"].as_str().unwrap(), f["port"], f["transport"].as_str().unwrap())
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_and_public_endpoints_need_none() {
    let lab = lab("127.119.10.1").await;
    let s = &lab.server;
    let response = client().get(s.url("/api/v1/findings")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    for bad in
        ["nonsense", "ots_0000000000000000_00", &lab.center.replace("ots_", "ots_x"), &format!("{}0", lab.center)]
    {
        assert_eq!(get(s, bad, "/api/v1/scans").await.0, StatusCode::UNAUTHORIZED, "{bad}");
    }
    // Unknown paths under the API are not told apart from known ones without a token.
    let response = client().get(s.url("/api/v1/no-such-thing")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for public in ["/api/v1/health", "/api/v1/openapi.json"] {
        let response = client().get(s.url(public)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{public}");
    }
    assert_eq!(get(s, &lab.center, "/api/v1/token").await.1["role"], "center");
    // Revoked and expired tokens stop working at once.
    SqliteStore::open(&s.db).unwrap().revoke_token("pudong", &otscope::pipeline::now_rfc3339()).unwrap();
    assert_eq!(get(s, &lab.pudong, "/api/v1/scans").await.0, StatusCode::UNAUTHORIZED);
    let expired = {
        let mut store = SqliteStore::open(&s.db).unwrap();
        let new = otscope::serve::auth::NewToken {
            name: "old".into(),
            role: "center".into(),
            district: None,
            enterprise_id: None,
            expires_at: Some("2026-01-01T00:00:00Z".into()),
        };
        otscope::serve::auth::create_token(&mut store, &new, "2025-01-01T00:00:00Z").unwrap()
    };
    assert_eq!(get(s, &expired, "/api/v1/scans").await.0, StatusCode::UNAUTHORIZED);
    lab.server.shut().await;
}

#[tokio::test]
async fn findings_are_filtered_and_paged_without_gaps_or_repeats() {
    let lab = lab("127.119.11.1").await;
    let s = &lab.server;
    // The current services: scan 2's eight (E4's ssh is gone), E5's from the later check.
    let current = all_pages(s, &lab.center, "", 3).await;
    assert_eq!(current.len(), 8);
    let one_page = all_pages(s, &lab.center, "", 1000).await;
    assert_eq!(current, one_page, "pages join into the whole list, in order");
    let scan1 = all_pages(s, &lab.center, "&scan=1", 2).await;
    assert_eq!(scan1.len(), 8);
    assert!(scan1.iter().any(|f| f["enterprise_id"] == "E4"));
    for (filter, expected) in [
        (format!("&district={MINHANG}"), 5),
        ("&enterprise=E1".to_string(), 2),
        ("&protocol=modbus".to_string(), 2),
        ("&severity=high".to_string(), 3),
        ("&scan=2&change=new".to_string(), 1),
        ("&scan=2&change=changed".to_string(), 1),
        ("&since=2026-05-09T00:00:00Z".to_string(), 2),
        ("&since=2026-05-08T16:00:00%2B08:00".to_string(), 8),
        ("&since=2026-05-08T16:06:00%2B08:00".to_string(), 2),
        (format!("&district={PUDONG}&severity=critical"), 2),
    ] {
        let found = all_pages(s, &lab.center, &filter, 2).await;
        assert_eq!(found.len(), expected, "{filter}: {found:?}");
    }
    let district = all_pages(s, &lab.pudong, "", 1).await;
    assert!(district.iter().all(|f| f["district"] == PUDONG));
    assert_eq!(district.len(), 2);
    lab.server.shut().await;
}

#[tokio::test]
async fn bad_input_is_refused_by_name_unknown_ids_404_oversized_bodies_413() {
    let lab = lab("127.119.12.1").await;
    let s = &lab.server;
    for (path, parameter) in [
        ("/api/v1/findings?severity=bogus", "severity"),
        ("/api/v1/findings?change=gone", "change"),
        ("/api/v1/findings?limit=0", "limit"),
        ("/api/v1/findings?limit=1001", "limit"),
        ("/api/v1/findings?scan=abc", "scan"),
        ("/api/v1/findings?since=yesterday", "since"),
        ("/api/v1/findings?cursor=zz", "cursor"),
        ("/api/v1/findings?protocol=Mod%20bus", "protocol"),
        ("/api/v1/findings?district=", "district"),
        ("/api/v1/findings?sevrity=high", "sevrity"),
        ("/api/v1/findings?limit=1&limit=2", "limit"),
        ("/api/v1/scans/abc", "id"),
        ("/api/v1/scans?x=1", "x"),
        ("/api/v1/diffs?from=1", "to"),
        ("/api/v1/services/not-an-ip/502/tcp", "ip"),
        ("/api/v1/services/127.119.0.1/0/tcp", "port"),
        ("/api/v1/services/127.119.0.1/502/sctp", "transport"),
        ("/api/v1/events/expo/report?lang=fr", "lang"),
    ] {
        let (status, body) = get(s, &lab.center, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(parameter), "{path}: {body}");
    }
    for path in [
        "/api/v1/scans/99",
        "/api/v1/findings?scan=99",
        "/api/v1/diffs?from=1&to=99",
        "/api/v1/services/127.119.0.99/502/tcp",
        "/api/v1/events/nope",
        "/api/v1/events/nope/report",
        "/api/v1/nothing-here",
    ] {
        assert_eq!(get(s, &lab.center, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let big = vec![b'a'; otscope::serve::MAX_BODY + 1];
    for path in ["/api/v1/findings", "/console/login"] {
        let response = client().post(s.url(path)).bearer_auth(&lab.center).body(big.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    lab.server.shut().await;
}

/// A value for each path parameter that names something that exists.
fn sample(path: &str) -> String {
    let id = if path.starts_with("/api/v1/advisories/") {
        GREEN_ADVISORY
    } else if path.starts_with("/api/v1/notices/") {
        E1_NOTICE
    } else {
        "2"
    };
    path.replace("{id}", id)
        .replace("{ip}", "127.119.0.1")
        .replace("{port}", "502")
        .replace("{transport}", "tcp")
        .replace("{name}", "expo")
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes() {
    let lab = lab("127.119.13.1").await;
    let s = &lab.server;
    let (status, doc) = get(s, "", "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let table: BTreeSet<(String, String)> =
        endpoints().iter().map(|e| (e.method.to_string(), e.path.to_string())).collect();
    assert_eq!(documented, table);
    for (method, path) in &documented {
        // Only notices change: issued, claimed, excepted.
        assert!(method == "GET" || (method == "POST" && path.starts_with("/api/v1/notices")), "{method} {path}");
        let url = sample(path);
        // The default pair of the fixture is no pair (its last scan is a check of one enterprise).
        let asked = if path == "/api/v1/diffs" { format!("{url}?from=1&to=2") } else { url.clone() };
        let (status, body) = call(s, &lab.center, method, &asked).await;
        assert_eq!(status, StatusCode::OK, "{url} is documented and must answer: {body}");
        // Every documented query parameter is taken (not refused as unknown).
        for p in paths[path][method.to_lowercase()]["parameters"].as_array().unwrap() {
            if p["in"] == "query" {
                let (status, body) = get(s, &lab.center, &format!("{url}?{}=", p["name"].as_str().unwrap())).await;
                let unknown = body["error"].as_str().is_some_and(|e| e.contains("unknown parameter"));
                assert!(!unknown, "{url}: {} is documented but refused ({status})", p["name"]);
            }
        }
        // Every documented body field is taken: a value of the wrong kind is refused by its name, never
        // as unknown.
        let schema = &paths[path][method.to_lowercase()]["requestBody"]["content"]["application/json"]["schema"];
        for field in schema["properties"].as_object().into_iter().flat_map(|p| p.keys()) {
            let mut wrong = valid_body(&url);
            wrong[field] = json!([]);
            let (status, body) = post(s, &lab.center, &url, wrong).await;
            assert_eq!((status, body["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some(field.as_str())), "{url}");
            assert!(!body["error"].as_str().unwrap().contains("unknown field"), "{url}: {body}");
        }
        // A path beside it that is not documented is not routed.
        let (status, body) = get(s, &lab.center, &format!("{url}/no/such/route")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}/no/such/route");
        assert!(body["error"].as_str().unwrap().contains("no such endpoint"), "{body}");
    }
    // The gate serves without a token exactly the endpoints the document says need none.
    for e in endpoints() {
        assert_eq!(otscope::serve::gate::is_public(e.path), e.public, "{}", e.path);
        let method = e.method.as_str().to_lowercase();
        assert_eq!(paths[e.path][&method].get("security").is_some(), e.public, "{}", e.path);
    }
    lab.server.shut().await;
}

/// The texts that belong to owners outside `reach` and must never appear in its answers.
fn foreign_marks(reach: &str) -> Vec<String> {
    if reach == "center" {
        return Vec::new();
    }
    let foreign: Vec<&(&str, &str, &str)> = ENTERPRISES
        .iter()
        .filter(|(id, _, district)| match reach {
            "pudong" => *district != PUDONG,
            "e1" => *id != "E1",
            _ => false,
        })
        .collect();
    let mut marks = Vec::new();
    for (id, name, district) in foreign {
        marks.push(format!("\"{id}\""));
        marks.push(serde_json::to_string(name).unwrap().trim_matches('"').to_string());
        if reach == "pudong" || (reach == "e1" && *district != PUDONG) {
            marks.push(district.to_string());
        }
    }
    // The addresses of foreign services, and the center's own scan details.
    let own: &[u8] = match reach {
        "pudong" => &[1, 2, 3],
        _ => &[1, 2],
    };
    for octet in 3..=9u8 {
        if !own.contains(&octet) {
            marks.push(format!("\"127.119.0.{octet}\""));
        }
    }
    marks.push("secret-ledger".into());
    marks
}

/// For each endpoint, each role and an object outside the role's reach: the method, the endpoint and
/// the request (each answered 403 or 404). The center's reach is everything: its outside object is
/// one that does not exist. Issuing notices and excepting items are the center's alone: refused to
/// the others even for their own notices.
fn outside_requests(role: &str) -> Vec<(&'static str, &'static str, String)> {
    let (district, enterprise, scan, service, event, advisories, notices): (_, _, _, _, _, &[&str], &[&str]) =
        match role {
            "center" => ("nowhere", "E99", "99", "127.119.0.99/502/tcp", "nope", &["NOPE-0000"], &["OTS-2099-0001"]),
            // TLP:AMBER concerns E2 alone; TLP:RED never leaves the center.
            "pudong" => (
                MINHANG,
                "E2",
                "3",
                "127.119.0.4/4840/tcp",
                "expo",
                &[AMBER_ADVISORY, RED_ADVISORY],
                &[E2_NOTICE, MINHANG_NOTICE],
            ),
            // An enterprise sees neither another's notice nor its district's (which lists others).
            _ => (
                MINHANG,
                "E4",
                "3",
                "127.119.0.3/22/tcp",
                "expo",
                &[AMBER_ADVISORY, RED_ADVISORY],
                &[E2_NOTICE, PUDONG_NOTICE, MINHANG_NOTICE],
            ),
        };
    let mut requests = vec![
        ("GET", "/api/v1/scans/{id}", format!("/api/v1/scans/{scan}")),
        ("GET", "/api/v1/findings", format!("/api/v1/findings?scan={scan}")),
        ("GET", "/api/v1/diffs", format!("/api/v1/diffs?from=1&to={scan}")),
        ("GET", "/api/v1/services/{ip}/{port}/{transport}", format!("/api/v1/services/{service}")),
        ("GET", "/api/v1/events/{name}", format!("/api/v1/events/{event}")),
        ("GET", "/api/v1/events/{name}/report", format!("/api/v1/events/{event}/report")),
    ];
    for advisory in advisories {
        requests.push(("GET", "/api/v1/advisories/{id}", format!("/api/v1/advisories/{advisory}")));
    }
    for notice in notices {
        requests.push(("GET", "/api/v1/notices/{id}", format!("/api/v1/notices/{notice}")));
        requests.push(("POST", "/api/v1/notices/{id}/claim", format!("/api/v1/notices/{notice}/claim")));
        requests.push(("POST", "/api/v1/notices/{id}/except", format!("/api/v1/notices/{notice}/except")));
    }
    if role != "center" {
        requests.push(("GET", "/api/v1/findings", format!("/api/v1/findings?district={district}")));
        requests.push(("GET", "/api/v1/findings", format!("/api/v1/findings?enterprise={enterprise}")));
        requests.push(("GET", "/api/v1/events", "/api/v1/events".to_string()));
        requests.push(("POST", "/api/v1/notices", "/api/v1/notices".to_string()));
        // Their own notice, which they may read and claim, but not except.
        let own = if role == "pudong" { PUDONG_NOTICE } else { E1_NOTICE };
        requests.push(("POST", "/api/v1/notices/{id}/except", format!("/api/v1/notices/{own}/except")));
    }
    requests
}

#[tokio::test]
async fn reach_every_endpoint_role_and_object_outside_it() {
    let lab = lab("127.119.14.1").await;
    let s = &lab.server;
    let tokens = [("center", &lab.center), ("pudong", &lab.pudong), ("e1", &lab.e1)];
    let mut covered: BTreeSet<(String, String, &str)> = BTreeSet::new();
    for (role, token) in tokens {
        // Objects outside the reach: 403 or 404, and the body names nothing of them.
        for (method, endpoint, path) in outside_requests(role) {
            let (status, body) = call(s, token, method, &path).await;
            assert!(
                status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
                "{role} {path}: {status} {body}"
            );
            for leak in ["findings", "entries", "matches", "items", "claimed", "excepted", "notices"] {
                assert!(body.get(leak).is_none(), "{role} {path}: {body}");
            }
            covered.insert((method.to_string(), endpoint.to_string(), role));
        }
        // Every endpoint as the role may call it: nothing of anyone else in bodies, counts or pages.
        for e in endpoints() {
            let url = sample(e.path);
            let (status, body) = call(s, token, e.method.as_str(), &url).await;
            let text = body.to_string();
            for mark in foreign_marks(role) {
                assert!(!text.contains(&mark), "{role} {url} ({status}) leaks {mark}: {text}");
            }
            covered.insert((e.method.to_string(), e.path.to_string(), role));
        }
    }
    // Every documented endpoint was asked by every role, and one outside its reach by every role
    // that has an outside (for the center: what does not exist).
    for e in endpoints() {
        for role in ["center", "pudong", "e1"] {
            let key = (e.method.to_string(), e.path.to_string(), role);
            assert!(covered.contains(&key), "{} {} not asked as {role}", e.method, e.path);
        }
    }
    for role in ["pudong", "e1"] {
        for (method, endpoint) in [("POST", "/api/v1/notices"), ("POST", "/api/v1/notices/{id}/except")] {
            assert!(outside_requests(role).iter().any(|r| (r.0, r.1) == (method, endpoint)), "{role} {endpoint}");
        }
    }
    // Counts: a district sees the scans that concern it with its own count only, never scan 3 (E5 alone).
    let (_, scans) = get(s, &lab.pudong, "/api/v1/scans").await;
    let ids: Vec<i64> = scans["scans"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2]);
    let counts: Vec<u64> = scans["scans"].as_array().unwrap().iter().map(|s| s["findings"].as_u64().unwrap()).collect();
    assert_eq!(counts, vec![3, 2]);
    assert!(scans["scans"][0].get("targets_total").is_none());
    let (_, diff) = get(s, &lab.pudong, "/api/v1/diffs?from=1&to=2").await;
    assert!(diff.get("not_covered").is_none());
    assert!(diff["entries"].as_array().unwrap().iter().all(|e| e["finding"]["district"] == PUDONG));
    // Pages: the last page of a district's listing says so; there is no page beyond it.
    let pages = all_pages(s, &lab.pudong, "&scan=1", 1).await;
    assert_eq!(pages.len(), 3);
    let e1 = all_pages(s, &lab.e1, "", 1).await;
    assert_eq!(e1.iter().map(|f| f["enterprise_id"].as_str().unwrap()).collect::<BTreeSet<_>>(), ["E1"].into());
    // Notices and advisories: each sees its own, by TLP; the refused claims changed nothing.
    let numbers = |body: Value, key: &str, field: &str| -> Vec<String> {
        body[key].as_array().unwrap().iter().map(|n| n[field].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        numbers(get(s, &lab.pudong, "/api/v1/notices").await.1, "notices", "number"),
        [E1_NOTICE, PUDONG_NOTICE]
    );
    assert_eq!(numbers(get(s, &lab.e1, "/api/v1/notices").await.1, "notices", "number"), [E1_NOTICE]);
    assert_eq!(numbers(get(s, &lab.center, "/api/v1/notices").await.1, "notices", "number").len(), 4);
    for reader in [&lab.pudong, &lab.e1] {
        assert_eq!(numbers(get(s, reader, "/api/v1/advisories").await.1, "advisories", "id"), [GREEN_ADVISORY]);
    }
    let e2 = token(&s.db, "e2", "enterprise", None, Some("E2"));
    assert_eq!(
        numbers(get(s, &e2, "/api/v1/advisories").await.1, "advisories", "id"),
        [AMBER_ADVISORY, GREEN_ADVISORY]
    );
    assert_eq!(get(s, &e2, &format!("/api/v1/advisories/{RED_ADVISORY}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(numbers(get(s, &lab.center, "/api/v1/advisories").await.1, "advisories", "id").len(), 3);
    let (_, e2_notice) = get(s, &lab.center, &format!("/api/v1/notices/{E2_NOTICE}")).await;
    let states: BTreeSet<&str> =
        e2_notice["items"].as_array().unwrap().iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["notified"].into(), "{e2_notice}");
    // The district sees E2's AMBER item in no notice; E2 sees it in its own, named.
    let (_, own) = get(s, &e2, &format!("/api/v1/notices/{E2_NOTICE}")).await;
    let named: BTreeSet<&str> =
        own["items"].as_array().unwrap().iter().filter_map(|i| i["advisory"].as_str()).collect();
    assert_eq!(named, [GREEN_ADVISORY, AMBER_ADVISORY].into(), "{own}");
    // The center, for comparison, sees every one of them.
    assert_eq!(get(s, &lab.center, "/api/v1/scans/3").await.0, StatusCode::OK);
    assert_eq!(get(s, &lab.center, "/api/v1/services/127.119.0.4/4840/tcp").await.0, StatusCode::OK);
    lab.server.shut().await;
}

#[tokio::test]
async fn every_authenticated_request_is_audited_with_who_what_and_result() {
    let lab = lab("127.119.21.1").await;
    let s = &lab.server;
    let db = s.db.clone();
    get(s, &lab.pudong, "/api/v1/findings").await;
    get(s, &lab.pudong, &format!("/api/v1/findings?district={MINHANG}")).await;
    get(s, "wrong", "/api/v1/scans").await;
    get(s, &lab.center, "/api/v1/health").await;
    lab.server.shut().await;
    let log = SqliteStore::open(&db).unwrap().audit(None, None).unwrap();
    let lines: Vec<(Option<&str>, &str, u16)> =
        log.iter().map(|e| (e.token_name.as_deref(), e.target.as_str(), e.status)).collect();
    assert_eq!(
        lines,
        vec![
            (Some("pudong"), "/api/v1/findings", 200),
            (Some("pudong"), &*format!("/api/v1/findings?district={}", urlencoding(MINHANG)), 403),
            (None, "/api/v1/scans", 401),
        ]
    );
    assert!(log.iter().all(|e| e.source == "127.0.0.1" && e.method == "GET" && e.at.starts_with("20")));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["audit", "--token", "pudong", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.contains("pudong")));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["audit", "--since", "2999-01-01", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn authentication_failures_are_limited_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let center = token(&db, "ops", "center", None, None);
    let mut options = options(&db, "127.119.16.1");
    options.failure_limit = 3;
    let s = Server::start(options).await;
    let from =
        |source: &str| Client::builder().local_address(source.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let (noisy, quiet) = (from("127.119.16.2"), from("127.119.16.3"));
    for _ in 0..3 {
        let r = noisy.get(s.url("/api/v1/scans")).bearer_auth("ots_0_0").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Past the limit, even a valid token from that source is refused, and told when to come back.
    let r = noisy.get(s.url("/api/v1/scans")).bearer_auth(&center).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    // Another source is not affected.
    let r = quiet.get(s.url("/api/v1/scans")).bearer_auth(&center).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.shut().await;
}

#[tokio::test]
async fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let center = token(&db, "ops", "center", None, None);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.119.17.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let mut options = options(&db, "127.119.17.1");
    options.tls = Some((cert_file, key_file));
    let s = Server::start(options).await;
    let https = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{}/api/v1/token", s.address);
    let r = https.get(&url).bearer_auth(&center).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "ops");
    // Plain HTTP to the HTTPS port gets no answer.
    assert!(client().get(s.url("/api/v1/health")).send().await.is_err());
    s.shut().await;
    // A key that is not PEM is refused, naming the file.
    let mut options = serve_fixture::options(&db, "127.119.17.2");
    std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
    options.tls = Some((dir.path().join("cert.pem"), dir.path().join("bad.pem")));
    let error = otscope::serve::run(options, Default::default(), |_, _| {}).await.unwrap_err();
    assert!(error.to_string().contains("bad.pem"), "{error}");
}

fn otscope(args: &[&str], db: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).arg("--db").arg(db).output().unwrap()
}

#[tokio::test]
async fn token_commands_print_once_store_a_hash_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let out = otscope(&["token", "create", "--role", "district", "--district", PUDONG, "--name", "pudong"], &db);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("ots_"));
    let secret = token.rsplit('_').next().unwrap();
    let bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
    for file in [&bytes, &wal] {
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is stored");
    }
    let list = otscope(&["token", "list"], &db);
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(text.contains("pudong") && text.contains(PUDONG) && !text.contains(secret), "{text}");
    for (args, needle) in [
        (vec!["token", "create", "--role", "district", "--name", "x"], "--district"),
        (vec!["token", "create", "--role", "center", "--district", PUDONG, "--name", "x"], "center"),
        (vec!["token", "create", "--role", "enterprise", "--name", "x"], "--enterprise"),
        (vec!["token", "create", "--role", "center", "--name", "pudong"], "already exists"),
        (vec!["token", "create", "--role", "center", "--name", "y", "--expires", "soon"], "--expires"),
        (vec!["token", "create", "--role", "center", "--name", "y", "--expires", "2001-01-01"], "future"),
        (vec!["token", "revoke", "nobody"], "nobody"),
    ] {
        let out = otscope(&args, &db);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let s = Server::start(options(&db, "127.119.18.1")).await;
    assert_eq!(get(&s, &token, "/api/v1/token").await.1["district"], PUDONG);
    assert!(otscope(&["token", "revoke", "pudong"], &db).status.success());
    assert_eq!(get(&s, &token, "/api/v1/token").await.0, StatusCode::UNAUTHORIZED);
    s.shut().await;
}

#[tokio::test]
async fn claims_take_a_note_within_reach_and_are_recorded_once_with_the_token_name() {
    let lab = lab("127.119.15.1").await;
    let s = &lab.server;
    let claim = |token: &str, number: &str, body: Value| {
        let request = client().post(s.url(&format!("/api/v1/notices/{number}/claim"))).bearer_auth(token).json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    // Bad bodies are refused by name; nothing changes.
    for (body, parameter) in [
        (json!({}), "note"),
        (json!({ "note": "  " }), "note"),
        (json!({ "note": 7 }), "note"),
        (json!({ "note": "x", "by": "someone else" }), "by"),
        (json!("x"), "body"),
    ] {
        let (status, answer) = claim(&lab.e1, E1_NOTICE, body.clone()).await;
        assert_eq!(
            (status, answer["parameter"].as_str()),
            (StatusCode::BAD_REQUEST, Some(parameter)),
            "{body}: {answer}"
        );
    }
    // A district notice lists enterprises: the claim names the enterprise's notice.
    let (status, answer) = claim(&lab.pudong, PUDONG_NOTICE, json!({ "note": "done" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = claim(&lab.e1, E1_NOTICE, json!({ "note": "firmware 3.1" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["claimed"].as_array().unwrap().len(), 1, "{answer}");
    // Once claimed, nothing is left to claim.
    let (status, answer) = claim(&lab.pudong, E1_NOTICE, json!({ "note": "again" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (_, notice) = get(s, &lab.pudong, &format!("/api/v1/notices/{E1_NOTICE}")).await;
    let item = &notice["items"][0];
    assert_eq!(
        (item["state"].as_str(), item["last_move"]["actor"].as_str()),
        (Some("claimed"), Some("e1")),
        "{notice}"
    );
    assert_eq!(item["last_move"]["reason"], "firmware 3.1");
    lab.server.shut().await;
}

/// The states of a notice's items, by item id, as the center reads them.
async fn item_states(s: &Server, center: &str, number: &str) -> Vec<(i64, String)> {
    let (status, notice) = get(s, center, &format!("/api/v1/notices/{number}")).await;
    assert_eq!(status, StatusCode::OK, "{notice}");
    notice["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["state"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn the_center_issues_notices_and_excepts_items_others_are_refused_even_their_own() {
    let lab = lab("127.119.22.1").await;
    let s = &lab.server;
    let dir = s.db.parent().unwrap().to_path_buf();
    // A new advisory on E5's EtherNet/IP device (闵行区): its item is due a notice.
    let folder = dir.join("more-advisories");
    std::fs::create_dir_all(&folder).unwrap();
    let document = csaf("SERVE-GREEN-0004", "GREEN", &[("P-6", "vers:all/<30.0")]);
    std::fs::write(folder.join("new.json"), document.to_string()).unwrap();
    let vendors = otscope::advisories::Vendors::load(&library()).unwrap();
    let mut store = SqliteStore::open(&s.db).unwrap();
    let now = otscope::pipeline::now_rfc3339();
    assert_eq!(otscope::notices::import(&mut store, &[folder], &vendors, &now).unwrap().new.len(), 1);
    drop(store);
    let before = item_states(s, &lab.center, E1_NOTICE).await;
    // A district or an enterprise may neither issue nor except, not even its own notice's items.
    for token in [&lab.pudong, &lab.e1] {
        let (status, body) = post(s, token, "/api/v1/notices", json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let except = json!({ "reason": "accepted", "until": "2099-12-31" });
        let (status, body) = post(s, token, &format!("/api/v1/notices/{E1_NOTICE}/except"), except).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    assert_eq!(item_states(s, &lab.center, E1_NOTICE).await, before);
    assert_eq!(get(s, &lab.center, "/api/v1/notices").await.1["notices"].as_array().unwrap().len(), 4);
    // Bad bodies are refused by name, and issue nothing.
    for (path, body, parameter) in [
        ("/api/v1/notices".to_string(), json!({ "lang": "fr" }), "lang"),
        ("/api/v1/notices".to_string(), json!({ "by": "someone" }), "by"),
        ("/api/v1/notices".to_string(), json!([]), "body"),
        (format!("/api/v1/notices/{E2_NOTICE}/except"), json!({ "until": "2099-12-31" }), "reason"),
        (format!("/api/v1/notices/{E2_NOTICE}/except"), json!({ "reason": "r" }), "until"),
        (format!("/api/v1/notices/{E2_NOTICE}/except"), json!({ "reason": "r", "until": "soon" }), "until"),
        (format!("/api/v1/notices/{E2_NOTICE}/except"), json!({ "reason": "r", "until": "2020-01-01" }), "until"),
        (
            format!("/api/v1/notices/{E2_NOTICE}/except"),
            json!({ "reason": "r", "until": "2099-12-31", "item": "x" }),
            "item",
        ),
        (
            format!("/api/v1/notices/{E2_NOTICE}/except"),
            json!({ "reason": "r", "until": "2099-12-31", "days": 3 }),
            "days",
        ),
    ] {
        let (status, answer) = post(s, &lab.center, &path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_eq!(answer["parameter"], parameter, "{path} {body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(parameter), "{answer}");
    }
    let response = client().post(s.url("/api/v1/notices")).bearer_auth(&lab.center).body("{}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a body without Content-Type: application/json");
    let big = format!("{{\"reason\": \"{}\", \"until\": \"2099-12-31\"}}", "a".repeat(otscope::serve::MAX_BODY));
    let response = client()
        .post(s.url(&format!("/api/v1/notices/{E2_NOTICE}/except")))
        .bearer_auth(&lab.center)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    for (path, body) in [
        ("/api/v1/notices/OTS-2099-0001/except", json!({ "reason": "r", "until": "2099-12-31" })),
        (
            &*format!("/api/v1/notices/{E2_NOTICE}/except"),
            json!({ "reason": "r", "until": "2099-12-31", "item": 9999 }),
        ),
    ] {
        assert_eq!(post(s, &lab.center, path, body).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(get(s, &lab.center, "/api/v1/notices").await.1["notices"].as_array().unwrap().len(), 4);
    // The center issues: E5's notice and its district's, in Chinese, written beside the history.
    let (status, issued) = post(s, &lab.center, "/api/v1/notices", json!({ "lang": "zh" })).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let subjects: BTreeSet<&str> =
        issued["notices"].as_array().unwrap().iter().map(|n| n["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["E5", MINHANG].into(), "{issued}");
    assert_eq!(issued["by"], "ops");
    let e5 = issued["notices"].as_array().unwrap().iter().find(|n| n["subject"] == "E5").unwrap();
    let number = e5["number"].as_str().unwrap();
    let markdown = std::fs::read_to_string(dir.join("notices").join(format!("{number}.md"))).unwrap();
    assert!(markdown.contains("五号化工") && markdown.contains("SERVE-GREEN-0004"), "{markdown}");
    assert!(issued["files"].as_array().unwrap().iter().any(|f| f == &json!(format!("{number}.md"))), "{issued}");
    let (_, notice) = get(s, &lab.center, &format!("/api/v1/notices/{number}")).await;
    assert_eq!(notice["items"][0]["state"], "notified", "{notice}");
    assert_eq!(notice["items"][0]["last_move"]["actor"], "ops", "{notice}");
    // Issuing again adds nothing.
    let (status, again) = post(s, &lab.center, "/api/v1/notices", json!({})).await;
    assert_eq!((status, again["notices"].as_array().unwrap().len()), (StatusCode::OK, 0), "{again}");
    // The center excepts one item of E2's notice: that item alone leaves the notices, until the date.
    let states = item_states(s, &lab.center, E2_NOTICE).await;
    assert_eq!(states.len(), 2, "{states:?}");
    let (one, other) = (states[0].0, states[1].0);
    let body = json!({ "reason": "a false positive: P-4 runs 2.1", "until": "2099-12-31", "item": one });
    let (status, excepted) = post(s, &lab.center, &format!("/api/v1/notices/{E2_NOTICE}/except"), body).await;
    assert_eq!(status, StatusCode::OK, "{excepted}");
    assert_eq!(excepted["excepted"], json!([{ "id": one, "state": "excepted" }]), "{excepted}");
    assert_eq!(
        item_states(s, &lab.center, E2_NOTICE).await,
        vec![(one, "excepted".to_string()), (other, "notified".to_string())]
    );
    let (_, notice) = get(s, &lab.center, &format!("/api/v1/notices/{E2_NOTICE}")).await;
    let item = notice["items"].as_array().unwrap().iter().find(|i| i["id"] == one).unwrap().clone();
    assert_eq!((item["except_until"].as_str(), item["last_move"]["actor"].as_str()), (Some("2099-12-31"), Some("ops")));
    // As `otscope notices status` shows it.
    let store = SqliteStore::open(&s.db).unwrap();
    let status = otscope::notices::status(&store, &otscope::pipeline::now_rfc3339()).unwrap();
    let line = status.iter().find(|l| l.item.id == Some(one)).unwrap();
    assert_eq!(line.item.state, otscope::store::ItemState::Excepted);
    assert!(line.transitions.last().unwrap().reason.starts_with("a false positive"), "{:?}", line.transitions);
    drop(store);
    let db = s.db.clone();
    lab.server.shut().await;
    // Every request is in the audit log, the refused ones too.
    let log = SqliteStore::open(&db).unwrap().audit(None, None).unwrap();
    let posts: Vec<(Option<&str>, &str, u16)> = log
        .iter()
        .filter(|e| e.method == "POST" && e.target == "/api/v1/notices")
        .map(|e| (e.token_name.as_deref(), e.target.as_str(), e.status))
        .collect();
    assert_eq!(posts[..2], [(Some("pudong"), "/api/v1/notices", 403), (Some("e1"), "/api/v1/notices", 403)]);
    assert!(posts.contains(&(Some("ops"), "/api/v1/notices", 200)), "{posts:?}");
}

#[tokio::test]
async fn a_server_started_without_the_fingerprint_library_issues_no_notices() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let center = token(&db, "ops", "center", None, None);
    let mut options = options(&db, "127.119.22.2");
    options.issuer = None;
    let s = Server::start(options).await;
    let (status, body) = post(&s, &center, "/api/v1/notices", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("--fingerprints"), "{body}");
    // Exceptions need no library.
    let except = json!({ "reason": "accepted risk", "until": "2099-12-31" });
    assert_eq!(post(&s, &center, &format!("/api/v1/notices/{E1_NOTICE}/except"), except).await.0, StatusCode::OK);
    s.shut().await;
}

/// Logs in to the console with `token` through the login form (its cookie and form token), checking
/// the session cookie's flags; returns the session cookie (`otscope_session=...`).
async fn console_login(c: &Client, s: &Server, token: &str) -> String {
    let r = c.get(s.url("/console/login")).send().await.unwrap();
    let login_cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = r.text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = c
        .post(s.url("/console/login"))
        .header("cookie", &login_cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("otscope_session="))
        .unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_string()
}

/// Whether `page` shows `address` as an address of its own (not as the start of a longer one).
fn shows_address(page: &str, address: &str) -> bool {
    page.match_indices(address).any(|(at, _)| !page[at + address.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// What of owners outside `reach` a console page must never show: their ids as cell text, names,
/// districts (to a district), and service addresses.
fn foreign_page_marks(reach: &str) -> (Vec<String>, Vec<String>) {
    let mut texts = Vec::new();
    let mut addresses = Vec::new();
    for mark in foreign_marks(reach) {
        match mark.strip_prefix('"').and_then(|m| m.strip_suffix('"')) {
            Some(address) if address.starts_with("127.") => addresses.push(address.to_string()),
            Some(id) => texts.push(format!(">{id}<")),
            // Names as HTML shows them.
            None => texts.push(mark.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")),
        }
    }
    (texts, addresses)
}

#[tokio::test]
async fn every_console_page_keeps_to_the_reach_of_districts_and_enterprises() {
    let lab = lab("127.119.19.2").await;
    let s = &lab.server;
    let c = client();
    for (role, token, own_district, other_district, own_enterprise, other_enterprise) in
        [("pudong", &lab.pudong, PUDONG, MINHANG, "E1", "E2"), ("e1", &lab.e1, PUDONG, MINHANG, "E1", "E4")]
    {
        let session = console_login(&c, s, token).await;
        let pages = [
            ("/console/".to_string(), vec![StatusCode::OK]),
            ("/console/?lang=zh".to_string(), vec![StatusCode::OK]),
            ("/console/scans".to_string(), vec![StatusCode::OK]),
            ("/console/diff".to_string(), vec![StatusCode::OK, StatusCode::NOT_FOUND]),
            ("/console/diff?from=1&to=2".to_string(), vec![StatusCode::OK, StatusCode::NOT_FOUND]),
            (
                format!("/console/districts/{}", urlencoding(own_district)),
                vec![StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
            ),
            (format!("/console/enterprises/{own_enterprise}"), vec![StatusCode::OK]),
            (
                format!("/console/districts/{}", urlencoding(other_district)),
                vec![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
            ),
            (
                format!("/console/districts/{}", urlencoding(JIADING)),
                vec![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
            ),
            (format!("/console/enterprises/{other_enterprise}"), vec![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND]),
            ("/console/enterprises/E3".to_string(), vec![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND]),
            ("/console/events".to_string(), vec![StatusCode::FORBIDDEN]),
            ("/console/events/expo".to_string(), vec![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND]),
        ];
        let (texts, addresses) = foreign_page_marks(role);
        for (path, allowed) in pages {
            let r = c.get(s.url(&path)).header("cookie", &session).send().await.unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert!(allowed.contains(&status), "{role} {path}: {status}");
            for mark in &texts {
                assert!(!body.contains(mark.as_str()), "{role} {path} ({status}) shows {mark}: {body}");
            }
            for address in &addresses {
                assert!(!shows_address(&body, address), "{role} {path} ({status}) shows {address}: {body}");
            }
        }
        // Its own enterprise page shows its own.
        let r = c.get(s.url(&format!("/console/enterprises/{own_enterprise}"))).header("cookie", &session);
        let own = r.send().await.unwrap().text().await.unwrap();
        assert!(own.contains(&format!(">{own_enterprise}<")) || own.contains(own_enterprise), "{role}: {own}");
    }
    lab.server.shut().await;
}

#[tokio::test]
async fn console_sets_strict_cookies_checks_csrf_and_keeps_to_the_reach() {
    let lab = lab("127.119.19.1").await;
    let s = &lab.server;
    let c = client();
    let r = c.get(s.url("/console/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/login");
    let r = c.get(s.url("/console/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"), "{csp}");
    let login_cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = r.text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    // Without the form's token, or with another one, no session.
    for (cookie, field) in [("", csrf.as_str()), (login_cookie.as_str(), "forged")] {
        let r = c
            .post(s.url("/console/login"))
            .header("cookie", cookie)
            .form(&[("csrf", field), ("token", lab.pudong.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get("set-cookie").is_none_or(|v| !v.to_str().unwrap().contains("otscope_session=")));
    }
    let session = console_login(&c, s, &lab.pudong).await;
    let page = |path: &str| {
        let request = c.get(s.url(path)).header("cookie", &session);
        async move {
            let r = request.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, overview) = page("/console/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview.contains(PUDONG) && !overview.contains(MINHANG) && !overview.contains(JIADING));
    let (status, zh) = page("/console/?lang=zh").await;
    assert_eq!(status, StatusCode::OK);
    assert!(zh.contains("区县概览"));
    for (path, expected) in [
        (format!("/console/districts/{}", urlencoding(MINHANG)), StatusCode::FORBIDDEN),
        ("/console/enterprises/E2".to_string(), StatusCode::NOT_FOUND),
        ("/console/events".to_string(), StatusCode::FORBIDDEN),
        ("/console/events/expo".to_string(), StatusCode::FORBIDDEN),
        ("/console/diff?from=1&to=3".to_string(), StatusCode::NOT_FOUND),
    ] {
        let (status, body) = page(&path).await;
        assert_eq!(status, expected, "{path}");
        // (The page names the path asked for, percent-encoded; nothing of what lies there.)
        for mark in [MINHANG, "二号电厂", "五号化工", ">E2<", "127.119.0.4"] {
            assert!(!body.contains(mark), "{path} leaks {mark}: {body}");
        }
    }
    // A claim needs the session's form token, and a notice within reach.
    let own = overview.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    for (number, csrf, expected) in [
        (E1_NOTICE, "forged", StatusCode::FORBIDDEN),
        (E2_NOTICE, own, StatusCode::NOT_FOUND),
        (E1_NOTICE, own, StatusCode::SEE_OTHER),
    ] {
        let form = [("csrf", csrf), ("note", "patched")];
        let url = s.url(&format!("/console/notices/{number}/claim"));
        let r = c.post(url).header("cookie", &session).form(&form).send().await.unwrap();
        assert_eq!(r.status(), expected, "{number} {csrf}");
        let states: BTreeSet<String> = get(s, &lab.center, &format!("/api/v1/notices/{number}")).await.1["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["state"].as_str().unwrap().to_string())
            .collect();
        let now = if expected == StatusCode::SEE_OTHER { "claimed" } else { "notified" };
        assert_eq!(states, [now.to_string()].into(), "{number} {csrf}");
    }
    // Logging out needs the session's form token.
    let r =
        c.post(s.url("/console/logout")).header("cookie", &session).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.post(s.url("/console/logout")).header("cookie", &session).form(&[("csrf", own)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(page("/console/").await.0, StatusCode::SEE_OTHER);
    lab.server.shut().await;
}

#[test]
fn the_binary_names_its_address_when_ready_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["serve", "--listen", "127.119.20.1:0", "--db"])
        .arg(&db)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_in, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_in.send(line);
        }
    });
    let ready = lines.recv_timeout(Duration::from_secs(30)).expect("a readiness line");
    let address = ready.split("listening on http://").nth(1).unwrap_or_else(|| panic!("{ready}"));
    let address = address.split_whitespace().next().unwrap();
    assert!(address.starts_with("127.119.20.1:"), "{ready}");
    let health = std::net::TcpStream::connect(address).and_then(|mut stream| {
        use std::io::{Read, Write};
        stream.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    });
    assert!(health.unwrap().starts_with("HTTP/1.1 200"));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn the_systemd_unit_runs_a_command_line_that_parses() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/otscope-serve.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    let args: Vec<std::ffi::OsString> = exec.split_whitespace().map(Into::into).collect();
    assert!(args[0].to_str().unwrap().ends_with("/otscope"));
    let cli = otscope::config::parse_command_line(args).unwrap_or_else(|_| panic!("{exec} does not parse"));
    let otscope::cli::Command::Serve(serve) = cli.command else { panic!("{exec} is not otscope serve") };
    assert!(serve.listen.ip().is_loopback(), "the unit listens on loopback unless told otherwise");
    assert!(unit.contains("\nCapabilityBoundingSet=\n"), "the server needs no capability");
}
