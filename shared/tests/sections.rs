//! Section policies, end to end: two people edit the same base text at the
//! same moment; the first edit is committed, then the second arrives. The
//! `check` helper runs both through the server's [`DocumentState`] and the
//! second person's [`ClientState`] (which predicts the verdict), and states
//! the outcome: the merged text, or `CONFLICT`.

use shared::{
    Author, ClientId, ClientState, Conflict, DocumentState, Limits, Revision, SectionPolicy,
    SectionPolicy::{Line, Range},
    Span, Verdict,
};
use wasm_bindgen_test::wasm_bindgen_test;

const CONFLICT: &str = "CONFLICT";

/// `first` and `second` are two edits of `base`, each given as the text it
/// produces. `first` is committed first.
#[track_caller]
fn check(policy: SectionPolicy, base: &str, first: &str, second: &str, expect: &str) {
    let outcome = run(policy, base, first, second);
    match &outcome.verdict {
        Verdict::Accepted { .. } => assert_eq!(outcome.text, expect, "{policy:?}: {base:?} | {first:?} | {second:?}"),
        Verdict::Rejected { .. } => assert_eq!(CONFLICT, expect, "{policy:?}: {base:?} | {first:?} | {second:?}"),
        other => panic!("unexpected verdict {other:?}"),
    }
}

struct Outcome {
    verdict: Verdict,
    text: String,
    second: ClientState,
}

fn run(policy: SectionPolicy, base: &str, first: &str, second: &str) -> Outcome {
    let mut doc = DocumentState::new(base, Revision(0), policy, Limits::default());
    let mut ana = ClientState::new(ClientId::new(1).unwrap(), policy, Revision(0), base.to_owned());
    let mut ben = ClientState::new(ClientId::new(2).unwrap(), policy, Revision(0), base.to_owned());
    ana.edit_text(first).unwrap();
    ben.edit_text(second).unwrap();
    let from_ana = ana.poll_send().expect("ana has an edit");
    let from_ben = ben.poll_send().expect("ben has an edit");

    let ana_seq = from_ana.seq;
    let decided = doc.submit(from_ana, Author::new("Ana")).unwrap();
    ana.receive_verdict(ana_seq, &decided.verdict).unwrap();
    let accepted = decided.accepted.expect("first edit is accepted");
    let predicted = ben.receive(&accepted).unwrap();
    let decision = doc.submit(from_ben.clone(), Author::new("Ben")).unwrap();
    // The prediction and the verdict agree, or this fails.
    ben.receive_verdict(from_ben.seq, &decision.verdict).unwrap();
    let text = doc.text().to_string();
    match &decision.verdict {
        Verdict::Accepted { .. } => {
            assert!(predicted.rejected.is_empty(), "no conflict was predicted");
            ana.receive(decision.accepted.as_ref().unwrap()).unwrap();
            assert_eq!(ana.text(), text, "ana converges");
            assert_eq!(ben.text(), text, "ben converges");
        }
        Verdict::Rejected { .. } => {
            assert_eq!(predicted.rejected.len(), 1, "the conflict was predicted");
            // The loser's page shows the winner's text; the edit is in the tray.
            assert_eq!(ben.text(), first);
            assert_eq!(text, first);
            let entry = &ben.tray()[0];
            assert_eq!(entry.delta.base_len(), shared::text::char_count(first));
        }
        Verdict::Resync { .. } => {}
    }
    Outcome {
        verdict: decision.verdict,
        text,
        second: ben,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn line_policy() {
    // Same line.
    check(Line, "one\ntwo\n", "ONE\ntwo\n", "one!\ntwo\n", CONFLICT);
    check(Line, "one\ntwo\n", "one\ntwo!\n", "one\n2two\n", CONFLICT);
    // Adjacent lines merge.
    check(Line, "one\ntwo\n", "ONE\ntwo\n", "one\ntwo!\n", "ONE\ntwo!\n");
    check(
        Line,
        "one\ntwo\nthree",
        "one\ntwo!\nthree",
        "one\ntwo\nthree!",
        "one\ntwo!\nthree!",
    );
    // Enter at the end of a line belongs to that line...
    check(Line, "one\ntwo", "one\n\ntwo", "one\ntwo!", "one\n\ntwo!");
    check(Line, "one\ntwo", "one\n\ntwo", "one!\ntwo", CONFLICT);
    // ...an insert at the start of a line to that line.
    check(Line, "one\ntwo", "one\n> two", "one\ntwo!", CONFLICT);
    check(Line, "one\ntwo", "one\n> two", "one!\ntwo", "one!\n> two");
    // A deletion across lines touches every line it spans.
    check(Line, "one\ntwo\nthree", "ono\nthree", "one\ntwo\nthree!", "ono\nthree!");
    check(Line, "one\ntwo\nthree", "ono\nthree", "one\nTwo\nthree", CONFLICT);
    check(Line, "one\ntwo\nthree", "ono\nthree", "One\ntwo\nthree", CONFLICT);
    // Deleting a whole line leaves its neighbours free.
    check(Line, "a\nb\nc", "a\nc", "a\nb\nc!", "a\nc!");
    check(Line, "a\nb\nc", "a\nc", "a!\nb\nc", "a!\nc");
    check(Line, "a\nb\nc", "a\nc", "a\nB\nc", CONFLICT);
    // Joining two lines is an edit of the first one's end.
    check(Line, "ab\ncd", "abcd", "ab\ncd!", "abcd!");
    check(Line, "ab\ncd", "abcd", "aB\ncd", CONFLICT);
    // The empty document is one line.
    check(Line, "", "a", "b", CONFLICT);
    check(Line, "\n", "a\n", "\nb", "a\nb");
    // Appending at the end is an edit of the last line.
    check(Line, "x\ny", "x\ny.", "x\nY", CONFLICT);
    check(Line, "x\ny\n", "x\ny\nz", "x\nY\n", "x\nY\nz");
    // Non-ASCII text and emoji count as characters.
    check(Line, "żółw\nłódź", "żółw!\nłódź", "żółw\nłódź?", "żółw!\nłódź?");
    check(Line, "żółw\nłódź", "żółw!\nłódź", "ż\nłódź", CONFLICT);
    check(Line, "😀\n😃", "😀😀\n😃", "😀\n😃😃", "😀😀\n😃😃");
    check(Line, "😀\n😃", "😀😀\n😃", "😀🙂\n😃", CONFLICT);
    // CRLF: '\r' is part of its line.
    check(
        Line,
        "one\r\ntwo\r\n",
        "ONE\r\ntwo\r\n",
        "one\r\ntwo!\r\n",
        "ONE\r\ntwo!\r\n",
    );
    check(Line, "one\r\ntwo\r\n", "one!\r\ntwo\r\n", "one?\r\ntwo\r\n", CONFLICT);
    check(Line, "one\r\ntwo", "one\r\n\r\ntwo", "one\r\ntwo!", "one\r\n\r\ntwo!");
}

#[wasm_bindgen_test(unsupported = test)]
fn range_policy() {
    // Same line, apart: merged.
    check(Range, "hello world", "HELLO world", "hello World", "HELLO World");
    check(Range, "abcdef", "Xabcdef", "abXcdef", "XabXcdef");
    // Overlapping or touching: conflict.
    check(Range, "hello world", "HELLO world", "hellO world", CONFLICT);
    check(Range, "hello world", " world", "hello, world", CONFLICT);
    check(Range, "abcdef", "abef", "abcf", CONFLICT);
    check(Range, "abcdef", "abef", "abcdf", CONFLICT);
    check(Range, "ab", "aXb", "aYb", CONFLICT);
    check(Range, "", "a", "b", CONFLICT);
    // One character apart is apart.
    check(Range, "abcdef", "abdef", "abcdXef", "abdXef");
    // Lines do not matter.
    check(Range, "one\ntwo", "one!\ntwo", "one\n>two", "one!\n>two");
    check(Range, "😀😀😀", "😀😀", "🙂😀😀😀", "🙂😀😀");
    check(Range, "😀😀😀", "😀😀", "😀😀😀🙂", CONFLICT);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_verdict_names_the_winner_and_the_region() {
    // Ben edits line 3 based on revision 0; Ana committed a change to line 3
    // (revision 2) after an insert of a line at the top (revision 1).
    let base = "alpha\nbeta\ngamma\n";
    let policy = Line;
    let mut doc = DocumentState::new(base, Revision(0), policy, Limits::default());
    let mut ana = ClientState::new(ClientId::new(1).unwrap(), policy, Revision(0), base.to_owned());
    let mut ben = ClientState::new(ClientId::new(2).unwrap(), policy, Revision(0), base.to_owned());
    ben.edit_text("alpha\nbeta\nGamma\n").unwrap();
    let from_ben = ben.poll_send().unwrap();

    ana.edit_text("top\nalpha\nbeta\ngamma\n").unwrap();
    let first = doc
        .submit(ana.poll_send().unwrap(), Author::new("Ana"))
        .unwrap()
        .accepted
        .unwrap();
    ana.receive_verdict(
        first.seq,
        &Verdict::Accepted {
            revision: first.revision,
        },
    )
    .unwrap();
    ana.edit_text("top\nalpha\nbeta\ngamma!\n").unwrap();
    let second = doc
        .submit(ana.poll_send().unwrap(), Author::new("Ana"))
        .unwrap()
        .accepted
        .unwrap();

    ben.receive(&first).unwrap();
    let update = ben.receive(&second).unwrap();
    assert_eq!(update.rejected.len(), 1, "predicted");
    let decision = doc.submit(from_ben.clone(), Author::new("Ben")).unwrap();
    let expected = Verdict::Rejected {
        revision: Revision(2),
        conflicts: vec![Conflict {
            revision: Revision(2),
            author: Author::new("Ana"),
            client: ClientId::new(1).unwrap(),
            // "gamma" plus its newline position: 11..=16 in the base text,
            // 15..=21 in the current text (after "top\n" and the "!").
            base: Span::new(11, 16),
            current: Span::new(15, 21),
        }],
    };
    assert_eq!(decision.verdict, expected);
    ben.receive_verdict(from_ben.seq, &decision.verdict).unwrap();
    assert_eq!(ben.text(), "top\nalpha\nbeta\ngamma!\n");
    let entry = &ben.tray()[0];
    // Line 3 of the text it was rejected on (after "top" was added).
    assert_eq!(
        (entry.inserted.as_str(), entry.removed.as_str(), entry.line),
        ("G", "g", 3)
    );
    assert_eq!(
        entry.conflicts,
        match expected {
            Verdict::Rejected { conflicts, .. } => conflicts,
            _ => unreachable!(),
        }
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_rejected_edit_can_be_reapplied() {
    let outcome = run(Line, "one\ntwo\n", "ONE\ntwo\n", "one!\ntwo\n");
    let mut ben = outcome.second;
    let id = ben.tray()[0].id;
    let update = ben.reapply(id).unwrap();
    assert!(update.local.is_some());
    assert_eq!(ben.text(), "ONE!\ntwo\n");
    assert!(ben.tray().is_empty());
    let change = ben.poll_send().expect("re-applied edits are sent as a fresh change");
    assert_eq!(change.base, Revision(1));
}
