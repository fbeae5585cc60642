//! Benchmarks of the merge engine (`cargo bench -p benches --bench merge`).
//!
//! - `server_trace`: a whole sequential trace through the server's
//!   `DocumentState`, one change per keystroke (apply, sections, window and
//!   verdict bookkeeping). Target: automerge-paper (259,778 changes) under
//!   100 ms.
//! - `client_trace`: the same trace through the browser's `ClientState`
//!   (edit, send, verdict), on the plain-string texts the browser keeps.
//! - `keystroke_delta`: the browser computing one keystroke's delta from the
//!   old and the new text of a 100 KB document. Target: under 20 µs.
//! - `rebase_depth`: one change merged over N concurrent changes accepted
//!   since its base.

use benches::trace_changes;
use divan::counter::ItemsCount;
use divan::Bencher;
use shared::{Author, Change, ClientId, ClientState, Delta, DocumentState, Limits, Revision, SectionPolicy, Seq};

fn main() {
    divan::main();
}

fn limits() -> Limits {
    Limits {
        window: 4096,
        max_chars: usize::MAX,
    }
}

#[divan::bench(args = editing_traces::SEQUENTIAL, sample_count = 10, sample_size = 1)]
fn server_trace(bencher: Bencher, name: &str) {
    let trace = editing_traces::sequential(name).unwrap();
    let changes = trace_changes(&trace);
    let author = Author::new("typist");
    bencher
        .counter(ItemsCount::new(changes.len()))
        .with_inputs(|| changes.clone())
        .bench_local_values(|changes| {
            let mut doc = DocumentState::new(&trace.start_content, Revision(0), SectionPolicy::Line, limits());
            for change in changes {
                doc.submit(change, author.clone()).unwrap();
            }
            assert_eq!(doc.text().len_chars(), trace.end_content.chars().count());
            doc
        });
}

#[divan::bench(args = editing_traces::SEQUENTIAL, sample_count = 3, sample_size = 1)]
fn client_trace(bencher: Bencher, name: &str) {
    let trace = editing_traces::sequential(name).unwrap();
    let deltas: Vec<Delta> = trace_changes(&trace).into_iter().map(|c| c.delta).collect();
    bencher
        .counter(ItemsCount::new(deltas.len()))
        .with_inputs(|| deltas.clone())
        .bench_local_values(|deltas| {
            let client_id = ClientId::new(1).unwrap();
            let mut client = ClientState::new(client_id, SectionPolicy::Line, Revision(0), trace.start_content.clone());
            for (i, delta) in deltas.into_iter().enumerate() {
                client.edit(delta).unwrap();
                let change = client.poll_send().unwrap();
                client
                    .receive_verdict(
                        change.seq,
                        &shared::Verdict::Accepted {
                            revision: Revision(i as u64 + 1),
                        },
                    )
                    .unwrap();
            }
            client
        });
}

/// A 100 KB document (the end of the automerge-paper trace) and a keystroke
/// in its middle, at the start and at the end.
#[divan::bench(args = ["start", "middle", "end"])]
fn keystroke_delta(bencher: Bencher, place: &str) {
    let trace = editing_traces::sequential("automerge-paper").unwrap();
    let old: String = trace.end_content.chars().take(100_000).collect();
    let at = match place {
        "start" => 0,
        "middle" => old.len() / 2,
        _ => old.len(),
    };
    let at = (0..=at).rev().find(|&i| old.is_char_boundary(i)).unwrap();
    let mut new = old.clone();
    new.insert(at, 'x');
    bencher.bench(|| Delta::diff(divan::black_box(&old), divan::black_box(&new)));
}

/// The whole browser path of one keystroke on a 100 KB document: diff,
/// compose into the buffer, keep the new text.
#[divan::bench]
fn keystroke_edit_text(bencher: Bencher) {
    let trace = editing_traces::sequential("automerge-paper").unwrap();
    let old: String = trace.end_content.chars().take(100_000).collect();
    let mut new = old.clone();
    let at = (0..=old.len() / 2).rev().find(|&i| old.is_char_boundary(i)).unwrap();
    new.insert(at, 'x');
    let client = ClientState::new(ClientId::new(1).unwrap(), SectionPolicy::Line, Revision(0), old);
    bencher
        .with_inputs(|| client.clone())
        .bench_local_refs(|client| client.edit_text(&new).unwrap());
}

/// A change based `depth` revisions back, merged over the `depth` changes
/// accepted since (each on a different line, so none conflicts).
#[divan::bench(args = [1, 10, 100, 1000])]
fn rebase_depth(bencher: Bencher, depth: usize) {
    let lines = 2000;
    let text: String = (0..lines).map(|i| format!("line {i} of the document\n")).collect();
    let policy = SectionPolicy::Line;
    let mut doc = DocumentState::new(&text, Revision(0), policy, limits());
    let mut current = text.clone();
    for k in 0..depth {
        // Other people type at the end of lines 1000 and up.
        let line = 1000 + k % 900;
        let pos = current.match_indices('\n').nth(line).map(|(i, _)| i).unwrap();
        let delta = Delta::splice(current.len(), pos, 0, "!").unwrap();
        current = delta.apply(&current).unwrap();
        let change = Change {
            client: ClientId::new(2 + k as u64).unwrap(),
            seq: Seq(1),
            base: doc.revision(),
            delta,
        };
        doc.submit(change, Author::new("other")).unwrap();
    }
    // Ours, on line 10, made before all of them.
    let base_len = text.chars().count();
    let pos = text.lines().take(10).map(|l| l.chars().count() + 1).sum::<usize>() + 3;
    let ours = Change {
        client: ClientId::new(1).unwrap(),
        seq: Seq(1),
        base: Revision(0),
        delta: Delta::splice(base_len, pos, 0, "x").unwrap(),
    };
    let author = Author::new("me");
    bencher
        .with_inputs(|| (doc.clone(), ours.clone()))
        .bench_local_values(|(mut doc, ours)| {
            let decision = doc.submit(ours, author.clone()).unwrap();
            assert!(decision.accepted.is_some());
            doc
        });
}
