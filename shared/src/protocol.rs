//! The WebSocket protocol between the browser and its app server.
//!
//! Every frame is one JSON object with a `"type"` field. `docs/PROTOCOL.md`
//! describes each message, its fields and the order guarantees; this module
//! is the one definition both sides compile.

use serde::{Deserialize, Deserializer, Serialize};

use crate::api::Role;
use crate::change::{AcceptedChange, Change, ClientId, Revision, Seq, Verdict};
use crate::section::SectionPolicy;
use crate::tagged::{self, variant, Tagged};

/// A document's id: short, URL-safe, chosen by the server.
pub type DocumentId = String;

/// What a client sends. Decoded by [`tagged`]: an unknown field is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Opens (or reopens, after a reconnect) a document on this socket.
    Join {
        document: DocumentId,
        client: ClientId,
        /// The last revision this client has. The server sends the accepted
        /// changes after it; without one (or if it is too old to catch up
        /// from) it sends the whole text.
        revision: Option<Revision>,
        /// Ignored: collaborators see the account's display name. (Kept so
        /// older clients' joins still parse.)
        name: Option<String>,
    },
    /// A change to the joined document.
    Submit { change: Change },
}

/// What the server sends. Decoded by [`tagged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The document is joined. Followed by every accepted change after
    /// `revision`, in order, then by live changes.
    Joined {
        document: DocumentId,
        /// The revision the following changes start after: the client's own
        /// revision when it can catch up, otherwise the revision of `text`.
        revision: Revision,
        /// The whole text at `revision`, when the client must start over.
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        policy: SectionPolicy,
    },
    /// A change accepted from another client (or, after a reconnect, one of
    /// our own: it acknowledges our change of that sequence number).
    Accepted { change: AcceptedChange },
    /// The verdict on one of our changes.
    Verdict { seq: Seq, verdict: Verdict },
    /// Who is in the document now: sent after joining and whenever
    /// someone joins or leaves. One entry per user, however many tabs.
    Presence { peers: Vec<Peer> },
    /// The caller's role on the document changed (an owner shared or
    /// unshared it). A viewer's changes are refused.
    Role { role: Role },
    /// Bad input or a failure; nothing was changed. `seq` names the change
    /// it concerns, if any.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
    },
}

impl Tagged for ClientMessage {
    const TAG: &'static str = "type";
    const VARIANTS: &'static [&'static str] = &["join", "submit"];

    fn variant<'de, D: Deserializer<'de>>(name: &str, fields: D) -> Result<Self, D::Error> {
        match name {
            "join" => variant!(fields, #[serde(deny_unknown_fields)] ClientMessage::Join {
                document: DocumentId,
                client: ClientId,
                revision: Option<Revision>,
                name: Option<String>,
            }),
            "submit" => variant!(
                fields,
                #[serde(deny_unknown_fields)]
                ClientMessage::Submit { change: Change }
            ),
            _ => Err(tagged::unknown::<Self, _>(name)),
        }
    }
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

impl Tagged for ServerMessage {
    const TAG: &'static str = "type";
    const VARIANTS: &'static [&'static str] = &["joined", "accepted", "verdict", "presence", "role", "error"];

    fn variant<'de, D: Deserializer<'de>>(name: &str, fields: D) -> Result<Self, D::Error> {
        match name {
            "joined" => variant!(fields, ServerMessage::Joined {
                document: DocumentId,
                revision: Revision,
                text: Option<String>,
                policy: SectionPolicy,
            }),
            "accepted" => variant!(fields, ServerMessage::Accepted { change: AcceptedChange }),
            "verdict" => variant!(
                fields,
                ServerMessage::Verdict {
                    seq: Seq,
                    verdict: Verdict
                }
            ),
            "presence" => variant!(fields, ServerMessage::Presence { peers: Vec<Peer> }),
            "role" => variant!(fields, ServerMessage::Role { role: Role }),
            "error" => variant!(fields, ServerMessage::Error {
                code: ErrorCode,
                message: String,
                seq: Option<Seq>,
            }),
            _ => Err(tagged::unknown::<Self, _>(name)),
        }
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

/// Why the server refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a message of this protocol (unknown type, missing
    /// or extra fields).
    BadMessage,
    /// The message is larger than the server accepts.
    TooLarge,
    /// No document with that id.
    UnknownDocument,
    /// A change before joining, or for another client id than the join's.
    NotJoined,
    /// The delta does not fit the text of its base revision, or is malformed.
    BadDelta,
    /// The base revision is newer than the document's.
    UnknownRevision,
    /// The sequence number is older than the client's last change.
    StaleSequence,
    /// The change would make the document larger than allowed.
    DocumentTooLarge,
    /// The document was deleted.
    DocumentDeleted,
    /// Too many messages; slow down. A refused change was not applied:
    /// send it again later.
    RateLimited,
    /// Too many connections for this user or address; the socket closes.
    TooManyConnections,
    /// The caller's role does not allow it (a viewer's change).
    Forbidden,
    /// The server failed; try again.
    Internal,
}

impl ServerMessage {
    /// An error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, seq: Option<Seq>) -> ServerMessage {
        ServerMessage::Error {
            code,
            message: message.into(),
            seq,
        }
    }
}

impl ErrorCode {
    /// The error code for an engine error.
    pub fn of(error: &crate::Error) -> ErrorCode {
        use crate::Error as E;
        match error {
            E::UnknownRevision { .. } => ErrorCode::UnknownRevision,
            E::StaleSequence { .. } => ErrorCode::StaleSequence,
            E::DocumentTooLarge { .. } => ErrorCode::DocumentTooLarge,
            E::ZeroLengthOp | E::BaseLength { .. } | E::Mismatch { .. } | E::TooLong { .. } => ErrorCode::BadDelta,
            _ => ErrorCode::Internal,
        }
    }
}

/// Someone in a document, as collaborators see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The account's id.
    pub user: String,
    pub name: String,
    /// A CSS colour from [`crate::api::COLORS`].
    pub color: String,
    pub role: Role,
}

/// WebSocket close codes the server uses, beyond the standard ones
/// (1000 deleted, 1009 too large, 1011 unavailable, 1012 restarting,
/// 1013 too far behind: the client's queue of frames filled up).
pub mod close {
    /// The document is served by another app server: reconnect.
    pub const MOVED: u16 = 4001;
    /// The session ended (signed out, expired or revoked): sign in again.
    pub const SIGNED_OUT: u16 = 4401;
    /// The user no longer has access to the document.
    pub const ACCESS_REVOKED: u16 = 4403;
    /// Too many connections for this user or address: try again later.
    pub const TOO_MANY_CONNECTIONS: u16 = 4429;
}
