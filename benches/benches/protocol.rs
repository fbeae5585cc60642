//! Benchmarks of the WebSocket protocol's JSON (`cargo bench -p benches
//! --bench protocol`): decoding and encoding the frames of live typing, as
//! the server (a `submit` per keystroke), the browser and the load
//! generator (an `accepted` or a `verdict` per keystroke of any editor) do.

use divan::black_box;
use shared::protocol::{ClientMessage, ServerMessage};

fn main() {
    divan::main();
}

/// A frame of each kind, as the server and the browser write them.
const ACCEPTED: &str = r#"{"type":"accepted","change":{"revision":12345,"client":1764000000123,"seq":57,"author":"load123e4","delta":[1530,"e",212]}}"#;
const VERDICT: &str = r#"{"type":"verdict","seq":57,"verdict":{"verdict":"accepted","revision":12346}}"#;
const SUBMIT: &str =
    r#"{"type":"submit","change":{"client":1764000000123,"seq":58,"base":12346,"delta":[1531,"x",212]}}"#;
/// The same `accepted` frame with its fields in another order: any JSON
/// object is valid, whichever field comes first.
const ACCEPTED_TYPE_LAST: &str = r#"{"change":{"revision":12345,"client":1764000000123,"seq":57,"author":"load123e4","delta":[1530,"e",212]},"type":"accepted"}"#;

/// The frame of each kind the benchmarks name.
fn frame(kind: &str) -> &'static str {
    match kind {
        "accepted" => ACCEPTED,
        "verdict" => VERDICT,
        "accepted, type last" => ACCEPTED_TYPE_LAST,
        _ => unreachable!("no frame {kind}"),
    }
}

#[divan::bench(args = ["accepted", "verdict", "accepted, type last"])]
fn decode_server_message(bencher: divan::Bencher, kind: &str) {
    let json = frame(kind);
    bencher.bench_local(|| serde_json::from_str::<ServerMessage>(black_box(json)).unwrap());
}

#[divan::bench]
fn decode_submit() -> ClientMessage {
    serde_json::from_str(black_box(SUBMIT)).unwrap()
}

#[divan::bench(args = ["accepted", "verdict"])]
fn encode_server_message(bencher: divan::Bencher, kind: &str) {
    let message: ServerMessage = serde_json::from_str(frame(kind)).unwrap();
    bencher.bench_local(|| serde_json::to_string(black_box(&message)).unwrap());
}
