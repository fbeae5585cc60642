//! The sync simulation with fixed seeds, built for both targets: natively
//! and, through wasm-bindgen-test under Node, as the browser's copy of the
//! engine. The property tests (`properties.rs`) explore the same space with
//! proptest natively.

mod support;

use shared::SectionPolicy;
use support::sim::{self, random_actions, Config, Rng};
use wasm_bindgen_test::wasm_bindgen_test;

fn run_seeds(policy: SectionPolicy, seeds: std::ops::Range<u64>) {
    let mut reports = Vec::new();
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let config = Config {
            clients: 2 + rng.below(9) as usize,
            policy,
            window: [4, 32, 4096][rng.below(3) as usize],
            initial: ["", "one\ntwo\nthree\n", "A paragraph of prose.\n\nAnother one."][rng.below(3) as usize]
                .to_owned(),
        };
        let count = 50 + rng.below(350) as usize;
        let actions = random_actions(&mut rng, count);
        match sim::run(&config, &actions) {
            Ok(report) => reports.push(report),
            Err(e) => panic!("seed {seed} ({config:?}): {e}"),
        }
    }
    let summary = sim::summary(&reports);
    // The schedules must exercise conflicts, resends and resyncs, or they prove little.
    for what in ["accepted", "rejected", "resent", "resyncs", "tray"] {
        assert!(summary[what] > 0, "no run had any {what}: {summary:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn line_policy_seeds() {
    run_seeds(SectionPolicy::Line, 0..200);
}

#[wasm_bindgen_test(unsupported = test)]
fn range_policy_seeds() {
    run_seeds(SectionPolicy::Range, 1000..1200);
}
