//! One editor against the floor (`--relay`, the `relay` binary): the same
//! typing as a product editor (the same rate and phase, one change in
//! flight, keystrokes typed meanwhile travelling together in the next),
//! with no protocol but frames. A change is a 100-byte text frame naming
//! its editor and sequence number; the relay sends it to every socket of
//! the room, and the editor's own copy stands for the verdict.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::editor::{socket_config, DocumentRun, Editor, Replica, Report, Run, Status};

/// Bytes per change frame: about a product `submit` or `accepted` frame.
const FRAME_BYTES: usize = 100;

/// The frame of change `seq` by `client`.
fn frame(client: u64, seq: u64) -> String {
    let mut text = format!("{client} {seq} ");
    while text.len() < FRAME_BYTES {
        text.push('.');
    }
    text
}

/// The (client, seq) a frame names.
fn parse(text: &str) -> Option<(u64, u64)> {
    let mut words = text.split(' ');
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Runs an editor until the run finishes. It does not reconnect: a socket
/// that fails is an error of the run (and its room's other editors give up
/// waiting for it after 60 s).
pub async fn edit(editor: Editor, run: Arc<Run>, doc: Arc<DocumentRun>, status: Arc<Status>) -> Report {
    let client = editor.client.get();
    let mut report = Report {
        client,
        acknowledged: Vec::new(),
        typed: 0,
        unsynced: true,
        replica: Replica::Missing,
    };
    let url = format!("{}/{}", run.ws_base, doc.id);
    let socket = match tokio_tungstenite::connect_async_with_config(url, Some(socket_config()), true).await {
        Ok((socket, _)) => socket,
        Err(error) => {
            run.error(format!("connect: {error}"));
            return report;
        }
    };
    // Typing starts once every editor of the room is in it: the relay keeps
    // nothing for a socket that joins later.
    doc.connected.fetch_add(1, Ordering::Relaxed);
    let waited = Instant::now();
    while doc.connected.load(Ordering::Relaxed) < doc.editors {
        if waited.elapsed() > Duration::from_secs(60) {
            run.error("the other editors of the room did not connect within 60 s".into());
            return report;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut tx, mut rx) = socket.split();
    let mut finish = run.finish.clone();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + editor.phase, editor.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut in_flight: Option<u64> = None;
    // The earliest keystroke not yet sent.
    let mut pending: Option<Instant> = None;
    loop {
        let typing = run.typing.load(Ordering::Relaxed);
        tokio::select! {
            _ = tick.tick(), if typing => {
                pending.get_or_insert_with(Instant::now);
                report.typed += 1;
                run.stats.keystrokes.fetch_add(1, Ordering::Relaxed);
            }
            frame = rx.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        run.error(format!("socket: {error}"));
                        break;
                    }
                    None => {
                        run.error("the relay hung up".into());
                        break;
                    }
                };
                run.stats.messages_in.fetch_add(1, Ordering::Relaxed);
                match parse(text.as_str()) {
                    Some((author, acked)) if author == client => {
                        if in_flight == Some(acked) {
                            in_flight = None;
                            report.acknowledged.push(acked);
                            run.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(key) => doc.received(key, &run),
                    None => run.error(format!("unreadable frame: {text}")),
                }
            }
            _ = finish.changed() => {
                if *finish.borrow() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), tx.send(Message::Close(None))).await;
                    break;
                }
            }
        }
        if in_flight.is_none() {
            if let Some(typed_at) = pending.take() {
                seq += 1;
                doc.sending((client, seq), typed_at, &run);
                if tx.send(Message::text(frame(client, seq))).await.is_err() {
                    run.error("the relay hung up".into());
                    break;
                }
                in_flight = Some(seq);
            }
        }
        status
            .idle
            .store(in_flight.is_none() && pending.is_none(), Ordering::Relaxed);
    }
    report.unsynced = in_flight.is_some() || pending.is_some();
    report
}

#[cfg(test)]
mod tests {
    use super::{frame, parse, FRAME_BYTES};

    #[test]
    fn a_change_frame_names_its_editor_and_sequence_number() {
        let text = frame(1_764_000_000_123, 42);
        assert_eq!(text.len(), FRAME_BYTES);
        assert_eq!(parse(&text), Some((1_764_000_000_123, 42)));
        assert_eq!(parse("garbage"), None);
    }
}
