//! The server's side of a document: its text, its revision and the merge.
//!
//! [`DocumentState`] is what a document actor owns. Changes go in one at a
//! time through [`DocumentState::submit`]; each gets a [`Verdict`]. A change
//! made on the current revision is applied. A change made on an older
//! revision is rebased over the changes accepted since; if it touches a
//! section one of them touched (see [`crate::section`]), it conflicts and is
//! rejected whole: the first committed change wins, nothing is interleaved.
//!
//! The text is a `JumpRopeBuf`: a `JumpRope` (a skip list of gap buffers)
//! behind a buffer that gathers adjacent keystrokes (typing along, or
//! backspacing) and edits the rope once per run of them, when the run
//! breaks or the text is read. A keystroke costs well under a microsecond
//! even in a large document.
//!
//! The state keeps a bounded window of recent accepted changes for rebasing.
//! A change based on a revision older than the window gets
//! [`Verdict::Resync`]. The last verdict per client is remembered, so a
//! change resent after a reconnect is answered again, never applied twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use jumprope::{JumpRope, JumpRopeBuf};

use crate::change::{AcceptedChange, Author, Change, ClientId, Conflict, Revision, Seq, Verdict};
use crate::delta::Delta;
use crate::error::Error;
use crate::section::{SectionPolicy, Sections, Span};
use crate::text::LineCache;

/// Limits of one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Accepted changes kept for rebasing older changes.
    pub window: usize,
    /// Largest document, in characters.
    pub max_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: 4096,
            max_chars: 10 * 1024 * 1024,
        }
    }
}

/// An accepted change kept for rebasing, with the sections it claimed on
/// the text it was applied to.
#[derive(Clone, Debug)]
struct Committed {
    change: Arc<AcceptedChange>,
    sections: Sections,
}

/// The outcome of [`DocumentState::submit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The answer for the change's author.
    pub verdict: Verdict,
    /// The accepted change to store and broadcast, when this submission
    /// applied one. Shared with the document's window: cloning is cheap.
    pub accepted: Option<Arc<AcceptedChange>>,
    /// True when this was a resend of an already decided change: the verdict
    /// is the one given the first time and nothing was applied.
    pub repeated: bool,
}

/// A document as its only writer holds it. See the module documentation.
#[derive(Clone, Debug)]
pub struct DocumentState {
    text: JumpRopeBuf,
    /// The text's length in characters (asking the buffered rope costs a
    /// borrow of its cell; every submission needs it).
    len: usize,
    revision: Revision,
    policy: SectionPolicy,
    limits: Limits,
    window: VecDeque<Committed>,
    /// Keyed by ids clients choose: a seeded hasher (faster than SipHash,
    /// still not predictable from outside).
    last: HashMap<ClientId, (Seq, Verdict), foldhash::fast::RandomState>,
    lines: LineCache,
    /// The change that last left the window, for [`DocumentState::recycle`].
    spare: Option<Arc<AcceptedChange>>,
}

impl DocumentState {
    /// A document with this text at this revision, nothing in its window.
    pub fn new(text: &str, revision: Revision, policy: SectionPolicy, limits: Limits) -> Self {
        DocumentState {
            text: JumpRopeBuf::from(text),
            len: crate::text::char_count(text),
            revision,
            policy,
            limits,
            window: VecDeque::new(),
            last: HashMap::default(),
            lines: LineCache::default(),
            spare: None,
        }
    }

    /// The current text. Reading it applies the keystrokes the rope's
    /// buffer holds first, hence `&mut`.
    pub fn text(&mut self) -> &JumpRope {
        self.text.as_mut()
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The document's section policy.
    pub fn policy(&self) -> SectionPolicy {
        self.policy
    }

    /// The oldest revision a change may be based on and still be rebased.
    pub fn oldest_base(&self) -> Revision {
        Revision(self.revision.0 - self.window.len() as u64)
    }

    /// The accepted changes after `revision`, if the window still holds them all.
    pub fn changes_since(&self, revision: Revision) -> Option<impl Iterator<Item = &AcceptedChange>> {
        if revision < self.oldest_base() || revision > self.revision {
            return None;
        }
        let skip = (revision.0 - self.oldest_base().0) as usize;
        Some(self.window.iter().skip(skip).map(|c| &*c.change))
    }

    /// Decides on a change and applies it if accepted.
    ///
    /// Errors are bad input (a delta that does not fit its base, a base in
    /// the future, a sequence number older than the client's last); they
    /// change nothing.
    pub fn submit(&mut self, change: Change, author: Author) -> Result<Decision, Error> {
        if let Some((seq, verdict)) = self.last.get(&change.client) {
            if change.seq == *seq {
                return Ok(Decision {
                    verdict: verdict.clone(),
                    accepted: None,
                    repeated: true,
                });
            }
            if change.seq < *seq {
                return Err(Error::StaleSequence {
                    client: change.client,
                    seq: change.seq,
                    last: *seq,
                });
            }
        }
        if change.base > self.revision {
            return Err(Error::UnknownRevision {
                base: change.base,
                current: self.revision,
            });
        }
        if change.base < self.oldest_base() {
            return Ok(Decision {
                verdict: Verdict::Resync {
                    revision: self.revision,
                },
                accepted: None,
                repeated: false,
            });
        }
        let since = (change.base.0 - self.oldest_base().0) as usize;
        let base_len = match self.window.get(since) {
            Some(next) => next.change.delta.base_len(),
            None => self.len,
        };
        if change.delta.base_len() != base_len {
            return Err(Error::BaseLength {
                expected: base_len,
                actual: change.delta.base_len(),
            });
        }

        let mut delta = change.delta;
        let conflicts = self.rebase(&mut delta, since)?;
        if !conflicts.is_empty() {
            let verdict = Verdict::Rejected {
                revision: self.revision,
                conflicts,
            };
            self.remember(change.client, change.seq, verdict.clone());
            return Ok(Decision {
                verdict,
                accepted: None,
                repeated: false,
            });
        }
        if delta.target_len() > self.limits.max_chars && delta.target_len() > delta.base_len() {
            return Err(Error::DocumentTooLarge {
                len: delta.target_len(),
                max: self.limits.max_chars,
            });
        }
        let accepted = self.recycle(change.client, change.seq, author, delta);
        self.commit(Arc::clone(&accepted))?;
        let verdict = Verdict::Accepted {
            revision: accepted.revision,
        };
        self.remember(change.client, change.seq, verdict.clone());
        Ok(Decision {
            verdict,
            accepted: Some(accepted),
            repeated: false,
        })
    }

    /// Re-applies a change from the op log (restoring a document from its
    /// snapshot and the log after it). It must be the next revision.
    pub fn replay(&mut self, change: AcceptedChange) -> Result<(), Error> {
        if change.revision != self.revision.next() {
            return Err(Error::OutOfOrder {
                expected: self.revision.next(),
                received: change.revision,
            });
        }
        let (client, seq, revision) = (change.client, change.seq, change.revision);
        self.commit(Arc::new(change))?;
        self.last.insert(client, (seq, Verdict::Accepted { revision }));
        Ok(())
    }

    /// Remembers a rejection decided earlier (restoring from storage), so a
    /// resend of that change is answered the same way.
    pub fn remember_verdict(&mut self, client: ClientId, seq: Seq, verdict: Verdict) {
        match self.last.get(&client) {
            Some((last, _)) if *last > seq => {}
            _ => {
                self.last.insert(client, (seq, verdict));
            }
        }
    }

    fn remember(&mut self, client: ClientId, seq: Seq, verdict: Verdict) {
        match self.last.get_mut(&client) {
            Some(last) => *last = (seq, verdict),
            None => {
                self.last.insert(client, (seq, verdict));
            }
        }
    }

    /// Drops window entries older than `revision` (no client needs them).
    pub fn trim_window(&mut self, revision: Revision) {
        while self.oldest_base() < revision && !self.window.is_empty() {
            self.window.pop_front();
        }
    }

    /// Forgets the last verdicts of these clients (they left for good).
    pub fn forget_clients(&mut self, clients: impl IntoIterator<Item = ClientId>) {
        for client in clients {
            self.last.remove(&client);
        }
    }

    /// Applies an accepted change to the text and appends it to the window.
    fn commit(&mut self, change: Arc<AcceptedChange>) -> Result<(), Error> {
        if change.delta.base_len() != self.len {
            return Err(Error::BaseLength {
                expected: self.len,
                actual: change.delta.base_len(),
            });
        }
        let sections = self.policy.sections(&change.delta, &self.lines.lines(&self.text));
        change.delta.edit_rope(&mut self.text);
        self.len = change.delta.target_len();
        self.lines.edit(&change.delta);
        self.revision = change.revision;
        self.window.push_back(Committed { change, sections });
        if self.window.len() > self.limits.window {
            if let Some(oldest) = self.window.pop_front() {
                self.spare = Some(oldest.change);
            }
        }
        Ok(())
    }

    /// The accepted change of the next revision, in the allocation of the
    /// change that last left the window when nobody else holds that one any
    /// more (a new one otherwise): a document typed in steadily allocates no
    /// `Arc` per keystroke.
    fn recycle(&mut self, client: ClientId, seq: Seq, author: Author, delta: Delta) -> Arc<AcceptedChange> {
        let revision = self.revision.next();
        if let Some(mut spare) = self.spare.take() {
            if let Some(slot) = Arc::get_mut(&mut spare) {
                slot.revision = revision;
                slot.client = client;
                slot.seq = seq;
                slot.author = author;
                slot.delta = delta;
                return spare;
            }
        }
        Arc::new(AcceptedChange {
            revision,
            client,
            seq,
            author,
            delta,
        })
    }

    /// Rebases `delta`, made on the text before window entry `since`, over
    /// every later entry, in place (a change made on the current revision,
    /// nearly every one, is not moved at all). Returns every conflict.
    fn rebase(&self, delta: &mut Delta, since: usize) -> Result<Vec<Conflict>, Error> {
        let mut conflicts = Vec::new();
        for (i, committed) in self.window.range(since..).enumerate() {
            let i = since + i;
            if let Some(section) = self.policy.conflict(delta, &committed.sections) {
                conflicts.push(self.describe(section, since, i));
            }
            *delta = delta.rebase(&committed.change.delta)?;
        }
        Ok(conflicts)
    }

    /// A conflict with window entry `at`, whose section is `section` on the
    /// text before it, for a change based on the text before entry `since`.
    fn describe(&self, section: Span, since: usize, at: usize) -> Conflict {
        let committed = &self.window[at];
        let base = self
            .window
            .range(since..at)
            .rev()
            .fold(section, |span, c| span.map_back(&c.change.delta));
        let current = self
            .window
            .range(at..)
            .fold(section, |span, c| span.map(&c.change.delta));
        Conflict {
            revision: committed.change.revision,
            author: committed.change.author.clone(),
            client: committed.change.client,
            base,
            current,
        }
    }
}
