//! Changes, revisions and verdicts: the nouns both sides of the wire share.
//!
//! A client sends a [`Change`] (its delta and the revision it was made on);
//! the document answers with a [`Verdict`]. An accepted change becomes an
//! [`AcceptedChange`] with the next [`Revision`], which every client of the
//! document receives in revision order.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::delta::Delta;
use crate::section::Span;
use crate::tagged::{self, variant, Tagged};

/// The number of accepted changes a document has had. Revision 0 is the
/// document before any change; each accepted change adds one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision after this one.
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client's sequence number for its changes: strictly increasing per
/// client, so that a resent change is recognised and never applied twice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One editing session (a browser tab), chosen by the client at random.
/// Below 2^53 so that JavaScript numbers hold it exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientId(u64);

impl ClientId {
    /// The largest id: JavaScript's `Number.MAX_SAFE_INTEGER`.
    pub const MAX: u64 = (1 << 53) - 1;

    /// A client id, if `id` fits in a JavaScript number.
    pub fn new(id: u64) -> Option<ClientId> {
        (id <= Self::MAX).then_some(ClientId(id))
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(deserializer)?;
        ClientId::new(id).ok_or_else(|| serde::de::Error::custom("client id above 2^53 - 1"))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who made a change, as people see it: a display name. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Author(Arc<str>);

impl Author {
    /// An author with this display name.
    pub fn new(name: &str) -> Author {
        Author(Arc::from(name))
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Author {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Author {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Author(Arc::from(&*tagged::Name::deserialize(deserializer)?.0)))
    }
}

/// What a client submits: a delta made on the text of revision `base`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The editing session that made it.
    pub client: ClientId,
    /// The client's sequence number for it.
    pub seq: Seq,
    /// The revision whose text the delta applies to.
    pub base: Revision,
    /// The edit.
    pub delta: Delta,
}

/// A change the document accepted, as every client receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedChange {
    /// The revision this change created. Its delta applies to the text of
    /// the revision before.
    pub revision: Revision,
    /// The session that made it.
    pub client: ClientId,
    /// That session's sequence number for it.
    pub seq: Seq,
    /// Who made it.
    pub author: Author,
    /// The edit, rebased onto the text of the previous revision.
    pub delta: Delta,
}

/// Why a change was rejected: a change committed first touched the same section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The revision of the change that won.
    pub revision: Revision,
    /// Its author.
    pub author: Author,
    /// Its editing session.
    pub client: ClientId,
    /// The section it claimed, in the coordinates of the rejected change's base text.
    pub base: Span,
    /// The same section in the coordinates of the text the verdict was given on.
    pub current: Span,
}

/// The document's answer to a change. Decoded by [`crate::tagged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Applied; it created this revision.
    Accepted { revision: Revision },
    /// Not applied: it touched sections that changes committed after its base
    /// also touched. `revision` is the document's revision at the time,
    /// the coordinates of each conflict's `current` span.
    Rejected {
        revision: Revision,
        conflicts: Vec<Conflict>,
    },
    /// Not applied: its base is older than the changes the document keeps for
    /// rebasing. The client must fetch the current text and start again.
    Resync { revision: Revision },
}

impl Tagged for Verdict {
    const TAG: &'static str = "verdict";
    const VARIANTS: &'static [&'static str] = &["accepted", "rejected", "resync"];

    fn variant<'de, D: Deserializer<'de>>(name: &str, fields: D) -> Result<Self, D::Error> {
        match name {
            "accepted" => variant!(fields, Verdict::Accepted { revision: Revision }),
            "rejected" => variant!(fields, Verdict::Rejected {
                revision: Revision,
                conflicts: Vec<Conflict>,
            }),
            "resync" => variant!(fields, Verdict::Resync { revision: Revision }),
            _ => Err(tagged::unknown::<Self, _>(name)),
        }
    }
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}
