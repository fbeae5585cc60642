//! Durable storage with sea-orm: SQLite by default (a file in the data
//! directory, WAL, `synchronous = FULL`), PostgreSQL from a URL.
//!
//! The op log holds every accepted change; an append commits before the
//! change is acknowledged. Snapshots hold the text at some revisions, so a
//! document loads as a snapshot plus the op log after it.

mod accounts;
mod committer;
mod entities;
mod migrations;

pub use accounts::UserRow;

use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect, Select, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use shared::api::{DocumentSummary, Role};
use shared::{AcceptedChange, Author, ClientId, Delta, Revision, SectionPolicy, Seq, Verdict};

use crate::error::Error;
use entities::{document, member, op, rejected, share_link, snapshot};

/// A rejected change, as recorded.
#[derive(Clone, Debug)]
pub struct RejectedChange {
    pub client: ClientId,
    pub seq: Seq,
    pub base: Revision,
    /// The document's revision when it was rejected.
    pub revision: Revision,
    pub author: Author,
    pub delta: Delta,
    pub verdict: Verdict,
}

/// A fencing token: which owner of a document this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fence(pub i64);

/// A document's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentMeta {
    pub id: String,
    pub title: String,
    pub policy: SectionPolicy,
    pub head: Revision,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DocumentMeta {
    /// The document as a caller with `role` sees it in a list.
    pub fn summary(&self, role: Role) -> DocumentSummary {
        DocumentSummary {
            id: self.id.clone(),
            title: self.title.clone(),
            revision: self.head,
            policy: self.policy,
            role,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The database, shared by every document actor and request.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite's single writer for appends and snapshots (group commit).
    committer: Option<committer::Committer>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Connects and brings the schema up to date. A `sqlite:` URL creates
    /// the file (and its directory) when missing.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let sqlite_path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|path| path.split('?').next().unwrap_or(path));
        if let Some(path) = sqlite_path {
            // The group commit opens the file itself: a database in memory
            // would be another database on its connection.
            if path.is_empty() || path.starts_with(":memory:") || url.contains("mode=memory") {
                return Err(Error::Config(format!(
                    "{url}: SQLite must be a file (sqlite://path/to/collab.db)"
                )));
            }
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
            }
        }
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .sqlx_logging(false);
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
        });
        let db = Database::connect(options).await?;
        migrations::Migrator::up(&db, None).await?;
        // SQLite has one writer at a time: many document actors committing
        // on their own would queue on its lock (and sleep in its busy
        // handler). One thread commits everyone's writes together instead,
        // on a connection of its own.
        let committer = match sqlite_path {
            Some(path) => Some(committer::Committer::start(std::path::Path::new(path))?),
            None => None,
        };
        Ok(Store { db, committer })
    }

    /// True when the database answers.
    pub async fn ready(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// Which database this is, for logs.
    pub fn backend(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Creates a document at revision 0 with `text` as its first snapshot,
    /// `owner` (a user id) its owner.
    pub async fn create_document(
        &self,
        id: &str,
        title: &str,
        policy: SectionPolicy,
        text: &str,
        owner: &str,
    ) -> Result<DocumentMeta, Error> {
        let now = now_ms();
        let txn = self.db.begin().await?;
        document::Entity::insert(document::ActiveModel {
            id: Set(id.to_owned()),
            title: Set(title.to_owned()),
            policy: Set(policy.name().to_owned()),
            head_revision: Set(0),
            fence: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        snapshot::Entity::insert(snapshot::ActiveModel {
            document_id: Set(id.to_owned()),
            revision: Set(0),
            text: Set(text.to_owned()),
            created_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        member::Entity::insert(member::ActiveModel {
            document_id: Set(id.to_owned()),
            user_id: Set(owner.to_owned()),
            role: Set(Role::Owner.name().to_owned()),
            via_link: Set(None),
            created_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(DocumentMeta {
            id: id.to_owned(),
            title: title.to_owned(),
            policy,
            head: Revision(0),
            created_at: now,
            updated_at: now,
        })
    }

    /// The most recently changed documents first.
    pub async fn list_documents(&self, limit: u64) -> Result<Vec<DocumentMeta>, Error> {
        self.find_documents()
            .order_by_desc(document::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(meta)
            .collect()
    }

    /// One document's row, with its head revision.
    pub async fn document(&self, id: &str) -> Result<Option<DocumentMeta>, Error> {
        self.find_documents()
            .filter(document::Column::Id.eq(id))
            .one(&self.db)
            .await?
            .map(meta)
            .transpose()
    }

    /// The documents table as the store reads it. In PostgreSQL a row's
    /// `head_revision` is the head, which every append advances; in SQLite
    /// the group commit appends without rewriting the row, so the head is
    /// read as [`committer::HEAD`], the op log's last revision when that is
    /// later.
    fn find_documents(&self) -> Select<document::Entity> {
        let find = document::Entity::find();
        if self.committer.is_none() {
            return find;
        }
        find.select_only()
            .columns(document::Column::iter().filter(|c| !matches!(c, document::Column::HeadRevision)))
            .column_as(Expr::cust(committer::HEAD), "head_revision")
    }

    /// Renames a document; false when there is none.
    pub async fn rename(&self, id: &str, title: &str) -> Result<bool, Error> {
        let result = document::Entity::update_many()
            .col_expr(document::Column::Title, title.into())
            .col_expr(document::Column::UpdatedAt, now_ms().into())
            .filter(document::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Deletes a document and all its history; false when there is none.
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let txn = self.db.begin().await?;
        op::Entity::delete_many()
            .filter(op::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        snapshot::Entity::delete_many()
            .filter(snapshot::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        rejected::Entity::delete_many()
            .filter(rejected::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        member::Entity::delete_many()
            .filter(member::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        share_link::Entity::delete_many()
            .filter(share_link::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        let deleted = document::Entity::delete_many()
            .filter(document::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(deleted.rows_affected > 0)
    }

    /// The newest snapshot at or before `revision`.
    pub async fn snapshot_at_or_before(
        &self,
        id: &str,
        revision: Revision,
    ) -> Result<Option<(Revision, String)>, Error> {
        let row = snapshot::Entity::find()
            .filter(snapshot::Column::DocumentId.eq(id))
            .filter(snapshot::Column::Revision.lte(revision.0 as i64))
            .order_by_desc(snapshot::Column::Revision)
            .one(&self.db)
            .await?;
        Ok(row.map(|r| (Revision(r.revision as u64), r.text)))
    }

    /// Accepted changes after `after`, in order, at most `limit`.
    pub async fn ops_after(&self, id: &str, after: Revision, limit: u64) -> Result<Vec<AcceptedChange>, Error> {
        let rows = op::Entity::find()
            .filter(op::Column::DocumentId.eq(id))
            .filter(op::Column::Revision.gt(after.0 as i64))
            .order_by_asc(op::Column::Revision)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AcceptedChange {
                    revision: Revision(r.revision as u64),
                    client: ClientId::new(r.client_id as u64).ok_or_else(|| Error::Corrupt("client id".into()))?,
                    seq: Seq(r.seq as u64),
                    author: Author::new(&r.author),
                    delta: serde_json::from_str(&r.delta).map_err(|e| Error::Corrupt(format!("op delta: {e}")))?,
                })
            })
            .collect()
    }

    /// Rejected changes decided at or after `revision`.
    pub async fn rejected_since(&self, id: &str, revision: Revision) -> Result<Vec<RejectedChange>, Error> {
        let rows = rejected::Entity::find()
            .filter(rejected::Column::DocumentId.eq(id))
            .filter(rejected::Column::Revision.gte(revision.0 as i64))
            .order_by_asc(rejected::Column::Id)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RejectedChange {
                    client: ClientId::new(r.client_id as u64).ok_or_else(|| Error::Corrupt("client id".into()))?,
                    seq: Seq(r.seq as u64),
                    base: Revision(r.base_revision as u64),
                    revision: Revision(r.revision as u64),
                    author: Author::new(&r.author),
                    delta: serde_json::from_str(&r.delta).map_err(|e| Error::Corrupt(format!("delta: {e}")))?,
                    verdict: serde_json::from_str(&r.verdict).map_err(|e| Error::Corrupt(format!("verdict: {e}")))?,
                })
            })
            .collect()
    }

    /// Makes this process the document's owner: a new fencing token, which
    /// every later append must present. Older owners' appends fail from now on.
    pub async fn take_fence(&self, id: &str) -> Result<Fence, Error> {
        let txn = self.db.begin().await?;
        let updated = document::Entity::update_many()
            .col_expr(document::Column::Fence, Expr::col(document::Column::Fence).add(1))
            .filter(document::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::UnknownDocument(id.to_owned()));
        }
        let row = document::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::UnknownDocument(id.to_owned()))?;
        txn.commit().await?;
        Ok(Fence(row.fence))
    }

    /// Appends accepted changes to the op log and records rejected ones, in
    /// one transaction. When it returns, they are durable.
    ///
    /// The document's row must still carry `fence` (no newer owner) and its
    /// head must be the revision just before the first change (no gap, no
    /// duplicate); otherwise nothing is written and the answer is
    /// [`Error::Fenced`].
    pub async fn append(
        &self,
        id: &str,
        fence: Fence,
        accepted: &[&AcceptedChange],
        rejected: &[RejectedChange],
    ) -> Result<(), Error> {
        if accepted.is_empty() && rejected.is_empty() {
            return Ok(());
        }
        if let Some(committer) = &self.committer {
            let write = committer::Write::Append {
                id: id.to_owned(),
                fence,
                accepted: accepted.iter().map(|c| (*c).clone()).collect(),
                rejected: rejected.to_vec(),
            };
            return committer.write(write).await;
        }
        let txn = self.db.begin().await?;
        if !append_in(&txn, id, fence, accepted, rejected).await? {
            return Err(Error::Fenced(id.to_owned()));
        }
        txn.commit().await?;
        Ok(())
    }

    /// The text of a document at its latest durable revision, read without
    /// owning it: the newest snapshot (or `cached`, if newer) and the op log
    /// after it.
    pub async fn read_text(&self, id: &str, cached: Option<(Revision, String)>) -> Result<(Revision, String), Error> {
        let meta = self
            .document(id)
            .await?
            .ok_or_else(|| Error::UnknownDocument(id.to_owned()))?;
        let stored = self.snapshot_at_or_before(id, meta.head).await?;
        let (mut revision, mut text) = match (stored, cached) {
            (Some(s), Some(c)) if c.0 > s.0 && c.0 <= meta.head => c,
            (Some(s), _) => s,
            (None, Some(c)) => c,
            (None, None) => return Err(Error::Corrupt(format!("document {id} has no snapshot"))),
        };
        loop {
            let ops = self.ops_after(id, revision, 10_000).await?;
            if ops.is_empty() {
                return Ok((revision, text));
            }
            for op in ops {
                if op.revision != revision.next() {
                    return Err(Error::Corrupt(format!(
                        "document {id}: op log gap at {}",
                        revision.next()
                    )));
                }
                text = op
                    .delta
                    .apply(&text)
                    .map_err(|e| Error::Corrupt(format!("document {id}: {e}")))?;
                revision = op.revision;
            }
        }
    }

    /// Saves the text at `revision`, and drops snapshots older than `keep_from`
    /// except the newest of those (so a snapshot at or before `keep_from` stays).
    pub async fn save_snapshot(
        &self,
        id: &str,
        revision: Revision,
        text: &str,
        keep_from: Revision,
        changed_at: i64,
    ) -> Result<(), Error> {
        if let Some(committer) = &self.committer {
            let write = committer::Write::Snapshot {
                id: id.to_owned(),
                revision,
                text: text.to_owned(),
                keep_from,
                changed_at,
            };
            return committer.write(write).await;
        }
        let txn = self.db.begin().await?;
        snapshot_in(&txn, id, revision, text, keep_from, changed_at).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// The op log append of [`Store::append`], inside the caller's transaction.
/// False (and nothing written) when the fence or the head does not match.
async fn append_in<C: ConnectionTrait>(
    txn: &C,
    id: &str,
    fence: Fence,
    accepted: &[&AcceptedChange],
    rejected: &[RejectedChange],
) -> Result<bool, Error> {
    let now = now_ms();
    // The row update comes first: it takes the row's lock, so concurrent
    // appenders queue behind each other, and it checks the fence (and the
    // head, which it advances). It leaves `updated_at` alone: that is an
    // indexed column, written with the snapshots (see [`TOUCH`]).
    let check = match (accepted.first(), accepted.last()) {
        (Some(first), Some(last)) => Statement::from_sql_and_values(
            txn.get_database_backend(),
            ADVANCE_HEAD,
            [
                (last.revision.0 as i64).into(),
                id.into(),
                fence.0.into(),
                (first.revision.0 as i64 - 1).into(),
            ],
        ),
        _ => Statement::from_sql_and_values(txn.get_database_backend(), CHECK_FENCE, [id.into(), fence.0.into()]),
    };
    if txn.execute_raw(check).await?.rows_affected() != 1 {
        return Ok(false);
    }
    if !accepted.is_empty() {
        op::Entity::insert_many(op_rows(id, accepted.iter().copied(), now))
            .exec_without_returning(txn)
            .await?;
    }
    if !rejected.is_empty() {
        rejected::Entity::insert_many(rejected_rows(id, rejected, now))
            .exec_without_returning(txn)
            .await?;
    }
    Ok(true)
}

/// A delta or verdict in its stored (wire) form.
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("deltas and verdicts serialize")
}

/// Op log rows for accepted changes of document `id`.
fn op_rows<'a>(
    id: &'a str,
    accepted: impl Iterator<Item = &'a AcceptedChange> + 'a,
    now: i64,
) -> impl Iterator<Item = op::ActiveModel> + 'a {
    accepted.map(move |c| op::ActiveModel {
        document_id: Set(id.to_owned()),
        revision: Set(c.revision.0 as i64),
        client_id: Set(c.client.get() as i64),
        seq: Set(c.seq.0 as i64),
        author: Set(c.author.name().to_owned()),
        delta: Set(to_json(&c.delta)),
        created_at: Set(now),
    })
}

/// Rows recording rejected changes of document `id`.
fn rejected_rows<'a>(
    id: &'a str,
    rejected: &'a [RejectedChange],
    now: i64,
) -> impl Iterator<Item = rejected::ActiveModel> + 'a {
    rejected.iter().map(move |r| rejected::ActiveModel {
        document_id: Set(id.to_owned()),
        client_id: Set(r.client.get() as i64),
        seq: Set(r.seq.0 as i64),
        base_revision: Set(r.base.0 as i64),
        revision: Set(r.revision.0 as i64),
        author: Set(r.author.name().to_owned()),
        delta: Set(to_json(&r.delta)),
        verdict: Set(to_json(&r.verdict)),
        created_at: Set(now),
        ..Default::default()
    })
}

/// Deletes document `$1`'s snapshots older than its newest one at or before
/// revision `$2`: that one and everything after it stay. One text for both
/// paths, the group commit's (SQLite, where `$1` is a parameter named "$1",
/// bound first) and [`snapshot_in`]'s.
const PRUNE_SNAPSHOTS: &str = "DELETE FROM snapshots WHERE document_id = $1 AND revision < \
     (SELECT MAX(revision) FROM snapshots WHERE document_id = $1 AND revision <= $2)";

/// The fence and head check of an append through the pool (PostgreSQL; the
/// group commit checks with a read instead, `committer::FENCED_HEAD`):
/// the head moves from the revision before its first change to its last,
/// only if the document still carries the appender's fence. Parameters:
/// the new head, the id, the fence, the head expected.
const ADVANCE_HEAD: &str =
    "UPDATE documents SET head_revision = $1 WHERE id = $2 AND fence = $3 AND head_revision = $4";

/// The fence check of an append with no accepted change (only rejected
/// ones): a row update, for its lock, that changes nothing.
const CHECK_FENCE: &str = "UPDATE documents SET head_revision = head_revision WHERE id = $1 AND fence = $2";

/// Moves a document's `updated_at` forward to the time of the last change
/// a snapshot holds. Written with snapshots, not with every append: the
/// column is indexed (the home page lists by it), and rewriting it on every
/// append moved its index entry each time: a fifth of the pages an embedded
/// commit of four appends wrote. So the listing's order lags the edits by
/// at most one database snapshot interval.
///
/// (Parameters: the time, then the id; SQLite numbers `$n` parameters in the
/// order they first appear.)
const TOUCH: &str = "UPDATE documents SET updated_at = $1 WHERE id = $2 AND updated_at < $1";

/// The snapshot write of [`Store::save_snapshot`], inside the caller's
/// transaction.
async fn snapshot_in<C: ConnectionTrait>(
    txn: &C,
    id: &str,
    revision: Revision,
    text: &str,
    keep_from: Revision,
    changed_at: i64,
) -> Result<(), Error> {
    snapshot::Entity::insert(snapshot::ActiveModel {
        document_id: Set(id.to_owned()),
        revision: Set(revision.0 as i64),
        text: Set(text.to_owned()),
        created_at: Set(now_ms()),
    })
    .on_conflict(
        OnConflict::columns([snapshot::Column::DocumentId, snapshot::Column::Revision])
            .update_column(snapshot::Column::Text)
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        PRUNE_SNAPSHOTS,
        [id.into(), (keep_from.0 as i64).into()],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        TOUCH,
        [changed_at.into(), id.into()],
    ))
    .await?;
    Ok(())
}

fn meta(row: document::Model) -> Result<DocumentMeta, Error> {
    Ok(DocumentMeta {
        policy: SectionPolicy::from_name(&row.policy)
            .ok_or_else(|| Error::Corrupt(format!("document {}: policy {:?}", row.id, row.policy)))?,
        id: row.id,
        title: row.title,
        head: Revision(row.head_revision as u64),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
