//! Credentials never reach the logs, even at the most verbose level: request spans carry
//! the path, not the query (where `?token=` rides), and no header is logged.
//!
//! A test binary of its own: it installs the process-wide tracing subscriber.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ibis_node::registry::Registry;
use ibis_node::{InitOptions, ServeOptions};
use ibis_shared::model::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn http(addr: SocketAddr, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_cookies_and_passwords_stay_out_of_debug_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let secrets = tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let registry = Registry::open(dir.path()).expect("registry");
        let password = "a long enough password";
        registry
            .add_user("amy", Role::Editor, password)
            .expect("add amy");
        let token = registry.issue_token("amy", "script", 1).expect("token");
        let session = registry.start_session("amy").expect("session");
        let node = ibis_node::serve(ServeOptions {
            data_dir: dir.path().to_owned(),
            listen: Some("127.0.0.1:0".parse().expect("address")),
            ..ServeOptions::default()
        })
        .await
        .expect("serve");
        let addr = node.addr();
        let forged = "ibis_forgedButPlausibleSecretValue0123456789";

        let (socket, _) =
            tokio_tungstenite::connect_async(format!("{}?token={token}", node.sync_url()))
                .await
                .expect("a member's socket");
        drop(socket);
        match tokio_tungstenite::connect_async(format!("{}?token={forged}", node.sync_url())).await
        {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("a forged token was not refused: {:?}", other.map(|_| ())),
        }
        let reply = http(
            addr,
            format!(
                "GET /api/node?token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(reply.contains("\"amy\""), "{reply}");
        let reply = http(
            addr,
            format!(
                "GET /api/practices?q=x HTTP/1.1\r\nHost: {addr}\r\nCookie: ibis_session={session}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let body = serde_json::json!({"name": "amy", "password": password}).to_string();
        let reply = http(
            addr,
            format!(
                "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        node.shutdown().await.expect("shutdown");
        // The secrets without their `ibis_` prefix: any part of them is a leak.
        [
            ("an API token", token[5..].to_owned()),
            ("a forged token", forged[5..].to_owned()),
            ("a session cookie", session[5..].to_owned()),
            ("a password", password.to_owned()),
        ]
    })
    .await
    .expect("finishes in time");

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("/sync"),
        "requests are logged at all:\n{logs}"
    );
    assert!(
        logs.contains("/api/practices"),
        "requests are logged at all:\n{logs}"
    );
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "{what} in the logs:\n{logs}");
    }
}
