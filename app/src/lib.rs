//! Leptos UI of the collaborative document editor.
//!
//! The same components are rendered to HTML on the server (feature `ssr`,
//! used by the `server` crate) and hydrated in the browser (feature
//! `hydrate`, the WASM bundle built by cargo-leptos). The only WASM entry
//! point is [`hydrate`].

mod home;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

pub use home::HomePage;

/// The HTML document around [`App`], rendered only on the server.
///
/// The stylesheet path is `/<site-pkg-dir>/<name>.css` as produced by
/// cargo-leptos (`name = "collab"`, `site-pkg-dir = "pkg"`).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>"Collab"</title>
                <link id="leptos" rel="stylesheet" href="/pkg/collab.css"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Root component: meta context plus the client/server router.
#[component]
pub fn App() -> impl IntoView {
    // Lets components add <meta>/<link> tags later; rendered by <MetaTags/>.
    provide_meta_context();

    view! {
        <Router>
            <main class="container">
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=HomePage/>
                </Routes>
            </main>
        </Router>
    }
}

/// WASM entry point called by the JS glue that `<HydrationScripts/>` loads:
/// attaches the reactive system to the server-rendered `<body>`.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
