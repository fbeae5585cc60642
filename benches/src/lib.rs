//! Helpers shared by the benchmarks: turning recorded traces into the
//! changes our engine receives.

use editing_traces::SequentialTrace;
use shared::{Change, ClientId, Delta, Revision, Seq};

/// Every patch of a sequential trace as the change one client would send:
/// one keystroke each, each on the revision before it.
pub fn trace_changes(trace: &SequentialTrace) -> Vec<Change> {
    let client = ClientId::new(1).expect("small id");
    let mut len = shared::text::char_count(&trace.start_content);
    trace
        .patches()
        .enumerate()
        .map(|(i, p)| {
            let delta = Delta::splice(len, p.pos, p.del, &p.ins).expect("trace patches fit the text");
            len = delta.target_len();
            Change {
                client,
                seq: Seq(i as u64 + 1),
                base: Revision(i as u64),
                delta,
            }
        })
        .collect()
}
