//! One editor: a signed-in client on its own WebSocket, typing trace text
//! at the end of its own block (its `editor N` line and what it typed
//! after it) at a steady rate, one change in flight, driven by the same
//! `ClientState` the browser runs ([`Full`]) or by a light typist that
//! keeps only its place in the text (`light.rs`). It reconnects (following
//! the cluster's moved close) and resends what was not acknowledged, as the
//! browser does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{close, ClientMessage, ServerMessage};
use shared::{Bias, Change, ClientId, ClientState, Delta, Revision, Verdict};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Counters of the whole run, read at the edges of a measured window.
#[derive(Default)]
pub struct Stats {
    pub keystrokes: AtomicU64,
    pub changes_sent: AtomicU64,
    /// Frames the server sent to the editors.
    pub messages_in: AtomicU64,
    pub acknowledged: AtomicU64,
    pub conflicts: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    /// Keystroke-to-other-editor latencies, in microseconds.
    pub latencies: Mutex<Vec<u32>>,
}

/// What the editors of a run share.
pub struct Run {
    pub ws_base: String,
    pub stats: Stats,
    /// Editors type while this is true.
    pub typing: AtomicBool,
    /// Becomes true when editors should report and hang up.
    pub finish: watch::Receiver<bool>,
    /// The first error messages, for the report.
    pub error_samples: Mutex<Vec<String>>,
}

impl Run {
    pub fn error(&self, message: String) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.error_samples.lock().expect("samples");
        if samples.len() < 10 {
            samples.push(message);
        }
    }
}

/// One document of the run: when each change was typed, until every other
/// editor has received it.
pub struct DocumentRun {
    pub id: String,
    pub editors: usize,
    sent: Mutex<HashMap<(u64, u64), (Instant, usize)>>,
    /// Editors connected so far (the floor's editors wait for all).
    pub connected: AtomicUsize,
}

impl DocumentRun {
    pub fn new(id: String, editors: usize) -> DocumentRun {
        DocumentRun {
            id,
            editors,
            sent: Mutex::default(),
            connected: AtomicUsize::new(0),
        }
    }

    /// Change `key` (client, seq), typed at `typed_at`, is being sent.
    pub fn sending(&self, key: (u64, u64), typed_at: Instant, run: &Run) {
        self.sent
            .lock()
            .expect("sent")
            .insert(key, (typed_at, self.editors.saturating_sub(1)));
        run.stats.changes_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Another editor received change `key`: its latency is counted.
    pub fn received(&self, key: (u64, u64), run: &Run) {
        let mut sent = self.sent.lock().expect("sent");
        if let Some((at, left)) = sent.get_mut(&key) {
            let micros = at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            *left -= 1;
            if *left == 0 {
                sent.remove(&key);
            }
            drop(sent);
            run.stats.latencies.lock().expect("latencies").push(micros);
        }
    }

    /// Changes sent that some other editor has not received.
    pub fn undelivered(&self) -> usize {
        self.sent.lock().expect("sent").len()
    }
}

/// What the run controller watches to tell when typing has settled.
#[derive(Default)]
pub struct Status {
    pub idle: AtomicBool,
    pub revision: AtomicU64,
}

/// One editor's settings.
pub struct Editor {
    pub client: ClientId,
    pub cookie: String,
    pub text: Arc<Vec<char>>,
    pub offset: usize,
    pub period: Duration,
    pub phase: Duration,
}

/// What an editor ends with.
pub struct Report {
    pub client: u64,
    pub acknowledged: Vec<u64>,
    pub typed: u64,
    pub unsynced: bool,
    pub replica: Replica,
}

/// The editors' WebSocket settings. tungstenite's default read buffer is
/// 128 KiB, zero-filled again before every read: a third of the
/// generator's CPU went to that `memset` with thousands of editors, each
/// reading one small frame at a time. The server reads with 4 KiB too.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Where editor `line` types: the end of its block, the lines from its
/// own `editor N` line up to the next editor's (the end of the text for
/// the last editor, before the final newline). Every editor appends to its
/// own block only, newlines included, so this is where it left off, and
/// for an editor that has not typed yet, the end of its `editor N` line.
///
/// Not the `line`-th line: an editor that joins after a neighbour above it
/// typed a newline would type on that neighbour's line, and their changes
/// would conflict. The markers are found in order (`editor 0`, then
/// `editor 1`, …), so `editor 1` typing a `0` never reads as `editor 10`.
pub fn block_end(text: &str, line: usize) -> usize {
    let mut next = 0;
    let mut marker = String::from("editor 0");
    let mut pos = 0usize;
    for l in text.split('\n') {
        if l.starts_with(&marker) {
            if next == line + 1 {
                return pos.saturating_sub(1);
            }
            next += 1;
            marker = format!("editor {next}");
        }
        pos += l.chars().count() + 1;
    }
    // `pos` counted a newline after the last line too.
    let len = pos - 1;
    if text.ends_with('\n') {
        len - 1
    } else {
        len
    }
}

/// What an editor keeps of its document, and how its keystrokes become
/// changes: the browser's `ClientState` ([`Full`]), or only its place in
/// the text ([`crate::light::Light`]). [`edit`] connects, reconnects and
/// measures either the same way.
pub trait Typist: Send {
    /// Whether the text has arrived: typing starts then.
    fn ready(&self) -> bool;
    /// The revision to rejoin at after a reconnect.
    fn revision(&self) -> Option<Revision>;
    /// One keystroke at the end of the editor's block.
    fn type_char(&mut self, ch: char) -> Result<(), String>;
    /// One frame from the server.
    fn hear(&mut self, frame: &str) -> Result<Heard, String>;
    /// The next change to send, when none is in flight.
    fn next_change(&mut self) -> Option<Change>;
    /// The connection dropped.
    fn disconnect(&mut self);
    /// After reconnecting: the change in flight, to send again.
    fn resend(&mut self) -> Option<Change>;
    /// Keystrokes not yet in the document.
    fn unsynced(&self) -> bool;
    /// What the run compares with the server's text at the end.
    fn replica(self) -> Replica;
}

/// What a frame told an editor.
pub enum Heard {
    Nothing,
    /// Another editor's change (client, seq) arrived.
    Other(u64, u64),
    /// Our change of this seq is in the document.
    Acknowledged(u64),
    /// Our change was rejected: a conflict.
    Rejected,
    /// Our change's base is too old: rejoin for the whole text.
    Resync,
    /// The server refused a message (nothing changed): reconnect and resend.
    Refused(String),
}

/// What an editor ends with, to compare with the server's text.
pub enum Replica {
    Text(String),
    /// A light editor's: the text's length in characters.
    Length(usize),
    /// None: the text never arrived.
    Missing,
}

impl Replica {
    /// Whether it agrees with the server's `text`.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Replica::Text(own) => own == text,
            Replica::Length(len) => *len == shared::text::char_count(text),
            Replica::Missing => false,
        }
    }
}

/// An editor running the browser's `ClientState`: the whole text, the
/// prediction, the tray.
pub struct Full {
    client: ClientId,
    line: usize,
    state: Option<ClientState>,
    /// Where it types, in its own text.
    cursor: usize,
}

impl Full {
    pub fn new(client: ClientId, line: usize) -> Full {
        Full {
            client,
            line,
            state: None,
            cursor: 0,
        }
    }
}

impl Typist for Full {
    fn ready(&self) -> bool {
        self.state.is_some()
    }

    fn revision(&self) -> Option<Revision> {
        self.state.as_ref().map(|s| s.revision())
    }

    fn type_char(&mut self, ch: char) -> Result<(), String> {
        let s = self.state.as_mut().ok_or("typing before the text arrived")?;
        let len = shared::text::char_count(s.text());
        self.cursor = self.cursor.min(len);
        let delta = Delta::splice(len, self.cursor, 0, ch.encode_utf8(&mut [0; 4])).expect("in range");
        s.edit(delta).map_err(|error| format!("edit: {error}"))?;
        self.cursor += 1;
        Ok(())
    }

    fn hear(&mut self, frame: &str) -> Result<Heard, String> {
        let message: ServerMessage =
            serde_json::from_str(frame).map_err(|error| format!("unreadable frame: {error}"))?;
        let mut heard = Heard::Nothing;
        let update = match message {
            ServerMessage::Joined {
                revision, text, policy, ..
            } => match (self.state.as_mut(), text) {
                (None, Some(text)) => {
                    self.cursor = block_end(&text, self.line);
                    self.state = Some(ClientState::new(self.client, policy, revision, text));
                    None
                }
                (Some(s), Some(text)) => {
                    self.cursor = block_end(&text, self.line);
                    Some(s.resync(revision, text).map_err(|e| format!("resync: {e}"))?)
                }
                _ => None,
            },
            ServerMessage::Accepted { change } => {
                let Some(s) = self.state.as_mut() else {
                    return Ok(Heard::Nothing);
                };
                if change.client != self.client {
                    heard = Heard::Other(change.client.get(), change.seq.0);
                }
                let seq = s.in_flight();
                let update = s.receive(&change).map_err(|e| format!("receive: {e}"))?;
                if let (Some(_), Some(seq)) = (update.acknowledged, seq) {
                    heard = Heard::Acknowledged(seq.0);
                }
                Some(update)
            }
            ServerMessage::Verdict { seq, verdict } => {
                let Some(s) = self.state.as_mut() else {
                    return Ok(Heard::Nothing);
                };
                heard = match &verdict {
                    Verdict::Accepted { .. } => Heard::Acknowledged(seq.0),
                    Verdict::Rejected { .. } => Heard::Rejected,
                    Verdict::Resync { .. } => Heard::Resync,
                };
                Some(s.receive_verdict(seq, &verdict).map_err(|e| format!("verdict: {e}"))?)
            }
            ServerMessage::Error { code, message, .. } => return Ok(Heard::Refused(format!("{code:?}: {message}"))),
            ServerMessage::Presence { .. } | ServerMessage::Role { .. } => None,
        };
        if let Some(local) = update.and_then(|u| u.local) {
            self.cursor = local.map_position(self.cursor, Bias::Left);
        }
        Ok(heard)
    }

    fn next_change(&mut self) -> Option<Change> {
        self.state.as_mut()?.poll_send()
    }

    fn disconnect(&mut self) {
        if let Some(s) = self.state.as_mut() {
            s.disconnect();
        }
    }

    fn resend(&mut self) -> Option<Change> {
        self.state.as_mut()?.reconnect()
    }

    fn unsynced(&self) -> bool {
        self.state.as_ref().is_none_or(|s| s.has_unsynced())
    }

    fn replica(self) -> Replica {
        match self.state {
            Some(s) => Replica::Text(s.text().to_owned()),
            None => Replica::Missing,
        }
    }
}

/// Runs an editor until the run finishes.
pub async fn edit<T: Typist>(
    mut typist: T,
    editor: Editor,
    run: Arc<Run>,
    doc: Arc<DocumentRun>,
    status: Arc<Status>,
) -> Report {
    let mut node_cookie: Option<String> = None;
    let mut typed = 0u64;
    // When the keystrokes not yet sent were typed: the earliest counts.
    let mut pending: Option<Instant> = None;
    let mut acknowledged = Vec::new();
    let mut backoff = Duration::from_millis(100);
    let mut fresh = false;
    let mut finish = run.finish.clone();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + editor.phase, editor.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let url = format!("{}/ws/d/{}", run.ws_base, doc.id);
    'connection: loop {
        if *finish.borrow() {
            break;
        }
        let mut request = url.clone().into_client_request().expect("a valid URL");
        let mut cookies = editor.cookie.clone();
        if let Some(node) = &node_cookie {
            cookies.push_str("; ");
            cookies.push_str(node);
        }
        request.headers_mut().insert("cookie", cookies.parse().expect("cookie"));
        let socket = match tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true).await {
            Ok((socket, response)) => {
                for value in response.headers().get_all("set-cookie") {
                    if let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) {
                        if pair.starts_with("collab_node=") {
                            node_cookie = Some(pair.to_owned());
                        }
                    }
                }
                socket
            }
            Err(error) => {
                run.error(format!("connect: {error}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (mut tx, mut rx) = socket.split();
        let join = ClientMessage::Join {
            document: doc.id.clone(),
            client: editor.client,
            revision: if fresh { None } else { typist.revision() },
            name: None,
        };
        fresh = false;
        let mut outbox = vec![join];
        if let Some(change) = typist.resend() {
            outbox.push(ClientMessage::Submit { change });
        }
        for message in outbox {
            if tx
                .send(Message::text(serde_json::to_string(&message).expect("json")))
                .await
                .is_err()
            {
                continue 'connection;
            }
        }
        loop {
            let typing = run.typing.load(Ordering::Relaxed);
            tokio::select! {
                _ = tick.tick(), if typing && typist.ready() => {
                    let ch = editor.text[(editor.offset + typed as usize) % editor.text.len()];
                    if let Err(error) = typist.type_char(ch) {
                        run.error(error);
                        continue;
                    }
                    typed += 1;
                    pending.get_or_insert_with(Instant::now);
                    run.stats.keystrokes.fetch_add(1, Ordering::Relaxed);
                }
                frame = rx.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                            if code != close::MOVED {
                                run.error(format!("closed with {code}"));
                            }
                            break;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => {
                            if !*finish.borrow() {
                                run.error(format!("socket: {error}"));
                            }
                            break;
                        }
                        None => break,
                    };
                    run.stats.messages_in.fetch_add(1, Ordering::Relaxed);
                    // The server answers: the next reconnect starts from a short wait.
                    backoff = Duration::from_millis(100);
                    match typist.hear(text.as_str()) {
                        Ok(Heard::Nothing) => {}
                        Ok(Heard::Other(client, seq)) => doc.received((client, seq), &run),
                        Ok(Heard::Acknowledged(seq)) => {
                            acknowledged.push(seq);
                            run.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Heard::Rejected) => {
                            run.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Heard::Resync) => {
                            fresh = true;
                            break;
                        }
                        Ok(Heard::Refused(error)) => {
                            run.error(error);
                            // The change was not applied: resend it over a new connection.
                            break;
                        }
                        Err(error) => run.error(error),
                    }
                }
                _ = finish.changed() => {
                    if *finish.borrow() {
                        let _ = tx.send(Message::Close(None)).await;
                        break 'connection;
                    }
                }
            }
            while let Some(change) = typist.next_change() {
                let typed_at = pending.take().unwrap_or_else(Instant::now);
                doc.sending((change.client.get(), change.seq.0), typed_at, &run);
                let message = ClientMessage::Submit { change };
                if tx
                    .send(Message::text(serde_json::to_string(&message).expect("json")))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if let Some(revision) = typist.revision() {
                status.idle.store(!typist.unsynced(), Ordering::Relaxed);
                status.revision.store(revision.0, Ordering::Relaxed);
            }
        }
        typist.disconnect();
        if *finish.borrow() {
            break;
        }
        run.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Report {
        client: editor.client.get(),
        acknowledged,
        typed,
        unsynced: typist.unsynced(),
        replica: typist.replica(),
    }
}

/// The revision an editor has reached.
pub fn revision(status: &Status) -> Revision {
    Revision(status.revision.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::block_end;

    #[test]
    fn each_editor_types_at_the_end_of_its_own_block() {
        let text = "editor 0\nédïtor 1 typed\n\neditor 3\n";
        // No `editor 1` line: editor 0's block runs to the end.
        assert_eq!(block_end(text, 0), 9 + 15 + 1 + 8);
        let text = "editor 0\neditor 1 typed\nmore\neditor 2\n";
        assert_eq!(block_end(text, 0), 8);
        assert_eq!(block_end(text, 1), 9 + 14 + 1 + 4);
        assert_eq!(block_end(text, 2), 9 + 15 + 5 + 8);
        // An editor past the last one: the end of the text, before its newline.
        assert_eq!(block_end("a\n", 5), 1);
        assert_eq!(block_end("a", 5), 1);
    }

    #[test]
    fn a_newline_typed_above_does_not_move_an_editor_to_another_line() {
        // Editor 0 typed a newline before editor 2 joined: the third line is
        // now editor 1's, and editor 2 still types after `editor 2`.
        let text = "editor 0\n\neditor 1\neditor 2\n";
        assert_eq!(block_end(text, 1), 10 + 8);
        assert_eq!(block_end(text, 2), 19 + 8);
    }

    #[test]
    fn markers_are_read_in_order() {
        // Editor 1 typed "0": its line is not editor 10's.
        let text: String = (0..12)
            .map(|j| {
                if j == 1 {
                    "editor 10\n".to_string()
                } else {
                    format!("editor {j}\n")
                }
            })
            .collect();
        let starts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        assert_eq!(block_end(&text, 1), starts[1]);
        assert_eq!(block_end(&text, 10), starts[10]);
        assert_eq!(block_end(&text, 11), starts[11]);
    }
}
