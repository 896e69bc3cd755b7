//! What the node's HTTP tests share: a plain HTTP/1.1 GET and reading its answer.
#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status, head and body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The content of `<meta {attr}="{key}" content="…">`.
    pub fn meta(&self, attr: &str, key: &str) -> Option<String> {
        let start = format!("<meta {attr}=\"{key}\" content=\"");
        let from = self.body.find(&start)? + start.len();
        let len = self.body[from..].find('"')?;
        Some(unescape(&self.body[from..from + len]))
    }

    pub fn title(&self) -> String {
        let from = self.body.find("<title>").expect("a title") + "<title>".len();
        let len = self.body[from..].find("</title>").expect("closed");
        unescape(&self.body[from..from + len])
    }

    /// The page's JSON-LD, parsed.
    pub fn json_ld(&self) -> serde_json::Value {
        let start = r#"<script type="application/ld+json">"#;
        let from = self.body.find(start).expect("JSON-LD") + start.len();
        let len = self.body[from..].find("</script>").expect("closed");
        serde_json::from_str(&self.body[from..from + len]).expect("JSON-LD is JSON")
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// GET over plain HTTP/1.1 with these extra headers.
pub async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    Answer {
        status: head[9..12].parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Imports `records` (a JSON array of practice records) into a stopped node's data dir.
pub fn import_json(dir: &std::path::Path, records: serde_json::Value) -> ibis_node::import::Report {
    let file = dir.join("practices.json");
    std::fs::write(&file, records.to_string()).unwrap();
    ibis_node::import::import(dir, &file, ibis_node::import::Format::Json, "test").unwrap()
}

/// Serves a data dir on an ephemeral port of 127.0.0.1.
pub async fn serve(dir: &std::path::Path) -> ibis_node::RunningNode {
    ibis_node::serve(ibis_node::ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ibis_node::ServeOptions::default()
    })
    .await
    .unwrap()
}

/// GETs `path` until its answer satisfies `ready` (the index follows documents a moment
/// after they change), five seconds at most; the last answer.
pub async fn get_when(
    addr: std::net::SocketAddr,
    path: &str,
    ready: impl Fn(&Answer) -> bool,
) -> Answer {
    let mut answer = get(addr, path, &[]).await;
    for _ in 0..100 {
        if ready(&answer) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        answer = get(addr, path, &[]).await;
    }
    answer
}
