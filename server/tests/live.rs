//! Live editing against the real server on port 0, with real WebSocket
//! clients running the shared client state machine (which fails the test
//! if a verdict ever differs from its prediction).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use shared::api::Role;
use shared::text::char_count;
use shared::{Delta, Revision};
use support::{any_port, create_owned, members, sign_up, start, Browser, TempDir};

/// A small deterministic generator for the clients' typing.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Inserts `token` at a random position, or (if `delete`) sometimes deletes
/// a few characters instead.
fn random_edit(browser: &mut Browser, rng: &mut Rng, token: &str, delete: bool) {
    let len = char_count(browser.state.text());
    let delta = if delete && len > 20 && rng.below(4) == 0 {
        let at = rng.below(len - 3);
        Delta::splice(len, at, 1 + rng.below(3), "").unwrap()
    } else {
        // Between tokens (after a newline or a token's end), never inside one.
        let text = browser.state.text();
        let boundaries: Vec<usize> = std::iter::once(0)
            .chain(
                text.chars()
                    .enumerate()
                    .filter(|(_, c)| *c == '\n' || *c == '>')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let at = boundaries[rng.below(boundaries.len())];
        Delta::splice(len, at, 0, token).unwrap()
    };
    browser.state.edit(delta).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_clients_typing_at_once_converge() {
    let dir = TempDir::new("converge");
    let server = start(&dir.sqlite_url(), any_port(), |_| {}).await;
    let owner = sign_up(&server.addr.to_string(), "owner").await;
    let doc = create_owned(&server, &owner, &"line of text\n".repeat(30)).await;
    let addr = server.addr;
    let editors = members(&server, &owner, &doc.id, "user", 10, Role::Editor).await;

    let mut tasks = Vec::new();
    for (i, account) in editors.into_iter().enumerate() {
        let i = i as u64;
        let id = doc.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::open(addr, &id, 100 + i, &account).await;
            let mut rng = Rng(0x9E37_79B9 + i);
            for n in 0..60 {
                random_edit(&mut browser, &mut rng, &format!("<{i}.{n}>"), true);
                browser.pump().await;
                let wait = rng.below(8) as u64;
                assert!(
                    browser.receive_for(Duration::from_millis(wait)).await,
                    "connection lost"
                );
            }
            browser.settle(None).await;
            browser
        }));
    }
    let mut browsers = Vec::new();
    for task in tasks {
        browsers.push(task.await.unwrap());
    }
    let view = server.documents().view(&owner.user, &doc.id).await.unwrap();
    let mut rejected = 0;
    for browser in &mut browsers {
        browser.settle(Some(view.revision)).await;
        assert_eq!(browser.state.revision(), view.revision);
        assert_eq!(
            browser.state.text(),
            view.text,
            "client {} converges",
            browser.state.client()
        );
        rejected += browser.state.tray().len();
    }
    println!(
        "10 clients × 60 edits: revision {}, {} edits rejected (in trays), final text {} characters",
        view.revision,
        rejected,
        char_count(&view.text)
    );
    server.shutdown().await;
}

/// The browsers take turns typing tokens `<i.n>` (remembered in `typed`),
/// hearing from the server in between.
async fn type_tokens(
    browsers: &mut [Browser],
    rng: &mut Rng,
    turns: std::ops::Range<usize>,
    typed: &mut Vec<(usize, String)>,
) {
    for n in turns {
        let i = n % browsers.len();
        let token = format!("<{i}.{n}>");
        random_edit(&mut browsers[i], rng, &token, false);
        typed.push((i, token));
        browsers[i].pump().await;
        for b in browsers.iter_mut() {
            b.receive_for(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_session_loses_nothing_acknowledged() {
    let dir = TempDir::new("restart");
    let server = start(&dir.sqlite_url(), any_port(), |_| {}).await;
    let owner = sign_up(&server.addr.to_string(), "owner").await;
    let doc = create_owned(&server, &owner, "one\ntwo\nthree\nfour\nfive\nsix\n").await;
    let writers = members(&server, &owner, &doc.id, "writer", 4, Role::Editor).await;
    let mut browsers = Vec::new();
    for (i, account) in writers.iter().enumerate() {
        browsers.push(Browser::open(server.addr, &doc.id, 200 + i as u64, account).await);
    }
    let mut rng = Rng(42);
    let mut typed = Vec::new();
    // First half: type, with some changes still in flight when the server stops.
    type_tokens(&mut browsers, &mut rng, 0..40, &mut typed).await;
    let before = server.documents().view(&owner.user, &doc.id).await.unwrap();
    server.shutdown().await;
    for b in &mut browsers {
        // The server closed the socket: the client notices.
        while b.receive_for(Duration::from_millis(50)).await {}
    }

    // Start again on the same database; everyone reconnects and resends.
    let server = start(&dir.sqlite_url(), any_port(), |_| {}).await;
    let after_restart = server.documents().view(&owner.user, &doc.id).await.unwrap();
    assert_eq!(
        after_restart.text, before.text,
        "everything acknowledged survived the restart"
    );
    assert_eq!(after_restart.revision, before.revision);
    for b in &mut browsers {
        let revision = b.state.revision();
        b.connect(server.addr, Some(revision)).await;
    }
    type_tokens(&mut browsers, &mut rng, 40..80, &mut typed).await;
    for b in &mut browsers {
        b.settle(None).await;
    }
    let view = server.documents().view(&owner.user, &doc.id).await.unwrap();
    for b in &mut browsers {
        b.settle(Some(view.revision)).await;
        assert_eq!(b.state.text(), view.text);
    }
    // Every token is in the document exactly once, or in its typist's tray.
    let mut in_trays: HashMap<usize, String> = HashMap::new();
    for (i, b) in browsers.iter().enumerate() {
        in_trays.insert(
            i,
            b.state
                .tray()
                .iter()
                .map(|e| e.inserted.clone())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    for (i, token) in &typed {
        let count = view.text.matches(token.as_str()).count();
        assert!(
            count == 1 || (count == 0 && in_trays[i].contains(token.as_str())),
            "{token} appears {count} times"
        );
    }
    let trays: usize = browsers.iter().map(|b| b.state.tray().len()).sum();
    println!(
        "restart: {} tokens typed, final revision {}, {} tray entries",
        typed.len(),
        view.revision,
        trays
    );
    assert!(view.revision > Revision(40));
    server.shutdown().await;
}

/// A client that stops reading (a frozen tab, a stalled network) must not
/// hold its document's frames without end, nor stay open as if it had them:
/// once its queue of frames is full, the server closes it, and on its
/// reconnect it gets the document as it now is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_catches_up() {
    use shared::protocol::{ClientMessage, ServerMessage};
    use shared::{Change, ClientId, Seq, Verdict};
    use support::{connect_to, http_get, next_skipping_presence as next, send};

    const WAIT: Duration = Duration::from_secs(10);
    // Each change carries 60 lines of 1,000 characters: the socket's
    // buffers (a few MiB) fill after some dozens, then the queue of 16 frames.
    const CHANGES: u64 = 150;
    let chunk = format!("{}\n", "0123456789".repeat(100)).repeat(60);
    let dir = TempDir::new("slow-reader");
    let server = start(&dir.sqlite_url(), any_port(), |config| {
        config.documents.outbound_queue = 16;
        config.security.max_messages_per_sec = 10_000;
    })
    .await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let doc = create_owned(&server, &owner, "").await;
    let path = format!("/ws/d/{}", doc.id);
    let join = |client: u64, revision: Option<Revision>| ClientMessage::Join {
        document: doc.id.clone(),
        client: ClientId::new(client).unwrap(),
        revision,
        name: None,
    };

    // The slow client joins, then reads nothing more.
    let started = std::time::Instant::now();
    let mut slow = connect_to(&addr, &path, Some(&owner.cookie), None).await.unwrap();
    send(&mut slow, &join(2, None)).await;
    let Some(ServerMessage::Joined { revision: start, .. }) = next(&mut slow, WAIT).await else {
        panic!("the slow client did not join");
    };

    // The other client writes, one change at a time, each acknowledged.
    let mut writer = connect_to(&addr, &path, Some(&owner.cookie), None).await.unwrap();
    send(&mut writer, &join(1, Some(start))).await;
    assert!(matches!(
        next(&mut writer, WAIT).await,
        Some(ServerMessage::Joined { .. })
    ));
    for seq in 1..=CHANGES {
        let len = (seq as usize - 1) * chunk.len();
        let change = Change {
            client: ClientId::new(1).unwrap(),
            seq: Seq(seq),
            base: Revision(start.0 + seq - 1),
            delta: Delta::splice(len, len, 0, &chunk).unwrap(),
        };
        send(&mut writer, &ClientMessage::Submit { change }).await;
        match next(&mut writer, WAIT).await {
            Some(ServerMessage::Verdict {
                verdict: Verdict::Accepted { .. },
                ..
            }) => {}
            other => panic!("change {seq}: {other:?}"),
        }
    }
    let last = Revision(start.0 + CHANGES);
    let wrote = started.elapsed();

    // The slow client now reads: what its socket held, then the end. (Each
    // read may wait longer than the whole: a socket left open fails.)
    let mut heard = 0;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(message) = next(&mut slow, 3 * WAIT).await {
            if matches!(message, ServerMessage::Accepted { .. }) {
                heard += 1;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client is still open after {heard} changes");
    assert!(heard < CHANGES, "the slow client heard every change ({heard})");
    println!(
        "slow reader: closed after {heard} of {CHANGES} changes; writing took {wrote:?}, reading {:?}",
        started.elapsed() - wrote
    );
    let (_, metrics) = http_get(&addr, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "collab_slow_connections_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("slow"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // It reconnects from the revision it reached and gets the text as it is:
    // too far behind for a catch-up of a frame per change.
    let reached = Revision(start.0 + heard);
    let mut again = connect_to(&addr, &path, Some(&owner.cookie), None).await.unwrap();
    send(&mut again, &join(2, Some(reached))).await;
    match next(&mut again, WAIT).await {
        Some(ServerMessage::Joined {
            revision,
            text: Some(text),
            ..
        }) => {
            assert_eq!(revision, last);
            assert_eq!(text, chunk.repeat(CHANGES as usize));
        }
        other => panic!("the reconnect: {other:?}"),
    }
    // The writer was never slowed down or closed.
    send(&mut writer, &join(1, Some(last))).await;
    assert!(matches!(
        next(&mut writer, WAIT).await,
        Some(ServerMessage::Joined { .. })
    ));
    server.shutdown().await;
}
