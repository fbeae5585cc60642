//! Deltas: apply, the wire form, compose, transform, positions and diff.
//! Data-driven: each area has one `check_*` helper and a table of cases.

use shared::{Bias, Delta, Error};
use wasm_bindgen_test::wasm_bindgen_test;

fn delta(json: &str) -> Delta {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn wire(d: &Delta) -> String {
    serde_json::to_string(d).unwrap()
}

#[track_caller]
fn check_apply(base: &str, json: &str, expect: Result<&str, Error>) {
    let d = delta(json);
    let got = d.apply(base);
    assert_eq!(
        got.as_deref().map_err(Clone::clone),
        expect.clone(),
        "apply {json} to {base:?}"
    );
    let mut in_place = base.to_owned();
    let got = d.apply_in_place(&mut in_place).map(|()| in_place.clone());
    assert_eq!(
        got.as_deref().map_err(Clone::clone),
        expect.clone(),
        "apply_in_place {json} to {base:?}"
    );
    if expect.is_err() {
        assert_eq!(in_place, base, "a failed apply changes nothing");
    }
    let mut rope = jumprope::JumpRopeBuf::from(base);
    let got = d.apply_to_rope(&mut rope).map(|()| rope.to_string());
    assert_eq!(
        got.as_deref().map_err(Clone::clone),
        expect,
        "apply_to_rope {json} to {base:?}"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn apply() {
    check_apply("", r#"["hi"]"#, Ok("hi"));
    check_apply("hello", r#"[5]"#, Ok("hello"));
    check_apply("hello", r#"["> ",5]"#, Ok("> hello"));
    check_apply("hello", r#"[5,"!"]"#, Ok("hello!"));
    check_apply("hello", r#"[1,"a",-2,2]"#, Ok("halo"));
    check_apply("hello", r#"[-5]"#, Ok(""));
    check_apply("héllo wörld", r#"[1,"e",-1,5,"o",-1,3]"#, Ok("hello world"));
    check_apply("a😀b", r#"[1,-1,"🙂",1]"#, Ok("a🙂b"));
    check_apply("a\r\nb", r#"[1,-2,"\n",1]"#, Ok("a\nb"));
    let short = Error::BaseLength { expected: 6, actual: 5 };
    check_apply("hello", r#"[6]"#, Err(short));
    check_apply("hello", r#"[4]"#, Err(Error::BaseLength { expected: 4, actual: 5 }));
    check_apply("hello", r#"[2,-4]"#, Err(Error::BaseLength { expected: 6, actual: 5 }));
    check_apply("", r#"[1]"#, Err(Error::BaseLength { expected: 1, actual: 0 }));
    check_apply("😀", r#"[2]"#, Err(Error::BaseLength { expected: 2, actual: 1 }));
}

#[track_caller]
fn check_wire(json: &str, expect: Result<&str, &str>) {
    let got: Result<Delta, String> = serde_json::from_str(json).map_err(|e| e.to_string());
    match (got, expect) {
        (Ok(d), Ok(canonical)) => assert_eq!(wire(&d), canonical, "{json}"),
        (Err(e), Err(message)) => assert!(e.contains(message), "{json}: {e:?} should mention {message:?}"),
        (got, expect) => panic!("{json}: got {got:?}, expected {expect:?}"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn wire_form() {
    check_wire(r#"[3,"ab",-2,4]"#, Ok(r#"[3,"ab",-2,4]"#));
    check_wire(r#"[]"#, Ok(r#"[]"#));
    // Canonical: neighbours merged, insert before delete.
    check_wire(r#"[1,2,"a","b",-1,-1]"#, Ok(r#"[3,"ab",-2]"#));
    check_wire(r#"[1,-1,"x",1]"#, Ok(r#"[1,"x",-1,1]"#));
    check_wire(r#"[-1,"x",-1]"#, Ok(r#"["x",-2]"#));
    // Zero-length operations are errors.
    check_wire(r#"[0]"#, Err("length zero"));
    check_wire(r#"[-0]"#, Err("delta operation"));
    check_wire(r#"[1,""]"#, Err("length zero"));
    // Anything else is not a delta.
    check_wire(r#"[1.5]"#, Err("delta operation"));
    check_wire(r#"[null]"#, Err("delta operation"));
    check_wire(r#"[{"retain":1}]"#, Err("delta operation"));
    check_wire(r#"{"ops":[]}"#, Err("delta"));
    check_wire(r#""abc""#, Err("delta"));
    check_wire(r#"[99999999999999999999]"#, Err("delta operation"));
    check_wire(r#"[1099511627776]"#, Err("longer than"));
    check_wire(r#"[-1099511627776]"#, Err("longer than"));
    check_wire(r#"[1073741824,1073741824]"#, Err("longer than"));
}

#[track_caller]
fn check_compose(base: &str, first: &str, second: &str) {
    let (a, b) = (delta(first), delta(second));
    let composed = a.compose(&b).unwrap();
    let expect = b.apply(&a.apply(base).unwrap()).unwrap();
    assert_eq!(
        composed.apply(base).unwrap(),
        expect,
        "{first} then {second} on {base:?}"
    );
    assert_eq!(composed.base_len(), a.base_len());
    assert_eq!(composed.target_len(), b.target_len());
}

#[wasm_bindgen_test(unsupported = test)]
fn compose() {
    check_compose("hello", r#"[5,"!"]"#, r#"[6,"!"]"#);
    check_compose("hello", r#"["ab",5]"#, r#"[1,-1,5]"#);
    check_compose("hello", r#"[2,"xyz",3]"#, r#"[3,-3,2]"#);
    check_compose("hello", r#"[-5]"#, r#"["bye"]"#);
    check_compose("", r#"["a"]"#, r#"[-1]"#);
    check_compose("a😀b", r#"[1,"é",2]"#, r#"[2,-1,"x",1]"#);
    assert_eq!(
        delta(r#"[5]"#).compose(&delta(r#"[4]"#)),
        Err(Error::Mismatch { left: 5, right: 4 })
    );
}

/// Transforms `a` and `b` (both on `base`) over each other; `b` is committed
/// first. Both orders must give `expect`.
#[track_caller]
fn check_transform(base: &str, a: &str, b: &str, expect: &str) {
    let (a, b) = (delta(a), delta(b));
    let (a2, b2) = a.transform(&b).unwrap();
    let via_a = b2.apply(&a.apply(base).unwrap()).unwrap();
    let via_b = a2.apply(&b.apply(base).unwrap()).unwrap();
    assert_eq!(via_a, via_b, "converge");
    assert_eq!(via_a, expect);
}

#[wasm_bindgen_test(unsupported = test)]
fn transform() {
    check_transform("hello", r#"["A",5]"#, r#"[5,"Z"]"#, "AhelloZ");
    check_transform("hello", r#"[1,-3,1]"#, r#"[2,-2,1]"#, "ho");
    check_transform("hello", r#"[1,-3,1]"#, r#"[-5]"#, "");
    // Same place: the committed one's text comes first.
    check_transform("ab", r#"[1,"x",1]"#, r#"[1,"y",1]"#, "ayxb");
    check_transform("", r#"["mine"]"#, r#"["theirs"]"#, "theirsmine");
    // An insert inside a range deleted by the other survives.
    check_transform("abcdef", r#"[3,"X",3]"#, r#"[1,-4,1]"#, "aXf");
    check_transform("😀😀😀", r#"[1,"é",2]"#, r#"[2,-1]"#, "😀é😀");
    assert!(delta("[3]").transform(&delta("[4]")).is_err());
}

#[track_caller]
fn check_position(json: &str, pos: usize, left: usize, right: usize) {
    let d = delta(json);
    assert_eq!(d.map_position(pos, Bias::Left), left, "{json} {pos} left");
    assert_eq!(d.map_position(pos, Bias::Right), right, "{json} {pos} right");
}

#[wasm_bindgen_test(unsupported = test)]
fn positions() {
    check_position(r#"[2,"ab",3]"#, 0, 0, 0);
    check_position(r#"[2,"ab",3]"#, 2, 2, 4);
    check_position(r#"[2,"ab",3]"#, 3, 5, 5);
    check_position(r#"[2,-2,1]"#, 3, 2, 2);
    check_position(r#"[2,-2,1]"#, 5, 3, 3);
    check_position(r#"[5,"end"]"#, 5, 5, 8);
    let d = delta(r#"[2,"ab",-1,2]"#);
    assert_eq!(d.map_position_back(2), 2);
    assert_eq!(d.map_position_back(3), 2);
    assert_eq!(d.map_position_back(4), 3);
    assert_eq!(d.map_position_back(6), 5);
}

#[track_caller]
fn check_diff(old: &str, new: &str, expect: &str) {
    let d = Delta::diff(old, new);
    assert_eq!(wire(&d), expect, "{old:?} -> {new:?}");
    assert_eq!(d.apply(old).unwrap(), new);
}

#[wasm_bindgen_test(unsupported = test)]
fn diff() {
    check_diff("", "", "[]");
    check_diff("same", "same", "[4]");
    check_diff("", "typed", r#"["typed"]"#);
    check_diff("hello", "", "[-5]");
    check_diff("helo", "hello", r#"[3,"l",1]"#);
    check_diff("hello", "help", r#"[3,"p",-2]"#);
    check_diff("hello world", "hello", "[5,-6]");
    // Autocorrect: only what changed.
    check_diff("I saw teh cat", "I saw the cat", r#"[7,"h",1,-1,4]"#);
    // Characters, not bytes or UTF-16 units.
    check_diff("a😀b", "a😀😀b", r#"[2,"😀",1]"#);
    check_diff("é", "è", r#"["è",-1]"#);
    check_diff("naïve café", "naive cafe", r#"[2,"i",-1,6,"e",-1]"#);
    // Enter at the end of a line is credited to that line, not the next.
    check_diff("one\ntwo", "one\n\ntwo", r#"[3,"\n",4]"#);
    check_diff("one\ntwo", "one\nnew\ntwo", r#"[3,"\nnew",4]"#);
    check_diff("a\r\nb", "a\r\nx\r\nb", r#"[2,"\nx\r",2]"#);
    // A paste over a large selection is one replacement.
    let old = "x".repeat(5000);
    let new = "y".repeat(5000);
    let d = Delta::diff(&old, &new);
    assert_eq!(d.ops(), &[shared::Op::Insert(new.clone()), shared::Op::Delete(5000)]);
}
