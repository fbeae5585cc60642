//! The browser's side of a document: the sync state machine.
//!
//! [`ClientState`] holds two texts: the *server text* (the document at the
//! last revision this client has received) and the *local text* (what the
//! user sees: the server text plus edits the server has not accepted yet).
//! Between them sit at most two deltas:
//!
//! - the **in-flight** change: sent, its verdict not yet received. Only one
//!   is ever in flight;
//! - the **buffer**: everything typed since, composed into one delta, sent as
//!   the next change the moment the in-flight one is answered. An idle
//!   client sends at once.
//!
//! Remote changes arrive in revision order and are rebased into the local
//! text; [`Update::local`] says how the local text moved, to map the caret.
//!
//! **Prediction.** The client runs the server's merge on every remote change:
//! when it touches a section the in-flight change touched, the in-flight
//! change will be rejected (the first committed wins). The client restores
//! the unmerged state at once — the local text becomes the server text —
//! and moves the rejected edit, with everything composed on top of it, to
//! the *rejected edits tray*. It keeps tracking the doomed change, so that
//! when the server's verdict arrives it can check that the verdict is
//! exactly the one predicted. A remote change that touches a section the
//! *buffer* touched sends the buffer to the tray the same way (it was typed
//! without seeing that change, and the server would never learn it).
//!
//! **The tray.** Each [`TrayEntry`] keeps the rejected delta rebased onto the
//! server text, so re-applying it is a fresh local edit at any time.

use serde::{Deserialize, Serialize};

use crate::change::{AcceptedChange, Change, ClientId, Conflict, Revision, Seq, Verdict};
use crate::delta::Delta;
use crate::error::Error;
use crate::section::{SectionPolicy, Span};
use crate::text::{char_count, Lines};

/// An edit the server did not take, kept for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrayEntry {
    /// Unique within this client.
    pub id: u64,
    /// The revision whose text `delta` applies to.
    pub revision: Revision,
    /// The rejected edit, rebased onto the text of `revision`.
    pub delta: Delta,
    /// The text the edit added, as the user typed it.
    pub inserted: String,
    /// The text the edit removed.
    pub removed: String,
    /// Zero-based line of the edit's first hunk when it was rejected.
    pub line: usize,
    /// The changes that won. Empty when the edit was dropped by a resync.
    pub conflicts: Vec<Conflict>,
}

/// What a call changed, for the user interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// How the local text changed (old local text to new), to map the caret
    /// and selection. `None` when it did not change.
    pub local: Option<Delta>,
    /// Tray entries added by this call.
    pub rejected: Vec<u64>,
    /// Our in-flight change was accepted with this revision.
    pub acknowledged: Option<Revision>,
    /// The server asks for a resync: fetch the document and call
    /// [`ClientState::resync`].
    pub resync: bool,
}

#[derive(Clone, Debug)]
struct InFlight {
    /// The change as first sent; resent verbatim after a reconnect.
    change: Change,
    /// The same edit rebased onto the current server text.
    rebased: Delta,
    /// Set once a remote change conflicted with it: its verdict is known.
    doomed: Option<Doomed>,
}

#[derive(Clone, Debug)]
struct Doomed {
    /// The conflicts the server will name, kept in current coordinates.
    conflicts: Vec<Conflict>,
    /// The tray entry holding the edit.
    entry: u64,
}

/// One client's view of one document. See the module documentation.
#[derive(Clone, Debug)]
pub struct ClientState {
    client: ClientId,
    policy: SectionPolicy,
    revision: Revision,
    server_text: String,
    /// Length of `server_text` in characters.
    server_len: usize,
    text: String,
    /// Length of `text` in characters.
    text_len: usize,
    in_flight: Option<InFlight>,
    buffer: Option<Delta>,
    next_seq: Seq,
    connected: bool,
    /// Remote deltas received since the in-flight change's base, to map
    /// conflicts back to its base coordinates.
    history: Vec<Delta>,
    tray: Vec<TrayEntry>,
    next_entry: u64,
}

impl ClientState {
    /// A client that has loaded `text` at `revision`, connected.
    pub fn new(client: ClientId, policy: SectionPolicy, revision: Revision, text: String) -> Self {
        let len = char_count(&text);
        ClientState {
            client,
            policy,
            revision,
            server_text: text.clone(),
            server_len: len,
            text,
            text_len: len,
            in_flight: None,
            buffer: None,
            next_seq: Seq(1),
            connected: true,
            history: Vec::new(),
            tray: Vec::new(),
            next_entry: 1,
        }
    }

    /// This client's id.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// What the user sees.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The document at [`ClientState::revision`].
    pub fn server_text(&self) -> &str {
        &self.server_text
    }

    /// The last revision received.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The rejected edits tray, oldest first.
    pub fn tray(&self) -> &[TrayEntry] {
        &self.tray
    }

    /// True when the local text holds edits the server has not accepted yet.
    pub fn has_unsynced(&self) -> bool {
        self.buffer.is_some() || self.in_flight.as_ref().is_some_and(|f| f.doomed.is_none())
    }

    /// True when edits wait behind the change in flight.
    pub fn has_buffer(&self) -> bool {
        self.buffer.is_some()
    }

    /// The sequence number of the change in flight, if any.
    pub fn in_flight(&self) -> Option<Seq> {
        self.in_flight.as_ref().map(|f| f.change.seq)
    }

    /// True while the in-flight change is known to be rejected.
    pub fn is_doomed(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.doomed.is_some())
    }

    /// A local edit, as a delta on the local text.
    pub fn edit(&mut self, delta: Delta) -> Result<Update, Error> {
        if delta.base_len() != self.text_len {
            return Err(Error::BaseLength {
                expected: delta.base_len(),
                actual: self.text_len,
            });
        }
        if delta.is_noop() {
            return Ok(Update::default());
        }
        self.compose_local(&delta)?;
        delta.apply_in_place(&mut self.text)?;
        self.text_len = delta.target_len();
        Ok(Update {
            local: Some(delta),
            ..Update::default()
        })
    }

    /// A local edit, given as the whole new text (what a text area reports).
    /// Returns the delta it amounted to.
    pub fn edit_text(&mut self, new_text: &str) -> Result<Delta, Error> {
        let delta = Delta::diff(&self.text, new_text);
        if !delta.is_noop() {
            self.compose_local(&delta)?;
            self.text.clear();
            self.text.push_str(new_text);
            self.text_len = delta.target_len();
        }
        Ok(delta)
    }

    fn compose_local(&mut self, delta: &Delta) -> Result<(), Error> {
        let buffer = match self.buffer.take() {
            Some(buffer) => buffer.compose(delta)?,
            None => delta.clone(),
        };
        self.buffer = (!buffer.is_noop()).then_some(buffer);
        Ok(())
    }

    /// The change to send now, if any: the buffer, when connected and
    /// nothing is in flight.
    pub fn poll_send(&mut self) -> Option<Change> {
        if !self.connected || self.in_flight.is_some() {
            return None;
        }
        let delta = self.buffer.take()?;
        let change = Change {
            client: self.client,
            seq: self.next_seq,
            base: self.revision,
            delta: delta.clone(),
        };
        self.next_seq = Seq(self.next_seq.0 + 1);
        self.history.clear();
        self.in_flight = Some(InFlight {
            change: change.clone(),
            rebased: delta,
            doomed: None,
        });
        Some(change)
    }

    /// The connection dropped: nothing is sent until [`ClientState::reconnect`].
    pub fn disconnect(&mut self) {
        self.connected = false;
    }

    /// Connected again. Returns the in-flight change to resend, unchanged
    /// (same sequence number, so the server never applies it twice).
    pub fn reconnect(&mut self) -> Option<Change> {
        self.connected = true;
        self.in_flight.as_ref().map(|f| f.change.clone())
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// An accepted change from the server, any author, in revision order.
    /// Revisions already received are ignored (they come again after a reconnect).
    pub fn receive(&mut self, change: &AcceptedChange) -> Result<Update, Error> {
        if change.revision <= self.revision {
            return Ok(Update::default());
        }
        if change.revision != self.revision.next() {
            return Err(Error::OutOfOrder {
                expected: self.revision.next(),
                received: change.revision,
            });
        }
        if change.client == self.client && self.in_flight() == Some(change.seq) {
            return self.acknowledge(change.revision, Some(&change.delta));
        }
        self.apply_remote(change)
    }

    /// The server's verdict on one of our changes.
    pub fn receive_verdict(&mut self, seq: Seq, verdict: &Verdict) -> Result<Update, Error> {
        if self.in_flight() != Some(seq) {
            // A verdict repeated after a reconnect, for a change already settled.
            if seq < self.next_seq {
                return Ok(Update::default());
            }
            return Err(Error::PredictionMismatch {
                seq,
                detail: "a verdict for a change never sent".into(),
            });
        }
        match verdict {
            Verdict::Accepted { revision } => {
                if *revision != self.revision.next() {
                    return Err(Error::OutOfOrder {
                        expected: self.revision.next(),
                        received: *revision,
                    });
                }
                self.acknowledge(*revision, None)
            }
            Verdict::Rejected { revision, conflicts } => {
                if *revision > self.revision {
                    return Err(Error::OutOfOrder {
                        expected: self.revision,
                        received: *revision,
                    });
                }
                let flight = self.in_flight.as_ref().expect("checked above");
                let Some(doomed) = &flight.doomed else {
                    return Err(Error::PredictionMismatch {
                        seq,
                        detail: format!(
                            "the server rejected it ({} conflicts), no conflict was predicted",
                            conflicts.len()
                        ),
                    });
                };
                // A verdict repeated after a reconnect was given at an older
                // revision: compare what we predicted up to then, with the
                // server's regions brought to our revision.
                let since_decision = &self.history[(revision.0 - flight.change.base.0) as usize..];
                let predicted: Vec<Conflict> = doomed
                    .conflicts
                    .iter()
                    .filter(|c| c.revision <= *revision)
                    .cloned()
                    .collect();
                let named: Vec<Conflict> = conflicts
                    .iter()
                    .map(|c| Conflict {
                        current: since_decision.iter().fold(c.current, |span, d| span.map(d)),
                        ..c.clone()
                    })
                    .collect();
                if predicted != named {
                    return Err(Error::PredictionMismatch {
                        seq,
                        detail: format!("predicted conflicts {predicted:?}, the server named {named:?}"),
                    });
                }
                let (entry, all) = (doomed.entry, doomed.conflicts.clone());
                if let Some(e) = self.tray.iter_mut().find(|e| e.id == entry) {
                    e.conflicts = all;
                }
                self.in_flight = None;
                self.history.clear();
                Ok(Update::default())
            }
            Verdict::Resync { .. } => Ok(Update {
                resync: true,
                ..Update::default()
            }),
        }
    }

    /// Starts again from the server's current text, after the server asked
    /// for it. Unaccepted local edits go to the tray (based on the old
    /// revision: re-applying them needs the changes since).
    pub fn resync(&mut self, revision: Revision, text: String) -> Result<Update, Error> {
        let mut update = Update::default();
        let pending = self.pending()?;
        if let Some(pending) = pending {
            let id = self.add_entry(pending, &self.server_text.clone(), self.revision, Vec::new())?;
            update.rejected.push(id);
        }
        let local = Delta::diff(&self.text, &text);
        self.revision = revision;
        self.server_text.clone_from(&text);
        self.server_len = local.target_len();
        self.text_len = local.target_len();
        self.text = text;
        self.in_flight = None;
        self.buffer = None;
        self.history.clear();
        update.local = (!local.is_noop()).then_some(local);
        Ok(update)
    }

    /// Everything local not known to be rejected, as one delta on the server text.
    fn pending(&self) -> Result<Option<Delta>, Error> {
        let flight = self
            .in_flight
            .as_ref()
            .filter(|f| f.doomed.is_none())
            .map(|f| &f.rebased);
        Ok(match (flight, &self.buffer) {
            (Some(f), Some(b)) => Some(f.compose(b)?),
            (Some(f), None) => Some(f.clone()),
            (None, Some(b)) => Some(b.clone()),
            (None, None) => None,
        })
    }

    /// Re-applies a tray entry as a fresh local edit, rebased onto the local text.
    pub fn reapply(&mut self, id: u64) -> Result<Update, Error> {
        let index = self
            .tray
            .iter()
            .position(|e| e.id == id)
            .ok_or(Error::UnknownTrayEntry(id))?;
        let entry = &self.tray[index];
        if entry.revision != self.revision {
            return Err(Error::HistoryUnavailable { since: entry.revision });
        }
        let mut delta = entry.delta.clone();
        if let Some(flight) = self.in_flight.as_ref().filter(|f| f.doomed.is_none()) {
            delta = delta.rebase(&flight.rebased)?;
        }
        if let Some(buffer) = &self.buffer {
            delta = delta.rebase(buffer)?;
        }
        let update = self.edit(delta)?;
        self.tray.remove(index);
        Ok(update)
    }

    /// Brings tray entries based on older revisions up to date, given the
    /// accepted changes since (for example fetched after a page reload).
    pub fn catch_up_tray(&mut self, changes: &[AcceptedChange]) -> Result<(), Error> {
        for entry in &mut self.tray {
            if entry.revision == self.revision {
                continue;
            }
            let mut delta = entry.delta.clone();
            let mut revision = entry.revision;
            for change in changes
                .iter()
                .filter(|c| c.revision > entry.revision && c.revision <= self.revision)
            {
                if change.revision != revision.next() {
                    return Err(Error::HistoryUnavailable { since: revision });
                }
                delta = delta.rebase(&change.delta)?;
                revision = change.revision;
            }
            if revision != self.revision {
                return Err(Error::HistoryUnavailable { since: revision });
            }
            entry.delta = delta;
            entry.revision = revision;
        }
        Ok(())
    }

    /// Removes a tray entry and returns it.
    pub fn discard(&mut self, id: u64) -> Result<TrayEntry, Error> {
        let index = self
            .tray
            .iter()
            .position(|e| e.id == id)
            .ok_or(Error::UnknownTrayEntry(id))?;
        Ok(self.tray.remove(index))
    }

    /// Puts back tray entries saved earlier (for example across a page reload).
    pub fn restore_tray(&mut self, entries: Vec<TrayEntry>) {
        for mut entry in entries {
            entry.id = self.next_entry;
            self.next_entry += 1;
            self.tray.push(entry);
        }
    }

    /// Our in-flight change was accepted as `revision`.
    fn acknowledge(&mut self, revision: Revision, applied: Option<&Delta>) -> Result<Update, Error> {
        let flight = self.in_flight.as_ref().expect("callers check the in-flight change");
        if flight.doomed.is_some() {
            return Err(Error::PredictionMismatch {
                seq: flight.change.seq,
                detail: "a conflict was predicted, the server accepted it".into(),
            });
        }
        if applied.is_some_and(|d| d != &flight.rebased) {
            return Err(Error::Diverged { seq: flight.change.seq });
        }
        if flight.rebased.base_len() != self.server_len {
            return Err(Error::BaseLength {
                expected: flight.rebased.base_len(),
                actual: self.server_len,
            });
        }
        let flight = self.in_flight.take().expect("checked above");
        self.rebase_tray(&flight.rebased)?;
        flight.rebased.apply_in_place(&mut self.server_text)?;
        self.server_len = flight.rebased.target_len();
        self.revision = revision;
        self.history.clear();
        Ok(Update {
            acknowledged: Some(revision),
            ..Update::default()
        })
    }

    /// A change by someone else: rebase it into the local text, predicting
    /// conflicts with our in-flight change and buffer.
    fn apply_remote(&mut self, change: &AcceptedChange) -> Result<Update, Error> {
        let remote = &change.delta;
        if remote.base_len() != self.server_len {
            return Err(Error::BaseLength {
                expected: remote.base_len(),
                actual: self.server_len,
            });
        }
        let policy = self.policy;
        // The new server text, computed early only where the old one is still needed.
        let mut new_server_text = None;
        let mut update = Update::default();
        let mut new_entries = Vec::new();

        let checking = self.in_flight.is_some() || self.buffer.is_some();
        let claimed = if checking {
            policy.sections(remote, self.server_text.as_str())
        } else {
            Default::default()
        };

        // The remote change as it applies on top of the server text and the
        // live (not doomed) in-flight change; and the text it applies to.
        let mut remote_local = remote.clone();
        let mut flight_text = None;
        let mut restored = false;
        let mut live_flight = None;

        if let Some(flight) = &mut self.in_flight {
            match &mut flight.doomed {
                Some(doomed) => {
                    for c in &mut doomed.conflicts {
                        c.current = c.current.map(remote);
                    }
                    if let Some(section) = policy.conflict(&flight.rebased, &claimed) {
                        doomed.conflicts.push(conflict(change, section, &self.history));
                    }
                    flight.rebased = flight.rebased.rebase(remote)?;
                }
                None => {
                    if let Some(section) = policy.conflict(&flight.rebased, &claimed) {
                        // Predicted rejection: restore the unmerged state now.
                        let found = conflict(change, section, &self.history);
                        let pending = match self.buffer.take() {
                            Some(b) => flight.rebased.compose(&b)?,
                            None => flight.rebased.clone(),
                        };
                        update.local = Some(pending.invert(&self.server_text)?.compose(remote)?);
                        new_server_text = Some(remote.apply(&self.server_text)?);
                        new_entries.push((pending, self.server_text.clone(), vec![found.clone()]));
                        flight.rebased = flight.rebased.rebase(remote)?;
                        flight.doomed = Some(Doomed {
                            conflicts: vec![found],
                            entry: 0,
                        });
                        restored = true;
                    } else {
                        if self.buffer.is_some() {
                            flight_text = Some(flight.rebased.apply(&self.server_text)?);
                        }
                        let (rebased, remote_after) = flight.rebased.transform(remote)?;
                        flight.rebased = rebased;
                        remote_local = remote_after;
                        live_flight = Some(flight.rebased.clone());
                    }
                }
            }
        }

        if !restored {
            match self.buffer.take() {
                Some(buffer) => {
                    let base_text = flight_text.as_deref().unwrap_or(&self.server_text);
                    let claimed_here = match &flight_text {
                        Some(text) => policy.sections(&remote_local, text.as_str()),
                        None => claimed.clone(),
                    };
                    if let Some(section) = policy.conflict(&buffer, &claimed_here) {
                        // The buffer was typed without seeing this change: to the tray.
                        update.local = Some(buffer.invert(base_text)?.compose(&remote_local)?);
                        let mut current = section.map(&remote_local);
                        let mut kept = buffer.rebase(&remote_local)?;
                        if let Some(live) = &live_flight {
                            let after = remote.apply(&self.server_text)?;
                            let undo = live.invert(&after)?;
                            new_server_text = Some(after);
                            kept = kept.rebase(&undo)?;
                            current = current.map(&undo);
                        }
                        let found = Conflict {
                            revision: change.revision,
                            author: change.author.clone(),
                            client: change.client,
                            base: section,
                            current,
                        };
                        // Already on the new server text, so the loop below
                        // (which moves entries off the old one) leaves it be.
                        let id = self.next_entry;
                        self.next_entry += 1;
                        self.tray.push(TrayEntry {
                            id,
                            revision: change.revision,
                            delta: kept,
                            inserted: buffer.inserted_text(" … "),
                            removed: buffer.removed_text(base_text, " … ")?,
                            line: first_line(&buffer, base_text),
                            conflicts: vec![found],
                        });
                        update.rejected.push(id);
                    } else {
                        let (buffer, remote_after) = buffer.transform(&remote_local)?;
                        self.buffer = Some(buffer);
                        update.local = Some(remote_after);
                    }
                }
                None => update.local = Some(remote_local),
            }
        }

        // Entries on the old server text follow it to the new one.
        for entry in &mut self.tray {
            if entry.revision == self.revision {
                entry.delta = entry.delta.rebase(remote)?;
                entry.revision = change.revision;
            }
        }
        for (pending, base_text, conflicts) in new_entries {
            let id = self.add_entry(pending, &base_text, self.revision, conflicts)?;
            let tray_entry = self.tray.last_mut().expect("just added");
            tray_entry.delta = tray_entry.delta.rebase(remote)?;
            tray_entry.revision = change.revision;
            if let Some(Doomed { entry, .. }) = self.in_flight.as_mut().and_then(|f| f.doomed.as_mut()) {
                *entry = id;
            }
            update.rejected.push(id);
        }

        if self.in_flight.is_some() {
            self.history.push(remote.clone());
        }
        match new_server_text {
            Some(text) => self.server_text = text,
            None => remote.apply_in_place(&mut self.server_text)?,
        }
        self.server_len = remote.target_len();
        if let Some(local) = &update.local {
            if restored {
                self.text.clone_from(&self.server_text);
            } else {
                local.apply_in_place(&mut self.text)?;
            }
            self.text_len = local.target_len();
        }
        self.revision = change.revision;
        Ok(update)
    }

    fn add_entry(
        &mut self,
        delta: Delta,
        base_text: &str,
        revision: Revision,
        conflicts: Vec<Conflict>,
    ) -> Result<u64, Error> {
        let id = self.next_entry;
        self.next_entry += 1;
        self.tray.push(TrayEntry {
            id,
            revision,
            inserted: delta.inserted_text(" … "),
            removed: delta.removed_text(base_text, " … ")?,
            line: first_line(&delta, base_text),
            delta,
            conflicts,
        });
        Ok(id)
    }

    fn rebase_tray(&mut self, accepted: &Delta) -> Result<(), Error> {
        for entry in &mut self.tray {
            if entry.revision == self.revision {
                entry.delta = entry.delta.rebase(accepted)?;
                entry.revision = self.revision.next();
            }
        }
        Ok(())
    }
}

/// A conflict with the accepted `change`, whose section is `section` on the
/// text before it; `history` leads from the rejected change's base there.
fn conflict(change: &AcceptedChange, section: Span, history: &[Delta]) -> Conflict {
    Conflict {
        revision: change.revision,
        author: change.author.clone(),
        client: change.client,
        base: history.iter().rev().fold(section, |span, d| span.map_back(d)),
        current: section.map(&change.delta),
    }
}

/// Zero-based line of the first hunk of `delta` in `text`.
fn first_line(delta: &Delta, text: &str) -> usize {
    delta.hunks().next().map_or(0, |h| text.line_of(h.start))
}
