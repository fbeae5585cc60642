//! Our engine beside other text CRDTs on the recorded editing traces
//! (`cargo bench -p peers`, or `cargo bench -p peers -- rustcode` for some
//! traces only). Prints one Markdown table per trace for
//! `docs/BENCHMARKS.md`, then the geometric means.
//!
//! Every sequential trace is replayed, one keystroke (patch) at a time,
//! through:
//!
//! - **ours (server)**: the server's `DocumentState`, one change per
//!   keystroke, each made on the revision before it (as `merge.rs`'s
//!   `server_trace`).
//! - **ours (client→server)**: the browser's `ClientState` making those
//!   changes from the deltas (edit, send), the server's `DocumentState`
//!   deciding on them, and the client taking the verdict back.
//! - **yrs**, **automerge**, **diamond-types** and **loro**: one local
//!   transaction (commit) per keystroke on a new text document: delete, then
//!   insert, at the trace's position.
//!
//! The traces count positions in characters (Unicode scalar values).
//! automerge is made with `TextEncoding::UnicodeCodePoint`, loro's and
//! diamond-types' plain `insert` and `delete` count characters too; yrs
//! counts UTF-8 bytes (it no longer offers characters), so its positions are
//! converted before the clock starts.
//!
//! What is timed is making the document and applying every keystroke; what
//! is prepared before (our changes and deltas, yrs's byte positions) is not.
//! A run's memory is the peak of the bytes allocated, through a counting
//! global allocator, above those allocated when it started: the document
//! with its history, and whatever it needed on the way. (Our changes are
//! made before the run and moved into the document, so the 4,096 it keeps
//! for rebasing count for less than they weigh: a few hundred KiB at most.)
//! Each replay runs up to three times while the runs stay within a time
//! budget; the best time counts. Every engine's final text must be the
//! trace's end content, or the benchmark stops.

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ReadDoc, TextEncoding, ROOT};
use benches::trace_changes;
use editing_traces::SequentialTrace;
use shared::{Author, ClientId, ClientState, Delta, DocumentState, Limits, Revision, SectionPolicy};
use yrs::{GetString, Text, Transact};

#[global_allocator]
static ALLOC: peers::Counting = peers::Counting;

/// At most this many runs of one engine on one trace...
const MAX_RUNS: usize = 3;
/// ...and no further run once the runs so far and one more would take longer.
const BUDGET: Duration = Duration::from_secs(20);

const PEERS: [&str; 4] = ["yrs", "automerge", "diamond-types", "loro"];

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let names: Vec<&str> = editing_traces::SEQUENTIAL
        .into_iter()
        .filter(|name| only.is_empty() || only.iter().any(|o| o == name))
        .collect();

    println!("## Our engine beside other CRDTs\n");
    let versions: Vec<String> = PEERS.iter().map(|p| format!("{p} {}", locked_version(p))).collect();
    println!("Peers: {}.", versions.join(", "));
    println!(
        "Best of up to {MAX_RUNS} runs (fewer when they would take over {} s); \
         one change or transaction per keystroke; peak memory above the start of the run.\n",
        BUDGET.as_secs()
    );

    let mut ratios: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for name in names {
        let trace = editing_traces::sequential(name).unwrap_or_else(|e| panic!("{e}"));
        let rows = replay_all(&trace);
        print_table(&trace, &rows);
        for row in &rows[2..] {
            let ratio = (row.ratio(&rows[0]), row.ratio(&rows[1]));
            match ratios.iter_mut().find(|(engine, _)| *engine == row.engine) {
                Some((_, all)) => all.push(ratio),
                None => ratios.push((row.engine, vec![ratio])),
            }
        }
    }

    let summary: Vec<String> = ratios
        .iter()
        .map(|(engine, all)| {
            let server = geometric_mean(all.iter().map(|r| r.0));
            let client = geometric_mean(all.iter().map(|r| r.1));
            format!("{engine} {server:.1}× / {client:.1}×")
        })
        .collect();
    println!(
        "**Geometric mean of time ÷ ours (server) / ÷ ours (client→server):** {}.",
        summary.join("; ")
    );
}

/// One engine on one trace.
struct Row {
    engine: &'static str,
    runs: usize,
    best: Duration,
    peak_bytes: usize,
}

impl Row {
    fn ratio(&self, ours: &Row) -> f64 {
        self.best.as_secs_f64() / ours.best.as_secs_f64()
    }
}

/// Our two rows first, then the peers.
fn replay_all(trace: &SequentialTrace) -> Vec<Row> {
    let changes = trace_changes(trace);
    let deltas: Vec<Delta> = changes.iter().map(|c| c.delta.clone()).collect();
    let utf8 = utf8_patches(trace);
    vec![
        measure(
            "ours (server)",
            trace,
            || changes.clone(),
            |changes| ours_server(trace, changes),
            |doc| vec![doc.text().to_string()],
        ),
        measure(
            "ours (client→server)",
            trace,
            || deltas.clone(),
            |deltas| ours_client(trace, deltas),
            |(client, doc)| vec![client.text().to_owned(), doc.text().to_string()],
        ),
        measure(
            "yrs",
            trace,
            || (),
            |()| yrs_replay(trace, &utf8),
            |(doc, text)| vec![text.get_string(&doc.transact())],
        ),
        measure(
            "automerge",
            trace,
            || (),
            |()| automerge_replay(trace),
            |(doc, text)| vec![doc.text(text).expect("automerge text")],
        ),
        measure(
            "diamond-types",
            trace,
            || (),
            |()| diamond_replay(trace),
            |doc| vec![doc.branch.content().to_string()],
        ),
        measure(
            "loro",
            trace,
            || (),
            |()| loro_replay(trace),
            |(_doc, text)| vec![text.to_string()],
        ),
    ]
}

/// Runs `replay` on what `setup` makes (untimed), checks the `texts` it
/// ends with, and keeps the best time and the highest peak.
fn measure<I, D>(
    engine: &'static str,
    trace: &SequentialTrace,
    setup: impl Fn() -> I,
    replay: impl Fn(I) -> D,
    texts: impl Fn(&mut D) -> Vec<String>,
) -> Row {
    eprintln!("replaying {} through {engine}", trace.name);
    let mut row = Row {
        engine,
        runs: 0,
        best: Duration::MAX,
        peak_bytes: 0,
    };
    let mut spent = Duration::ZERO;
    while row.runs < MAX_RUNS && (row.runs == 0 || spent + row.best <= BUDGET) {
        let input = setup();
        let baseline = peers::reset_peak();
        let start = Instant::now();
        let mut doc = replay(input);
        let took = start.elapsed();
        row.peak_bytes = row.peak_bytes.max(peers::peak().saturating_sub(baseline));
        for text in texts(&mut doc) {
            check(engine, trace, &text);
        }
        drop(doc);
        row.runs += 1;
        row.best = row.best.min(took);
        spent += took;
    }
    row
}

/// Stops the benchmark unless `text` is the trace's end content.
fn check(engine: &str, trace: &SequentialTrace, text: &str) {
    if text == trace.end_content {
        return;
    }
    let at = text
        .chars()
        .zip(trace.end_content.chars())
        .take_while(|(a, b)| a == b)
        .count();
    panic!(
        "{engine} on {}: the final text differs from the end content from character {at} on \
         ({} characters, expected {})",
        trace.name,
        text.chars().count(),
        trace.end_content.chars().count()
    );
}

fn limits() -> Limits {
    Limits {
        window: 4096,
        max_chars: usize::MAX,
    }
}

fn ours_server(trace: &SequentialTrace, changes: Vec<shared::Change>) -> DocumentState {
    let author = Author::new("typist");
    let mut doc = DocumentState::new(&trace.start_content, Revision(0), SectionPolicy::Line, limits());
    for change in changes {
        doc.submit(change, author.clone())
            .expect("a change on the last revision");
    }
    doc
}

fn ours_client(trace: &SequentialTrace, deltas: Vec<Delta>) -> (ClientState, DocumentState) {
    let author = Author::new("typist");
    let id = ClientId::new(1).expect("small id");
    let mut client = ClientState::new(id, SectionPolicy::Line, Revision(0), trace.start_content.clone());
    let mut doc = DocumentState::new(&trace.start_content, Revision(0), SectionPolicy::Line, limits());
    for delta in deltas {
        client.edit(delta).expect("a delta on the local text");
        let change = client.poll_send().expect("nothing in flight");
        let seq = change.seq;
        let decision = doc
            .submit(change, author.clone())
            .expect("a change on the last revision");
        client
            .receive_verdict(seq, &decision.verdict)
            .expect("the verdict on the change in flight");
    }
    (client, doc)
}

fn yrs_replay(trace: &SequentialTrace, patches: &[Utf8Patch<'_>]) -> (yrs::Doc, yrs::TextRef) {
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("text");
    text.insert(&mut doc.transact_mut(), 0, &trace.start_content);
    for p in patches {
        let mut txn = doc.transact_mut();
        if p.del > 0 {
            text.remove_range(&mut txn, p.pos, p.del);
        }
        if !p.ins.is_empty() {
            text.insert(&mut txn, p.pos, p.ins);
        }
    }
    (doc, text)
}

fn automerge_replay(trace: &SequentialTrace) -> (Automerge, automerge::ObjId) {
    let mut doc = Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint);
    let mut tx = doc.transaction();
    let text = tx.put_object(ROOT, "text", ObjType::Text).expect("a text object");
    tx.splice_text(&text, 0, 0, &trace.start_content)
        .expect("start content");
    tx.commit();
    for p in trace.patches() {
        let mut tx = doc.transaction();
        tx.splice_text(&text, p.pos, p.del as isize, &p.ins)
            .expect("a patch within the text");
        tx.commit();
    }
    (doc, text)
}

fn diamond_replay(trace: &SequentialTrace) -> diamond_types::list::ListCRDT {
    let mut doc = diamond_types::list::ListCRDT::new();
    let agent = doc.get_or_create_agent_id("typist");
    if !trace.start_content.is_empty() {
        doc.insert(agent, 0, &trace.start_content);
    }
    for p in trace.patches() {
        if p.del > 0 {
            doc.delete(agent, p.pos..p.pos + p.del);
        }
        if !p.ins.is_empty() {
            doc.insert(agent, p.pos, &p.ins);
        }
    }
    doc
}

fn loro_replay(trace: &SequentialTrace) -> (loro::LoroDoc, loro::LoroText) {
    let doc = loro::LoroDoc::new();
    let text = doc.get_text("text");
    text.insert(0, &trace.start_content).expect("start content");
    doc.commit();
    for p in trace.patches() {
        if p.del > 0 {
            text.delete(p.pos, p.del).expect("a deletion within the text");
        }
        if !p.ins.is_empty() {
            text.insert(p.pos, &p.ins).expect("an insertion within the text");
        }
        doc.commit();
    }
    (doc, text)
}

/// A patch with its position and deletion in UTF-8 bytes, for yrs.
struct Utf8Patch<'a> {
    pos: u32,
    del: u32,
    ins: &'a str,
}

/// The trace's patches in UTF-8 bytes: a character position plus the extra
/// bytes of the wider characters before it. The text is hardly ever
/// anything but ASCII, so keeping where its wider characters are is cheap.
fn utf8_patches(trace: &SequentialTrace) -> Vec<Utf8Patch<'_>> {
    // (character position, extra bytes) of each non-ASCII character, in order.
    fn wide(text: &str, at: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        text.chars()
            .enumerate()
            .filter(|(_, c)| !c.is_ascii())
            .map(move |(i, c)| (at + i, c.len_utf8() - 1))
    }
    fn byte(wide: &[(usize, usize)], pos: usize) -> usize {
        pos + wide
            .iter()
            .take_while(|(p, _)| *p < pos)
            .map(|(_, extra)| extra)
            .sum::<usize>()
    }
    let mut text_wide: Vec<(usize, usize)> = wide(&trace.start_content, 0).collect();
    trace
        .patches()
        .map(|p| {
            let from = byte(&text_wide, p.pos);
            let to = byte(&text_wide, p.pos + p.del);
            let inserted = p.ins.chars().count();
            text_wide.retain(|&(q, _)| q < p.pos || q >= p.pos + p.del);
            for (q, _) in &mut text_wide {
                if *q >= p.pos {
                    *q = *q - p.del + inserted;
                }
            }
            let at = text_wide.partition_point(|&(q, _)| q < p.pos);
            text_wide.splice(at..at, wide(&p.ins, p.pos));
            Utf8Patch {
                pos: u32::try_from(from).expect("under 4 GiB"),
                del: u32::try_from(to - from).expect("under 4 GiB"),
                ins: &p.ins,
            }
        })
        .collect()
}

fn print_table(trace: &SequentialTrace, rows: &[Row]) {
    let keystrokes = trace.patch_count();
    println!("### {}\n", trace.name);
    println!(
        "{} keystrokes; {} characters at the start, {} at the end.\n",
        thousands(keystrokes),
        thousands(trace.start_content.chars().count()),
        thousands(trace.end_content.chars().count())
    );
    println!("| engine | runs | total ms | µs / keystroke | peak MiB | ÷ ours (server) | ÷ ours (client→server) |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for row in rows {
        let ms = row.best.as_secs_f64() * 1e3;
        println!(
            "| {} | {} | {ms:.1} | {:.3} | {:.1} | {:.2}× | {:.2}× |",
            row.engine,
            row.runs,
            ms * 1e3 / keystrokes as f64,
            row.peak_bytes as f64 / (1024.0 * 1024.0),
            row.ratio(&rows[0]),
            row.ratio(&rows[1]),
        );
    }
    println!();
}

fn geometric_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0), |(sum, n), v| (sum + v.ln(), n + 1));
    (sum / n as f64).exp()
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The version of a crate that Cargo.lock resolved.
fn locked_version(name: &str) -> &'static str {
    let lock = include_str!("../../../Cargo.lock");
    let key = format!("name = \"{name}\"\nversion = \"");
    lock.split_once(&key)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("?", |(version, _)| version)
}
