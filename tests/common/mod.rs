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
        let code = wait_timeout(&mut self.child, Duration::from_secs(30)).expect("hooklake did not exit after SIGTERM");
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
