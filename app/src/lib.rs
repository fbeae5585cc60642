//! The collaborative editor's user interface, in Leptos.
//!
//! The same components are rendered to HTML on the server (feature `ssr`,
//! used by the `server` crate) and hydrated in the browser (feature
//! `hydrate`, the WebAssembly bundle built by cargo-leptos). The only
//! WebAssembly entry point is [`hydrate`].
//!
//! - [`home`]: the list of documents.
//! - [`editor`]: the editor page, driven by `shared::ClientState`.
//! - [`server`]: server functions (the pages' calls to the server).
//! - `backend`: what the server provides to them (`ssr` only).

// The editor's view types nest deeply.
#![recursion_limit = "256"]

#[cfg(feature = "ssr")]
pub mod backend;
pub mod editor;
pub mod home;
pub mod server;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub use home::HomePage;

/// The HTML document around [`App`], rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
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

/// The router: the home page and the editor.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Collab"/>
        <Router>
            <header class="topbar">
                <a href="/" class="brand">"Collab"</a>
            </header>
            <main class="container">
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/d/:id") view=editor::EditorPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// WebAssembly entry point, called by the script `<HydrationScripts/>` loads.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
