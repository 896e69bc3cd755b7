//! nginx with `deploy/nginx-cache.conf` in front of a node, as `deploy/` sets it up: its
//! own configuration and cache in a directory of the caller's, listening on an ephemeral
//! port of 127.0.0.1, in the foreground, stopped by its PID when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// Where Debian installs nginx (`cargo xtask setup` installs it).
pub const NGINX: &str = "/usr/sbin/nginx";

/// Whether nginx is installed.
pub fn nginx_available() -> bool {
    Path::new(NGINX).exists()
}

/// A running nginx caching a node's answers.
pub struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx in `dir` (its configuration, cache and logs go there) in front of the
    /// node at `node`, with `worker_processes` workers; returns once it accepts
    /// connections.
    pub async fn start(
        dir: &Path,
        node: SocketAddr,
        worker_processes: usize,
    ) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let snippet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx-cache.conf");
        let d = dir.display();
        let config = format!(
            "daemon off;
worker_processes {worker_processes};
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=ibis:10m inactive=10m use_temp_path=off;
    upstream ibis {{
        server {node};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://ibis;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            include {snippet};
        }}
    }}
}}
",
            snippet = snippet.display()
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, config)?;
        let child = std::process::Command::new(NGINX)
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("cannot start nginx")?;
        let nginx = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let addr = nginx.addr;
        crate::eventually(
            Duration::from_secs(10),
            "nginx to accept connections",
            || async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) },
        )
        .await?;
        Ok(nginx)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    /// A fast shutdown (SIGTERM: the master stops its workers), then SIGKILL if the master
    /// has not exited within five seconds (its workers would outlive a SIGKILL).
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
