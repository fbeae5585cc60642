//! The collaborative editor's user interface, in Leptos.
//!
//! The same components are rendered to HTML on the server (feature `ssr`,
//! used by the `server` crate) and hydrated in the browser (feature
//! `hydrate`, the WebAssembly bundle built by cargo-leptos). The only
//! WebAssembly entry point is [`hydrate`].
//!
//! - [`home`]: the list of documents.
//! - [`account`]: sign in, sign up, the user menu.
//! - [`editor`]: the editor page, driven by `shared::ClientState`, with
//!   its share dialog.
//! - [`server`]: server functions (the pages' calls to the server).
//! - `backend`: what the server provides to them (`ssr` only).

// The editor's view types nest deeply.
#![recursion_limit = "256"]

pub mod account;
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

/// The HTML document around [`App`], rendered only on the server. It also
/// sets the page's Content-Security-Policy: scripts only from this origin
/// and the inline hydration scripts carrying this response's nonce.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy(&options);
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

/// The page's Content-Security-Policy, with the nonce of this response.
#[cfg(feature = "ssr")]
fn content_security_policy(options: &LeptosOptions) {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    // `cargo leptos watch` reloads the page through its own WebSocket port.
    let reload = if std::env::var("LEPTOS_WATCH").is_ok() {
        let port = options.reload_external_port.unwrap_or(options.reload_port);
        format!(" ws://*:{port} wss://*:{port}")
    } else {
        String::new()
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'{reload}; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'self'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The router: the home page, the account pages and the editor.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let user: account::CurrentUser = Resource::new(|| (), |_| server::current_user());
    provide_context(user);
    view! {
        <Title text="Collab"/>
        <Router>
            <header class="topbar">
                <a href="/" class="brand">"Collab"</a>
                <account::UserMenu/>
            </header>
            <main class="container">
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/sign-in") view=account::SignInPage/>
                    <Route path=path!("/sign-up") view=account::SignUpPage/>
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
