//! Group commit, for SQLite.
//!
//! SQLite lets one transaction write at a time, and every commit waits for
//! the disk (`synchronous = FULL`). With each document actor committing its
//! own batch, a thousand busy documents queue on the write lock, each
//! paying a sync, and the waiters sleep in SQLite's busy handler. Here one
//! thread takes every waiting op log append and snapshot, writes them all
//! in one transaction and answers each writer after the one commit: the
//! cost of a sync is shared by everyone who was waiting for it. Under load
//! commits start [`COMMIT_SPACING`] apart, so more writers share each one.
//!
//! Each append still checks its own fence and head revision; one that fails
//! them writes nothing and gets [`Error::Fenced`] while the others commit.
//! Both checks only read: the head is the op log's last revision (see
//! [`FENCED_HEAD`]), so an append writes the op log and not the document's
//! row as well. SQLite's `documents.head_revision` is therefore a floor,
//! and the store reads a document's head as [`HEAD`], the op log's last
//! revision when that is later.
//!
//! If the transaction fails as a whole, each write is retried alone, so one
//! bad write cannot fail its neighbours.
//!
//! The thread holds its own SQLite connection (rusqlite, on the same SQLite
//! as sqlx) and runs every statement itself. Through sqlx, each statement
//! was a hand-off to sqlx's worker thread and back, four per commit; on a
//! busy server each hand-off waited for a core, and every change waits for
//! its commit before the other editors hear of it. For the same reason it
//! waits for SQLite's write lock (held by a write through the pool) in
//! steps of 100 µs, not in SQLite's own steps of up to 100 ms.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, CachedStatement, Connection, OptionalExtension, TransactionBehavior};
use shared::{AcceptedChange, Revision};
use tokio::sync::{mpsc, oneshot};

use super::{now_ms, Fence, RejectedChange};
use crate::error::Error;

/// Writes taken per transaction, at most.
const MAX_GROUP: usize = 1024;

/// The expression of [`HEAD`], as a literal for `concat!`.
macro_rules! head {
    () => {
        "MAX(documents.head_revision, COALESCE((SELECT revision FROM op_log \
         WHERE op_log.document_id = documents.id ORDER BY revision DESC LIMIT 1), 0))"
    };
}

/// A document's head in SQLite, as an expression over its `documents`
/// row: the later of the row's `head_revision` and the op log's last
/// revision. The store reads documents with it (`Store::find_documents`).
pub(super) const HEAD: &str = head!();

/// The document's [`HEAD`], when its row still carries the appender's fence
/// (no row otherwise). Parameters: the id, the fence.
///
/// Inside the group's transaction, which holds SQLite's only write lock, a
/// read is as good a check as the row update of [`super::append_in`]: no
/// one can take the fence or append between it and the commit. Rewriting
/// the row on every append dirtied one page of the document table per
/// document of a group, about a third of the pages a commit wrote (at
/// 4,000 editors, 16.4 against 11.2 `pwrite`s per commit, and a fifth
/// more bytes written per change).
const FENCED_HEAD: &str = concat!("SELECT ", head!(), " FROM documents WHERE id = ?1 AND fence = ?2");

/// A write waiting for the next commit.
pub enum Write {
    Append {
        id: String,
        fence: Fence,
        accepted: Vec<AcceptedChange>,
        rejected: Vec<RejectedChange>,
    },
    Snapshot {
        id: String,
        revision: Revision,
        text: String,
        keep_from: Revision,
        changed_at: i64,
    },
}

/// The handle writers send to.
#[derive(Clone, Debug)]
pub struct Committer {
    queue: mpsc::UnboundedSender<(Write, oneshot::Sender<Result<(), Error>>)>,
}

impl Committer {
    /// Opens the database file at `path` (its schema already migrated) and
    /// starts the committing thread.
    pub fn start(path: &Path) -> Result<Committer, Error> {
        let db = open(path)?;
        let (queue, waiting) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(db, waiting))?;
        Ok(Committer { queue })
    }

    /// Writes, durably, or fails.
    pub async fn write(&self, write: Write) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((write, reply)).map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }
}

/// The committer's connection, set up as sqlx sets up the pool's: WAL,
/// `synchronous = FULL`, foreign keys enforced; and a busy handler of its
/// own (below) that gives up after 10 s of sleeping.
fn open(path: &Path) -> Result<Connection, Error> {
    let db = Connection::open(path)?;
    db.busy_handler(Some(wait_for_lock))?;
    db.pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.pragma_update(None, "foreign_keys", "ON")?;
    Ok(db)
}

/// How long the group commit sleeps between tries while the pool holds
/// SQLite's write lock (opening a document takes its fence there, a share
/// adds a member), and how many tries it makes: 10 s of sleeping, longer
/// when the thread wakes late on a busy machine.
const LOCK_POLL: Duration = Duration::from_micros(100);
const LOCK_TRIES: i32 = 100_000;

/// SQLite's busy handler for the group commit: try again every
/// [`LOCK_POLL`]. SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10, 15 ms
/// and so on between tries, so the group commit, and with it every
/// document's typing, could sleep up to twice as long as a pool write held
/// the lock (in a ramp of 2,500 to 3,500 editors: 487 sleeps, 2.4 s of
/// 75 s; 1.45 s with this handler).
fn wait_for_lock(tries: i32) -> bool {
    std::thread::sleep(LOCK_POLL);
    tries < LOCK_TRIES
}

/// The least time from one commit's start to the next's. A write that
/// comes after a quiet spell commits at once; under load, writes gather
/// for up to this long before the sync they share. Committing whatever had
/// arrived (about 4 changes a commit at 6,800 changes per second) paid a
/// sync, SQLite's locks and the wake-ups of the writers' tasks for every
/// few changes. At 350 documents × 10 editors × 2/s, syncs per 1,000
/// changes went 230 → 124 with commits 1 ms apart and → 78 with 2 ms, the
/// group commit's CPU fell by a fifth and then a quarter more, the
/// server's by a tenth and then a tenth more; an append waits at most
/// 2 ms longer.
const COMMIT_SPACING: Duration = Duration::from_millis(2);

type Waiting = mpsc::UnboundedReceiver<(Write, oneshot::Sender<Result<(), Error>>)>;

/// Commits whatever is waiting, group after group, until every writer's
/// handle is gone.
fn run(mut db: Connection, mut waiting: Waiting) {
    let mut group = Vec::new();
    let mut last_commit: Option<Instant> = None;
    while let Some(first) = waiting.blocking_recv() {
        group.push(first);
        let due = last_commit.map(|last| last + COMMIT_SPACING);
        if let Some(wait) = due.and_then(|due| due.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait);
        }
        last_commit = Some(Instant::now());
        while group.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let writes: Vec<&Write> = group.iter().map(|(w, _)| w).collect();
        match commit(&mut db, &writes) {
            Ok(results) => {
                for ((_, reply), result) in group.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, writes = group.len(), "group commit failed; committing one by one");
                for (write, reply) in group.drain(..) {
                    let result = match commit(&mut db, &[&write]) {
                        Ok(mut results) => results.pop().unwrap_or(Ok(())),
                        Err(error) => Err(error),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// One transaction for all `writes`, each checked and written in turn. The
/// result of each write, or the transaction's failure (then nothing is
/// written).
fn commit(db: &mut Connection, writes: &[&Write]) -> Result<Vec<Result<(), Error>>, Error> {
    let now = now_ms();
    let started = Instant::now();
    // IMMEDIATE: take the write lock now, waiting in the busy handler if
    // the pool holds it, rather than fail later on upgrading a read.
    let txn = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = {
        let mut statements = Statements::prepare(&txn)?;
        writes
            .iter()
            .map(|write| statements.write(write, now))
            .collect::<Result<Vec<_>, Error>>()?
    };
    txn.commit()?;
    tracing::debug!(
        writes = writes.len(),
        committed = ?started.elapsed(),
        "group commit"
    );
    Ok(results)
}

/// The statements a commit runs, prepared once per connection (rusqlite
/// keeps them in its statement cache).
struct Statements<'c> {
    fenced_head: CachedStatement<'c>,
    insert_op: CachedStatement<'c>,
    insert_rejected: CachedStatement<'c>,
    upsert_snapshot: CachedStatement<'c>,
    prune_snapshots: CachedStatement<'c>,
    touch: CachedStatement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(db: &'c Connection) -> Result<Statements<'c>, Error> {
        Ok(Statements {
            fenced_head: db.prepare_cached(FENCED_HEAD)?,
            insert_op: db.prepare_cached(
                "INSERT INTO op_log (document_id, revision, client_id, seq, author, delta, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            insert_rejected: db.prepare_cached(
                "INSERT INTO rejected_changes \
                 (document_id, client_id, seq, base_revision, revision, author, delta, verdict, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            upsert_snapshot: db.prepare_cached(
                "INSERT INTO snapshots (document_id, revision, text, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (document_id, revision) DO UPDATE SET text = excluded.text",
            )?,
            prune_snapshots: db.prepare_cached(super::PRUNE_SNAPSHOTS)?,
            touch: db.prepare_cached(super::TOUCH)?,
        })
    }

    /// Writes one append or snapshot: `Err(Fenced)` inside `Ok` when its
    /// checks fail (nothing written), the outer error when a statement does.
    fn write(&mut self, write: &Write, now: i64) -> Result<Result<(), Error>, Error> {
        match write {
            Write::Append {
                id,
                fence,
                accepted,
                rejected,
            } => {
                let head: Option<i64> = self
                    .fenced_head
                    .query_row(params![id, fence.0], |row| row.get(0))
                    .optional()?;
                let continues = match (head, accepted.first()) {
                    (None, _) => false,
                    (Some(head), Some(first)) => head == first.revision.0 as i64 - 1,
                    (Some(_), None) => true,
                };
                if !continues {
                    return Ok(Err(Error::Fenced(id.clone())));
                }
                for change in accepted {
                    self.insert_op.execute(params![
                        id,
                        change.revision.0 as i64,
                        change.client.get() as i64,
                        change.seq.0 as i64,
                        change.author.name(),
                        super::to_json(&change.delta),
                        now
                    ])?;
                }
                for change in rejected {
                    self.insert_rejected.execute(params![
                        id,
                        change.client.get() as i64,
                        change.seq.0 as i64,
                        change.base.0 as i64,
                        change.revision.0 as i64,
                        change.author.name(),
                        super::to_json(&change.delta),
                        super::to_json(&change.verdict),
                        now
                    ])?;
                }
            }
            Write::Snapshot {
                id,
                revision,
                text,
                keep_from,
                changed_at,
            } => {
                self.upsert_snapshot
                    .execute(params![id, revision.0 as i64, text, now])?;
                self.prune_snapshots.execute(params![id, keep_from.0 as i64])?;
                self.touch.execute(params![changed_at, id])?;
            }
        }
        Ok(Ok(()))
    }
}
