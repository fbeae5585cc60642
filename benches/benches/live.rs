//! The live server, measured (`cargo bench -p benches --bench live`).
//!
//! Prints, for the embedded default (SQLite) on this machine:
//! - keystroke-to-other-client latency with 10 clients typing into one
//!   document over loopback WebSockets (p50, p99, max);
//! - memory per open, idle document;
//! - op log appends per second SQLite sustains, one change per transaction
//!   and in batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collab::store::Store;
use collab::{serve, Cli, Config};
use futures_util::{SinkExt, StreamExt};
use leptos::prelude::LeptosOptions;
use shared::api::{NewDocument, SignUp, UserView};
use shared::protocol::{ClientMessage, ServerMessage};
use shared::{AcceptedChange, Author, ClientId, ClientState, Delta, Revision, SectionPolicy, Seq};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("collab-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Signs up a user; returns it and its session token.
async fn user(server: &collab::Server, name: &str) -> (UserView, String) {
    server
        .accounts()
        .sign_up(SignUp {
            email: format!("{name}@bench.example"),
            name: name.to_owned(),
            password: "correct horse battery".to_owned(),
        })
        .await
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    latency().await;
    idle_memory().await;
    appends().await;
}

async fn start(dir: &std::path::Path) -> collab::Server {
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = Config::resolve(
        Cli {
            database_url: Some(format!("sqlite://{}", dir.join("collab.db").display())),
            addr: Some(addr),
            ..Cli::default()
        },
        addr,
    )
    .unwrap();
    serve(config, LeptosOptions::builder().output_name("collab").build())
        .await
        .unwrap()
}

/// 10 clients, each typing on its own line at 5 keystrokes a second for 10
/// seconds; every keystroke is a unique character, timed from the moment it
/// is typed to the moment each other client has it in its text.
async fn latency() {
    const CLIENTS: usize = 10;
    const SECONDS: u64 = 10;
    const PER_SECOND: u64 = 5;
    let dir = temp_dir("latency");
    let server = start(&dir).await;
    let text: String = (0..CLIENTS).map(|i| format!("line {i}\n")).collect();
    let (owner, token) = user(&server, "typist").await;
    let doc = server
        .documents()
        .create(
            &owner,
            NewDocument {
                text: Some(text),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let typed: Arc<Mutex<HashMap<char, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (addr, id, typed, seen) = (server.addr, doc.id.clone(), typed.clone(), seen.clone());
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut request = format!("ws://{addr}/ws/d/{id}").into_client_request().unwrap();
            request
                .headers_mut()
                .insert("cookie", format!("{}={token}", shared::api::SESSION_COOKIE).parse().unwrap());
            let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            let join = ClientMessage::Join {
                document: id,
                client: ClientId::new(1000 + i as u64).unwrap(),
                revision: None,
                name: Some(format!("typist {i}")),
            };
            socket.send(Message::text(serde_json::to_string(&join).unwrap())).await.unwrap();
            let mut state = None::<ClientState>;
            let mut next_key = tokio::time::interval(Duration::from_millis(1000 / PER_SECOND));
            let end = Instant::now() + Duration::from_secs(SECONDS);
            let mut count = 0u32;
            loop {
                tokio::select! {
                    _ = next_key.tick(), if state.is_some() && Instant::now() < end => {
                        let s = state.as_mut().unwrap();
                        let ch = char::from_u32(0x4E00 + (i as u32) * 2000 + count).unwrap();
                        count += 1;
                        // At the end of this client's own line.
                        let line_end = s.text().split('\n').take(i + 1).map(|l| l.chars().count() + 1).sum::<usize>() - 1;
                        let len = shared::text::char_count(s.text());
                        typed.lock().unwrap().insert(ch, Instant::now());
                        s.edit(Delta::splice(len, line_end, 0, &ch.to_string()).unwrap()).unwrap();
                    }
                    message = socket.next() => {
                        let text = match message {
                            Some(Ok(Message::Text(text))) => text,
                            // The server's pings (every 2 s); tungstenite answers them.
                            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                            _ => break,
                        };
                        let message: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
                        match message {
                            ServerMessage::Joined { revision, text, policy, .. } => {
                                let mut s = ClientState::new(ClientId::new(1000 + i as u64).unwrap(), policy, revision, text.unwrap());
                                s.disconnect();
                                s.reconnect();
                                state = Some(s);
                            }
                            ServerMessage::Accepted { change } => {
                                let now = Instant::now();
                                let typed = typed.lock().unwrap();
                                let mut seen = seen.lock().unwrap();
                                for ch in change.delta.inserted_text("").chars() {
                                    if let Some(at) = typed.get(&ch) {
                                        seen.push(now - *at);
                                    }
                                }
                                drop((typed, seen));
                                state.as_mut().unwrap().receive(&change).unwrap();
                            }
                            ServerMessage::Verdict { seq, verdict } => {
                                state.as_mut().unwrap().receive_verdict(seq, &verdict).unwrap();
                            }
                            ServerMessage::Error { message, .. } => panic!("{message}"),
                            ServerMessage::Presence { .. } | ServerMessage::Role { .. } => {}
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(1500)), if Instant::now() > end => break,
                }
                if let Some(s) = state.as_mut() {
                    while let Some(change) = s.poll_send() {
                        let message = ClientMessage::Submit { change };
                        socket.send(Message::text(serde_json::to_string(&message).unwrap())).await.unwrap();
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let keystrokes = typed.lock().unwrap().len();
    println!(
        "latency, {CLIENTS} clients on one document, {PER_SECOND} keystrokes/s each: {keystrokes} keystrokes, {} deliveries; \
         keystroke to other client p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        seen.len(),
        percentile(&seen, 0.5).as_secs_f64() * 1e3,
        percentile(&seen, 0.99).as_secs_f64() * 1e3,
        seen.last().unwrap().as_secs_f64() * 1e3,
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Loads 1,000 documents of 1 KB with no one connected and measures the
/// process's resident memory before and after.
async fn idle_memory() {
    const DOCUMENTS: usize = 1000;
    let dir = temp_dir("memory");
    let server = start(&dir).await;
    let documents = server.documents();
    let (owner, _) = user(&server, "owner").await;
    let text = "a line of an idle document\n".repeat(38);
    let mut ids = Vec::new();
    for _ in 0..DOCUMENTS {
        ids.push(
            documents
                .create(
                    &owner,
                    NewDocument {
                        text: Some(text.clone()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .id,
        );
    }
    // Warm up the allocator and the database pool with a few loads first.
    for id in ids.iter().take(10) {
        documents.view(&owner, id).await.unwrap();
    }
    let before = rss_bytes();
    for id in &ids[10..] {
        documents.view(&owner, id).await.unwrap();
    }
    let after = rss_bytes();
    println!(
        "memory: {} idle documents of {} bytes loaded: {} KiB resident more, {:.1} KiB per document (open: {})",
        DOCUMENTS - 10,
        text.len(),
        (after.saturating_sub(before)) / 1024,
        after.saturating_sub(before) as f64 / 1024.0 / (DOCUMENTS - 10) as f64,
        documents.open_count(),
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Appends to the op log as the actor does: one transaction per batch.
async fn appends() {
    let dir = temp_dir("appends");
    let store = Store::connect(&format!("sqlite://{}", dir.join("collab.db").display()))
        .await
        .unwrap();
    let owner = UserView {
        id: "bench".into(),
        name: "bench".into(),
        color: shared::api::COLORS[0].into(),
        email: "bench@bench.example".into(),
    };
    store.create_user(&owner, "-").await.unwrap();
    store
        .create_document("d", "bench", SectionPolicy::Line, "", &owner.id)
        .await
        .unwrap();
    let change = |revision: u64| AcceptedChange {
        revision: Revision(revision),
        client: ClientId::new(1).unwrap(),
        seq: Seq(revision),
        author: Author::new("bench"),
        delta: Delta::splice(revision as usize - 1, revision as usize - 1, 0, "x").unwrap(),
    };
    let fence = store.take_fence("d").await.unwrap();
    let mut revision = 0;
    for batch in [1usize, 10, 100] {
        let started = Instant::now();
        let mut appended = 0;
        while started.elapsed() < Duration::from_secs(3) {
            let changes: Vec<AcceptedChange> = (0..batch)
                .map(|_| {
                    revision += 1;
                    change(revision)
                })
                .collect();
            let refs: Vec<&AcceptedChange> = changes.iter().collect();
            store.append("d", fence, &refs, &[]).await.unwrap();
            appended += batch;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "sqlite op log (WAL, synchronous=FULL), {batch} change(s) per commit: {:.0} commits/s, {:.0} changes/s",
            appended as f64 / batch as f64 / seconds,
            appended as f64 / seconds
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
