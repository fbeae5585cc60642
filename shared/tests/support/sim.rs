//! A simulated server and 2 to 10 simulated clients, joined by a network
//! that delays, reorders between connections, and drops.
//!
//! A run takes a list of [`Action`]s (random typing, message deliveries,
//! connection drops and reconnects, re-applying rejected edits), then lets
//! the network settle and checks the sync invariants:
//!
//! (a) every replica ends byte-identical to the server;
//! (b) a client's prediction always equals the server's verdict (the client
//!     state machine returns an error otherwise, which fails the run);
//! (c) no two concurrent changes that touch the same section are both
//!     accepted, checked against a naive reimplementation of the policies;
//! (d) nothing typed is lost: every typed character is in the final text,
//!     was deleted by an accepted change or by its own author, or sits in a
//!     rejected edits tray;
//! (e) a resent change is never applied twice.
//!
//! Every typed character is unique (drawn from CJK ranges, some of them
//! outside the Basic Multilingual Plane), except newlines.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use shared::{
    AcceptedChange, Author, Change, ClientId, ClientState, Delta, DocumentState, Limits, Revision, SectionPolicy, Seq,
    Verdict,
};

/// One step of a simulation. Indexes are taken modulo the number of clients.
#[derive(Clone, Debug)]
pub enum Action {
    /// A client edits its local text: at `at` (a fraction of its length, in
    /// 1/256ths) delete up to `delete` characters and type `insert` new ones,
    /// with a newline among them if `newline`.
    Type {
        client: usize,
        at: u8,
        delete: u8,
        insert: u8,
        newline: bool,
    },
    /// The oldest message from a client reaches the server.
    ToServer { client: usize },
    /// The oldest message from the server reaches a client.
    ToClient { client: usize },
    /// A client's connection drops; messages under way are lost.
    Drop { client: usize },
    /// A dropped client connects again.
    Reconnect { client: usize },
    /// A client re-applies the oldest entry of its rejected edits tray.
    Reapply { client: usize },
}

/// The shape of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub clients: usize,
    pub policy: SectionPolicy,
    /// Accepted changes the server keeps for rebasing.
    pub window: usize,
    pub initial: String,
}

/// What a run did, for reporting.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub accepted: usize,
    pub rejected: usize,
    pub resent: usize,
    pub resyncs: usize,
    pub tray_entries: usize,
    pub final_len: usize,
}

enum Up {
    Join { revision: Revision },
    Submit(Change),
    Fetch,
}

enum Down {
    Accepted(Arc<AcceptedChange>),
    Verdict(Seq, Verdict),
    Snapshot(Revision, String),
}

struct Client {
    state: ClientState,
    up: VecDeque<Up>,
    down: VecDeque<Down>,
    connected: bool,
    /// Every unique character typed, and those this client deleted itself.
    typed: Vec<char>,
    deleted_locally: HashSet<char>,
    /// Changes it submitted, by sequence number, as first sent.
    sent: HashMap<Seq, Change>,
}

struct Server {
    doc: DocumentState,
    log: Vec<AcceptedChange>,
    initial: String,
    connected: Vec<bool>,
    /// Rejected changes: who, which, the revision they were decided on and
    /// the revisions the verdict named.
    rejected: Vec<(ClientId, Seq, Revision, Vec<Revision>)>,
    resyncs: usize,
    resent: usize,
}

/// Unique characters: the CJK Unified Ideographs, then Extension B (four
/// bytes in UTF-8, two units in UTF-16).
struct Alphabet(u32);

impl Alphabet {
    fn next(&mut self) -> char {
        let n = self.0;
        self.0 += 1;
        let code = if n.is_multiple_of(2) {
            0x4E00 + n / 2
        } else {
            0x20000 + n / 2
        };
        char::from_u32(code).expect("valid ideograph")
    }
}

fn author(client: usize) -> Author {
    Author::new(&format!("user{client}"))
}

fn client_id(client: usize) -> ClientId {
    ClientId::new(client as u64 + 1).unwrap()
}

/// Runs the actions, settles, checks every invariant.
pub fn run(config: &Config, actions: &[Action]) -> Result<Report, String> {
    let n = config.clients;
    let limits = Limits {
        window: config.window,
        ..Limits::default()
    };
    let mut server = Server {
        doc: DocumentState::new(&config.initial, Revision(0), config.policy, limits),
        log: Vec::new(),
        initial: config.initial.clone(),
        connected: vec![true; n],
        rejected: Vec::new(),
        resyncs: 0,
        resent: 0,
    };
    let mut clients: Vec<Client> = (0..n)
        .map(|i| Client {
            state: ClientState::new(client_id(i), config.policy, Revision(0), config.initial.clone()),
            up: VecDeque::new(),
            down: VecDeque::new(),
            connected: true,
            typed: Vec::new(),
            deleted_locally: HashSet::new(),
            sent: HashMap::new(),
        })
        .collect();
    let mut alphabet = Alphabet(0);

    for action in actions {
        step(&mut server, &mut clients, &mut alphabet, action)?;
    }
    settle(&mut server, &mut clients)?;
    check(config, &mut server, &clients)
}

fn step(server: &mut Server, clients: &mut [Client], alphabet: &mut Alphabet, action: &Action) -> Result<(), String> {
    let n = clients.len();
    match *action {
        Action::Type {
            client,
            at,
            delete,
            insert,
            newline,
        } => {
            let c = &mut clients[client % n];
            let text: Vec<char> = c.state.text().chars().collect();
            let pos = text.len() * at as usize / 256;
            let del = (delete as usize % 4).min(text.len() - pos);
            let mut ins = String::new();
            for k in 0..(insert as usize % 4) {
                if newline && k == 0 {
                    ins.push('\n');
                } else {
                    let ch = alphabet.next();
                    c.typed.push(ch);
                    ins.push(ch);
                }
            }
            if newline && ins.is_empty() {
                ins.push('\n');
            }
            if del == 0 && ins.is_empty() {
                return Ok(());
            }
            c.deleted_locally.extend(text[pos..pos + del].iter().copied());
            let delta = Delta::splice(text.len(), pos, del, &ins).map_err(|e| e.to_string())?;
            c.state.edit(delta).map_err(|e| format!("edit: {e}"))?;
            pump(c);
        }
        Action::ToServer { client } => deliver_up(server, clients, client % n)?,
        Action::ToClient { client } => deliver_down(&mut clients[client % n])?,
        Action::Drop { client } => {
            let i = client % n;
            let c = &mut clients[i];
            if c.connected {
                c.connected = false;
                c.up.clear();
                c.down.clear();
                c.state.disconnect();
                server.connected[i] = false;
            }
        }
        Action::Reconnect { client } => reconnect(&mut clients[client % n]),
        Action::Reapply { client } => {
            let c = &mut clients[client % n];
            let fresh = c
                .state
                .tray()
                .iter()
                .find(|e| e.revision == c.state.revision())
                .map(|e| e.id);
            if let Some(id) = fresh {
                c.state.reapply(id).map_err(|e| format!("reapply: {e}"))?;
                pump(c);
            }
        }
    }
    Ok(())
}

fn reconnect(c: &mut Client) {
    if c.connected {
        return;
    }
    c.connected = true;
    c.up.push_back(Up::Join {
        revision: c.state.revision(),
    });
    if let Some(resend) = c.state.reconnect() {
        c.up.push_back(Up::Submit(resend));
    }
    pump(c);
}

/// Sends whatever the client state machine wants sent.
fn pump(c: &mut Client) {
    if !c.connected {
        return;
    }
    while let Some(change) = c.state.poll_send() {
        c.sent.insert(change.seq, change.clone());
        c.up.push_back(Up::Submit(change));
    }
}

fn deliver_up(server: &mut Server, clients: &mut [Client], i: usize) -> Result<(), String> {
    let Some(message) = clients[i].up.pop_front() else {
        return Ok(());
    };
    match message {
        Up::Join { revision } => {
            server.connected[i] = true;
            for change in server.log.iter().skip(revision.0 as usize) {
                clients[i].down.push_back(Down::Accepted(Arc::new(change.clone())));
            }
        }
        Up::Fetch => {
            let text = server.doc.text().to_string();
            clients[i].down.push_back(Down::Snapshot(server.doc.revision(), text));
        }
        Up::Submit(change) => {
            let seq = change.seq;
            let decision = server
                .doc
                .submit(change, author(i))
                .map_err(|e| format!("server refused a well-formed change: {e}"))?;
            if decision.repeated {
                server.resent += 1;
            }
            match &decision.verdict {
                Verdict::Rejected { revision, conflicts } if !decision.repeated => {
                    let named = conflicts.iter().map(|c| c.revision).collect();
                    server.rejected.push((client_id(i), seq, *revision, named));
                }
                Verdict::Resync { .. } => server.resyncs += 1,
                _ => {}
            }
            if let Some(accepted) = &decision.accepted {
                server.log.push((**accepted).clone());
                for (j, other) in clients.iter_mut().enumerate() {
                    if j != i && server.connected[j] {
                        other.down.push_back(Down::Accepted(accepted.clone()));
                    }
                }
            }
            clients[i].down.push_back(Down::Verdict(seq, decision.verdict));
        }
    }
    Ok(())
}

fn deliver_down(c: &mut Client) -> Result<(), String> {
    let Some(message) = c.down.pop_front() else {
        return Ok(());
    };
    let update = match message {
        Down::Accepted(change) => c
            .state
            .receive(&change)
            .map_err(|e| format!("receive r{}: {e}", change.revision))?,
        Down::Verdict(seq, verdict) => c
            .state
            .receive_verdict(seq, &verdict)
            .map_err(|e| format!("verdict on {seq}: {e}"))?,
        Down::Snapshot(revision, text) => c.state.resync(revision, text).map_err(|e| format!("resync: {e}"))?,
    };
    if update.resync {
        c.up.push_back(Up::Fetch);
    }
    pump(c);
    Ok(())
}

/// Reconnects everyone and delivers everything until nothing moves.
fn settle(server: &mut Server, clients: &mut [Client]) -> Result<(), String> {
    for c in clients.iter_mut() {
        reconnect(c);
    }
    for _round in 0..100_000 {
        let mut moved = false;
        for i in 0..clients.len() {
            if !clients[i].up.is_empty() {
                deliver_up(server, clients, i)?;
                moved = true;
            }
            if !clients[i].down.is_empty() {
                deliver_down(&mut clients[i])?;
                moved = true;
            }
        }
        if !moved {
            return Ok(());
        }
    }
    Err("the network never settled".into())
}

fn check(config: &Config, server: &mut Server, clients: &[Client]) -> Result<Report, String> {
    let final_text = server.doc.text().to_string();

    // (a) Every replica equals the server, byte for byte.
    for (i, c) in clients.iter().enumerate() {
        if c.state.has_unsynced() || c.state.in_flight().is_some() {
            return Err(format!("client {i} still has unsynced edits after settling"));
        }
        if c.state.text() != final_text || c.state.server_text() != final_text {
            return Err(format!(
                "client {i} diverged:\n client {:?}\n server {:?}",
                c.state.text(),
                final_text
            ));
        }
        if c.state.revision() != server.doc.revision() {
            return Err(format!(
                "client {i} at {} but server at {}",
                c.state.revision(),
                server.doc.revision()
            ));
        }
    }

    // Replaying the op log gives the live text; collect what it inserted and deleted.
    let mut texts = vec![server.initial.clone()];
    let mut accepted_inserted = HashSet::new();
    let mut accepted_deleted = HashSet::new();
    for change in &server.log {
        let before = texts.last().unwrap();
        accepted_inserted.extend(change.delta.inserted_text("").chars());
        accepted_deleted.extend(
            change
                .delta
                .removed_text(before, "")
                .map_err(|e| e.to_string())?
                .chars(),
        );
        texts.push(change.delta.apply(before).map_err(|e| format!("replay: {e}"))?);
    }
    if texts.last().unwrap() != &final_text {
        return Err("replaying the op log does not give the live text".into());
    }

    // (e) No change applied twice: (client, seq) unique in the log, no character twice.
    let mut seen = HashSet::new();
    for change in &server.log {
        if !seen.insert((change.client, change.seq)) {
            return Err(format!(
                "change {} of client {} applied twice",
                change.seq, change.client
            ));
        }
    }
    let mut chars = HashSet::new();
    for ch in final_text.chars().filter(|&c| c != '\n') {
        if !config.initial.contains(ch) && !chars.insert(ch) {
            return Err(format!("character {ch:?} appears twice"));
        }
    }

    // (c) No two concurrent accepted changes touch the same section; every
    // rejected change really conflicted.
    let sent: HashMap<(ClientId, Seq), &Change> = clients
        .iter()
        .flat_map(|c| c.sent.values().map(|ch| ((ch.client, ch.seq), ch)))
        .collect();
    for change in &server.log {
        let original = sent[&(change.client, change.seq)];
        let conflicts = naive_conflicts(config.policy, original, &server.log, &texts, change.revision.0 - 1)?;
        if !conflicts.is_empty() {
            return Err(format!(
                "accepted r{} although it conflicts with {:?}",
                change.revision, conflicts
            ));
        }
    }
    for (client, seq, decided_at, named) in &server.rejected {
        let original = sent[&(*client, *seq)];
        let conflicts = naive_conflicts(config.policy, original, &server.log, &texts, decided_at.0)?;
        if conflicts.is_empty() || &conflicts != named {
            return Err(format!(
                "change {seq} of client {client} rejected naming {named:?}; the naive check finds {conflicts:?}"
            ));
        }
    }

    // (d) Nothing typed is lost.
    let final_chars: HashSet<char> = final_text.chars().collect();
    let trays: HashSet<char> = clients
        .iter()
        .flat_map(|c| {
            c.state
                .tray()
                .iter()
                .flat_map(|e| e.inserted.chars().collect::<Vec<_>>())
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        for &ch in &c.typed {
            let kept = if accepted_inserted.contains(&ch) {
                final_chars.contains(&ch) != accepted_deleted.contains(&ch)
            } else {
                trays.contains(&ch) || c.deleted_locally.contains(&ch)
            };
            if !kept {
                return Err(format!("client {i} typed {ch:?} and it was lost"));
            }
        }
    }

    Ok(Report {
        accepted: server.log.len(),
        rejected: server.rejected.len(),
        resent: server.resent,
        resyncs: server.resyncs,
        tray_entries: clients.iter().map(|c| c.state.tray().len()).sum(),
        final_len: final_text.chars().count(),
    })
}

/// The revisions after `change.base` and up to `upto` (excluding the change's
/// own) whose edits touch a section `change` touches, decided naively: the
/// change is rebased step by step and each pair compared on the text both
/// apply to, line by line or character by character.
fn naive_conflicts(
    policy: SectionPolicy,
    change: &Change,
    log: &[AcceptedChange],
    texts: &[String],
    upto: u64,
) -> Result<Vec<Revision>, String> {
    let mut delta = change.delta.clone();
    let mut found = Vec::new();
    for other in log
        .iter()
        .skip(change.base.0 as usize)
        .take((upto - change.base.0) as usize)
    {
        if other.client == change.client && other.seq == change.seq {
            break;
        }
        let text = &texts[other.revision.0 as usize - 1];
        if touched(policy, &delta, text)
            .intersection(&touched(policy, &other.delta, text))
            .next()
            .is_some()
        {
            found.push(other.revision);
        }
        delta = delta.rebase(&other.delta).map_err(|e| e.to_string())?;
    }
    Ok(found)
}

/// What a delta touches on `text`: line numbers (line policy) or positions
/// (range policy), computed the slow, obvious way.
fn touched(policy: SectionPolicy, delta: &Delta, text: &str) -> std::collections::BTreeSet<usize> {
    let line_of: Vec<usize> = std::iter::once(0)
        .chain(text.chars().scan(0, |line, ch| {
            if ch == '\n' {
                *line += 1;
            }
            Some(*line)
        }))
        .collect();
    // line_of[p] is the line of position p: the number of newlines before it.
    let mut out = std::collections::BTreeSet::new();
    for hunk in delta.hunks() {
        match policy {
            SectionPolicy::Line => {
                if hunk.deleted == 0 {
                    out.insert(line_of[hunk.start]);
                } else {
                    // Each deleted character, by the line it is on.
                    out.extend(&line_of[hunk.start..hunk.start + hunk.deleted]);
                }
            }
            SectionPolicy::Range => {
                out.extend(hunk.start..=hunk.start + hunk.deleted);
            }
        }
    }
    out
}

/// Counts, for the property tests' statistics.
pub fn summary(reports: &[Report]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for r in reports {
        *m.entry("accepted").or_default() += r.accepted;
        *m.entry("rejected").or_default() += r.rejected;
        *m.entry("resent").or_default() += r.resent;
        *m.entry("resyncs").or_default() += r.resyncs;
        *m.entry("tray").or_default() += r.tray_entries;
    }
    m
}

/// A small deterministic generator, so the same runs can be made where
/// proptest is not available (the WebAssembly test build).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random actions, weighted like the proptest strategy.
pub fn random_actions(rng: &mut Rng, count: usize) -> Vec<Action> {
    (0..count)
        .map(|_| {
            let client = rng.below(16) as usize;
            match rng.below(100) {
                0..=39 => Action::Type {
                    client,
                    at: rng.below(256) as u8,
                    delete: rng.below(256) as u8,
                    insert: rng.below(256) as u8,
                    newline: rng.below(5) == 0,
                },
                40..=64 => Action::ToServer { client },
                65..=89 => Action::ToClient { client },
                90..=93 => Action::Drop { client },
                94..=97 => Action::Reconnect { client },
                _ => Action::Reapply { client },
            }
        })
        .collect()
}
