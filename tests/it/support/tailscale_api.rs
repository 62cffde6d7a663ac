//! The Tailscale API stand-in: a small HTTP server on 127.0.0.1 answering
//! the OAuth token and key-creation calls (reference/tools.md §3) for one
//! OAuth client: form-encoded client credentials give a token; a key
//! request with that token and exactly the client's tags, not reusable,
//! preauthorized, gives the key; anything else gets the API's error.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request the stand-in got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub content_type: String,
    pub auth: String,
    pub body: String,
}

/// The OAuth client the stand-in knows, and what it hands out.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub id: &'static str,
    pub secret: &'static str,
    /// The access token for the client's credentials.
    pub token: &'static str,
    /// The auth key minted (and its id).
    pub key: &'static str,
    pub key_id: &'static str,
    /// The client's tags: keys must carry exactly these.
    pub tags: &'static [&'static str],
}

/// The stand-in API: serves until dropped; records every request, and
/// every process's command line at the time of each.
pub struct FakeApi {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub proc_snapshots: Arc<Mutex<Vec<String>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// (method, url) of each request.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .map(|s| (s.method.clone(), s.url.clone()))
            .collect()
    }
}

/// Every process's command line, one a line.
pub fn proc_cmdlines() -> String {
    let mut out = String::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
            out.push_str(&String::from_utf8_lossy(&b).replace('\0', " "));
            out.push('\n');
        }
    }
    out
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(req: tiny_http::Request, status: u16, body: serde_json::Value) {
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
    let _ = req.respond(
        tiny_http::Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(header),
    );
}

pub fn fake_api(client: Client) -> FakeApi {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
    let url = format!("http://{}", server.server_addr().to_ip().expect("ip"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let snaps = Arc::new(Mutex::new(Vec::new()));
    let (s, log, snap) = (server.clone(), seen.clone(), snaps.clone());
    let thread = std::thread::spawn(move || {
        for mut req in s.incoming_requests() {
            let (content_type, auth) =
                (header(&req, "Content-Type"), header(&req, "Authorization"));
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let seen = Seen {
                method: req.method().to_string(),
                url: req.url().to_string(),
                content_type,
                auth,
                body: body.clone(),
            };
            log.lock().expect("log").push(seen.clone());
            snap.lock().expect("snap").push(proc_cmdlines());
            match (seen.method.as_str(), seen.url.as_str()) {
                ("POST", "/api/v2/oauth/token") => {
                    let form: Vec<(String, String)> = form_urlencoded(&body);
                    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
                    if seen
                        .content_type
                        .starts_with("application/x-www-form-urlencoded")
                        && get("client_id") == Some(client.id)
                        && get("client_secret") == Some(client.secret)
                        && get("grant_type") == Some("client_credentials")
                    {
                        respond(
                            req,
                            200,
                            serde_json::json!({"access_token": client.token, "token_type": "Bearer", "expires_in": 3600, "scope": "auth_keys"}),
                        );
                    } else {
                        respond(
                            req,
                            401,
                            serde_json::json!({"error": "invalid_client", "error_description": "invalid client credentials"}),
                        );
                    }
                }
                ("POST", "/api/v2/tailnet/-/keys") => {
                    if seen.auth != format!("Bearer {}", client.token) {
                        respond(
                            req,
                            401,
                            serde_json::json!({"message": "API token invalid"}),
                        );
                        continue;
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let c = &v["capabilities"]["devices"]["create"];
                    let tags: Vec<&str> = c["tags"]
                        .as_array()
                        .map(|t| t.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    if tags.is_empty() {
                        respond(
                            req,
                            400,
                            serde_json::json!({"message": "tags are required for tailnet-owned keys"}),
                        );
                    } else if tags != client.tags {
                        respond(
                            req,
                            400,
                            serde_json::json!({"message": format!("requested tags {tags:?} are invalid or not permitted")}),
                        );
                    } else if c["reusable"] != false
                        || c["preauthorized"] != true
                        || !c["ephemeral"].is_boolean()
                    {
                        respond(req, 400, serde_json::json!({"message": "bad capabilities"}));
                    } else {
                        respond(
                            req,
                            200,
                            serde_json::json!({
                            "id": client.key_id, "key": client.key,
                            "created": "2026-11-26T13:00:00Z", "expires": "2026-11-26T13:10:00Z",
                            "capabilities": v["capabilities"], "description": v["description"]}),
                        );
                    }
                }
                _ => respond(req, 404, serde_json::json!({"message": "not found"})),
            }
        }
    });
    FakeApi {
        url,
        seen,
        proc_snapshots: snaps,
        server,
        thread: Some(thread),
    }
}

fn header(req: &tiny_http::Request, name: &'static str) -> String {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.to_string())
        .unwrap_or_default()
}

fn form_urlencoded(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
