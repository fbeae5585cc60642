//! Replays of real editing traces (`benches/traces/data`) through the client
//! state machine and the server's document state.
//!
//! - Each sequential trace, one keystroke per change, must end at the
//!   trace's `endContent`.
//! - The concurrent `friendsforever` trace is replayed as two clients that
//!   follow its recorded parents, under each section policy. Each
//!   transaction is performed on its author's actual local text (which
//!   lacks whatever was rejected), the server merges, and the run reports
//!   how many changes conflicted. The final text must equal the trace
//!   rendered without the rejected transactions, and with no conflict at
//!   all it must equal `endContent`.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use editing_traces::{ConcurrentTrace, Patch};
use shared::text::char_count;
use shared::{
    AcceptedChange, Author, ClientId, ClientState, Delta, DocumentState, Limits, Revision, SectionPolicy, Seq, Verdict,
};

fn limits() -> Limits {
    Limits {
        window: 4096,
        max_chars: usize::MAX,
    }
}

#[test]
fn sequential_traces_reach_their_end_content() {
    for name in editing_traces::SEQUENTIAL {
        let trace = editing_traces::sequential(name).unwrap();
        let policy = SectionPolicy::Line;
        let mut doc = DocumentState::new(&trace.start_content, Revision(0), policy, limits());
        let mut client = ClientState::new(
            ClientId::new(7).unwrap(),
            policy,
            Revision(0),
            trace.start_content.clone(),
        );
        let author = Author::new("typist");
        let mut len = char_count(&trace.start_content);
        for patch in trace.patches() {
            let delta = Delta::splice(len, patch.pos, patch.del, &patch.ins).unwrap();
            len = delta.target_len();
            client.edit(delta).unwrap();
            let change = client.poll_send().expect("an idle client sends at once");
            let seq = change.seq;
            let decision = doc.submit(change, author.clone()).unwrap();
            assert!(matches!(decision.verdict, Verdict::Accepted { .. }));
            client.receive_verdict(seq, &decision.verdict).unwrap();
        }
        assert_eq!(doc.revision().0 as usize, trace.patch_count(), "{name}");
        assert!(
            *doc.text() == trace.end_content.as_str(),
            "{name}: server text differs from endContent"
        );
        assert_eq!(client.text(), trace.end_content, "{name}: client text");
        println!(
            "{name}: {} keystrokes replayed, {} characters",
            trace.patch_count(),
            len
        );
    }
}

#[test]
fn concurrent_trace_under_each_policy() {
    let trace = editing_traces::concurrent("friendsforever").unwrap();
    for policy in SectionPolicy::ALL {
        let report = Replay::new(&trace, policy).run();
        println!(
            "friendsforever, {} policy: {} transactions, {} changes submitted, {} accepted, {} conflicted \
             ({} transactions rejected), {} rejected locally before sending; final text {} characters{}",
            policy.name(),
            trace.txns.len(),
            report.submitted,
            report.accepted,
            report.conflicted,
            report.rejected_txns,
            report.rejected_locally,
            report.final_len,
            if report.rejected_txns == 0 { " = endContent" } else { "" },
        );
    }
}

/// A character of the merged trace: which transaction inserted it and which
/// deleted it (each agent may delete the same character concurrently).
struct Char {
    ch: char,
    inserted_by: usize,
    deleted_by: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TxnState {
    /// Typed, still in its author's buffer or in flight.
    Local,
    /// Accepted by the server with this revision.
    Accepted(Revision),
    /// Rejected (by the server or predicted by its author): in the tray.
    Rejected,
    /// Undone by later transactions before it was sent (typed, then
    /// deleted): the buffer they were composed into came to nothing.
    Cancelled,
}

struct Agent {
    state: ClientState,
    /// Which transactions the local text holds.
    holds: Vec<bool>,
    /// Transactions typed since the last change was sent.
    buffered: Vec<usize>,
    /// Transactions of the change in flight.
    flying: Vec<usize>,
    down: VecDeque<Down>,
}

enum Down {
    Accepted(Arc<AcceptedChange>),
    Verdict(Seq, Verdict),
}

#[derive(Default)]
struct Report {
    submitted: usize,
    accepted: usize,
    conflicted: usize,
    rejected_txns: usize,
    rejected_locally: usize,
    final_len: usize,
}

struct Replay<'a> {
    trace: &'a ConcurrentTrace,
    /// The merged sequence of every character ever inserted.
    chars: Vec<Char>,
    /// Per transaction: its agent, its index among that agent's
    /// transactions, and the version (per-agent counts) it was made on.
    agent_of: Vec<usize>,
    nth_of_agent: Vec<u32>,
    made_on: Vec<Vec<u32>>,
    state: Vec<TxnState>,
    /// Transactions carried by each submitted change.
    carried: HashMap<(ClientId, Seq), Vec<usize>>,
    doc: DocumentState,
    agents: Vec<Agent>,
    report: Report,
}

impl<'a> Replay<'a> {
    fn new(trace: &'a ConcurrentTrace, policy: SectionPolicy) -> Self {
        let n = trace.num_agents;
        let mut counts = vec![0u32; n];
        let mut after: Vec<Vec<u32>> = Vec::with_capacity(trace.txns.len());
        let mut agent_of = Vec::new();
        let mut nth_of_agent = Vec::new();
        let mut made_on = Vec::new();
        for (i, txn) in trace.txns.iter().enumerate() {
            let mut version = vec![0u32; n];
            for &p in &txn.parents {
                assert!(p < i, "parents come first");
                for (v, pv) in version.iter_mut().zip(&after[p]) {
                    *v = (*v).max(*pv);
                }
            }
            let nth = counts[txn.agent];
            assert_eq!(version[txn.agent], nth, "txn {i}: an agent's transactions form a chain");
            counts[txn.agent] += 1;
            agent_of.push(txn.agent);
            nth_of_agent.push(nth);
            made_on.push(version.clone());
            version[txn.agent] = nth + 1;
            after.push(version);
        }
        let agents = (0..n)
            .map(|a| Agent {
                state: ClientState::new(client_id(a), policy, Revision(0), String::new()),
                holds: vec![false; trace.txns.len()],
                buffered: Vec::new(),
                flying: Vec::new(),
                down: VecDeque::new(),
            })
            .collect();
        Replay {
            trace,
            chars: Vec::new(),
            agent_of,
            nth_of_agent,
            made_on,
            state: vec![TxnState::Local; trace.txns.len()],
            carried: HashMap::new(),
            doc: DocumentState::new("", Revision(0), policy, limits()),
            agents,
            report: Report::default(),
        }
    }

    fn in_version(&self, txn: usize, version: &[u32]) -> bool {
        self.nth_of_agent[txn] < version[self.agent_of[txn]]
    }

    fn run(mut self) -> Report {
        for i in 0..self.trace.txns.len() {
            let agent = self.trace.txns[i].agent;
            self.wait_for_parents(i);
            for patch in &self.trace.txns[i].patches {
                self.place(i, patch);
            }
            let delta = self.delta_for(agent, i);
            self.agents[agent].holds[i] = true;
            self.agents[agent].buffered.push(i);
            let update = self.agents[agent].state.edit(delta).unwrap();
            assert!(update.rejected.is_empty());
            self.pump(agent);
            if !self.agents[agent].state.has_buffer() {
                for t in std::mem::take(&mut self.agents[agent].buffered) {
                    self.state[t] = TxnState::Cancelled;
                }
            }
            if i % 64 == 0 {
                self.check_agent(agent);
            }
        }
        self.settle();
        let text = self.doc.text().to_string();
        for a in 0..self.agents.len() {
            self.check_agent(a);
            assert_eq!(self.agents[a].state.text(), text, "agent {a} converges");
        }
        let accepted: Vec<bool> = self.state.iter().map(|s| matches!(s, TxnState::Accepted(_))).collect();
        assert_eq!(
            text,
            self.render(&accepted),
            "the server text is the trace without the rejected transactions"
        );
        self.report.rejected_txns = self.state.iter().filter(|s| **s == TxnState::Rejected).count();
        if self.report.rejected_txns == 0 {
            assert_eq!(
                text, self.trace.end_content,
                "with no conflict the replay reaches endContent"
            );
        }
        self.report.final_len = char_count(&text);
        self.report
    }

    /// Delivers messages until the agent of `txn` holds every remote
    /// transaction of the version it was made on.
    fn wait_for_parents(&mut self, txn: usize) {
        let agent = self.agent_of[txn];
        let version = self.made_on[txn].clone();
        loop {
            let missing = (0..txn)
                .find(|&t| self.agent_of[t] != agent && self.in_version(t, &version) && !self.seen_by(agent, t));
            let Some(t) = missing else { return };
            match self.state[t] {
                // Still with its author, behind the change in flight.
                TxnState::Local => {
                    let author = self.agent_of[t];
                    assert!(self.deliver(author), "txn {t} is stuck at its author");
                }
                TxnState::Accepted(_) => {
                    assert!(self.deliver(agent), "txn {t} accepted but never delivered");
                }
                TxnState::Rejected | TxnState::Cancelled => unreachable!("these count as seen"),
            }
        }
    }

    fn seen_by(&self, agent: usize, txn: usize) -> bool {
        match self.state[txn] {
            TxnState::Local => false,
            TxnState::Rejected | TxnState::Cancelled => true,
            TxnState::Accepted(r) => self.agents[agent].state.revision() >= r,
        }
    }

    /// Puts the patch's inserted characters into the merged sequence and
    /// marks the characters it deletes, as the trace's author saw them.
    fn place(&mut self, txn: usize, patch: &Patch) {
        let version = &self.made_on[txn];
        let visible = |c: &Char| {
            (c.inserted_by == txn || self.in_version(c.inserted_by, version))
                && !c.deleted_by.iter().any(|&d| d == txn || self.in_version(d, version))
        };
        // Just after the (pos - 1)-th visible character.
        let mut at = 0;
        let mut seen = 0;
        if patch.pos > 0 {
            while at < self.chars.len() {
                if visible(&self.chars[at]) {
                    seen += 1;
                    if seen == patch.pos {
                        at += 1;
                        break;
                    }
                }
                at += 1;
            }
            assert_eq!(seen, patch.pos, "txn {txn}: position past the end");
        }
        let mut to_delete = patch.del;
        let mut k = at;
        let mut marks = Vec::new();
        while to_delete > 0 {
            assert!(k < self.chars.len(), "txn {txn}: deletion past the end");
            if visible(&self.chars[k]) {
                marks.push(k);
                to_delete -= 1;
            }
            k += 1;
        }
        for k in marks {
            self.chars[k].deleted_by.push(txn);
        }
        let new: Vec<Char> = patch
            .ins
            .chars()
            .map(|ch| Char {
                ch,
                inserted_by: txn,
                deleted_by: Vec::new(),
            })
            .collect();
        self.chars.splice(at..at, new);
    }

    /// Transaction `txn` as a delta on the agent's actual local text.
    fn delta_for(&self, agent: usize, txn: usize) -> Delta {
        let holds = &self.agents[agent].holds;
        let mut delta = Delta::new();
        for c in &self.chars {
            if c.inserted_by == txn {
                if !c.deleted_by.contains(&txn) {
                    delta.insert(c.ch.encode_utf8(&mut [0; 4]));
                }
            } else if holds[c.inserted_by] && !c.deleted_by.iter().any(|&d| holds[d]) {
                if c.deleted_by.contains(&txn) {
                    delta.delete(1);
                } else {
                    delta.retain(1);
                }
            }
        }
        delta
    }

    /// The text made of the transactions in `holds`.
    fn render(&self, holds: &[bool]) -> String {
        self.chars
            .iter()
            .filter(|c| holds[c.inserted_by] && !c.deleted_by.iter().any(|&d| holds[d]))
            .map(|c| c.ch)
            .collect()
    }

    fn check_agent(&self, agent: usize) {
        assert_eq!(
            self.agents[agent].state.text(),
            self.render(&self.agents[agent].holds),
            "agent {agent}'s text is the transactions it holds"
        );
    }

    /// Sends what the agent's state machine wants sent; the server decides at once.
    fn pump(&mut self, agent: usize) {
        while let Some(change) = self.agents[agent].state.poll_send() {
            self.report.submitted += 1;
            let txns = std::mem::take(&mut self.agents[agent].buffered);
            self.agents[agent].flying.clone_from(&txns);
            self.carried.insert((change.client, change.seq), txns.clone());
            let seq = change.seq;
            let decision = self.doc.submit(change, Author::new(&format!("agent {agent}"))).unwrap();
            match &decision.verdict {
                Verdict::Accepted { revision } => {
                    self.report.accepted += 1;
                    for t in txns {
                        self.state[t] = TxnState::Accepted(*revision);
                    }
                    let accepted = decision.accepted.clone().unwrap();
                    for (b, other) in self.agents.iter_mut().enumerate() {
                        if b != agent {
                            other.down.push_back(Down::Accepted(accepted.clone()));
                        }
                    }
                }
                Verdict::Rejected { .. } => {
                    self.report.conflicted += 1;
                    for t in txns {
                        self.state[t] = TxnState::Rejected;
                    }
                }
                Verdict::Resync { .. } => panic!("the window is large enough for this trace"),
            }
            self.agents[agent].down.push_back(Down::Verdict(seq, decision.verdict));
        }
    }

    /// Delivers the agent's oldest incoming message; false when there is none.
    fn deliver(&mut self, agent: usize) -> bool {
        let Some(message) = self.agents[agent].down.pop_front() else {
            return false;
        };
        let was_doomed = self.agents[agent].state.is_doomed();
        let update = match &message {
            Down::Accepted(change) => {
                let update = self.agents[agent].state.receive(change).unwrap();
                if let Some(txns) = self.carried.get(&(change.client, change.seq)) {
                    for &t in txns {
                        self.agents[agent].holds[t] = true;
                    }
                }
                update
            }
            Down::Verdict(seq, verdict) => {
                let update = self.agents[agent].state.receive_verdict(*seq, verdict).unwrap();
                self.agents[agent].flying.clear();
                update
            }
        };
        if !update.rejected.is_empty() {
            // Predicted: the in-flight change (if it just became doomed) and the buffer.
            let a = &mut self.agents[agent];
            let mut dropped = std::mem::take(&mut a.buffered);
            if !was_doomed && a.state.is_doomed() {
                dropped.extend(a.flying.iter().copied());
            } else {
                self.report.rejected_locally += 1;
            }
            for t in dropped {
                a.holds[t] = false;
                self.state[t] = TxnState::Rejected;
            }
        }
        self.pump(agent);
        true
    }

    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for a in 0..self.agents.len() {
                moved |= self.deliver(a);
            }
            if !moved {
                break;
            }
        }
    }
}

fn client_id(agent: usize) -> ClientId {
    ClientId::new(agent as u64 + 100).unwrap()
}
