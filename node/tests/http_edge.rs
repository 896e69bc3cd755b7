//! The node's HTTP edge under hostile clients: logins that cannot exhaust memory or lock
//! members out, connections capped per client, browsers' `Origin` on `/sync`, keys that
//! do not panic the handler, an Atom feed that stays valid XML and never echoes `Host`,
//! invitations that survive a refused join, and CSV cells that are not formulas.
//!
//! Clients come from several loopback addresses (127.0.0.x, all routed to `lo` on Linux)
//! so that per-address rules can be seen from one machine.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ibis_node::federation::NodeKey;
use ibis_node::registry::{Acl, Peer, Registry};
use ibis_node::{Config, InitOptions, RunningNode, ServeOptions};
use ibis_shared::model::record::{PracticeRecord, CSV_COLUMNS};
use ibis_shared::model::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

const PASSWORD: &str = "a long enough password";

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A TCP connection to `addr` from the loopback address `from`.
async fn tcp_from(from: [u8; 4], addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(addr).await.expect("connect")
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// One HTTP/1.1 request from `from`; `Host` is the node's address unless given.
async fn http(
    from: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = tcp_from(from, addr).await;
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn login(from: [u8; 4], addr: SocketAddr, name: &str, password: &str) -> Reply {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    http(from, addr, "POST", "/api/login", &[], &body).await
}

/// A WebSocket to `path` (with its query) from `from`, or the HTTP status and body it got
/// instead (status 0: no HTTP answer at all).
async fn ws(
    from: [u8; 4],
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, (u16, String)> {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a request");
    for (k, v) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    let stream = tcp_from(from, addr).await;
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => Err((0, e.to_string())),
    }
}

fn status(result: &Result<Ws, (u16, String)>) -> u16 {
    match result {
        Ok(_) => 101,
        Err((status, _)) => *status,
    }
}

fn edit_config(dir: &std::path::Path, edit: impl FnOnce(&mut Config)) {
    let mut config = Config::load(dir).expect("config");
    edit(&mut config);
    config.save(dir).expect("save config");
}

async fn start(dir: &std::path::Path, open: bool) -> RunningNode {
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().expect("address")),
        open,
        ..ServeOptions::default()
    })
    .await
    .expect("serve")
}

/// Retries `attempt` for up to ten seconds until it gives `Some`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    for _ in 0..200 {
        if let Some(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen in time");
}

// ---- 1. logins ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_hashes_two_at_a_time_and_locks_out_only_the_flooder() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        Registry::open(dir.path())
            .expect("registry")
            .add_user("amy", Role::Editor, PASSWORD)
            .expect("add amy");
        let node = start(dir.path(), false).await;
        let addr = node.addr();

        // 100 failed logins with made-up names at once, from four addresses.
        let flood: Vec<_> = (0..100u8)
            .map(|i| {
                tokio::spawn(async move {
                    login(
                        [127, 0, 0, 1 + i % 4],
                        addr,
                        &format!("nobody-{i}"),
                        "wrong password",
                    )
                    .await
                })
            })
            .collect();
        let mut busy = 0;
        for reply in flood {
            let reply = reply.await.expect("login task");
            match reply.status {
                401 | 429 => {}
                503 => {
                    busy += 1;
                    assert_eq!(
                        reply.json(),
                        serde_json::json!({"error": "the node is busy; try again in a few seconds"})
                    );
                }
                other => panic!("unexpected {other}: {}", reply.body),
            }
        }
        let metrics = node.metrics();
        let most = metrics.login_hashes_max.load(Ordering::SeqCst);
        assert!(most <= 2, "{most} password hashes ran at once");
        assert!(most >= 1, "the logins were hashed");
        assert!(busy > 0, "a flood past the waiting room is answered busy");
        assert_eq!(metrics.logins_busy.load(Ordering::SeqCst), busy);
        assert_eq!(metrics.login_hashes_in_progress.load(Ordering::SeqCst), 0);

        // The flooder (127.0.0.1) keeps guessing amy's password until it is locked out...
        let mut locked = None;
        for _ in 0..25 {
            let reply = login([127, 0, 0, 1], addr, "amy", "not her password").await;
            if reply.status == 429 {
                locked = Some(reply);
                break;
            }
            assert_eq!(reply.status, 401, "{}", reply.body);
        }
        let locked = locked.expect("the flooder is locked out");
        let message = locked.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("minutes"), "{message}");
        // ...even with the right password, from its address...
        assert_eq!(
            login([127, 0, 0, 1], addr, "amy", PASSWORD).await.status,
            429
        );
        // ...while amy, from her own address, logs in.
        let amy = login([127, 0, 0, 9], addr, "amy", PASSWORD).await;
        assert_eq!(amy.status, 200, "{}", amy.body);
        assert!(amy
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("ibis_session=ibis_")));
        assert!(metrics.logins_locked.load(Ordering::SeqCst) >= 2);
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 2. the client's address ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        edit_config(dir.path(), |c| {
            c.node.trusted_proxies = vec!["127.0.0.2".into()]
        });
        Registry::open(dir.path())
            .expect("registry")
            .add_user("amy", Role::Editor, PASSWORD)
            .expect("add amy");
        let node = start(dir.path(), false).await;
        let addr = node.addr();
        let body =
            |password: &str| serde_json::json!({ "name": "amy", "password": password }).to_string();
        // A client that is not a proxy cannot pick a new address for each guess.
        for i in 0..5 {
            let spoofed = format!("203.0.113.{i}");
            let reply = http(
                [127, 0, 0, 1],
                addr,
                "POST",
                "/api/login",
                &[
                    ("X-Forwarded-For", &spoofed),
                    ("Forwarded", &format!("for={spoofed}")),
                ],
                &body("a wrong guess"),
            )
            .await;
            assert_eq!(reply.status, 401, "{}", reply.body);
        }
        let locked = http(
            [127, 0, 0, 1],
            addr,
            "POST",
            "/api/login",
            &[("X-Forwarded-For", "198.51.100.1")],
            &body("another guess"),
        )
        .await;
        assert_eq!(locked.status, 429, "{}", locked.body);
        // The trusted proxy's word is taken: amy behind it logs in...
        let amy = http(
            [127, 0, 0, 2],
            addr,
            "POST",
            "/api/login",
            &[("X-Forwarded-For", "1.2.3.4, 203.0.113.50")],
            &body(PASSWORD),
        )
        .await;
        assert_eq!(amy.status, 200, "{}", amy.body);
        // ...and a guesser it reports is the one that is locked out.
        let guesser = http(
            [127, 0, 0, 2],
            addr,
            "POST",
            "/api/login",
            &[("X-Forwarded-For", "127.0.0.1")],
            &body(PASSWORD),
        )
        .await;
        assert_eq!(guesser.status, 429, "{}", guesser.body);
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 3. connections per client ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_connections_are_capped_per_address_account_and_partner_key() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let registry = Registry::open(dir.path()).expect("registry");
        registry
            .add_user("amy", Role::Editor, PASSWORD)
            .expect("add amy");
        let token = registry.issue_token("amy", "test", 1).expect("token");
        let partner_dir = tempfile::tempdir().expect("tempdir");
        let partner_key = NodeKey::load_or_create(partner_dir.path())
            .expect("key")
            .public()
            .to_string();
        registry
            .add_peer(&Peer {
                name: "NLC".into(),
                url: String::new(),
                public_key: partner_key.clone(),
                organization: String::new(),
                acl: Acl::FULL,
            })
            .expect("add partner");
        let node = start(dir.path(), false).await;
        let addr = node.addr();
        let here = [127, 0, 0, 1];

        // 64 anonymous visitors from one address; the 65th is refused.
        let mut anonymous = Vec::new();
        for _ in 0..64 {
            anonymous.push(
                ws(here, addr, "/sync", &[])
                    .await
                    .expect("anonymous connection"),
            );
        }
        let refused = ws(here, addr, "/sync", &[]).await;
        assert_eq!(status(&refused), 429);
        let Err((_, why)) = refused else {
            unreachable!()
        };
        assert!(why.contains("too many open connections"), "{why}");
        assert_eq!(
            node.metrics().connections_refused_per_client[0].load(Ordering::SeqCst),
            1
        );
        // Another address, and a member from the same one, still connect.
        let elsewhere = ws([127, 0, 0, 2], addr, "/sync", &[]).await;
        assert_eq!(status(&elsewhere), 101);
        let member_path = format!("/sync?token={token}");
        let mut members = vec![ws(here, addr, &member_path, &[]).await.expect("member")];
        // Closing a connection frees its slot.
        let mut first = anonymous.remove(0);
        first.close(None).await.expect("close");
        drop(first);
        let again = eventually("a freed slot", || async {
            ws(here, addr, "/sync", &[]).await.ok()
        })
        .await;
        anonymous.push(again);

        // A member account has 32, whatever the address.
        for i in 1..32u8 {
            members.push(
                ws([127, 0, 1, i], addr, &member_path, &[])
                    .await
                    .expect("member connection"),
            );
        }
        let refused = ws([127, 0, 2, 1], addr, &member_path, &[]).await;
        assert_eq!(status(&refused), 429);

        // A partner key has 4: connections waiting for its proof count too, and one that
        // fails the challenge frees its slot.
        let partner_path = format!("/sync?node={partner_key}&cnonce=abc");
        let mut partners = Vec::new();
        for i in 0..4u8 {
            partners.push(
                ws([127, 0, 3, i + 1], addr, &partner_path, &[])
                    .await
                    .expect("partner connection"),
            );
        }
        assert_eq!(
            status(&ws([127, 0, 3, 9], addr, &partner_path, &[]).await),
            429
        );
        let mut failing = partners.remove(0);
        failing.close(None).await.expect("close");
        drop(failing);
        let again = eventually("a partner slot freed by a failed challenge", || async {
            ws([127, 0, 3, 9], addr, &partner_path, &[]).await.ok()
        })
        .await;
        partners.push(again);
        let m = node.metrics();
        assert_eq!(
            m.connections_refused_per_client[1].load(Ordering::SeqCst),
            1
        );
        assert!(m.connections_refused_per_client[2].load(Ordering::SeqCst) >= 1);

        drop((anonymous, members, partners, elsewhere));
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 4. Origin on /sync ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_refuses_cross_origin_sockets() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let node = start(dir.path(), true).await;
        let addr = node.addr();
        let here = [127, 0, 0, 1];
        let own = format!("http://{addr}");

        assert_eq!(
            status(&ws(here, addr, "/sync", &[]).await),
            101,
            "no Origin: not a browser"
        );
        assert_eq!(
            status(&ws(here, addr, "/sync", &[("Origin", &own)]).await),
            101,
            "the node's own page"
        );
        let refused = ws(here, addr, "/sync", &[("Origin", "https://evil.example")]).await;
        assert_eq!(status(&refused), 403);
        let Err((_, why)) = refused else {
            unreachable!()
        };
        assert_eq!(why, "cross-origin WebSocket refused: https://evil.example");
        assert_eq!(
            status(&ws(here, addr, "/sync", &[("Origin", "null")]).await),
            403
        );
        // A partner node is not a browser page acting with the visitor's rights.
        let stranger = tempfile::tempdir().expect("tempdir");
        let key = NodeKey::load_or_create(stranger.path())
            .expect("key")
            .public();
        let partner = format!("/sync?node={key}&cnonce=abc");
        assert_eq!(
            status(&ws(here, addr, &partner, &[("Origin", "https://evil.example")]).await),
            101
        );
        assert_eq!(
            node.metrics()
                .connections_refused_cross_origin
                .load(Ordering::SeqCst),
            2
        );
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_only_works_from_the_nodes_own_origin() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        edit_config(dir.path(), |c| {
            c.node.public_url = "https://ibis.example.org/".into();
        });
        let registry = Registry::open(dir.path()).expect("registry");
        registry
            .add_user("amy", Role::Editor, PASSWORD)
            .expect("add amy");
        let session = registry.start_session("amy").expect("session");
        let token = registry.issue_token("amy", "script", 1).expect("token");
        let node = start(dir.path(), false).await;
        let addr = node.addr();
        let here = [127, 0, 0, 1];
        let cookie = format!("ibis_session={session}");

        let with =
            |origin: &'static str| vec![("Cookie", cookie.clone()), ("Origin", origin.into())];
        let connect = |headers: Vec<(&'static str, String)>, path: String| async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            status(&ws(here, addr, &path, &headers).await)
        };
        let sync = "/sync".to_owned();
        assert_eq!(
            connect(with("https://ibis.example.org"), sync.clone()).await,
            101
        );
        assert_eq!(
            connect(with("https://IBIS.example.org:443"), sync.clone()).await,
            101
        );
        assert_eq!(
            connect(vec![("Cookie", cookie.clone())], sync.clone()).await,
            101
        );
        assert_eq!(
            connect(with("https://evil.example"), sync.clone()).await,
            403
        );
        assert_eq!(
            connect(with("http://ibis.example.org"), sync.clone()).await,
            403
        );
        // With a public URL, the request's Host is not the node's origin.
        let host_origin: &'static str = Box::leak(format!("http://{addr}").into_boxed_str());
        assert_eq!(connect(with(host_origin), sync.clone()).await, 403);
        // Tokens and anonymous visitors do not ride on a browser's ambient credentials.
        assert_eq!(
            connect(
                vec![("Origin", "https://evil.example".into())],
                format!("/sync?token={token}")
            )
            .await,
            101
        );
        assert_eq!(
            connect(
                vec![("Origin", "https://evil.example".into())],
                sync.clone()
            )
            .await,
            101
        );
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 5. a partner key with wide leading spaces ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_key_with_wide_leading_spaces_does_not_panic() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let node = start(dir.path(), true).await;
        let stranger = tempfile::tempdir().expect("tempdir");
        let key = NodeKey::load_or_create(stranger.path())
            .expect("key")
            .public();
        // Three U+3000 (ideographic space), which the key parser trims.
        let path = format!("/sync?node=%E3%80%80%E3%80%80%E3%80%80{key}&cnonce=abc");
        let result = ws([127, 0, 0, 1], node.addr(), &path, &[]).await;
        assert_eq!(status(&result), 101, "{:?}", result.err());
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 7. the Atom feed ----

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Imports practices (JSON records) into a fresh data dir.
fn import(dir: &std::path::Path, records: serde_json::Value) {
    let file = dir.join("practices.json");
    std::fs::write(&file, records.to_string()).expect("write practices");
    let report = ibis_node::import::import(dir, &file, ibis_node::import::Format::Json, "test")
        .expect("import");
    assert_eq!(
        report.failed(),
        0,
        "{:?}",
        ibis_node::import::describe(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_valid_xml_and_never_built_from_host() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        import(
            dir.path(),
            serde_json::json!([{
                "title": "Bad \u{1} \u{FFFE} \u{FFFF} \u{1b} title",
                "summary": "Control\u{8} characters\u{b} everywhere.",
                "city": "Geneva", "country": "CH", "review_state": "published",
                "themes": ["legal-status"]
            }]),
        );
        let node = start(dir.path(), false).await;
        let addr = node.addr();
        let evil = [("Host", "evil.example")];
        let feed = eventually("the practice in the feed", || async {
            let reply = http([127, 0, 0, 1], addr, "GET", "/feed.atom", &evil, "").await;
            (reply.status == 200 && reply.body.contains("<entry>")).then_some(reply.body)
        })
        .await;
        let bad: Vec<char> = feed.chars().filter(|c| !is_xml_char(*c)).collect();
        assert!(
            bad.is_empty(),
            "characters XML 1.0 forbids: {bad:?}\n{feed}"
        );
        let title: String = "Bad \u{1} \u{FFFE} \u{FFFF} \u{1b} title"
            .chars()
            .filter(|c| is_xml_char(*c))
            .collect();
        assert!(feed.contains(&title), "{feed}");
        assert!(
            !feed.contains("evil.example"),
            "links come from Host: {feed}"
        );
        assert!(feed.contains("<id>automerge:"), "{feed}");
        assert!(feed.contains("<link href=\"/practices/"), "{feed}");
        node.shutdown().await.expect("shutdown");

        edit_config(dir.path(), |c| {
            c.node.public_url = "https://ibis.example.org".into()
        });
        let node = start(dir.path(), false).await;
        let feed = eventually("the feed with a public URL", || async {
            let reply = http([127, 0, 0, 1], node.addr(), "GET", "/feed.atom", &evil, "").await;
            (reply.status == 200 && reply.body.contains("<entry>")).then_some(reply.body)
        })
        .await;
        assert!(!feed.contains("evil.example"), "{feed}");
        assert!(
            feed.contains("<link href=\"https://ibis.example.org/practices/"),
            "{feed}"
        );
        assert!(
            feed.contains("<id>https://ibis.example.org/feed.atom</id>"),
            "{feed}"
        );
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 8. joining by invitation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_leaves_the_invitation_usable() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let registry = Registry::open(dir.path()).expect("registry");
        let invite = registry.invite("UNAOC", "unaoc-1", 1).expect("invite");
        let other = tempfile::tempdir().expect("tempdir");
        let taken_key = NodeKey::load_or_create(other.path())
            .expect("key")
            .public()
            .to_string();
        registry
            .add_peer(&Peer {
                name: "NLC".into(),
                url: String::new(),
                public_key: taken_key,
                organization: String::new(),
                acl: Acl::FULL,
            })
            .expect("add NLC");
        let node = start(dir.path(), false).await;
        let addr = node.addr();
        let joiner = tempfile::tempdir().expect("tempdir");
        let key = NodeKey::load_or_create(joiner.path())
            .expect("key")
            .public()
            .to_string();
        let join = |name: &str, public_key: &str| {
            serde_json::json!({"invite": invite, "name": name, "public_key": public_key})
                .to_string()
        };

        let bad_key = http(
            [127, 0, 0, 1],
            addr,
            "POST",
            "/api/federation/join",
            &[],
            &join("UNAOC", "not a key"),
        )
        .await;
        assert_eq!(bad_key.status, 400, "{}", bad_key.body);
        let taken_name = http(
            [127, 0, 0, 1],
            addr,
            "POST",
            "/api/federation/join",
            &[],
            &join("NLC", &key),
        )
        .await;
        assert_eq!(taken_name.status, 400, "{}", taken_name.body);
        assert!(
            taken_name.body.contains("already exists"),
            "{}",
            taken_name.body
        );

        let joined = http(
            [127, 0, 0, 1],
            addr,
            "POST",
            "/api/federation/join",
            &[],
            &join("", &key),
        )
        .await;
        assert_eq!(
            joined.status, 200,
            "the invitation survived: {}",
            joined.body
        );
        let peers = registry.peers().expect("peers");
        assert!(peers
            .iter()
            .any(|p| p.name == "UNAOC" && p.public_key == key));
        let again = http(
            [127, 0, 0, 1],
            addr,
            "POST",
            "/api/federation/join",
            &[],
            &join("X", &key),
        )
        .await;
        assert_eq!(again.status, 403, "single use: {}", again.body);
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

// ---- 9. CSV cells that are not formulas ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_defuses_formulas() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let title = "=HYPERLINK(\"http://evil\",\"click\")";
        import(
            dir.path(),
            serde_json::json!([{
                "title": title, "summary": "@SUM(1+1)*cmd|' /C calc'!A0",
                "city": "-2+3", "country": "CH", "review_state": "published", "themes": ["legal-status"],
                "latitude": -33.5, "longitude": 151.25
            }]),
        );
        let node = start(dir.path(), false).await;
        let csv = eventually("the practice in the export", || async {
            let reply = http(
                [127, 0, 0, 1],
                node.addr(),
                "GET",
                "/api/practices.csv",
                &[],
                "",
            )
            .await;
            (reply.status == 200 && reply.body.lines().count() > 1).then_some(reply.body)
        })
        .await;
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let columns: Vec<String> = reader
            .headers()
            .expect("header row")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(columns, CSV_COLUMNS);
        let row = reader
            .records()
            .next()
            .expect("one row")
            .expect("a valid row");
        let cell = |name: &str| {
            row.get(CSV_COLUMNS.iter().position(|c| *c == name).expect("column"))
                .expect("cell")
        };
        assert_eq!(cell("title"), format!("'{title}"));
        assert_eq!(cell("summary"), "'@SUM(1+1)*cmd|' /C calc'!A0");
        assert_eq!(cell("city"), "'-2+3");
        assert_eq!(cell("latitude"), "-33.5", "a number is not a formula");
        for field in row.iter() {
            assert!(
                !field.starts_with(['=', '+', '@', '\t', '\r']),
                "a live formula: {field}"
            );
        }
        // The app's and the node's import take the quote off again.
        let fields: Vec<(String, String)> = columns
            .into_iter()
            .zip(row.iter().map(str::to_owned))
            .collect();
        let record = PracticeRecord::from_csv_fields(&fields).expect("a record");
        assert_eq!(record.title, title);
        assert_eq!(record.city, "-2+3");
        assert_eq!(record.latitude, Some(-33.5));
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
