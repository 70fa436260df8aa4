//! The console in a real browser: headless Chromium driven through chromedriver (WebDriver) from
//! Rust. A district user logs in with its token, sees only its district and its notices, claims an
//! enterprise's notice fixed through the form (the claim then shows in the API and in `otscope
//! notices status`), is refused another district, switches to Chinese; the pages render with their
//! stylesheet under the strict CSP, and the screenshots (kept in the target folder) are not blank.

mod serve_fixture;

use fantoccini::{Client, ClientBuilder, Locator};
use serve_fixture::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn program(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} is missing: the console test drives headless Chromium through chromedriver (Debian: apt-get install \
         {package}; .ci/run installs it)",
        path.display()
    );
    path
}

/// chromedriver on a loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(log: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver"))
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = program("CHROMIUM", "/usr/bin/chromium", "chromium");
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        ClientBuilder::new(connector).capabilities(capabilities).connect(&format!("http://127.0.0.1:{}", driver.port)),
    )
    .await
    .expect("a browser session within 60 s")
    .expect("a browser session")
}

/// Saves a screenshot where it can be looked at, and checks it is a page, not a blank.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{name}.png")), &png).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let step = frame.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = pixels[..frame.buffer_size()].chunks(step).collect();
    assert!(colours.len() > 20, "{name}: the screenshot is nearly blank ({} colours)", colours.len());
    // The header's colour, from the stylesheet: it loaded under the CSP.
    let header = [0x1f, 0x3a, 0x5f];
    assert!(pixels.chunks(step).any(|p| p[..3] == header), "{name}: no header colour: the stylesheet did not apply");
}

async fn text(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

#[tokio::test]
async fn a_district_user_logs_in_and_sees_only_its_district() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let pudong = token(&db, "pudong", "district", Some(PUDONG), None);
    let server = Server::start(options(&db, "127.119.30.1")).await;
    let driver = start_driver(&dir.path().join("chromedriver.log"));
    let client = browser(&driver, &dir.path().join("profile")).await;

    client.goto(&server.url("/console/")).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/console/login"), "sent to the login page");
    client.find(Locator::Id("token")).await.unwrap().send_keys(&pudong).await.unwrap();
    client.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("districts")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/console/");
    assert_eq!(text(&client, "#who").await, format!("pudong (district: {PUDONG})"));
    let districts = text(&client, "#districts").await;
    assert!(districts.contains(PUDONG), "{districts}");
    for other in [MINHANG, JIADING] {
        assert!(!districts.contains(other), "{districts}");
    }
    let background = client.find(Locator::Css("header")).await.unwrap().css_value("background-color").await.unwrap();
    assert_eq!(background, "rgba(31, 58, 95, 1)");
    screenshot(&client, "overview-district").await;

    client.find(Locator::LinkText(PUDONG)).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("enterprises")).await.unwrap();
    let enterprises = text(&client, "#enterprises").await;
    assert!(enterprises.contains("E1") && enterprises.contains("一号水厂"), "{enterprises}");
    assert!(!enterprises.contains("E2") && !enterprises.contains("E5"), "{enterprises}");
    let services = text(&client, "table.findings").await;
    assert!(services.contains("127.119.0.1:502/tcp") && !services.contains("127.119.0.4"), "{services}");
    let notices = text(&client, "#notices").await;
    assert!(notices.contains(E1_NOTICE) && notices.contains(PUDONG_NOTICE), "{notices}");
    assert!(!notices.contains(E2_NOTICE) && !notices.contains(MINHANG_NOTICE), "{notices}");
    screenshot(&client, "district-page").await;

    client.find(Locator::LinkText("E1")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Css("table.findings")).await.unwrap();
    assert!(text(&client, "h1").await.contains("一号水厂"));
    let row = format!("notice-{E1_NOTICE}");
    let notice = text(&client, &format!("#{row}")).await;
    assert!(notice.contains("127.119.0.1:502/tcp") && notice.contains(GREEN_ADVISORY), "{notice}");
    assert!(notice.contains("notified") && notice.contains("2026-05-16"), "status and deadline: {notice}");
    screenshot(&client, "enterprise-page").await;

    // The district claims E1's notice fixed through the form.
    let note = "固件已升级到 3.1 (firmware updated)";
    client.find(Locator::Id(&format!("note-{E1_NOTICE}"))).await.unwrap().send_keys(note).await.unwrap();
    client.find(Locator::Id(&format!("claim-{E1_NOTICE}"))).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Css(&format!("#{row} .state-claimed"))).await.unwrap();
    assert!(client.find(Locator::Id(&format!("claim-{E1_NOTICE}"))).await.is_err(), "nothing left to claim");
    screenshot(&client, "enterprise-claimed").await;
    // The claim in the API: the item is claimed, by the district's token, with the note.
    let api = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/notices/{E1_NOTICE}")))
        .bearer_auth(&pudong)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), reqwest::StatusCode::OK);
    let api: serde_json::Value = api.json().await.unwrap();
    let item = &api["items"][0];
    assert_eq!((item["state"].as_str(), api["items"].as_array().unwrap().len()), (Some("claimed"), 1), "{api}");
    assert_eq!(item["last_move"]["actor"], "pudong", "{api}");
    assert_eq!(item["last_move"]["reason"], note, "{api}");
    // And in `otscope notices status`, as the CLI records and shows every claim.
    let status = Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["notices", "status", "--format", "jsonl", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(status.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let claimed: Vec<&serde_json::Value> = lines.iter().filter(|l| l["notice"] == E1_NOTICE).collect();
    assert_eq!(claimed.len(), 1, "{lines:?}");
    assert_eq!(claimed[0]["state"], "claimed");
    let last = claimed[0]["transitions"].as_array().unwrap().last().unwrap();
    assert_eq!((last["actor"].as_str(), last["reason"].as_str()), (Some("pudong"), Some(note)), "{last}");
    // E2's items, in another district, are untouched.
    assert!(lines.iter().filter(|l| l["enterprise_id"] == "E2").all(|l| l["state"] == "notified"), "{lines:?}");

    client.goto(&server.url("/console/scans?lang=zh")).await.unwrap();
    assert_eq!(text(&client, "h1").await, "扫描记录");
    let scans = text(&client, "#scans").await;
    assert!(!scans.contains("check"), "a check of another district's enterprise is not shown: {scans}");
    client.find(Locator::LinkText("变化")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("diff")).await.unwrap();
    let diff = text(&client, "#diff").await;
    assert!(diff.contains("变化") && diff.contains("127.119.0.2:102/tcp") && !diff.contains("127.119.0.9"), "{diff}");
    screenshot(&client, "diff-zh").await;

    // Another district, by its address: refused, and nothing of it shown.
    client.goto(&server.url(&format!("/console/districts/{MINHANG}"))).await.unwrap();
    assert_eq!(text(&client, "h1").await, "超出权限范围");
    assert!(!client.source().await.unwrap().contains("二号电厂"));
    screenshot(&client, "refused-zh").await;

    client.goto(&server.url("/console/?lang=en")).await.unwrap();
    client.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("token")).await.unwrap();
    client.goto(&server.url("/console/")).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/console/login"), "logged out");
    client.close().await.unwrap();
    server.shut().await;
}
