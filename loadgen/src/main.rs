//! The load generator: N documents × M editors × K keystrokes per second,
//! over real WebSockets, against a running server (embedded or a cluster
//! behind nginx), typing real trace text.
//!
//! It signs up M accounts, creates the documents (one line per editor) and
//! shares each with every editor, then runs each editor on its own
//! connection (`editor.rs`): the first of each document with the browser's
//! `ClientState`, the others light (`light.rs`, as in the Hocuspocus
//! generator), or all with `ClientState` (`--clients full`). It reports
//! sustained changes per second in, messages per second out,
//! keystroke-to-other-editor latency, the server's CPU seconds per 1,000
//! changes and memory (with `--server-pid`), conflicts, errors and lost
//! edits: after typing stops and every editor has settled, every full
//! editor's text, and every light editor's length and revision, must be
//! the server's, and every acknowledged change must be in the op log
//! exactly once. `--ramp` adds documents step by step until p95 passes the knee.
//!
//! `--relay` drives the floor instead (the `relay` binary, `relay.rs`):
//! the same editors and typing, measured the same way, against a server
//! that only forwards frames, to tell what the machine allows from what
//! the product costs.
//!
//! The server must allow the run's connections: one user opens one
//! connection per document, all from one address (raise
//! `COLLAB_MAX_CONNECTIONS_PER_USER` and `COLLAB_MAX_CONNECTIONS_PER_IP`).

mod editor;
mod http;
mod light;
mod process;
mod relay;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use editor::{DocumentRun, Editor, Full, Report, Run, Stats, Status};
use futures_util::StreamExt;
use light::Light;
use serde::Deserialize;
use shared::api::{DocumentSummary, DocumentView, UserView};
use shared::{AcceptedChange, ClientId};
use tokio::sync::watch;

/// mimalloc, as the app server: 5 % less of the generator's CPU per change.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The crate's one error type: a message for the operator.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Editors typing into documents over WebSockets, measured.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version, about)]
struct Args {
    /// The server (or the cluster's nginx).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Documents (N). In ramp mode, the first step's.
    #[arg(long, default_value_t = 10)]
    documents: usize,
    /// Editors per document (M), each a separate account and connection.
    #[arg(long, default_value_t = 10)]
    editors: usize,
    /// Keystrokes per second per editor (K).
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Typing before the window, in seconds.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// The server's process id (repeat for a cluster's app servers): its
    /// CPU time and memory are reported.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// The editing trace whose inserted text the editors type.
    #[arg(long, default_value = "automerge-paper")]
    trace: String,
    /// Ramp mode: add documents step by step until p95 passes --knee-ms,
    /// errors appear, or --max-editors is reached.
    #[arg(long)]
    ramp: bool,
    /// Ramp: documents added per step.
    #[arg(long, default_value_t = 5)]
    step_documents: usize,
    /// Ramp: seconds per step (the first 2 settle and are not measured).
    #[arg(long, default_value_t = 10)]
    step_seconds: u64,
    /// Ramp: stop when a step's p95 passes this.
    #[arg(long, default_value_t = 2000.0)]
    knee_ms: f64,
    /// Ramp: the latency target whose largest passing step is reported.
    #[arg(long, default_value_t = 50.0)]
    target_ms: f64,
    /// Ramp: stop at this many editors.
    #[arg(long, default_value_t = 5000)]
    max_editors: usize,
    /// Also print the result as one JSON line.
    #[arg(long)]
    json: bool,
    /// Drive the floor (the `relay` binary at --url) instead of the
    /// product: no accounts, no documents, no protocol, each change a
    /// frame the relay sends to every editor of its room.
    #[arg(long)]
    relay: bool,
    /// How editors keep the document: `light`, the first editor of each
    /// document with the browser's `ClientState` and its whole text, the
    /// others only their place in it (as the Hocuspocus generator's); `full`,
    /// every editor with `ClientState`.
    #[arg(long, value_enum, default_value_t = Clients::Light)]
    clients: Clients,
}

/// How editors keep the document (`--clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Clients {
    Light,
    Full,
}

impl Args {
    /// What the report calls the server under load.
    fn server(&self) -> &'static str {
        if self.relay {
            "relay"
        } else {
            "collab"
        }
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(error) = runtime.block_on(run(args)) {
        eprintln!("loadgen: {error}");
        std::process::exit(1);
    }
}

/// The set-up every document shares: the accounts and the text to type.
struct Setup {
    host: String,
    /// `collab_session=…` per editor index.
    cookies: Vec<String>,
    users: Vec<UserView>,
    text: Arc<Vec<char>>,
    run_id: u64,
}

/// A document's editors, running.
struct Live {
    doc: Arc<DocumentRun>,
    statuses: Vec<Arc<Status>>,
    tasks: Vec<tokio::task::JoinHandle<Report>>,
}

async fn run(args: Args) -> Result<(), Error> {
    let host = args
        .url
        .strip_prefix("http://")
        .ok_or_else(|| Error("--url must be http://host:port".into()))?
        .trim_end_matches('/')
        .to_owned();
    if args.editors == 0 || args.documents == 0 || args.rate <= 0.0 {
        return Err(Error("documents, editors and rate must be positive".into()));
    }
    let trace = editing_traces::sequential(&args.trace).map_err(Error)?;
    let text: Vec<char> = trace
        .patches()
        .flat_map(|p| p.ins.chars())
        .filter(|c| *c != '\r')
        .collect();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        % 1_000_000_000;
    let started = Instant::now();
    let mut users = Vec::new();
    let mut cookies = Vec::new();
    if !args.relay {
        for j in 0..args.editors {
            let (user, cookie) = sign_up(&host, &format!("load{run_id}e{j}")).await?;
            users.push(user);
            cookies.push(cookie);
        }
        eprintln!(
            "signed up {} editors in {:.1} s",
            args.editors,
            started.elapsed().as_secs_f64()
        );
    }
    let setup = Setup {
        host: host.clone(),
        cookies,
        users,
        text: Arc::new(text),
        run_id,
    };
    let (finish_tx, finish) = watch::channel(false);
    let run = Arc::new(Run {
        ws_base: format!("ws://{host}"),
        stats: Stats::default(),
        typing: AtomicBool::new(true),
        finish,
        error_samples: Mutex::default(),
    });
    let mut live = Vec::new();
    if args.ramp {
        ramp(&args, &setup, &run, &mut live).await?;
    } else {
        add_documents(&args, &setup, &run, &mut live, args.documents).await?;
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        let window = Window::open(&run, &args.server_pids);
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let measured = window.close(&run, &args.server_pids);
        let check = settle(&args, &setup, &run, &mut live, finish_tx).await?;
        report(&args, &measured, &check, &run);
        return Ok(());
    }
    let check = settle(&args, &setup, &run, &mut live, finish_tx).await?;
    println!(
        "after the ramp: {} acknowledged, {} lost, {} duplicated, {} diverged, {} unsynced",
        check.acknowledged, check.lost, check.duplicated, check.diverged, check.unsynced
    );
    Ok(())
}

async fn sign_up(host: &str, name: &str) -> Result<(UserView, String), Error> {
    let body = serde_json::json!({
        "email": format!("{name}@load.example"),
        "name": name,
        "password": "load generator password",
    })
    .to_string();
    let response = http::request(host, "POST", "/api/auth/sign-up", None, Some(&body)).await?;
    let user: UserView = response.json("sign-up")?;
    let cookie = response
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| Error("sign-up set no session cookie".into()))?
        .to_owned();
    Ok((user, cookie))
}

/// Creates `count` documents shared with every editor and starts their
/// editors.
async fn add_documents(
    args: &Args,
    setup: &Setup,
    run: &Arc<Run>,
    live: &mut Vec<Live>,
    count: usize,
) -> Result<(), Error> {
    let first = live.len();
    let created: Vec<Result<String, Error>> = if args.relay {
        (first..first + count)
            .map(|i| Ok(format!("room-{}-{i}", setup.run_id)))
            .collect()
    } else {
        futures_util::stream::iter(first..first + count)
            .map(|i| create_document(args, setup, i))
            .buffered(8)
            .collect()
            .await
    };
    let period = Duration::from_secs_f64(1.0 / args.rate);
    for (i, id) in created.into_iter().enumerate() {
        let id = id?;
        let doc = Arc::new(DocumentRun::new(id, args.editors));
        let mut statuses = Vec::new();
        let mut tasks = Vec::new();
        for j in 0..args.editors {
            let index = (first + i) * args.editors + j;
            let status = Arc::new(Status::default());
            let editor = Editor {
                client: ClientId::new(setup.run_id * 1_000_000 + index as u64).expect("small id"),
                cookie: setup.cookies.get(j).cloned().unwrap_or_default(),
                text: setup.text.clone(),
                offset: (index * 7919) % setup.text.len(),
                period,
                // Spread the editors' keystrokes evenly over a period.
                phase: period.mul_f64(((index * 7) % 1000) as f64 / 1000.0),
            };
            statuses.push(status.clone());
            let (run, doc) = (run.clone(), doc.clone());
            tasks.push(if args.relay {
                tokio::spawn(relay::edit(editor, run, doc, status))
            } else if j == 0 || args.clients == Clients::Full {
                tokio::spawn(editor::edit(Full::new(editor.client, j), editor, run, doc, status))
            } else {
                tokio::spawn(editor::edit(Light::new(editor.client, j), editor, run, doc, status))
            });
        }
        live.push(Live { doc, statuses, tasks });
    }
    Ok(())
}

async fn create_document(args: &Args, setup: &Setup, i: usize) -> Result<String, Error> {
    let text: String = (0..args.editors).map(|j| format!("editor {j}\n")).collect();
    let body = serde_json::json!({ "title": format!("load {} #{i}", setup.run_id), "text": text }).to_string();
    let owner = &setup.cookies[0];
    let created: DocumentSummary = http::request(&setup.host, "POST", "/api/documents", Some(owner), Some(&body))
        .await?
        .json("create a document")?;
    for user in &setup.users[1..] {
        let body = serde_json::json!({ "email": user.email, "role": "editor" }).to_string();
        let path = format!("/api/documents/{}/members", created.id);
        let response = http::request(&setup.host, "POST", &path, Some(owner), Some(&body)).await?;
        if response.status != 200 {
            return Err(Error(format!("sharing: HTTP {} {}", response.status, response.body)));
        }
    }
    Ok(created.id)
}

/// Counters at the start of a measured window.
struct Window {
    at: Instant,
    changes: u64,
    messages: u64,
    errors: u64,
    conflicts: u64,
    cpu: Option<f64>,
    own_cpu: f64,
}

/// What a window measured.
struct Measured {
    seconds: f64,
    changes: u64,
    messages: u64,
    errors: u64,
    conflicts: u64,
    latencies: Vec<u32>,
    cpu: Option<f64>,
    own_cpu: f64,
    rss: Option<f64>,
}

impl Window {
    fn open(run: &Run, pids: &[u32]) -> Window {
        run.stats.latencies.lock().expect("latencies").clear();
        let s = &run.stats;
        Window {
            at: Instant::now(),
            changes: s.changes_sent.load(Ordering::Relaxed),
            messages: s.messages_in.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            conflicts: s.conflicts.load(Ordering::Relaxed),
            cpu: process::cpu_seconds(pids),
            own_cpu: process::own_cpu_seconds(),
        }
    }

    fn close(self, run: &Run, pids: &[u32]) -> Measured {
        let s = &run.stats;
        let mut latencies = std::mem::take(&mut *s.latencies.lock().expect("latencies"));
        latencies.sort_unstable();
        Measured {
            seconds: self.at.elapsed().as_secs_f64(),
            changes: s.changes_sent.load(Ordering::Relaxed) - self.changes,
            messages: s.messages_in.load(Ordering::Relaxed) - self.messages,
            errors: s.errors.load(Ordering::Relaxed) - self.errors,
            conflicts: s.conflicts.load(Ordering::Relaxed) - self.conflicts,
            latencies,
            cpu: process::cpu_seconds(pids).zip(self.cpu).map(|(b, a)| b - a),
            own_cpu: process::own_cpu_seconds() - self.own_cpu,
            rss: process::rss_mib(pids),
        }
    }
}

impl Measured {
    /// A latency percentile, in milliseconds.
    fn ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies[i]) / 1000.0
    }

    fn cpu_per_1000(&self) -> Option<f64> {
        self.cpu.map(|c| c / self.changes.max(1) as f64 * 1000.0)
    }
}

/// The check after the run.
#[derive(Default)]
struct Check {
    acknowledged: u64,
    lost: u64,
    duplicated: u64,
    diverged: u64,
    unsynced: u64,
    typed: u64,
}

/// Stops typing, waits until every editor has its changes decided and has
/// caught up with the server, then compares texts and the op log.
async fn settle(
    args: &Args,
    setup: &Setup,
    run: &Run,
    live: &mut Vec<Live>,
    finish: watch::Sender<bool>,
) -> Result<Check, Error> {
    run.typing.store(false, Ordering::Relaxed);
    if args.relay {
        return settle_relay(live, finish).await;
    }
    let owner = &setup.cookies[0];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut heads = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = live
            .iter()
            .all(|l| l.statuses.iter().all(|s| s.idle.load(Ordering::Relaxed)));
        if !idle && Instant::now() < deadline {
            continue;
        }
        heads.clear();
        for l in live.iter() {
            let view: DocumentView = http::request(
                &setup.host,
                "GET",
                &format!("/api/documents/{}", l.doc.id),
                Some(owner),
                None,
            )
            .await?
            .json("read a document")?;
            heads.insert(l.doc.id.clone(), view);
        }
        let caught_up = live.iter().all(|l| {
            l.statuses
                .iter()
                .all(|s| editor::revision(s) == heads[&l.doc.id].revision)
        });
        if caught_up || Instant::now() >= deadline {
            break;
        }
    }
    let _ = finish.send(true);
    let mut check = Check::default();
    for l in live.drain(..) {
        let mut log: HashMap<(u64, u64), u32> = HashMap::new();
        let mut after = 0;
        loop {
            let path = format!("/api/documents/{}/changes?after={after}", l.doc.id);
            let changes: Vec<AcceptedChange> = http::request(&setup.host, "GET", &path, Some(owner), None)
                .await?
                .json("read the op log")?;
            let Some(last) = changes.last() else { break };
            after = last.revision.0;
            for c in &changes {
                *log.entry((c.client.get(), c.seq.0)).or_default() += 1;
            }
        }
        let head = &heads[&l.doc.id];
        for task in l.tasks {
            let report = task.await.map_err(|e| Error(format!("an editor failed: {e}")))?;
            check.typed += report.typed;
            check.unsynced += u64::from(report.unsynced);
            if !report.replica.matches(&head.text) {
                check.diverged += 1;
            }
            for seq in report.acknowledged {
                check.acknowledged += 1;
                match log.get(&(report.client, seq)).copied().unwrap_or(0) {
                    0 => check.lost += 1,
                    1 => {}
                    _ => check.duplicated += 1,
                }
            }
        }
    }
    Ok(check)
}

/// The floor's check: every change acknowledged (echoed) and received by
/// every other editor of its room; the relay keeps no text to compare.
async fn settle_relay(live: &mut Vec<Live>, finish: watch::Sender<bool>) -> Result<Check, Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let settled = live
            .iter()
            .all(|l| l.doc.undelivered() == 0 && l.statuses.iter().all(|s| s.idle.load(Ordering::Relaxed)));
        if settled || Instant::now() >= deadline {
            break;
        }
    }
    let _ = finish.send(true);
    let mut check = Check::default();
    for l in live.drain(..) {
        check.lost += l.doc.undelivered() as u64;
        for task in l.tasks {
            let report = task.await.map_err(|e| Error(format!("an editor failed: {e}")))?;
            check.typed += report.typed;
            check.unsynced += u64::from(report.unsynced);
            check.acknowledged += report.acknowledged.len() as u64;
        }
    }
    Ok(check)
}

fn report(args: &Args, m: &Measured, check: &Check, run: &Run) {
    let fmt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2}{unit}")).unwrap_or_else(|| "n/a".into());
    println!(
        "{}: {} docs x {} editors x {}/s: in {:.1} changes/s, out {:.0} msgs/s, latency p50 {:.2} ms p95 {:.2} ms \
         p99 {:.2} ms max {:.2} ms, cpu {} per 1000 changes, server rss {}, conflicts {}, errors {}, lost {} \
         (generator cpu {:.2} s/s; {} acknowledged, {} typed, {} diverged, {} unsynced, {} duplicated, {} reconnects)",
        args.server(),
        args.documents,
        args.editors,
        args.rate,
        m.changes as f64 / m.seconds,
        m.messages as f64 / m.seconds,
        m.ms(0.5),
        m.ms(0.95),
        m.ms(0.99),
        m.ms(1.0),
        fmt(m.cpu_per_1000(), " s"),
        fmt(m.rss, " MiB"),
        m.conflicts,
        m.errors + check.diverged + check.duplicated,
        check.lost + check.unsynced,
        m.own_cpu / m.seconds,
        check.acknowledged,
        check.typed,
        check.diverged,
        check.unsynced,
        check.duplicated,
        run.stats.reconnects.load(Ordering::Relaxed),
    );
    print_errors(run);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "server": args.server(),
                "documents": args.documents,
                "editors": args.editors,
                "rate": args.rate,
                "seconds": m.seconds,
                "changes_in_per_sec": m.changes as f64 / m.seconds,
                "messages_out_per_sec": m.messages as f64 / m.seconds,
                "p50_ms": m.ms(0.5),
                "p95_ms": m.ms(0.95),
                "p99_ms": m.ms(0.99),
                "max_ms": m.ms(1.0),
                "cpu_s_per_1000_changes": m.cpu_per_1000(),
                "server_rss_mib": m.rss,
                "conflicts": m.conflicts,
                "errors": m.errors + check.diverged + check.duplicated,
                "lost": check.lost + check.unsynced,
            })
        );
    }
}

/// The first errors of the run, for the reader.
fn print_errors(run: &Run) {
    for sample in run.error_samples.lock().expect("samples").iter() {
        eprintln!("  error: {sample}");
    }
}

/// One ramp step's result.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct Step {
    editors: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    changes_in_per_sec: f64,
    messages_out_per_sec: f64,
    errors: u64,
    generator_cpu: f64,
}

async fn ramp(args: &Args, setup: &Setup, run: &Arc<Run>, live: &mut Vec<Live>) -> Result<(), Error> {
    let mut steps: Vec<Step> = Vec::new();
    let mut add = args.documents;
    loop {
        add_documents(args, setup, run, live, add).await?;
        add = args.step_documents;
        let editors = live.len() * args.editors;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let window = Window::open(run, &args.server_pids);
        tokio::time::sleep(Duration::from_secs(args.step_seconds.saturating_sub(2).max(1))).await;
        let m = window.close(run, &args.server_pids);
        let step = Step {
            editors,
            p50_ms: m.ms(0.5),
            p95_ms: m.ms(0.95),
            p99_ms: m.ms(0.99),
            changes_in_per_sec: m.changes as f64 / m.seconds,
            messages_out_per_sec: m.messages as f64 / m.seconds,
            errors: m.errors,
            generator_cpu: m.own_cpu / m.seconds,
        };
        println!(
            "ramp: {:>5} editors: p50 {:.2} ms p95 {:.2} ms p99 {:.2} ms, in {:.0} changes/s, out {:.0} msgs/s, errors {}, \
             generator cpu {:.2} s/s, server cpu {}",
            step.editors,
            step.p50_ms,
            step.p95_ms,
            step.p99_ms,
            step.changes_in_per_sec,
            step.messages_out_per_sec,
            step.errors,
            step.generator_cpu,
            m.cpu.map(|c| format!("{:.2} s/s", c / m.seconds)).unwrap_or_else(|| "n/a".into()),
        );
        // No latency at all (nothing delivered) counts as past the knee.
        let over = step.p95_ms.is_nan() || step.p95_ms > args.knee_ms || step.errors > 0;
        steps.push(step);
        if over || editors + args.step_documents * args.editors > args.max_editors {
            break;
        }
    }
    let last = steps.last().expect("one step");
    println!(
        "knee: {} editors (p95 {:.2} ms, errors {})",
        last.editors, last.p95_ms, last.errors
    );
    let sustained = steps
        .iter()
        .filter(|s| s.p95_ms < args.target_ms && s.errors == 0)
        .map(|s| s.editors)
        .max()
        .unwrap_or(0);
    println!("sustained at p95 < {} ms: {sustained} editors", args.target_ms);
    print_errors(run);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "server": args.server(),
                "mode": "ramp",
                "steps": steps,
                "knee_editors": last.editors,
                "sustained_editors": sustained,
                "target_ms": args.target_ms,
            })
        );
    }
    Ok(())
}
