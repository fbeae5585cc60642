//! A light editor: it types as the browser's `ClientState` does (one change
//! in flight, keystrokes typed meanwhile composed into the next, resent
//! after a reconnect), but keeps only what typing at the end of its own
//! block needs: the text's length, its place in it and the revision. It
//! reads each incoming frame only as far as that, not into the protocol's
//! types.
//!
//! By default every editor of a document but the first is light, as in the
//! Hocuspocus generator (`benches/hocuspocus`), whose first editor is a full
//! Yjs client and the others speak the protocol directly: a full replica per
//! editor applies every change once per editor, CPU the generator takes
//! from the server under test on the same cores. The first editor of each
//! document still runs `ClientState` and its text is compared with the
//! server's; a light editor's length and revision are, and every
//! acknowledged change of every editor is looked up in the op log.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use shared::{Change, ClientId, Delta, Revision, Seq};

use crate::editor::{block_end, Heard, Replica, Typist};

/// A light editor's state.
pub struct Light {
    client: ClientId,
    line: usize,
    /// Where it is in the server's text, once the text has arrived.
    place: Option<Place>,
    next_seq: u64,
    /// The change in flight and the text it inserts.
    in_flight: Option<(Change, String)>,
    /// Typed since, not yet sent.
    buffer: String,
}

/// The editor's place in the server's text of a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    revision: u64,
    /// The text's length, in characters.
    len: usize,
    /// The end of the editor's block: where it types.
    cursor: usize,
}

impl Light {
    pub fn new(client: ClientId, line: usize) -> Light {
        Light {
            client,
            line,
            place: None,
            next_seq: 1,
            in_flight: None,
            buffer: String::new(),
        }
    }
}

impl Typist for Light {
    fn ready(&self) -> bool {
        self.place.is_some()
    }

    fn revision(&self) -> Option<Revision> {
        self.place.map(|p| Revision(p.revision))
    }

    fn type_char(&mut self, ch: char) -> Result<(), String> {
        self.buffer.push(ch);
        Ok(())
    }

    fn hear(&mut self, frame: &str) -> Result<Heard, String> {
        let frame: Frame = serde_json::from_str(frame).map_err(|error| format!("unreadable frame: {error}"))?;
        match frame.kind {
            "joined" => {
                let revision = frame.revision.ok_or("joined without a revision")?;
                if let Some(text) = frame.text {
                    if self.in_flight.is_some() {
                        return Err("a light editor rejoined from the whole text with a change in flight".into());
                    }
                    self.place = Some(Place {
                        revision,
                        len: shared::text::char_count(&text),
                        cursor: block_end(&text, self.line),
                    });
                }
                Ok(Heard::Nothing)
            }
            "accepted" => {
                let change = frame.change.ok_or("accepted without a change")?;
                let Some(place) = self.place.as_mut() else {
                    return Ok(Heard::Nothing);
                };
                if change.revision <= place.revision {
                    return Ok(Heard::Nothing);
                }
                if change.revision != place.revision + 1 {
                    return Err(format!(
                        "receive: change {} arrived after revision {}",
                        change.revision, place.revision
                    ));
                }
                let own = change.client == self.client.get();
                *place = place.after(&change.delta, own)?;
                if !own {
                    return Ok(Heard::Other(change.client, change.seq));
                }
                // Our change, in a catch-up after a reconnect.
                match &self.in_flight {
                    Some((sent, _)) if sent.seq.0 == change.seq => {
                        self.in_flight = None;
                        Ok(Heard::Acknowledged(change.seq))
                    }
                    _ => Ok(Heard::Nothing),
                }
            }
            "verdict" => {
                let (seq, verdict) = frame.seq.zip(frame.verdict).ok_or("a verdict without its seq")?;
                let Some((sent, text)) = self.in_flight.take_if(|(sent, _)| sent.seq.0 == seq) else {
                    // Repeated after a reconnect, for a change already settled.
                    return if seq < self.next_seq {
                        Ok(Heard::Nothing)
                    } else {
                        Err(format!("verdict: for change {seq}, never sent"))
                    };
                };
                let place = self.place.as_mut().ok_or("a verdict before the text")?;
                match verdict.verdict {
                    "accepted" => {
                        if verdict.revision != place.revision + 1 {
                            return Err(format!(
                                "verdict: revision {} after revision {}",
                                verdict.revision, place.revision
                            ));
                        }
                        let inserted = shared::text::char_count(&text);
                        *place = Place {
                            revision: verdict.revision,
                            len: place.len + inserted,
                            cursor: place.cursor + inserted,
                        };
                        Ok(Heard::Acknowledged(sent.seq.0))
                    }
                    // What was typed on top of it goes with it, as it goes
                    // to the browser's rejected edits tray.
                    "rejected" => {
                        self.buffer.clear();
                        Ok(Heard::Rejected)
                    }
                    // Not applied: typed again once the text is back.
                    "resync" => {
                        self.buffer.insert_str(0, &text);
                        Ok(Heard::Resync)
                    }
                    other => Err(format!("verdict: unknown verdict {other}")),
                }
            }
            "error" => Ok(Heard::Refused(format!(
                "{}: {}",
                frame.code.unwrap_or_default(),
                frame.message.unwrap_or_default()
            ))),
            _ => Ok(Heard::Nothing),
        }
    }

    fn next_change(&mut self) -> Option<Change> {
        let place = self.place?;
        if self.in_flight.is_some() || self.buffer.is_empty() {
            return None;
        }
        let text = std::mem::take(&mut self.buffer);
        let change = Change {
            client: self.client,
            seq: Seq(self.next_seq),
            base: Revision(place.revision),
            delta: Delta::splice(place.len, place.cursor, 0, &text).expect("the cursor is in the text"),
        };
        self.next_seq += 1;
        self.in_flight = Some((change.clone(), text));
        Some(change)
    }

    fn disconnect(&mut self) {}

    fn resend(&mut self) -> Option<Change> {
        self.in_flight.as_ref().map(|(change, _)| change.clone())
    }

    fn unsynced(&self) -> bool {
        self.place.is_none() || self.in_flight.is_some() || !self.buffer.is_empty()
    }

    fn replica(self) -> Replica {
        match self.place {
            Some(place) => Replica::Length(place.len),
            None => Replica::Missing,
        }
    }
}

impl Place {
    /// The place after a change of the text, whose delta is `ops`. Another
    /// editor's insert where this one types stays before its cursor (its
    /// block ends there; the next one starts after the newline); its own
    /// goes after.
    fn after(self, ops: &[WireOp], own: bool) -> Result<Place, String> {
        let (mut pos, mut len, mut cursor) = (0, self.len, self.cursor);
        for op in ops {
            match *op {
                WireOp::Retain(n) => pos += n,
                WireOp::Insert(n) => {
                    if pos < self.cursor || (own && pos == self.cursor) {
                        cursor += n;
                    }
                    len += n;
                }
                WireOp::Delete(n) => {
                    if pos < self.cursor {
                        cursor -= n.min(self.cursor - pos);
                    }
                    pos += n;
                    len = len.checked_sub(n).ok_or("receive: a delta deletes past the text")?;
                }
            }
        }
        if pos != self.len {
            return Err(format!(
                "receive: a delta over {pos} characters, the text has {}",
                self.len
            ));
        }
        Ok(Place {
            revision: self.revision + 1,
            len,
            cursor,
        })
    }
}

/// Of a server frame, what a light editor reads.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    revision: Option<u64>,
    text: Option<String>,
    change: Option<Accepted>,
    seq: Option<u64>,
    #[serde(borrow)]
    verdict: Option<VerdictFrame<'a>>,
    code: Option<String>,
    message: Option<String>,
}

/// Of an accepted change, what a light editor reads.
#[derive(Deserialize)]
struct Accepted {
    revision: u64,
    client: u64,
    seq: u64,
    delta: Vec<WireOp>,
}

#[derive(Deserialize)]
struct VerdictFrame<'a> {
    verdict: &'a str,
    revision: u64,
}

/// One operation of a delta on the wire (`12`, `"text"`, `-3`), with an
/// insert's text counted, not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WireOp {
    Retain(usize),
    Insert(usize),
    Delete(usize),
}

impl<'de> Deserialize<'de> for WireOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OpVisitor;
        impl Visitor<'_> for OpVisitor {
            type Value = WireOp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<WireOp, E> {
                Ok(WireOp::Retain(n as usize))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<WireOp, E> {
                Ok(if n < 0 {
                    WireOp::Delete(n.unsigned_abs() as usize)
                } else {
                    WireOp::Retain(n as usize)
                })
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WireOp, E> {
                Ok(WireOp::Insert(shared::text::char_count(text)))
            }
        }
        deserializer.deserialize_any(OpVisitor)
    }
}

#[cfg(test)]
mod tests {
    use shared::protocol::ServerMessage;
    use shared::{AcceptedChange, Author, Change, ClientId, ClientState, Delta, Revision, SectionPolicy, Seq, Verdict};

    use super::Light;
    use crate::editor::{Full, Heard, Typist};

    fn frame(message: &ServerMessage) -> String {
        serde_json::to_string(message).unwrap()
    }

    fn accepted(revision: u64, client: u64, seq: u64, delta: Delta) -> String {
        frame(&ServerMessage::Accepted {
            change: AcceptedChange {
                revision: Revision(revision),
                client: ClientId::new(client).unwrap(),
                seq: Seq(seq),
                author: Author::new("other"),
                delta,
            },
        })
    }

    fn verdict(seq: u64, revision: u64) -> String {
        frame(&ServerMessage::Verdict {
            seq: Seq(seq),
            verdict: Verdict::Accepted {
                revision: Revision(revision),
            },
        })
    }

    /// Both editors hear a frame; then what each would send.
    fn both(light: &mut Light, full: &mut Full, frame: &str) -> (Option<Change>, Option<Change>) {
        let a = light.hear(frame).unwrap();
        let b = full.hear(frame).unwrap();
        assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b), "{frame}");
        (light.next_change(), full.next_change())
    }

    /// The server commits `delta` (on its current text).
    fn commit(server: &mut ClientState, delta: Delta) {
        server.edit(delta).unwrap();
        let change = server.poll_send().unwrap();
        let verdict = Verdict::Accepted {
            revision: change.base.next(),
        };
        server.receive_verdict(change.seq, &verdict).unwrap();
    }

    /// A light editor and a full one at the same line hear the same frames
    /// and send the same changes: the light one keeps the full one's place.
    #[test]
    fn a_light_editor_sends_what_a_full_one_would() {
        let me = ClientId::new(2).unwrap();
        let text = "editor 0\neditor 1\neditor 2\n";
        let mut light = Light::new(me, 1);
        let mut full = Full::new(me, 1);
        // The server's text, to build the others' changes on.
        let mut server = ClientState::new(ClientId::new(9).unwrap(), SectionPolicy::Line, Revision(5), text.into());
        let joined = frame(&ServerMessage::Joined {
            document: "d".into(),
            revision: Revision(5),
            text: Some(text.into()),
            policy: SectionPolicy::Line,
        });
        assert!(matches!(both(&mut light, &mut full, &joined), (None, None)));
        let mut revision = 5;
        // Another editor types above (a new line after editor 0's) and below.
        for (step, (anchor, what)) in [("editor 0", "ü\n"), ("editor 2", "x"), ("editor 0", "y")]
            .into_iter()
            .enumerate()
        {
            // We type a key; it goes at once.
            light.type_char('a').unwrap();
            full.type_char('a').unwrap();
            let (ours, f) = (light.next_change().unwrap(), full.next_change().unwrap());
            assert_eq!(ours, f, "step {step}");
            // Someone else's change is committed first.
            let t = server.text().to_owned();
            let at = t.find(anchor).unwrap();
            let pos = t[..at].chars().count() + anchor.chars().count();
            let delta = Delta::splice(t.chars().count(), pos, 0, what).unwrap();
            commit(&mut server, delta.clone());
            revision += 1;
            assert!(matches!(
                both(
                    &mut light,
                    &mut full,
                    &accepted(revision, 9, step as u64 + 1, delta.clone())
                ),
                (None, None)
            ));
            // Typed meanwhile: waits for the verdict on ours, rebased.
            light.type_char('b').unwrap();
            full.type_char('b').unwrap();
            commit(&mut server, ours.delta.transform(&delta).unwrap().0);
            revision += 1;
            let (l, f) = both(&mut light, &mut full, &verdict(ours.seq.0, revision));
            assert_eq!(l, f, "step {step}: the next change");
            let next = l.unwrap();
            commit(&mut server, next.delta.clone());
            revision += 1;
            assert!(matches!(
                both(&mut light, &mut full, &verdict(next.seq.0, revision)),
                (None, None)
            ));
        }
        assert!(server.text().contains("editor 1ababab\n"), "{}", server.text());
        assert!(full.replica().matches(server.text()));
        assert!(light.replica().matches(server.text()));
    }

    #[test]
    fn a_light_editor_refuses_what_does_not_fit() {
        let mut light = Light::new(ClientId::new(2).unwrap(), 0);
        let joined = r#"{"type":"joined","document":"d","revision":1,"text":"abc\n","policy":"line"}"#;
        assert!(matches!(light.hear(joined), Ok(Heard::Nothing)));
        // A delta over 5 characters, the text has 4.
        let error = light
            .hear(&accepted(2, 9, 1, Delta::splice(5, 0, 0, "x").unwrap()))
            .err()
            .unwrap();
        assert!(error.contains("the text has 4"), "{error}");
        // A gap in the revisions.
        let error = light
            .hear(&accepted(4, 9, 1, Delta::splice(4, 0, 0, "x").unwrap()))
            .err()
            .unwrap();
        assert!(error.contains("after revision 1"), "{error}");
        assert!(light.hear("not json").is_err());
        assert!(light.hear(&verdict(7, 2)).is_err(), "a verdict for a change never sent");
    }
}
