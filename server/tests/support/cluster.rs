//! A local cluster for tests (started with `deploy/cluster.sh` in a
//! directory and port range of its own) and a client that behaves like the
//! browser behind nginx: it keeps the node cookie per document, reconnects
//! at once when sent elsewhere (close code 4001) and with backoff otherwise,
//! and gives up on a connection whose server stopped answering.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{ClientMessage, ServerMessage};
use shared::{ClientId, ClientState, Delta, Revision, SectionPolicy};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use sea_orm::{ConnectionTrait, Database, Statement};
use shared::api::DocumentView;

use super::{http_as, sign_up, Account, Socket};

/// A running cluster; stopped on drop.
pub struct LocalCluster {
    pub dir: PathBuf,
    pub port: u16,
    pub nodes: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A base port with the next `count` ports free.
pub fn free_ports(count: u16) -> u16 {
    let mut seed = [0u8; 2];
    getrandom::getrandom(&mut seed).unwrap();
    'search: for attempt in 0..200u16 {
        let base = 20_000 + (u16::from_le_bytes(seed).wrapping_add(attempt * 7919) % 3000) * 10;
        for p in base..base + count {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free ports");
}

impl LocalCluster {
    pub fn start(name: &str, nodes: usize, lease_ms: u64) -> LocalCluster {
        let port = free_ports(nodes as u16 + 3);
        let dir = std::env::temp_dir().join(format!("collab-cluster-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = LocalCluster { dir, port, nodes };
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_collab"));
        let status = cluster
            .script(&["start"])
            .env("COLLAB_BIN", bin)
            .env("COLLAB_LEASE_MS", lease_ms.to_string())
            // Every test client comes from 127.0.0.1, and each test user
            // edits many documents at once.
            .env("COLLAB_MAX_CONNECTIONS_PER_IP", "5000")
            .env("COLLAB_MAX_CONNECTIONS_PER_USER", "200")
            .env(
                "RUST_LOG",
                std::env::var("COLLAB_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .status()
            .unwrap();
        assert!(status.success(), "deploy/cluster.sh start failed");
        cluster
    }

    fn script(&self, args: &[&str]) -> Command {
        let mut command = Command::new(root().join("deploy/cluster.sh"));
        command
            .args(args)
            .env("COLLAB_CLUSTER_DIR", &self.dir)
            .env("COLLAB_CLUSTER_PORT", self.port.to_string())
            .env("COLLAB_CLUSTER_NODES", self.nodes.to_string());
        command
    }

    /// Runs `deploy/cluster.sh <args>`.
    pub fn run(&self, args: &[&str]) {
        let status = self.script(args).env("RUST_LOG", "warn").status().unwrap();
        assert!(status.success(), "deploy/cluster.sh {args:?} failed");
    }

    /// The nginx address.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn node_addr(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.port as usize + node)
    }

    pub fn database_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/collab",
            self.port as usize + self.nodes + 2
        )
    }

    /// A metric's value on one node.
    pub async fn metric(&self, node: usize, name: &str) -> u64 {
        let (_, body) = super::http_get(&self.node_addr(node), "/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.script(&["stop"]).status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Counts one client keeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub reconnects: usize,
    pub resent: usize,
    pub moved: usize,
}

/// A browser-like client of one document behind nginx.
pub struct ClusterClient {
    pub state: ClientState,
    pub document: String,
    addr: String,
    /// The session cookie (`collab_session=…`).
    session: String,
    cookie: Option<String>,
    socket: Option<Socket>,
    /// Joined once already (its state holds the document).
    joined: bool,
    /// The next join asks for the whole text (the server said to resync).
    needs_text: bool,
    sent_at: Option<Instant>,
    pub tally: Tally,
    /// Unique tokens typed, in order.
    pub typed: Vec<String>,
}

/// How long a change may go unanswered before the connection is dropped.
const UNANSWERED: Duration = Duration::from_secs(3);

impl ClusterClient {
    pub fn new(addr: &str, document: &str, id: u64, account: &Account) -> ClusterClient {
        let mut state = ClientState::new(
            ClientId::new(id).unwrap(),
            SectionPolicy::Line,
            Revision(0),
            String::new(),
        );
        state.disconnect();
        ClusterClient {
            state,
            document: document.to_owned(),
            addr: addr.to_owned(),
            session: account.cookie.clone(),
            cookie: None,
            socket: None,
            joined: false,
            needs_text: true,
            sent_at: None,
            tally: Tally::default(),
            typed: Vec::new(),
        }
    }

    /// Connects (through nginx, with the node cookie) and joins, retrying
    /// until it works or `deadline` passes.
    pub async fn ensure_connected(&mut self, deadline: Instant) {
        let mut backoff = Duration::from_millis(50);
        while self.socket.is_none() {
            assert!(
                Instant::now() < deadline,
                "client of {} could not reconnect",
                self.document
            );
            match self.try_connect().await {
                Ok(()) => return,
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(800));
                }
            }
        }
    }

    async fn try_connect(&mut self) -> Result<(), String> {
        let mut request = format!("ws://{}/ws/d/{}", self.addr, self.document)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let cookies = match &self.cookie {
            Some(node) => format!("{}; collab_node={node}", self.session),
            None => self.session.clone(),
        };
        request
            .headers_mut()
            .insert("cookie", HeaderValue::from_str(&cookies).unwrap());
        // Longer than nginx waits on a stuck app server (5 s a try), so that
        // nginx gives up first and tries the next one.
        let (mut socket, response) =
            tokio::time::timeout(Duration::from_secs(25), tokio_tungstenite::connect_async(request))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| e.to_string())?;
        for value in response.headers().get_all("set-cookie") {
            if let Some(node) = value.to_str().ok().and_then(|v| v.strip_prefix("collab_node=")) {
                self.cookie = Some(node.split(';').next().unwrap_or("").to_owned());
            }
        }
        let revision = (!self.needs_text).then(|| self.state.revision());
        let join = ClientMessage::Join {
            document: self.document.clone(),
            client: self.state.client(),
            revision,
            name: None,
        };
        socket
            .send(Message::text(serde_json::to_string(&join).unwrap()))
            .await
            .map_err(|e| e.to_string())?;
        // The first answer: joined, or a close saying where to go.
        loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(text.as_str()).unwrap() {
                    ServerMessage::Joined {
                        revision, text, policy, ..
                    } => {
                        if let Some(text) = text {
                            if !self.joined {
                                self.state = ClientState::new(self.state.client(), policy, revision, text);
                                self.state.disconnect();
                            } else {
                                self.state.resync(revision, text).map_err(|e| e.to_string())?;
                            }
                        }
                        break;
                    }
                    other => return Err(format!("expected joined, got {other:?}")),
                },
                Ok(Some(Ok(Message::Close(frame)))) => {
                    if frame.is_some_and(|f| u16::from(f.code) == 4001) {
                        self.tally.moved += 1;
                    }
                    return Err("closed".into());
                }
                Ok(Some(Ok(_))) => continue,
                _ => return Err("no answer to join".into()),
            }
        }
        self.joined = true;
        self.needs_text = false;
        if let Some(change) = self.state.reconnect() {
            self.tally.resent += 1;
            socket
                .send(Message::text(
                    serde_json::to_string(&ClientMessage::Submit { change }).unwrap(),
                ))
                .await
                .map_err(|e| e.to_string())?;
            self.sent_at = Some(Instant::now());
        }
        self.socket = Some(socket);
        self.pump().await;
        Ok(())
    }

    fn drop_connection(&mut self) {
        self.socket = None;
        self.sent_at = None;
        self.state.disconnect();
        self.tally.reconnects += 1;
    }

    pub async fn pump(&mut self) {
        while let Some(change) = self.state.poll_send() {
            let text = serde_json::to_string(&ClientMessage::Submit { change }).unwrap();
            self.sent_at = Some(Instant::now());
            if let Some(socket) = &mut self.socket {
                if socket.send(Message::text(text)).await.is_err() {
                    self.drop_connection();
                    return;
                }
            }
        }
        if self.state.in_flight().is_none() {
            self.sent_at = None;
        }
    }

    /// Types a unique token at the end of line `line` (counted from 0, or
    /// the last line if there are fewer).
    pub fn type_on_line(&mut self, token: String, line: usize) {
        let text = self.state.text();
        let mut at = 0;
        for (i, l) in text.split('\n').enumerate() {
            at += l.chars().count();
            if i == line {
                break;
            }
            at += 1;
        }
        let len = shared::text::char_count(text);
        let at = at.min(len);
        self.state.edit(Delta::splice(len, at, 0, &token).unwrap()).unwrap();
        self.typed.push(token);
    }

    /// Types a unique token between existing tokens (never inside one).
    pub fn type_token(&mut self, token: String, pick: usize) {
        let text = self.state.text();
        let boundaries: Vec<usize> = std::iter::once(0)
            .chain(
                text.chars()
                    .enumerate()
                    .filter(|(_, c)| *c == '\n' || *c == '>')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let at = boundaries[pick % boundaries.len()];
        let len = shared::text::char_count(text);
        self.state.edit(Delta::splice(len, at, 0, &token).unwrap()).unwrap();
        self.typed.push(token);
    }

    /// Receives for up to `wait`, handling drops, moves and a silent server.
    pub async fn receive_for(&mut self, wait: Duration, deadline: Instant) {
        let until = Instant::now() + wait;
        loop {
            if self.socket.is_none() {
                self.ensure_connected(deadline).await;
            }
            if self.sent_at.is_some_and(|at| at.elapsed() > UNANSWERED) {
                self.drop_connection();
                continue;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let socket = self.socket.as_mut().expect("connected");
            match tokio::time::timeout(left.min(Duration::from_millis(200)), socket.next()).await {
                Err(_) => {}
                Ok(Some(Ok(Message::Text(text)))) => {
                    let message: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
                    let update = match message {
                        ServerMessage::Accepted { change } => self.state.receive(&change),
                        ServerMessage::Verdict { seq, verdict } => self.state.receive_verdict(seq, &verdict),
                        ServerMessage::Joined { .. } | ServerMessage::Presence { .. } | ServerMessage::Role { .. } => {
                            Ok(Default::default())
                        }
                        ServerMessage::Error { code, message, .. } => {
                            panic!("{}: server error {code:?}: {message}", self.document)
                        }
                    };
                    let update = update.unwrap_or_else(|e| panic!("{}: {e}", self.document));
                    if update.resync {
                        // Start over from the server's text: rejoin without a revision.
                        self.needs_text = true;
                        self.drop_connection();
                        continue;
                    }
                    self.pump().await;
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    if frame.is_some_and(|f| u16::from(f.code) == 4001) {
                        self.tally.moved += 1;
                    }
                    self.drop_connection();
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) => self.drop_connection(),
            }
        }
    }

    /// Receives until nothing is in flight or buffered and the revision is
    /// at least `revision`.
    pub async fn settle(&mut self, revision: Revision, deadline: Instant) {
        while self.state.in_flight().is_some() || self.state.has_unsynced() || self.state.revision() < revision {
            assert!(
                Instant::now() < deadline,
                "{}: did not settle (revision {}, want {revision})",
                self.document,
                self.state.revision()
            );
            self.receive_for(Duration::from_millis(100), deadline).await;
        }
    }
}

/// Creates a document owned by `owner` and makes each of `editors` an editor.
pub async fn create_document(addr: &str, owner: &Account, editors: &[Account], text: &str) -> String {
    let body = serde_json::json!({ "text": text }).to_string();
    let (status, body) = http_as(owner, addr, "POST", "/api/documents", Some(&body)).await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for editor in editors {
        let body = serde_json::json!({ "email": editor.user.email, "role": "editor" }).to_string();
        let (status, body) = http_as(
            owner,
            addr,
            "POST",
            &format!("/api/documents/{id}/members"),
            Some(&body),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    id
}

/// An owner, `clients` editors, and `documents` documents of one line per
/// editor (`line {c}:`), shared with all of them.
pub async fn shared_documents(addr: &str, documents: usize, clients: usize) -> (Account, Vec<Account>, Vec<String>) {
    let owner = sign_up(addr, "owner").await;
    let mut editors = Vec::new();
    for c in 0..clients {
        editors.push(sign_up(addr, &format!("editor{c}")).await);
    }
    let lines: String = (0..clients).map(|c| format!("line {c}:\n")).collect();
    let mut ids = Vec::new();
    for _ in 0..documents {
        ids.push(create_document(addr, &owner, &editors, &lines).await);
    }
    (owner, editors, ids)
}

pub async fn view(addr: &str, account: &Account, id: &str) -> DocumentView {
    let (status, body) = http_as(account, addr, "GET", &format!("/api/documents/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Checks one document after the run: every client has the server's text,
/// every token is there once or in its typist's tray. Returns (tokens in
/// the text, tray entries).
pub async fn verify(addr: &str, owner: &Account, clients: &mut [ClusterClient], deadline: Instant) -> (usize, usize) {
    let view = view(addr, owner, &clients[0].document).await;
    let mut kept = 0;
    let mut trays = 0;
    for client in clients.iter_mut() {
        client.settle(view.revision, deadline).await;
        assert_eq!(client.state.text(), view.text, "{}: the client converged", view.id);
        let tray: String = client.state.tray().iter().map(|e| e.inserted.as_str()).collect();
        trays += client.state.tray().len();
        for token in &client.typed {
            let count = view.text.matches(token.as_str()).count();
            assert!(
                count == 1 || (count == 0 && tray.contains(token.as_str())),
                "{}: {token} appears {count} times",
                view.id
            );
            kept += count;
        }
    }
    (kept, trays)
}

/// The op log of every document: revisions 1..=head without a gap, each
/// (client, sequence number) once.
pub async fn check_op_log(database_url: &str) -> usize {
    let db = Database::connect(database_url).await.unwrap();
    let backend = db.get_database_backend();
    let gaps = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT count(*) AS n FROM documents d \
             WHERE d.head_revision <> (SELECT count(*) FROM op_log o WHERE o.document_id = d.id) \
                OR d.head_revision <> (SELECT coalesce(max(revision), 0) FROM op_log o WHERE o.document_id = d.id)",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gaps.try_get::<i64>("", "n").unwrap(), 0, "an op log has a gap");
    let duplicates = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT count(*) AS n FROM (SELECT document_id, client_id, seq FROM op_log \
             GROUP BY document_id, client_id, seq HAVING count(*) > 1) t",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        duplicates.try_get::<i64>("", "n").unwrap(),
        0,
        "a change was applied twice"
    );
    let total = db
        .query_one_raw(Statement::from_string(backend, "SELECT count(*) AS n FROM op_log"))
        .await
        .unwrap()
        .unwrap();
    total.try_get::<i64>("", "n").unwrap() as usize
}
