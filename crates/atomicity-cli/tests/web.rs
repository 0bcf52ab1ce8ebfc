//! The web wallet (docs/wallet.md), with real `atomicity` processes on 127.0.0.1:
//!
//! - over raw HTTP: the page needs no token and holds none; every API call without the token
//!   is refused (401), and any request from another origin is refused (403) with no CORS
//!   header, even with the token; a request's progress streams as server-sent events, one
//!   event now and one after every change, ending when the request is no longer open;
//! - in real headless Chromium (`tests/browser/wallet.mjs`, playwright-core): a small devnet
//!   (me, bob, carol); me makes a payment request on my wallet page, Bob pays part by the CLI,
//!   Carol the rest on her own wallet page at 390×844, and my page reaches 100% without a
//!   reload. Screenshots go to `target/browser-artifacts/`.
//!
//! Without Chromium or `tests/browser/node_modules` the browser test fails, saying what to
//! install, unless `ATOMICITY_SKIP_BROWSER_TESTS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atomicity_cli::devnet::Network;
use atomicity_cli::harness::{NodeProcess, cli_ok};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn root() -> tempfile::TempDir {
    let mut root = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("ATOMICITY_KEEP_TEST_DIRS").is_some() {
        root.disable_cleanup(true);
        eprintln!("keeping {}", root.path().display());
    }
    root
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_string()
}

/// An HTTP/1.0 answer: status, lower-cased head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one request with the given extra header lines and reads the whole answer.
fn http(api: &str, method: &str, path: &str, headers: &[String], body: &str) -> Answer {
    let addr = api.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Answer {
        status,
        head: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// The local API refuses calls without the token and from other origins; the page itself is
/// served to anyone (it holds no secret); a request's progress streams as events.
#[test]
fn the_local_api_refuses_no_token_and_other_origins_and_streams_progress() {
    let root = root();
    let node = NodeProcess::start(&bin(), &root.path().join("me"), "127.0.0.1:0").expect("node");
    let api = read(node.dir(), "api.url");
    let token = read(node.dir(), "api.token");
    let auth = format!("Authorization: Bearer {token}");
    let own = format!("Origin: {api}");
    let evil = "Origin: http://evil.example".to_string();
    let other_port = "Origin: http://127.0.0.1:9".to_string();

    // `atomicity wallet` prints the page's address with the token in the fragment.
    let address = cli_ok(&bin(), node.dir(), &["wallet"]).expect("wallet");
    assert_eq!(address.trim(), format!("{api}/wallet#token={token}"));

    // The page: no token needed, none inside, nothing loaded from elsewhere.
    for path in ["/wallet", "/wallet/app.js", "/wallet/app.css"] {
        let page = http(&api, "GET", path, &[], "");
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(!page.body.contains(&token), "{path} holds the token");
        assert!(
            !page.body.contains("https://"),
            "{path} loads from elsewhere"
        );
        assert!(
            page.head
                .contains("content-security-policy: default-src 'self'")
        );
    }
    assert!(
        http(&api, "GET", "/wallet", &[], "")
            .head
            .contains("content-type: text/html")
    );

    // No token, or a wrong one: 401 for every API route, the event stream included.
    for path in ["/v1/balance", "/v1/id", "/v1/requests/00/events"] {
        let a = http(&api, "GET", path, &[], "");
        assert_eq!(
            (a.status, a.json()["code"].as_str()),
            (401, Some("no_token"))
        );
    }
    let a = http(
        &api,
        "GET",
        "/v1/balance",
        &["Authorization: Bearer 00".into()],
        "",
    );
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (401, Some("bad_token"))
    );
    let a = http(&api, "POST", "/v1/qr.svg", &[], r#"{"text":"x"}"#);
    assert_eq!(a.status, 401);
    // Unknown routes answer as before the wallet: the token first, then a JSON 404.
    let a = http(&api, "GET", "/v1/nothing-here", &[], "");
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (401, Some("no_token"))
    );
    let a = http(
        &api,
        "GET",
        "/wallet/nothing-here",
        std::slice::from_ref(&auth),
        "",
    );
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (404, Some("not_found"))
    );

    // Another origin: 403 in words, even with the token, and no CORS header anywhere.
    for origin in [&evil, &other_port] {
        let a = http(
            &api,
            "GET",
            "/v1/balance",
            &[auth.clone(), origin.clone()],
            "",
        );
        assert_eq!(a.status, 403, "{}", a.body);
        let e = a.json();
        assert_eq!(e["code"], "foreign_origin");
        assert!(
            e["error"].as_str().is_some_and(|w| w.contains("refused")),
            "{e}"
        );
        assert!(!a.head.contains("access-control-allow"), "{}", a.head);
        // A CORS preflight is refused too.
        let pre = http(
            &api,
            "OPTIONS",
            "/v1/trust/block",
            &[
                origin.clone(),
                "Access-Control-Request-Method: POST".into(),
                "Access-Control-Request-Headers: authorization,content-type".into(),
            ],
            "",
        );
        assert_eq!(pre.status, 403);
        assert!(!pre.head.contains("access-control-allow"), "{}", pre.head);
    }
    // A form or beacon from another origin changes nothing, token or not.
    let victim = atomicity_cli::harness::init(&bin(), &root.path().join("victim")).expect("key");
    let a = http(
        &api,
        "POST",
        "/v1/trust/block",
        &[auth.clone(), evil.clone()],
        &format!(r#"{{"key":"{victim}"}}"#),
    );
    assert_eq!(a.status, 403);
    let trust = http(&api, "GET", "/v1/trust", std::slice::from_ref(&auth), "").json();
    assert_eq!(trust["blocked"], serde_json::json!([]), "{trust}");
    // The API's own origin, with the token: answered.
    let a = http(&api, "GET", "/v1/id", &[auth.clone(), own.clone()], "");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["key"], node.key.as_str());
    let localhost = format!("Origin: {}", api.replace("127.0.0.1", "localhost"));
    assert_eq!(
        http(&api, "GET", "/v1/id", &[auth.clone(), localhost], "").status,
        200
    );
    let qr = http(
        &api,
        "POST",
        "/v1/qr.svg",
        &[auth.clone(), own.clone()],
        r#"{"text":"atomicity:abc"}"#,
    );
    assert_eq!(qr.status, 200);
    assert!(qr.head.contains("content-type: image/svg+xml"));
    assert!(qr.body.contains("<svg"));

    // Server-sent events: the row now, then after every change; the stream ends once the
    // request is no longer open.
    let row = http(
        &api,
        "POST",
        "/v1/requests",
        std::slice::from_ref(&auth),
        r#"{"amount":"20","asset":"USD","memo":"lunch"}"#,
    )
    .json();
    let id = row["id"].as_str().expect("id").to_string();
    let a = http(
        &api,
        "GET",
        &format!("/v1/requests/{}/events", "f".repeat(32)),
        std::slice::from_ref(&auth),
        "",
    );
    assert_eq!(
        (a.status, a.json()["code"].as_str()),
        (404, Some("unknown_request"))
    );
    let addr = api.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET /v1/requests/{id}/events HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n\r\n"
    )
    .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut lines = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        lines.read_line(&mut line).expect("head");
        if line.trim().is_empty() {
            break;
        }
        head.push_str(&line.to_lowercase());
    }
    assert!(head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"));
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let mut next_event = || -> Option<Value> {
        let mut event = String::new();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).expect("event") == 0 {
                return None;
            }
            if line.trim().is_empty() && !event.is_empty() {
                break;
            }
            event.push_str(&line);
        }
        assert!(event.starts_with("event: request\n"), "{event}");
        let data = event.lines().find_map(|l| l.strip_prefix("data: "))?;
        Some(serde_json::from_str(data).expect("json"))
    };
    let first = next_event().expect("the first event");
    assert_eq!(
        (first["id"].as_str(), first["status"].as_str()),
        (Some(id.as_str()), Some("open"))
    );
    assert_eq!(first["percent"], 0);
    let cancelled = http(
        &api,
        "POST",
        &format!("/v1/requests/{id}/cancel"),
        std::slice::from_ref(&auth),
        "",
    );
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let second = next_event().expect("an event after the change");
    assert_eq!(second["status"], "cancelled");
    assert!(next_event().is_none(), "the stream ends");
}

// ---- The browser test -------------------------------------------------------------------------

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run the browser test, if anything.
fn browser_missing() -> Option<String> {
    if !chromium().exists() {
        return Some(format!(
            "{} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)",
            chromium().display()
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("Node.js (`node`) is missing".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(format!(
            "playwright-core is not installed: run `npm ci` in {} (.ci/run does)",
            browser_dir().display()
        ));
    }
    None
}

/// Whether to skip: never silently. Without what it needs the test fails, unless
/// `ATOMICITY_SKIP_BROWSER_TESTS=1`, and then it says so loudly.
fn skip_browser_test() -> bool {
    let Some(missing) = browser_missing() else {
        return false;
    };
    if std::env::var("ATOMICITY_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("\n!!!!!!!! SKIPPED the web wallet browser test: {missing} !!!!!!!!\n");
        return true;
    }
    panic!(
        "the web wallet browser test cannot run: {missing}. \
         Set ATOMICITY_SKIP_BROWSER_TESTS=1 to skip it knowingly."
    );
}

fn artifacts() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATOMICITY_BROWSER_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("browser-artifacts")
}

/// Acceptance: a devnet node's wallet page makes a payment request; Bob pays part of it by the
/// CLI, Carol the rest on her own wallet page (at 390×844); my page reaches 100% without a
/// reload. Then checks the balances the payments left.
#[test]
fn a_request_made_on_the_wallet_page_fills_live_in_chromium() {
    if skip_browser_test() {
        return;
    }
    let root = root();
    let net = Network::start_cast(&root.path().join("devnet"), &bin(), &["me", "bob", "carol"])
        .expect("devnet");
    let wallet = |who: &str| {
        cli_ok(&bin(), &net.dir(who).expect("dir"), &["wallet"])
            .expect("atomicity wallet")
            .trim()
            .to_string()
    };
    let me_dir = net.dir("me").expect("me");
    let artifacts = artifacts();
    let _ = std::fs::remove_dir_all(&artifacts);
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg("wallet.mjs")
        .current_dir(browser_dir())
        .env("ME_WALLET", wallet("me"))
        .env("CAROL_WALLET", wallet("carol"))
        .env("ME_API", read(&me_dir, "api.url"))
        .env("ME_TOKEN", read(&me_dir, "api.token"))
        .env("BOB_DIR", net.dir("bob").expect("bob"))
        .env("ATOMICITY_BIN", bin())
        .env("BOB_KEY", net.key("bob").expect("bob"))
        .env("CAROL_KEY", net.key("carol").expect("carol"))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node wallet.mjs");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    eprintln!(
        "node wallet.mjs ({:.1} s):\n{out}{err}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the browser test failed ({status:?}); screenshots in {}",
        artifacts.display()
    );
    assert!(artifacts.join("07-me-phone-overview.png").exists());

    // What the pages did, seen by the CLI: the request is filled and Bob and Carol owe me.
    let requests: Value = serde_json::from_str(
        &cli_ok(&bin(), &me_dir, &["request", "list", "--json"]).expect("request list"),
    )
    .expect("json");
    let dinner = requests
        .as_array()
        .and_then(|r| r.iter().find(|r| r["memo"] == "dinner"))
        .expect("the request made on the page");
    assert_eq!(
        (dinner["status"].as_str(), dinner["paid"].as_str()),
        (Some("filled"), Some("150.00"))
    );
    let balance: Value =
        serde_json::from_str(&cli_ok(&bin(), &me_dir, &["balance", "--json"]).expect("balance"))
            .expect("json");
    let net_of = |who: &str| {
        let key = net.key(who).expect("key");
        balance
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r["peer"] == key.as_str() && r["asset"] == "USD")
            })
            .and_then(|r| r["net"].as_str())
            .map(String::from)
    };
    assert_eq!(net_of("bob").as_deref(), Some("100.00"));
    assert_eq!(net_of("carol").as_deref(), Some("50.00"));
    net.stop();
}
