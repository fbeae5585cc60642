//! The document actor: one task per open document, its only writer.
//!
//! Commands arrive on a queue and are handled in batches: every change in
//! the batch is merged, one at a time, with the shared engine; then the
//! accepted changes (and the rejected ones) are appended to the op log in
//! one transaction; only then do verdicts, broadcasts and catch-ups go out.
//! So nothing is acknowledged before it is durable, and a client never
//! sees a revision that a crash could take back.
//!
//! Every second while the document changes, its text is written as a
//! snapshot. When no one has been connected for a while, the actor writes a
//! last snapshot and stops; the next request loads the document again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use shared::api::Role;
use shared::protocol::{ErrorCode, Peer, ServerMessage};
use shared::{AcceptedChange, Author, Change, DocumentState, Revision, SectionPolicy, Verdict};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval, Instant, MissedTickBehavior};

use super::Context;
use crate::error::Error;
use crate::outlet::Sent;
use crate::store::{Fence, RejectedChange};

/// A connection's id, unique in the process.
pub type ConnId = u64;

/// A connection's way out (`crate::outlet`), shared by its reader and the
/// actor of the document it joined.
pub type Outlet = crate::outlet::Outlet<Message>;

/// A close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// A request to a document actor.
pub enum Command {
    /// A connection joins (its outlet, who it is, its revision).
    Join {
        conn: ConnId,
        outlet: Outlet,
        peer: Peer,
        revision: Option<Revision>,
        done: oneshot::Sender<()>,
    },
    /// A change from a joined connection.
    Submit {
        conn: ConnId,
        change: Change,
        author: Author,
    },
    /// A connection left.
    Leave { conn: ConnId },
    /// A joined connection's role changed (for the presence list).
    SetRole { conn: ConnId, role: Role },
    /// The current text and revision (once durable).
    Read {
        reply: oneshot::Sender<(Revision, String, SectionPolicy)>,
    },
    /// Write a last snapshot and stop.
    Stop { done: oneshot::Sender<()> },
    /// The document is being deleted: tell everyone and stop.
    Delete { done: oneshot::Sender<()> },
}

struct Connection {
    outlet: Outlet,
    peer: Peer,
    /// Its frames of the batch being delivered (kept to reuse its room).
    batch: Vec<Message>,
}

impl Connection {
    /// Closes the socket after what is queued.
    fn close(&self, code: u16, reason: &str) {
        self.outlet.close_with(close_frame(code, reason));
    }
}

/// Where a frame goes.
enum Target {
    One(ConnId),
    All(Vec<ConnId>),
}

/// What a batch has to say once it is durable.
#[derive(Default)]
struct Outbox {
    frames: Vec<(Target, Utf8Bytes)>,
    reads: Vec<oneshot::Sender<(Revision, String, SectionPolicy)>>,
    joined: Vec<oneshot::Sender<()>>,
    accepted: Vec<Arc<AcceptedChange>>,
    rejected: Vec<RejectedChange>,
}

pub(super) struct Actor {
    id: String,
    generation: u64,
    doc: DocumentState,
    context: Context,
    /// This owner's fencing token: appends present it.
    fence: Fence,
    connections: HashMap<ConnId, Connection>,
    /// The last revision written as a snapshot to the database, and to the cache.
    snapshot_revision: Revision,
    cached_revision: Revision,
    /// Snapshot ticks since the last database snapshot.
    ticks: u32,
    /// When the last accepted change was made durable (ms since the epoch):
    /// the document's `updated_at`, written with its next snapshot.
    changed_at: i64,
}

/// A server message as a text frame, serialized once for every recipient.
pub fn frame(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("server messages serialize"))
}

impl Actor {
    /// Loads a document: the newest snapshot old enough to fill the
    /// rebasing window, then the op log after it, and the verdicts given
    /// since (so resent changes are recognised). Takes a new fencing token
    /// first, so no former owner can append while (or after) it loads.
    pub(super) async fn load(id: &str, generation: u64, context: Context) -> Result<Actor, Error> {
        let store = &context.store;
        let fence = store.take_fence(id).await?;
        let meta = store
            .document(id)
            .await?
            .ok_or_else(|| Error::UnknownDocument(id.to_owned()))?;
        let anchor = Revision(meta.head.0.saturating_sub(context.settings.limits.window as u64));
        let (base, text) = match store.snapshot_at_or_before(id, anchor).await? {
            Some(snapshot) => snapshot,
            None => store
                .snapshot_at_or_before(id, meta.head)
                .await?
                .ok_or_else(|| Error::Corrupt(format!("document {id} has no snapshot")))?,
        };
        let mut doc = DocumentState::new(&text, base, meta.policy, context.settings.limits);
        let mut after = base;
        loop {
            let ops = store.ops_after(id, after, 10_000).await?;
            let Some(last) = ops.last() else { break };
            after = last.revision;
            for change in ops {
                doc.replay(change)?;
            }
        }
        for rejected in store.rejected_since(id, base).await? {
            doc.remember_verdict(rejected.client, rejected.seq, rejected.verdict);
        }
        tracing::debug!(
            document = id,
            snapshot = base.0,
            revision = doc.revision().0,
            fence = fence.0,
            "document loaded"
        );
        context.metrics.documents.fetch_add(1, Ordering::Relaxed);
        Ok(Actor {
            id: id.to_owned(),
            generation,
            snapshot_revision: doc.revision(),
            cached_revision: Revision(0),
            doc,
            context,
            fence,
            connections: HashMap::new(),
            ticks: 0,
            changed_at: meta.updated_at,
        })
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let settings = self.context.settings.clone();
        let mut snapshots = interval(settings.snapshot_interval);
        snapshots.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut idle_since = Instant::now();
        let mut idle_check = interval(Duration::from_millis(500).min(settings.idle_timeout));
        // The lease is renewed by a task of its own, so that a batch stuck
        // retrying its append (the database restarting) does not let it lapse.
        let (lost, mut lease_lost) = tokio::sync::watch::channel(false);
        let renewer = self.context.cluster.clone().map(|cluster| {
            let id = self.id.clone();
            tokio::spawn(async move {
                let mut renewals = interval(cluster.lease_ttl() / 4);
                renewals.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    renewals.tick().await;
                    match cluster.renew(&id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = lost.send(true);
                            return;
                        }
                        // Redis is away: keep serving; the fence in the database keeps this safe.
                        Err(error) => tracing::warn!(document = %id, %error, "lease renewal failed"),
                    }
                }
            })
        });
        let end = loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break End::Unload };
                    let mut batch = vec![command];
                    while batch.len() < 512 {
                        match commands.try_recv() {
                            Ok(command) => batch.push(command),
                            Err(_) => break,
                        }
                    }
                    let waiting = commands.len() as i64;
                    self.context.metrics.max_queue.store(batch.len() as i64 + waiting, Ordering::Relaxed);
                    match self.handle(batch).await {
                        Flow::Continue => {}
                        Flow::Stop(done) => break End::Stop(done),
                        Flow::Deleted(done) => break End::Deleted(done),
                        Flow::Fenced => break End::Fenced,
                    }
                    if !self.connections.is_empty() {
                        idle_since = Instant::now();
                    }
                }
                _ = snapshots.tick() => self.snapshot(false).await,
                // (Err: no renewer, in embedded mode: the branch is disabled.)
                Ok(()) = lease_lost.changed() => break End::Fenced,
                _ = idle_check.tick() => {
                    if !self.connections.is_empty() {
                        idle_since = Instant::now();
                    } else if idle_since.elapsed() >= settings.idle_timeout {
                        break End::Unload;
                    }
                }
            }
        };
        if let Some(renewer) = renewer {
            renewer.abort();
        }
        self.context.registry.forget(&self.id, self.generation);
        self.context.metrics.documents.fetch_sub(1, Ordering::Relaxed);
        match end {
            End::Unload | End::Stop(_) => {
                self.snapshot(true).await;
                if let Some(cluster) = &self.context.cluster {
                    cluster.release(&self.id).await;
                }
                if let End::Stop(done) = end {
                    for d in done {
                        let _ = d.send(());
                    }
                }
                tracing::debug!(document = %self.id, "document unloaded");
            }
            End::Deleted(done) => {
                let _ = done.send(());
            }
            End::Fenced => {
                // Another server owns the document now: hand every client
                // over (they reconnect and are sent to the owner). Nothing
                // of this process's unwritten state survives.
                self.context.metrics.fenced.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(document = %self.id, "another server owns the document now; stepping down");
                for connection in self.connections.values() {
                    connection.close(MOVED, "document moved");
                }
            }
        }
    }

    /// Handles a batch; returns whether to go on.
    async fn handle(&mut self, batch: Vec<Command>) -> Flow {
        let mut outbox = Outbox::default();
        let mut stop = Vec::new();
        let mut deleted = None;
        let mut presence = false;
        for command in batch {
            match command {
                Command::Join {
                    conn,
                    outlet,
                    peer,
                    revision,
                    done,
                } => {
                    let connection = Connection {
                        outlet,
                        peer,
                        batch: Vec::new(),
                    };
                    self.join(conn, connection, revision, &mut outbox).await;
                    outbox.joined.push(done);
                    presence = true;
                }
                Command::Submit { conn, change, author } => self.submit(conn, change, author, &mut outbox),
                Command::Leave { conn } => {
                    presence |= self.connections.remove(&conn).is_some();
                }
                Command::SetRole { conn, role } => {
                    if let Some(connection) = self.connections.get_mut(&conn) {
                        presence |= connection.peer.role != role;
                        connection.peer.role = role;
                    }
                }
                Command::Read { reply } => outbox.reads.push(reply),
                Command::Stop { done } => stop.push(done),
                Command::Delete { done } => deleted = Some(done),
            }
        }
        if presence {
            let peers = frame(&ServerMessage::Presence { peers: self.peers() });
            let everyone = self.connections.keys().copied().collect();
            outbox.frames.push((Target::All(everyone), peers));
        }
        if self.persist(&outbox).await.is_err() {
            return Flow::Fenced;
        }
        self.deliver(outbox);
        if let Some(done) = deleted {
            let message = frame(&ServerMessage::error(
                ErrorCode::DocumentDeleted,
                "the document was deleted",
                None,
            ));
            for connection in self.connections.values() {
                connection.outlet.send(Message::Text(message.clone()));
                connection.close(1000, "document deleted");
            }
            return Flow::Deleted(done);
        }
        if !stop.is_empty() {
            for connection in self.connections.values() {
                connection.close(1012, "server restarting");
            }
            return Flow::Stop(stop);
        }
        Flow::Continue
    }

    /// Who is here: one entry per user (with their highest role), by name.
    fn peers(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = Vec::new();
        for connection in self.connections.values() {
            match peers.iter_mut().find(|p| p.user == connection.peer.user) {
                Some(peer) => peer.role = peer.role.max(connection.peer.role),
                None => peers.push(connection.peer.clone()),
            }
        }
        peers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.user.cmp(&b.user)));
        peers
    }

    async fn join(&mut self, conn: ConnId, connection: Connection, revision: Option<Revision>, outbox: &mut Outbox) {
        // Catch up from the client's revision when the window or the op log
        // has everything since; otherwise start it over with the text. A
        // catch-up is a frame per change: it must fit the connection's queue
        // with room to spare, or the connection would be closed as too slow.
        let current = self.doc.revision();
        let settings = &self.context.settings;
        let max_catch_up = settings.max_catch_up.min(settings.outbound_queue as u64 / 2);
        let mut catch_up: Option<Vec<Arc<AcceptedChange>>> = None;
        if let Some(revision) = revision.filter(|r| *r <= current && current.0 - r.0 <= max_catch_up) {
            if let Some(changes) = self.doc.changes_since(revision) {
                catch_up = Some(changes.map(|c| Arc::new(c.clone())).collect());
            } else {
                let oldest = self.doc.oldest_base();
                match self
                    .context
                    .store
                    .ops_after(&self.id, revision, oldest.0 - revision.0)
                    .await
                {
                    Ok(mut ops) if ops.len() as u64 == oldest.0 - revision.0 => {
                        ops.extend(self.doc.changes_since(oldest).into_iter().flatten().cloned());
                        catch_up = Some(ops.into_iter().map(Arc::new).collect());
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(document = %self.id, error = %e, "catch-up from the op log failed"),
                }
            }
        }
        match catch_up {
            Some(changes) => {
                let joined = ServerMessage::Joined {
                    document: self.id.clone(),
                    revision: revision.expect("caught up from a revision"),
                    text: None,
                    policy: self.doc.policy(),
                };
                outbox.frames.push((Target::One(conn), frame(&joined)));
                for change in changes {
                    let message = ServerMessage::Accepted {
                        change: (*change).clone(),
                    };
                    outbox.frames.push((Target::One(conn), frame(&message)));
                }
            }
            None => {
                let joined = ServerMessage::Joined {
                    document: self.id.clone(),
                    revision: current,
                    text: Some(self.doc.text().to_string()),
                    policy: self.doc.policy(),
                };
                outbox.frames.push((Target::One(conn), frame(&joined)));
            }
        }
        self.connections.insert(conn, connection);
    }

    fn submit(&mut self, conn: ConnId, change: Change, author: Author, outbox: &mut Outbox) {
        // (The connection checked that the change is by its joined client.)
        if !self.connections.contains_key(&conn) {
            return;
        }
        let (client, seq, base, delta) = (change.client, change.seq, change.base, change.delta.clone());
        let started = Instant::now();
        let decided = self.doc.submit(change, author.clone());
        self.context.metrics.merge_latency.observe(started.elapsed());
        match decided {
            Ok(decision) => {
                if let Some(accepted) = decision.accepted {
                    let others: Vec<ConnId> = self.connections.keys().copied().filter(|c| *c != conn).collect();
                    let message = ServerMessage::Accepted {
                        change: (*accepted).clone(),
                    };
                    outbox.frames.push((Target::All(others), frame(&message)));
                    outbox.accepted.push(accepted);
                } else if let (Verdict::Rejected { revision, .. }, false) = (&decision.verdict, decision.repeated) {
                    outbox.rejected.push(RejectedChange {
                        client,
                        seq,
                        base,
                        revision: *revision,
                        author,
                        delta,
                        verdict: decision.verdict.clone(),
                    });
                }
                let verdict = ServerMessage::Verdict {
                    seq,
                    verdict: decision.verdict,
                };
                outbox.frames.push((Target::One(conn), frame(&verdict)));
            }
            Err(error) => {
                let message = ServerMessage::error(ErrorCode::of(&error), error.to_string(), Some(seq));
                outbox.frames.push((Target::One(conn), frame(&message)));
            }
        }
    }

    /// Makes the batch's changes durable, retrying until the database takes
    /// them; fails only when a newer owner holds the document.
    async fn persist(&mut self, outbox: &Outbox) -> Result<(), Error> {
        if outbox.accepted.is_empty() && outbox.rejected.is_empty() {
            return Ok(());
        }
        let accepted: Vec<&AcceptedChange> = outbox.accepted.iter().map(|c| &**c).collect();
        let mut delay = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            match self
                .context
                .store
                .append(&self.id, self.fence, &accepted, &outbox.rejected)
                .await
            {
                Ok(()) => {
                    self.context.metrics.append_latency.observe(started.elapsed());
                    if !accepted.is_empty() {
                        self.changed_at = crate::store::now_ms();
                    }
                    self.context
                        .metrics
                        .accepted
                        .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                    self.context
                        .metrics
                        .conflicts
                        .fetch_add(outbox.rejected.len() as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error @ Error::Fenced(_)) => return Err(error),
                Err(error) => {
                    tracing::error!(document = %self.id, %error, "op log append failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn deliver(&mut self, outbox: Outbox) {
        // Each connection's frames of the batch go out together, in order:
        // one write when its socket is idle.
        for (target, message) in &outbox.frames {
            let conns: &[ConnId] = match target {
                Target::One(conn) => std::slice::from_ref(conn),
                Target::All(conns) => conns,
            };
            for conn in conns {
                if let Some(connection) = self.connections.get_mut(conn) {
                    connection.batch.push(Message::Text(message.clone()));
                }
            }
        }
        let mut slow = Vec::new();
        for (conn, connection) in &mut self.connections {
            if connection.batch.is_empty() {
                continue;
            }
            match connection.outlet.send_all(connection.batch.drain(..)) {
                Sent::Queued => {}
                Sent::Evicted => slow.push((*conn, true)),
                Sent::Gone => slow.push((*conn, false)),
            }
        }
        // Either way the connection gets nothing more from this document.
        for (conn, evicted) in slow {
            if self.connections.remove(&conn).is_some() && evicted {
                self.context.metrics.slow_connections.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(document = %self.id, conn, "closing a connection that fell too far behind");
            }
        }
        for done in outbox.joined {
            let _ = done.send(());
        }
        if !outbox.reads.is_empty() {
            let text = self.doc.text().to_string();
            for reply in outbox.reads {
                let _ = reply.send((self.doc.revision(), text.clone(), self.doc.policy()));
            }
        }
    }

    /// Writes the text as a snapshot if it changed since the last one: in
    /// cluster mode to the Redis cache every tick; to the database every
    /// `db_snapshot_every` ticks, and on `last` whatever the tick. (Embedded,
    /// the live actor is the cache.) The op log holds every change, so a
    /// snapshot only shortens loading. A database snapshot also sets the
    /// document's `updated_at` (what the home page lists by) to the time of
    /// its last change.
    async fn snapshot(&mut self, last: bool) {
        let revision = self.doc.revision();
        let settings = &self.context.settings;
        self.ticks += 1;
        let to_cache = self.context.cluster.is_some() && revision > self.cached_revision;
        let to_db = (last || self.ticks >= settings.db_snapshot_every) && revision > self.snapshot_revision;
        if !to_cache && !to_db {
            return;
        }
        let text = self.doc.text().to_string();
        if let Some(cluster) = &self.context.cluster {
            if to_cache {
                match cluster.put_snapshot(&self.id, revision, &text).await {
                    Ok(()) => self.cached_revision = revision,
                    Err(error) => tracing::warn!(document = %self.id, %error, "caching the snapshot failed"),
                }
            }
        }
        if to_db {
            self.ticks = 0;
            let keep_from = Revision(revision.0.saturating_sub(settings.limits.window as u64));
            match self
                .context
                .store
                .save_snapshot(&self.id, revision, &text, keep_from, self.changed_at)
                .await
            {
                Ok(()) => self.snapshot_revision = revision,
                Err(error) => tracing::warn!(document = %self.id, %error, "snapshot failed; will retry"),
            }
        }
    }
}

/// The close code that sends a client to reconnect at once: the document is
/// served elsewhere now.
pub const MOVED: u16 = shared::protocol::close::MOVED;

/// Why the actor stopped.
enum End {
    Unload,
    Stop(Vec<oneshot::Sender<()>>),
    Deleted(oneshot::Sender<()>),
    Fenced,
}

enum Flow {
    Continue,
    Stop(Vec<oneshot::Sender<()>>),
    Deleted(oneshot::Sender<()>),
    Fenced,
}
