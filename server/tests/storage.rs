//! Storage against both databases: SQLite (a temporary file) and the real
//! PostgreSQL (a throwaway database; `COLLAB_TEST_POSTGRES` names the
//! server, `postgres://postgres@127.0.0.1:5432/postgres` by default).

mod support;

use std::time::Duration;

use axum::extract::ws::Message;
use collab::access::Access;
use collab::document::{Documents, Settings};
use collab::store::{Fence, RejectedChange, Store};
use collab::Error;
use sea_orm::{ConnectionTrait, Database};
use shared::api::{NewDocument, Role, UserView};
use shared::{AcceptedChange, Author, Change, ClientId, Delta, Revision, SectionPolicy, Seq, Verdict};
use support::TempDir;

fn accepted(revision: u64, delta: Delta) -> AcceptedChange {
    AcceptedChange {
        revision: Revision(revision),
        client: ClientId::new(7).unwrap(),
        seq: Seq(revision),
        author: Author::new("Ana"),
        delta,
    }
}

async fn doc1_updated_at(store: &Store) -> i64 {
    store.document("doc1").await.unwrap().unwrap().updated_at
}

/// The store's queries, one by one.
async fn queries(store: &Store) {
    let meta = store
        .create_document("doc1", "First", SectionPolicy::Range, "abc", "u1")
        .await
        .unwrap();
    assert_eq!(meta.head, Revision(0));
    assert!(
        store
            .create_document("doc1", "Again", SectionPolicy::Line, "", "u1")
            .await
            .is_err(),
        "ids are unique"
    );
    assert_eq!(
        store.snapshot_at_or_before("doc1", Revision(0)).await.unwrap(),
        Some((Revision(0), "abc".into()))
    );

    let created_at = meta.updated_at;
    let one = accepted(1, Delta::splice(3, 3, 0, "d").unwrap());
    let two = accepted(2, Delta::splice(4, 0, 1, "").unwrap());
    let rejected = RejectedChange {
        client: ClientId::new(8).unwrap(),
        seq: Seq(1),
        base: Revision(0),
        revision: Revision(2),
        author: Author::new("Ben"),
        delta: Delta::splice(3, 0, 0, "z").unwrap(),
        verdict: Verdict::Rejected {
            revision: Revision(2),
            conflicts: vec![],
        },
    };
    let fence = store.take_fence("doc1").await.unwrap();
    store.append("doc1", fence, &[&one], &[]).await.unwrap();
    // No gaps: revision 3 cannot follow revision 1.
    let three = accepted(3, Delta::splice(4, 0, 1, "").unwrap());
    assert!(matches!(
        store.append("doc1", fence, &[&three], &[]).await,
        Err(Error::Fenced(_))
    ));
    store
        .append("doc1", fence, &[&two], std::slice::from_ref(&rejected))
        .await
        .unwrap();
    assert!(
        store.append("doc1", fence, &[&two], &[]).await.is_err(),
        "a revision is appended once"
    );
    // A newer owner fences the older one off, even for rejections alone.
    let newer = store.take_fence("doc1").await.unwrap();
    assert!(newer > fence);
    assert!(matches!(
        store.append("doc1", fence, &[&three], &[]).await,
        Err(Error::Fenced(_))
    ));
    assert!(matches!(
        store.append("doc1", fence, &[], std::slice::from_ref(&rejected)).await,
        Err(Error::Fenced(_))
    ));
    assert!(store.take_fence("nope").await.is_err());

    let ops = store.ops_after("doc1", Revision(0), 100).await.unwrap();
    assert_eq!(ops, vec![one.clone(), two.clone()]);
    assert_eq!(store.ops_after("doc1", Revision(1), 100).await.unwrap(), vec![two]);
    assert_eq!(store.ops_after("doc1", Revision(0), 1).await.unwrap(), vec![one]);
    let back = store.rejected_since("doc1", Revision(2)).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].client, back[0].seq, &back[0].verdict),
        (rejected.client, rejected.seq, &rejected.verdict)
    );
    let meta = store.document("doc1").await.unwrap().unwrap();
    assert_eq!(meta.head, Revision(2));
    let listed = store.list_documents(10).await.unwrap();
    assert_eq!(
        listed.iter().find(|m| m.id == "doc1").map(|m| m.head),
        Some(Revision(2))
    );
    assert_eq!(meta.updated_at, created_at, "appends leave updated_at to the snapshots");

    store
        .save_snapshot("doc1", Revision(2), "bcd", Revision(0), created_at + 5_000)
        .await
        .unwrap();
    assert_eq!(
        doc1_updated_at(store).await,
        created_at + 5_000,
        "a snapshot sets the time of its last change"
    );
    assert_eq!(
        store.snapshot_at_or_before("doc1", Revision(5)).await.unwrap(),
        Some((Revision(2), "bcd".into()))
    );
    assert_eq!(
        store.snapshot_at_or_before("doc1", Revision(1)).await.unwrap(),
        Some((Revision(0), "abc".into()))
    );
    // Keeping from revision 2 drops what is older than the snapshot at 2.
    store
        .save_snapshot("doc1", Revision(2), "bcd", Revision(2), created_at + 1_000)
        .await
        .unwrap();
    assert_eq!(store.snapshot_at_or_before("doc1", Revision(1)).await.unwrap(), None);
    assert_eq!(
        doc1_updated_at(store).await,
        created_at + 5_000,
        "updated_at never goes back"
    );

    assert!(store.rename("doc1", "Renamed").await.unwrap());
    assert!(!store.rename("nope", "x").await.unwrap());
    store
        .create_document("doc2", "Second", SectionPolicy::Line, "", "u1")
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_documents(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(store.delete("doc1").await.unwrap());
    assert!(!store.delete("doc1").await.unwrap());
    assert!(store.ops_after("doc1", Revision(0), 10).await.unwrap().is_empty());
    assert!(store.document("doc1").await.unwrap().is_none());
}

/// Creates empty documents `{prefix}0`, `{prefix}1`, … and takes each one's
/// fence, as its owner would.
async fn owned_documents(store: &Store, prefix: &str, count: usize) -> Vec<Fence> {
    let mut fences = Vec::new();
    for i in 0..count {
        let id = format!("{prefix}{i}");
        store
            .create_document(&id, "Doc", SectionPolicy::Line, "", "u1")
            .await
            .unwrap();
        fences.push(store.take_fence(&id).await.unwrap());
    }
    fences
}

/// Many documents appending at once (on SQLite they share commits): each
/// append is checked on its own, so a stale owner's append fails alone.
async fn concurrent_appends(store: &Store) {
    let fences = owned_documents(store, "busy", 40).await;
    // Document 0 gets a newer owner: its old fence is stale.
    store.take_fence("busy0").await.unwrap();
    let mut tasks = Vec::new();
    for (i, fence) in fences.into_iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("busy{i}");
            let mut results = Vec::new();
            for revision in 1..=20u64 {
                let change = accepted(
                    revision,
                    Delta::splice(revision as usize - 1, revision as usize - 1, 0, "x").unwrap(),
                );
                results.push(store.append(&id, fence, &[&change], &[]).await);
                if revision % 5 == 0 {
                    let text = "x".repeat(revision as usize);
                    store
                        .save_snapshot(&id, Revision(revision), &text, Revision(revision), revision as i64)
                        .await
                        .unwrap();
                }
            }
            results
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let results = task.await.unwrap();
        let id = format!("busy{i}");
        if i == 0 {
            assert!(
                results.iter().all(|r| matches!(r, Err(Error::Fenced(_)))),
                "{results:?}"
            );
            assert!(store.ops_after(&id, Revision(0), 100).await.unwrap().is_empty());
            continue;
        }
        assert!(results.iter().all(Result::is_ok), "{id}: {results:?}");
        let ops = store.ops_after(&id, Revision(0), 100).await.unwrap();
        assert_eq!(ops.len(), 20, "{id}");
        assert!(ops
            .iter()
            .enumerate()
            .all(|(n, op)| op.revision == Revision(n as u64 + 1)));
        assert_eq!(store.document(&id).await.unwrap().unwrap().head, Revision(20));
        assert_eq!(
            store.snapshot_at_or_before(&id, Revision(20)).await.unwrap(),
            Some((Revision(20), "x".repeat(20)))
        );
        // Older snapshots were pruned: nothing before revision 20 is kept.
        assert_eq!(store.snapshot_at_or_before(&id, Revision(19)).await.unwrap(), None);
    }
}

fn user(id: &str) -> UserView {
    UserView {
        id: id.into(),
        name: format!("User {id}"),
        color: "#00798c".into(),
        email: format!("{id}@example.test"),
    }
}

/// Accounts, sessions, members and share links.
async fn account_queries(store: &Store) {
    let (ana, ben) = (user("ana"), user("ben"));
    assert_eq!(store.create_user(&ana, "hash-a").await.unwrap(), Some(()));
    assert_eq!(store.create_user(&ben, "hash-b").await.unwrap(), Some(()));
    let mut twin = user("twin");
    twin.email = ana.email.clone();
    assert_eq!(store.create_user(&twin, "x").await.unwrap(), None, "emails are unique");
    let found = store.user_by_email(&ana.email).await.unwrap().unwrap();
    assert_eq!((found.view, found.password_hash.as_str()), (ana.clone(), "hash-a"));

    let now = collab::store::now_ms();
    store.create_session("live", &ana.id, now + 60_000).await.unwrap();
    store.create_session("old", &ana.id, now - 1).await.unwrap();
    assert_eq!(
        store.session_user("live").await.unwrap().map(|(u, _)| u),
        Some(ana.clone())
    );
    assert_eq!(store.session_user("old").await.unwrap(), None, "expired");
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 1);
    store.delete_session("live").await.unwrap();
    assert_eq!(store.session_user("live").await.unwrap(), None, "signed out");

    store
        .create_document("shared", "Shared", SectionPolicy::Line, "", &ana.id)
        .await
        .unwrap();
    assert_eq!(store.role("shared", &ana.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(store.role("shared", &ben.id).await.unwrap(), None);
    let link = store
        .create_link("l1", "digest", "shared", Role::Viewer, &ana.id)
        .await
        .unwrap();
    assert_eq!(link.role, Role::Viewer);
    let (link_id, document, role) = store.link_by_token("digest").await.unwrap().unwrap();
    assert_eq!(
        (link_id.as_str(), document.as_str(), role),
        ("l1", "shared", Role::Viewer)
    );
    store
        .set_role("shared", &ben.id, Role::Viewer, Some("l1"))
        .await
        .unwrap();
    assert_eq!(store.members("shared").await.unwrap().len(), 2);
    let listed = store.documents_of(&ben.id, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, Role::Viewer);
    // Revoking the link takes the role it granted.
    assert_eq!(
        store.revoke_link("shared", "l1").await.unwrap(),
        Some(vec![ben.id.clone()])
    );
    assert_eq!(store.role("shared", &ben.id).await.unwrap(), None);
    assert!(store.link_by_token("digest").await.unwrap().is_none());
    store.set_role("shared", &ben.id, Role::Editor, None).await.unwrap();
    assert!(store.remove_member("shared", &ben.id).await.unwrap());
    assert!(!store.remove_member("shared", &ben.id).await.unwrap());
    // Deleting a document removes its members and links.
    store
        .create_link("l2", "digest2", "shared", Role::Editor, &ana.id)
        .await
        .unwrap();
    assert!(store.delete("shared").await.unwrap());
    assert!(store.documents_of(&ana.id, 10).await.unwrap().is_empty());
    assert!(store.link_by_token("digest2").await.unwrap().is_none());
}

/// A live document, then the same document loaded again from the snapshot
/// and the op log: byte for byte the same, and resends still recognised.
async fn replay(url: &str) {
    let settings = Settings {
        // Only the first snapshot: loading replays the whole op log.
        snapshot_interval: Duration::from_secs(3600),
        ..Settings::default()
    };
    let store = Store::connect(url).await.unwrap();
    let writer = user("writer");
    store.create_user(&writer, "hash").await.unwrap();
    let documents = Documents::new(
        store.clone(),
        settings.clone(),
        None,
        Default::default(),
        Access::local(),
    );
    let doc = documents
        .create(
            &writer,
            NewDocument {
                text: Some("alpha\nbeta\ngamma\n".into()),
                ..NewDocument::default()
            },
        )
        .await
        .unwrap();
    let mut state = shared::DocumentState::new(
        "alpha\nbeta\ngamma\n",
        Revision(0),
        SectionPolicy::Line,
        Default::default(),
    );
    // Drive the real actor through its queue, as a connection would.
    let handle = documents.handle(&doc.id).await.unwrap();
    let (outbound, mut frames) = tokio::sync::mpsc::channel(1024);
    let socket = futures_util::sink::unfold(outbound, |outbound, message: Message| async move {
        outbound.send(message).await.map_err(|_| ())?;
        Ok::<_, ()>(outbound)
    });
    let (outlet, sink_writer) = collab::document::Outlet::new(Box::pin(socket), 1024);
    tokio::spawn(sink_writer.run(None, Message::Close(None), Duration::from_secs(1)));
    let (done, joined) = tokio::sync::oneshot::channel();
    handle
        .send(collab::document::Command::Join {
            conn: 1,
            outlet,
            peer: shared::protocol::Peer {
                user: writer.id.clone(),
                name: writer.name.clone(),
                color: writer.color.clone(),
                role: Role::Editor,
            },
            revision: Some(Revision(0)),
            done,
        })
        .await
        .unwrap();
    joined.await.unwrap();
    let mut text = String::from("alpha\nbeta\ngamma\n");
    for n in 0..200u64 {
        let len = shared::text::char_count(&text);
        let at = (n as usize * 7) % (len + 1);
        let delta = if n % 5 == 4 && len > 10 {
            Delta::splice(len, at.min(len - 2), 2, "").unwrap()
        } else {
            Delta::splice(len, at, 0, if n % 3 == 0 { "é\n" } else { "x😀" }).unwrap()
        };
        text = delta.apply(&text).unwrap();
        let change = Change {
            client: ClientId::new(5).unwrap(),
            seq: Seq(n + 1),
            base: Revision(n),
            delta,
        };
        state.submit(change.clone(), Author::new("writer")).unwrap();
        handle
            .send(collab::document::Command::Submit {
                conn: 1,
                change,
                author: Author::new("writer"),
            })
            .await
            .unwrap();
    }
    // Wait for the last verdict: everything is durable then.
    let mut last = None;
    while let Some(Message::Text(frame)) = frames.recv().await {
        if frame.as_str().contains(r#""seq":200"#) {
            last = Some(frame);
            break;
        }
    }
    assert!(last.unwrap().as_str().contains("accepted"));
    let live = documents.view(&writer, &doc.id).await.unwrap();
    assert_eq!(live.text, text);

    // A second server on the same database loads it from snapshot + op log.
    let again = Documents::new(
        Store::connect(url).await.unwrap(),
        settings,
        None,
        Default::default(),
        Access::local(),
    );
    let loaded = again.view(&writer, &doc.id).await.unwrap();
    assert_eq!(
        loaded.text.as_bytes(),
        live.text.as_bytes(),
        "replay reproduces the live text byte for byte"
    );
    assert_eq!(loaded.revision, Revision(200));
    assert_eq!(live.text, state.text().to_string());
    documents.shutdown().await;
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store() {
    let dir = TempDir::new("store-sqlite");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    queries(&store).await;
    account_queries(&store).await;
    concurrent_appends(&store).await;
    replay(&dir.sqlite_url()).await;
}

/// On SQLite, appends from many documents share one transaction. One whose
/// insert fails (here refused by a trigger put in behind the store's back)
/// fails alone and writes nothing; the others in its group commit. The
/// head is the op log's last revision, whoever wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_append_fails_alone() {
    let dir = TempDir::new("failing-append");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    let fences = owned_documents(&store, "doc", 20).await;
    let db = Database::connect(&dir.sqlite_url()).await.unwrap();
    db.execute_unprepared(
        "CREATE TRIGGER fail_doc0 BEFORE INSERT ON op_log WHEN NEW.document_id = 'doc0' \
         BEGIN SELECT RAISE(ABORT, 'planted failure'); END",
    )
    .await
    .unwrap();
    let change = accepted(1, Delta::splice(0, 0, 0, "x").unwrap());
    let results = futures_util::future::join_all(fences.iter().enumerate().map(|(i, fence)| {
        let (store, change) = (store.clone(), change.clone());
        async move { store.append(&format!("doc{i}"), *fence, &[&change], &[]).await }
    }))
    .await;
    assert!(matches!(results[0], Err(Error::Sqlite(_))), "{:?}", results[0]);
    assert_eq!(store.document("doc0").await.unwrap().unwrap().head, Revision(0));
    for (i, result) in results.iter().enumerate().skip(1) {
        let id = format!("doc{i}");
        assert!(result.is_ok(), "{id}: {result:?}");
        assert_eq!(store.ops_after(&id, Revision(0), 10).await.unwrap().len(), 1);
        assert_eq!(store.document(&id).await.unwrap().unwrap().head, Revision(1));
    }
    // The store goes on committing.
    let next = accepted(2, Delta::splice(1, 1, 0, "y").unwrap());
    store.append("doc1", fences[1], &[&next], &[]).await.unwrap();
    // A revision already in the op log (put there behind the store's back)
    // is the head: an append that does not continue it writes nothing.
    db.execute_unprepared(
        "INSERT INTO op_log (document_id, revision, client_id, seq, author, delta, created_at) \
         VALUES ('doc2', 2, 1, 1, 'x', '[]', 0)",
    )
    .await
    .unwrap();
    assert_eq!(store.document("doc2").await.unwrap().unwrap().head, Revision(2));
    assert!(matches!(
        store.append("doc2", fences[2], &[&next], &[]).await,
        Err(Error::Fenced(_))
    ));
    assert_eq!(store.ops_after("doc2", Revision(1), 10).await.unwrap().len(), 1);
}

/// The group commit opens the SQLite file itself, so a database in memory
/// is refused with a clear error.
#[tokio::test]
async fn sqlite_in_memory_is_refused() {
    for url in ["sqlite::memory:", "sqlite://file:x?mode=memory"] {
        match Store::connect(url).await {
            Err(Error::Config(message)) => assert!(message.contains("must be a file"), "{message}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store() {
    let server = std::env::var("COLLAB_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} (run scripts/setup to start one): {e}"));
    let mut bytes = [0u8; 6];
    getrandom::getrandom(&mut bytes).unwrap();
    let name = format!(
        "collab_test_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{server}/{name}");
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    queries(&store).await;
    account_queries(&store).await;
    concurrent_appends(&store).await;
    replay(&url).await;
    drop(store);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await;
}

/// A document whose stored history is broken fails alone: the server and
/// the other documents carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_document_fails_alone() {
    let dir = TempDir::new("broken");
    let url = dir.sqlite_url();
    let server = support::start(&url, support::any_port(), |c| {
        c.documents.idle_timeout = Duration::from_secs(1)
    })
    .await;
    let owner = support::sign_up(&server.addr.to_string(), "owner").await;
    let good = server
        .documents()
        .create(&owner.user, NewDocument::default())
        .await
        .unwrap();
    let bad = server
        .documents()
        .create(&owner.user, NewDocument::default())
        .await
        .unwrap();
    // Corrupt the second document's op log behind the server's back.
    let db = Database::connect(&url).await.unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO op_log (document_id, revision, client_id, seq, author, delta, created_at) \
         VALUES ('{}', 1, 1, 1, 'x', 'not a delta', 0)",
        bad.id
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE documents SET head_revision = 1 WHERE id = '{}'",
        bad.id
    ))
    .await
    .unwrap();

    assert!(
        server.documents().view(&owner.user, &bad.id).await.is_err(),
        "the broken document does not load"
    );
    let view = server.documents().view(&owner.user, &good.id).await.unwrap();
    assert_eq!(view.revision, Revision(0));
    let mut browser = support::Browser::open(server.addr, &good.id, 1, &owner).await;
    browser.state.edit(Delta::splice(0, 0, 0, "works").unwrap()).unwrap();
    browser.pump().await;
    browser.settle(None).await;
    assert_eq!(
        server.documents().view(&owner.user, &good.id).await.unwrap().text,
        "works"
    );

    // Idle documents are unloaded, and load again when asked for.
    drop(browser);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.documents().open_count(), 0, "idle documents unloaded");
    assert_eq!(
        server.documents().view(&owner.user, &good.id).await.unwrap().text,
        "works"
    );
    server.shutdown().await;
}
