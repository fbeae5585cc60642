//! Property tests (proptest): the delta laws, and the whole sync protocol
//! with 2 to 10 simulated clients over a network that delays, reorders and
//! drops (see `support/sim.rs` for the invariants checked).
#![cfg(not(target_arch = "wasm32"))]

mod support;

use proptest::prelude::*;
use shared::{Delta, SectionPolicy};
use support::sim::{self, Action, Config};

/// Texts with newlines, accents and characters outside the BMP.
fn text() -> impl Strategy<Value = String> {
    "[ab\n é😀]{0,24}"
}

/// A delta that applies to a text of `len` characters.
fn delta_on(len: usize) -> impl Strategy<Value = Delta> {
    prop::collection::vec((0u8..3, 1usize..5, "[xy\n😀]{1,3}"), 0..6).prop_map(move |steps| {
        let mut d = Delta::new();
        let mut left = len;
        for (kind, n, s) in steps {
            match kind {
                0 => {
                    let n = n.min(left);
                    d.retain(n);
                    left -= n;
                }
                1 => {
                    d.insert(&s);
                }
                _ => {
                    let n = n.min(left);
                    d.delete(n);
                    left -= n;
                }
            }
        }
        d.retain(left);
        d
    })
}

/// A text and keystrokes: insert (twice as likely) or backspace, each after
/// moving the caret by -2..=2.
fn keystrokes() -> impl Strategy<Value = (String, Vec<(u8, i8, char)>)> {
    let key = (0u8..3, -2i8..3, prop::sample::select(vec!['x', '\n', 'é', '😀']));
    (text(), prop::collection::vec(key, 1..60))
}

fn text_and_two_deltas() -> impl Strategy<Value = (String, Delta, Delta)> {
    text().prop_flat_map(|t| {
        let len = t.chars().count();
        (Just(t), delta_on(len), delta_on(len))
    })
}

fn text_and_sequential_deltas() -> impl Strategy<Value = (String, Delta, Delta)> {
    text().prop_flat_map(|t| {
        let len = t.chars().count();
        (Just(t), delta_on(len)).prop_flat_map(|(t, a)| {
            let after = a.target_len();
            (Just(t), Just(a), delta_on(after))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn apply_in_place_and_rope_agree((t, a, _b) in text_and_two_deltas()) {
        let copied = a.apply(&t).unwrap();
        let mut in_place = t.clone();
        a.apply_in_place(&mut in_place).unwrap();
        let mut rope = jumprope::JumpRopeBuf::from(&t);
        a.apply_to_rope(&mut rope).unwrap();
        prop_assert_eq!(&copied, &in_place);
        prop_assert_eq!(copied, rope.to_string());
    }

    /// The server's text buffers runs of adjacent keystrokes (typing along,
    /// backspacing) and applies a run when it breaks or the text is read:
    /// keystrokes around a wandering caret, read now and then, must leave
    /// it where they leave a plain string.
    #[test]
    fn the_buffered_rope_follows_keystrokes((t, keys) in keystrokes()) {
        let mut string = t.clone();
        let mut rope = jumprope::JumpRopeBuf::from(&t);
        let mut caret = 0usize;
        for (kind, jump, c) in keys {
            let len = string.chars().count();
            caret = (caret as isize + jump as isize).clamp(0, len as isize) as usize;
            let mut d = Delta::new();
            if kind < 2 {
                d.retain(caret).insert(&c.to_string()).retain(len - caret);
                caret += 1;
            } else if caret > 0 {
                d.retain(caret - 1).delete(1).retain(len - caret);
                caret -= 1;
            } else {
                continue;
            }
            d.apply_in_place(&mut string).unwrap();
            d.apply_to_rope(&mut rope).unwrap();
            prop_assert_eq!(rope.len_chars(), string.chars().count());
            if jump == 2 {
                prop_assert_eq!(rope.to_string(), string.clone());
            }
        }
        prop_assert_eq!(rope.to_string(), string);
    }

    #[test]
    fn compose_is_apply_then_apply((t, a, b) in text_and_sequential_deltas()) {
        let ab = a.compose(&b).unwrap();
        prop_assert_eq!(ab.apply(&t).unwrap(), b.apply(&a.apply(&t).unwrap()).unwrap());
    }

    #[test]
    fn transform_converges((t, a, b) in text_and_two_deltas()) {
        let (a2, b2) = a.transform(&b).unwrap();
        let via_a = b2.apply(&a.apply(&t).unwrap()).unwrap();
        let via_b = a2.apply(&b.apply(&t).unwrap()).unwrap();
        prop_assert_eq!(via_a, via_b);
    }

    #[test]
    fn invert_undoes((t, a, _b) in text_and_two_deltas()) {
        let after = a.apply(&t).unwrap();
        prop_assert_eq!(a.invert(&t).unwrap().apply(&after).unwrap(), t);
    }

    #[test]
    fn diff_gives_the_new_text(old in text(), new in text()) {
        let d = Delta::diff(&old, &new);
        prop_assert_eq!(d.apply(&old).unwrap(), new);
    }

    #[test]
    fn wire_form_round_trips((_t, a, _b) in text_and_two_deltas()) {
        let json = serde_json::to_string(&a).unwrap();
        let back: Delta = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn conflicts_are_symmetric((t, a, b) in text_and_two_deltas()) {
        for policy in SectionPolicy::ALL {
            let ab = policy.conflict(&a, &policy.sections(&b, t.as_str())).is_some();
            let ba = policy.conflict(&b, &policy.sections(&a, t.as_str())).is_some();
            prop_assert_eq!(ab, ba, "{:?}", policy);
        }
    }
}

fn action() -> impl Strategy<Value = Action> {
    let client = 0usize..10;
    prop_oneof![
        8 => (client.clone(), any::<u8>(), any::<u8>(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(client, at, delete, insert, newline)| Action::Type { client, at, delete, insert, newline }),
        5 => client.clone().prop_map(|client| Action::ToServer { client }),
        5 => client.clone().prop_map(|client| Action::ToClient { client }),
        1 => client.clone().prop_map(|client| Action::Drop { client }),
        1 => client.clone().prop_map(|client| Action::Reconnect { client }),
        1 => client.prop_map(|client| Action::Reapply { client }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        2usize..=10,
        prop_oneof![Just(SectionPolicy::Line), Just(SectionPolicy::Range)],
        prop_oneof![Just(4usize), Just(32), Just(4096)],
        prop_oneof![
            Just(""),
            Just("one\ntwo\nthree\n"),
            Just("A paragraph of prose.\n\nAnother one.")
        ],
    )
        .prop_map(|(clients, policy, window, initial)| Config {
            clients,
            policy,
            window,
            initial: initial.to_owned(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// (a) to (e) of the sync invariants, over random schedules.
    #[test]
    fn replicas_converge_and_nothing_is_lost(config in config(), actions in prop::collection::vec(action(), 1..400)) {
        sim::run(&config, &actions).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Bad input is answered with an error and changes nothing: deltas that
    /// do not fit the text, bases in the future, stale sequence numbers.
    #[test]
    fn bad_changes_change_nothing(
        (t, good, _b) in text_and_two_deltas(),
        bad_len in 0usize..40,
        base in 0u64..4,
    ) {
        use shared::{Author, Change, ClientId, DocumentState, Limits, Revision, Seq};
        let mut doc = DocumentState::new(&t, Revision(0), SectionPolicy::Line, Limits::default());
        let client = ClientId::new(9).unwrap();
        let author = Author::new("x");
        doc.submit(Change { client, seq: Seq(5), base: Revision(0), delta: good }, author.clone()).unwrap();
        let (text, revision) = (doc.text().to_string(), doc.revision());

        let bad = Delta::identity(bad_len);
        let fits = bad_len == doc.text().len_chars() || (base == 0 && bad_len == t.chars().count());
        let result = doc.submit(Change { client, seq: Seq(6), base: Revision(base), delta: bad.clone() }, author.clone());
        if base > revision.0 || !fits {
            prop_assert!(result.is_err(), "{:?}", result);
            prop_assert_eq!(doc.text().to_string(), text.clone());
            prop_assert_eq!(doc.revision(), revision);
        }
        let stale = doc.submit(Change { client, seq: Seq(1), base: revision, delta: bad }, author);
        prop_assert!(stale.is_err());
        prop_assert_eq!(doc.text().to_string(), text);
    }
}
