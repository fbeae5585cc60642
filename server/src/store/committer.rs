//! Group commit, for SQLite.
//!
//! SQLite lets one transaction write at a time, and every commit waits for
//! the disk (`synchronous = FULL`). With each document actor committing its
//! own batch, a thousand busy documents queue on the write lock, each
//! paying a sync, and the waiters sleep in SQLite's busy handler. Here one
//! task takes every waiting op log append and snapshot, writes them all in
//! one transaction and answers each writer after the one commit: the cost
//! of a sync is shared by everyone who was waiting for it.
//!
//! Each append still checks its own fence and head revision; one that fails
//! them writes nothing and gets [`Error::Fenced`] while the others commit.
//! If the transaction fails as a whole, each write is retried alone, so one
//! bad write cannot fail its neighbours. Whatever the number of writes, the
//! transaction is a handful of statements: each statement is a round trip
//! to SQLite's worker thread, and those round trips, not SQLite, were what
//! limited a busy server.

use std::collections::HashSet;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement, TransactionTrait, Value,
};
use shared::{AcceptedChange, Revision};
use tokio::sync::{mpsc, oneshot};

use super::entities::{op, rejected, snapshot};
use super::{now_ms, op_rows, rejected_rows, Fence, RejectedChange};
use crate::error::Error;

/// Writes taken per transaction, at most.
const MAX_GROUP: usize = 1024;

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
    },
}

/// The handle writers send to.
#[derive(Clone, Debug)]
pub struct Committer {
    queue: mpsc::UnboundedSender<(Write, oneshot::Sender<Result<(), Error>>)>,
}

impl Committer {
    /// Starts the committing task.
    pub fn start(db: DatabaseConnection) -> Committer {
        let (queue, waiting) = mpsc::unbounded_channel();
        // Its own thread and runtime: on the server's, every await of a
        // statement would queue behind thousands of connection tasks.
        let spawned = std::thread::Builder::new().name("group-commit".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(run(db, waiting)),
                Err(error) => tracing::error!(%error, "cannot start the group commit thread"),
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the group commit thread");
        }
        Committer { queue }
    }

    /// Writes, durably, or fails.
    pub async fn write(&self, write: Write) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((write, reply)).map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }
}

type Waiting = mpsc::UnboundedReceiver<(Write, oneshot::Sender<Result<(), Error>>)>;

async fn run(db: DatabaseConnection, mut waiting: Waiting) {
    let mut group = Vec::new();
    while waiting.recv_many(&mut group, MAX_GROUP).await > 0 {
        let writes: Vec<&Write> = group.iter().map(|(w, _)| w).collect();
        match commit(&db, &writes).await {
            Ok(results) => {
                for ((_, reply), result) in group.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, writes = group.len(), "group commit failed; committing one by one");
                for (write, reply) in group.drain(..) {
                    let result = match commit(&db, &[&write]).await {
                        Ok(mut results) => results.pop().unwrap_or(Ok(())),
                        Err(error) => Err(error),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// Rows per multi-row statement (SQLite allows 32,766 parameters).
const CHUNK: usize = 500;

/// One transaction for all `writes`, in a handful of statements whatever
/// their number: one fence-and-head check for every append (`RETURNING`
/// the documents that passed), one insert of all their changes, one upsert
/// of all snapshots, one prune. The result of each write, or the
/// transaction's failure.
async fn commit(db: &DatabaseConnection, writes: &[&Write]) -> Result<Vec<Result<(), Error>>, Error> {
    let now = now_ms();
    let started = std::time::Instant::now();
    let txn = db.begin().await?;
    let appends: Vec<(&str, Fence, &[AcceptedChange])> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Append {
                id, fence, accepted, ..
            } => Some((id.as_str(), *fence, accepted.as_slice())),
            Write::Snapshot { .. } => None,
        })
        .collect();
    let mut passed: HashSet<String> = HashSet::new();
    for chunk in appends.chunks(CHUNK) {
        passed.extend(check_heads(&txn, chunk, now).await?);
    }
    let mut ops = Vec::new();
    let mut rejections = Vec::new();
    let mut snapshots = Vec::new();
    let mut prunes = Vec::new();
    for write in writes {
        match write {
            Write::Append {
                id, accepted, rejected, ..
            } if passed.contains(id) => {
                ops.extend(op_rows(id, accepted.iter(), now));
                rejections.extend(rejected_rows(id, rejected, now));
            }
            Write::Append { .. } => {}
            Write::Snapshot {
                id,
                revision,
                text,
                keep_from,
            } => {
                snapshots.push(snapshot::ActiveModel {
                    document_id: Set(id.clone()),
                    revision: Set(revision.0 as i64),
                    text: Set(text.clone()),
                    created_at: Set(now),
                });
                prunes.push((id.as_str(), *keep_from));
            }
        }
    }
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(CHUNK));
        op::Entity::insert_many(std::mem::replace(&mut ops, rest))
            .exec_without_returning(&txn)
            .await?;
    }
    while !rejections.is_empty() {
        let rest = rejections.split_off(rejections.len().min(CHUNK));
        rejected::Entity::insert_many(std::mem::replace(&mut rejections, rest))
            .exec_without_returning(&txn)
            .await?;
    }
    while !snapshots.is_empty() {
        let rest = snapshots.split_off(snapshots.len().min(CHUNK));
        snapshot::Entity::insert_many(std::mem::replace(&mut snapshots, rest))
            .on_conflict(
                OnConflict::columns([snapshot::Column::DocumentId, snapshot::Column::Revision])
                    .update_column(snapshot::Column::Text)
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    for chunk in prunes.chunks(CHUNK) {
        prune(&txn, chunk).await?;
    }
    txn.commit().await?;
    tracing::debug!(
        writes = writes.len(),
        committed = ?started.elapsed(),
        "group commit"
    );
    Ok(writes
        .iter()
        .map(|w| match w {
            Write::Append { id, .. } if !passed.contains(id) => Err(Error::Fenced(id.clone())),
            _ => Ok(()),
        })
        .collect())
}

/// Moves each document's head to its last change, where its fence and head
/// still match (as [`super::append_in`] does for one); returns the
/// documents that matched.
async fn check_heads<C: ConnectionTrait>(
    txn: &C,
    appends: &[(&str, Fence, &[AcceptedChange])],
    now: i64,
) -> Result<Vec<String>, Error> {
    // The planner loops over the (few) named documents and finds each by
    // its primary key; an `OR` of hundreds of terms would scan instead.
    let mut values: Vec<Value> = Vec::new();
    let rows: Vec<&str> = appends
        .iter()
        .map(|(id, fence, accepted)| {
            values.push((*id).into());
            values.push(fence.0.into());
            values.push(Value::BigInt(accepted.first().map(|c| c.revision.0 as i64 - 1)));
            values.push(Value::BigInt(accepted.last().map(|c| c.revision.0 as i64)));
            "(?, ?, ?, ?)"
        })
        .collect();
    values.push(now.into());
    let sql = format!(
        "WITH batch(doc, expected_fence, expected_head, new_head) AS (VALUES {}) \
         UPDATE documents SET updated_at = ?, head_revision = COALESCE(batch.new_head, documents.head_revision) \
         FROM batch WHERE documents.id = batch.doc AND documents.fence = batch.expected_fence \
         AND (batch.expected_head IS NULL OR documents.head_revision = batch.expected_head) \
         RETURNING id",
        rows.join(", ")
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "id").map_err(Error::from))
        .collect()
}

/// Deletes each document's snapshots older than its newest one at or
/// before `keep_from` (as [`super::snapshot_in`] does for one).
async fn prune<C: ConnectionTrait>(txn: &C, keep: &[(&str, Revision)]) -> Result<(), Error> {
    let mut values: Vec<Value> = Vec::new();
    let rows: Vec<&str> = keep
        .iter()
        .map(|(id, upto)| {
            values.push((*id).into());
            values.push((upto.0 as i64).into());
            "(?, ?)"
        })
        .collect();
    // Driven from the (few) documents named, through the primary key.
    let sql = format!(
        "WITH keep(id, upto) AS (VALUES {}) \
         DELETE FROM snapshots WHERE (document_id, revision) IN \
         (SELECT s.document_id, s.revision FROM keep JOIN snapshots s ON s.document_id = keep.id \
         WHERE s.revision < (SELECT MAX(a.revision) FROM snapshots a \
         WHERE a.document_id = keep.id AND a.revision <= keep.upto))",
        rows.join(", ")
    );
    txn.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
        .await?;
    Ok(())
}
