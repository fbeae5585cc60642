//! Home page: a placeholder until the collaborative editor lands.
//!
//! It carries a small interactive draft box so that end-to-end tests can
//! prove the page is server-rendered *and* hydrated:
//! - `[data-testid=draft]`: a textarea, present in the SSR HTML;
//! - `[data-testid=draft-count]`: its live character count;
//! - `[data-testid=hydrated]`: reads "hydrated" only once the WASM has run
//!   (effects never run during server rendering);
//! - `[data-testid=draft-delta]`: the delta of the last edit, computed in the
//!   browser by the `shared` crate compiled to WebAssembly, in its wire form.

use leptos::prelude::*;
use shared::Delta;

/// Formats a character count, e.g. `0 characters`, `1 character`.
fn count_label(n: usize) -> String {
    if n == 1 {
        "1 character".to_string()
    } else {
        format!("{n} characters")
    }
}

/// Placeholder landing page with a live character counter.
#[component]
pub fn HomePage() -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let last_delta = RwSignal::new(String::from("none yet"));
    let hydrated = RwSignal::new(false);

    // Effects only run in the browser, after hydration.
    Effect::new(move |_| hydrated.set(true));

    let count = move || count_label(draft.with(|text| text.chars().count()));
    let status = move || {
        if hydrated.get() {
            "hydrated"
        } else {
            "server-rendered, waiting for scripts"
        }
    };

    view! {
        <section class="card">
            <h1>"Collab"</h1>
            <p class="lead">
                "A real-time collaborative document editor. The editor arrives soon."
            </p>
            <label for="draft">"Scratch draft"</label>
            <textarea
                id="draft"
                data-testid="draft"
                rows="6"
                placeholder="Start typing…"
                on:input:target=move |ev| {
                    let new = ev.target().value();
                    let delta = draft.with(|old| Delta::diff(old, &new));
                    last_delta.set(serde_json::to_string(&delta).unwrap_or_default());
                    draft.set(new);
                }
            ></textarea>
            <p class="meta">
                <span data-testid="draft-count">{count}</span>
                " · last edit as a delta: "
                <code data-testid="draft-delta">{last_delta}</code>
            </p>
            <p class="status" data-testid="hydrated">{status}</p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::count_label;

    #[test]
    fn count_label_pluralises() {
        assert_eq!(count_label(0), "0 characters");
        assert_eq!(count_label(1), "1 character");
        assert_eq!(count_label(5), "5 characters");
    }
}
