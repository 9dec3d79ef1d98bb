//! Test harness: runs the real `hooklake` binary on port 0 with a temp data dir and a generated config,
//! and talks to it over loopback with a deliberately small raw HTTP/1.1 client (so tests can also send what a
//! well-behaved client never would: stalls, lies about lengths, invalid UTF-8).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The signing key every test config uses.
pub const SECRET: &str = "test-secret";

/// A running hooklake.
pub struct Hooklake {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stderr_log: PathBuf,
}

/// The default test pipeline: webhook → verify (insightiq) → dedup, plus `extra_verify` lines in the verify
/// table and `extra_source` lines in the source table.
pub fn config_text(extra_source: &str, extra_verify: &str) -> String {
    format!(
        r#"data_dir = "data"

[sources.insightiq]
type = "webhook"
listen = "127.0.0.1:0"
path = "/webhooks/insightiq"
{extra_source}

[transforms.verify]
type = "verify"
inputs = ["insightiq"]
secrets = ["{SECRET}"]
{extra_verify}

[transforms.dedup]
type = "dedup"
inputs = ["verify"]
"#
    )
}

impl Hooklake {
    /// Starts hooklake with the default pipeline.
    pub fn start() -> Self {
        Self::start_with(&config_text("", ""))
    }

    /// Starts hooklake with `config` in a new temp dir.
    pub fn start_with(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut h = Self::spawn_in(&dir);
        h._tmp = Some(tmp);
        h
    }

    /// Starts hooklake on the config already in `dir` (a restart after a crash).
    pub fn spawn_in(dir: &Path) -> Self {
        let config = dir.join("config.toml");
        let stderr_log = dir.join(format!("stderr-{}.log", Instant::now().elapsed().as_nanos()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hooklake"))
            .args(["run", "-c"])
            .arg(&config)
            .env("RUST_LOG", "hooklake=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap().to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("hooklake did not start; stderr:\n{}", std::fs::read_to_string(&stderr_log).unwrap_or_default());
            }
        };
        Self { child, addr, dir: dir.to_path_buf(), config, _tmp: None, stderr_log }
    }

    /// Sends raw request bytes and returns (status, body). Status 0 = the connection closed without an answer.
    pub fn raw(&self, request: &[u8]) -> (u16, String) {
        raw_request(self.addr, request)
    }

    /// POSTs `body` signed with [`SECRET`].
    pub fn post(&self, body: &[u8]) -> (u16, String) {
        self.post_with(body, &[("Webhook-Signatures", &sign(SECRET, body))])
    }

    /// POSTs `body` with exactly these extra headers.
    pub fn post_with(&self, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
        self.raw(&request("POST", "/webhooks/insightiq", headers, body))
    }

    /// GETs a path.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.raw(&request("GET", path, &[], b""))
    }

    /// SIGTERM, then wait for exit; returns the exit code.
    pub fn stop(mut self) -> (i32, Self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let Some(code) = wait_timeout(&mut self.child, Duration::from_secs(30)) else {
            panic!("hooklake did not exit within 30 s of SIGTERM; stderr:\n{}", self.stderr());
        };
        (code, self)
    }

    /// SIGKILL, no grace.
    pub fn kill9(mut self) -> Self {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self
    }

    /// The journal's contents, through `hooklake journal dump` (the server must be stopped).
    pub fn dump(&self) -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_hooklake"))
            .args(["journal", "dump", "-c"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success(), "journal dump failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Stops the server (SIGTERM) and returns the journal's contents.
    pub fn stop_and_dump(self) -> Vec<Value> {
        let (code, h) = self.stop();
        assert_eq!(code, 0, "hooklake exited with {code}; stderr:\n{}", h.stderr());
        h.dump()
    }

    /// Everything hooklake wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The value of a metric line (exact name with labels) from `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics");
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
    }
}

impl Drop for Hooklake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Lowercase hex HMAC-SHA256, as InsightIQ signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A documented-shape envelope with the given id.
pub fn envelope(id: &str) -> String {
    format!(
        r#"{{"event": "CONTENTS.ADDED", "name": "contents added", "id": "{id}", "data": {{"account_id": "2b3316b8f4684f03841140b547ec7eb3", "user_id": "9864110df20646d29860d0f687c2670d", "last_updated_time": "2021-10-25 16:45:26.761622", "items": ["0ccc5adf0d7d4eaabca56b58420f7da7"]}}}}"#
    )
}

/// A POST of `body` to the webhook path, signed with [`SECRET`].
pub fn signed_request(body: &[u8]) -> Vec<u8> {
    request("POST", "/webhooks/insightiq", &[("Webhook-Signatures", &sign(SECRET, body))], body)
}

/// Request bytes with a correct Content-Length and `Connection: close`.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) && method == "POST" {
        r.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Like [`raw_request`], but `None` when the server cannot be reached (it was killed).
pub fn try_raw_request(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let _ = s.write_all(request);
    Some(read_response(&mut s))
}

/// Sends bytes on a new connection and reads the answer until the server closes.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer (413) and close before taking the whole body: a failed write is part of the test.
    let _ = s.write_all(request);
    read_response(&mut s)
}

/// Reads one response (until close). Returns (0, "") if the server closed without answering.
pub fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Appends a raw `parquet` sink reading from `dedup` with these extra lines.
pub fn with_sink(config: &str, sink_lines: &str) -> String {
    format!("{config}\n[sinks.raw]\ntype = \"parquet\"\ninputs = [\"dedup\"]\n{sink_lines}\n")
}

/// Reads a lake back with DuckDB and pyarrow (`tests/lake_read.py`) and returns its JSON summary.
pub fn lake_summary(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake_read.py");
    let out = Command::new("python3").arg(script).args(args).output().expect("python3 must be installed");
    assert!(
        out.status.success(),
        "lake_read.py {args:?} failed (needs `pip install duckdb pyarrow boto3`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real S3-compatible server (`moto_server` from `pip install 'moto[server]'`) on loopback.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Starts moto and waits until it answers.
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be installed (pip install 'moto[server]')");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub fn bucket(&self, name: &str) {
        lake_summary(&["mkbucket", &self.endpoint(), name]);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sink lines for an S3 lake at `endpoint` (static test credentials; moto accepts any).
pub fn s3_sink_lines(endpoint: &str, bucket: &str, prefix: &str, extra: &str) -> String {
    format!(
        "url = \"s3://{bucket}/{prefix}\"\n{extra}\n[sinks.raw.options]\nendpoint = \"{endpoint}\"\nallow_http = \"true\"\nregion = \"us-east-1\"\naws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n"
    )
}

/// A TCP proxy on loopback that can be cut (connections refused and dropped) and restored: a network outage
/// between hooklake and a real server, without losing the server's state.
pub struct Proxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(AtomicBool::new(true));
        let generation = std::sync::Arc::new(AtomicU64::new(0));
        let (up2, gen2) = (up.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let born = gen2.load(Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    let (up3, gen3) = (up2.clone(), gen2.clone());
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut buf = [0u8; 16384];
                        loop {
                            if !up3.load(Ordering::SeqCst) || gen3.load(Ordering::SeqCst) != born {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => {
                                    let _ = to.shutdown(std::net::Shutdown::Write);
                                    return;
                                }
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Self { port, up, generation }
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `hooklake simulate --api-listen 127.0.0.1:0 ARGS` as its own process: the InsightIQ API the pipeline calls.
/// Its defaults: client `demo-client` / `example-secret`, 10 requests/s (`--rate-limit` changes it).
pub struct Simulator {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Simulator {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hooklake"))
            .args(["simulate", "--api-listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in simulator's first line: {line:?}"));
        Self { child, addr }
    }

    /// `GET /_sim/stats`.
    pub fn stats(&self) -> Value {
        let (status, body) = raw_request(self.addr, &request("GET", "/_sim/stats", &[], b""));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `PUT /_sim/faults` with a JSON body (`{}` = none).
    pub fn faults(&self, faults: &str) {
        let req = request("PUT", "/_sim/faults", &[("Content-Type", "application/json")], faults.as_bytes());
        let (status, body) = raw_request(self.addr, &req);
        assert!((200..300).contains(&status), "{status} {body}");
    }

    /// `POST /_sim/webhooks/{id}/deactivate`: what InsightIQ does after failed deliveries.
    pub fn deactivate(&self, id: &str) {
        let (status, body) =
            raw_request(self.addr, &request("POST", &format!("/_sim/webhooks/{id}/deactivate"), &[], b""));
        assert!((200..300).contains(&status), "{status} {body}");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads every table of a local lake back with pyarrow and DuckDB (`tests/lake_tables.py`).
pub fn lake_tables(dir: &Path) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake_tables.py");
    let out = Command::new("python3").arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "lake_tables.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The table and row count the shipped `insightiq` plugin must produce for an event, from what the simulator
/// serves for its items.
pub fn expected_rows(event: &str, items: &[String]) -> (Option<&'static str>, usize) {
    use hooklake::simulator::records;
    let family = event.split('.').next().unwrap_or("");
    match family {
        "CONTENTS" if event.contains("PUBLISH_") => (None, 0),
        "CONTENTS" => (Some("contents"), items.len()),
        "CONTENT-GROUPS" => (Some("content_groups"), items.len()),
        "TRANSACTIONS" => (Some("transactions"), items.len()),
        "PAYOUTS" => (Some("payouts"), items.len()),
        "BALANCES" => (Some("balances"), items.len()),
        "ACTIVITY-ARTISTS" => (Some("activity_artists"), items.len()),
        "ACTIVITY-CONTENTS" => (Some("activity_contents"), items.len()),
        "CONTENTS_COMMENTS" => (Some("comments"), items.iter().map(|c| records::comment_count(c)).sum()),
        "PROFILES" => (Some("profiles"), 1),
        "PROFILES_AUDIENCE" => (Some("audience"), 1),
        "ACCOUNTS" | "SESSION" => (Some("accounts"), 1),
        _ => (None, 0),
    }
}
