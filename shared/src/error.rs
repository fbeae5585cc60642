//! The one error type of the shared crate.
//!
//! Every way a delta, a change or a server message can be wrong has a variant
//! here, with a message a person can read. Nothing in this crate panics on
//! bad input: it returns one of these and changes nothing.

use serde::{Deserialize, Serialize};

use crate::change::{ClientId, Revision, Seq};

/// What went wrong. Returned by every fallible operation in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Error {
    /// A delta operation of length zero (`0`, `-0` or `""`) was sent.
    #[error("a delta operation has length zero")]
    ZeroLengthOp,
    /// A delta whose length in characters does not fit the text it is applied to.
    #[error("the delta expects a text of {expected} characters, but the text has {actual}")]
    BaseLength { expected: usize, actual: usize },
    /// Two deltas composed or transformed that do not line up.
    #[error("the deltas do not line up: {left} characters against {right}")]
    Mismatch { left: usize, right: usize },
    /// A delta describing a text longer than any document can be.
    #[error("the delta is longer than {max} characters")]
    TooLong { max: usize },
    /// A change based on a revision the document has not reached.
    #[error("the change is based on revision {base}, but the document is at revision {current}")]
    UnknownRevision { base: Revision, current: Revision },
    /// A client sent a sequence number older than its last change.
    #[error("client {client} sent change {seq}, older than its last change {last}")]
    StaleSequence { client: ClientId, seq: Seq, last: Seq },
    /// Accepting the change would make the document larger than allowed.
    #[error("the document would have {len} characters, more than the limit of {max}")]
    DocumentTooLarge { len: usize, max: usize },
    /// A client received a revision that does not follow the one it has.
    #[error("expected revision {expected}, received {received}")]
    OutOfOrder { expected: Revision, received: Revision },
    /// The server's verdict differs from what the client predicted.
    #[error("the server's verdict on change {seq} differs from the prediction: {detail}")]
    PredictionMismatch { seq: Seq, detail: String },
    /// The server applied our change differently from how we rebased it.
    #[error("the server applied change {seq} differently from the local rebase")]
    Diverged { seq: Seq },
    /// No entry with this id in the rejected edits tray.
    #[error("the rejected edits tray has no entry {0}")]
    UnknownTrayEntry(u64),
    /// The entry is based on a revision whose later changes this client no longer has.
    #[error("re-applying needs the changes since revision {since}")]
    HistoryUnavailable { since: Revision },
}
