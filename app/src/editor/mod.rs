//! The editor page (`/d/{id}`): server-rendered with the document's text,
//! then hydrated; in the browser a [`session`] drives the text area with
//! the shared sync engine over one WebSocket. Who else is here shows above
//! the text; a viewer's text area is read-only; the owner has a [`share`]
//! dialog.

pub mod positions;
mod session;
mod share;

use leptos::html::Textarea;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use shared::api::{color_class, DocumentView, Role};
use shared::protocol::Peer;
use shared::TrayEntry;

use crate::account::CurrentUser;
use crate::server::get_document;

/// The connection, as the status bar shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Connected,
    /// Offline; the next attempt is this many seconds away.
    Offline(u32),
    /// Closed for good: signed out, or access removed (why).
    Ended(String),
}

impl Connection {
    fn label(&self) -> String {
        match self {
            Connection::Connecting => "Connecting…".into(),
            Connection::Connected => "Connected".into(),
            Connection::Offline(0) => "Offline, reconnecting…".into(),
            Connection::Offline(secs) => format!("Offline, reconnecting in {secs} s"),
            Connection::Ended(why) => why.clone(),
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Connected => "connected",
            Connection::Offline(_) | Connection::Ended(_) => "offline",
        }
    }
}

/// What the page shows, updated by the session.
#[derive(Clone, Copy)]
pub struct Signals {
    pub connection: RwSignal<Connection>,
    pub revision: RwSignal<u64>,
    pub unsynced: RwSignal<bool>,
    pub tray: RwSignal<Vec<TrayEntry>>,
    pub flash: RwSignal<Option<String>>,
    /// The caller's role (the server may change it while the page is open).
    pub role: RwSignal<Role>,
    /// Who is in the document, the caller included.
    pub peers: RwSignal<Vec<Peer>>,
}

/// `/d/{id}`: loads the document (before the HTML is sent) and shows the editor.
#[component]
pub fn EditorPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let document = Resource::new(id, get_document);
    let user = expect_context::<CurrentUser>();
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                let signed_in = user.get().map(|u| matches!(u, Ok(Some(_))));
                document
                    .get()
                    .map(|result| match result {
                        Ok(Some(doc)) => view! { <Editor doc/> }.into_any(),
                        _ if signed_in == Some(false) => {
                            let next = format!("/sign-in?next=/d/{}", id());
                            view! {
                                <section class="card">
                                    <h1>"Sign in to open this document"</h1>
                                    <p>
                                        <a href=next rel="external" data-testid="sign-in-to-open">"Sign in"</a>
                                    </p>
                                </section>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            view! {
                                <section class="card">
                                    <h1 data-testid="no-such-document">"No such document"</h1>
                                    <p>
                                        "It may have been deleted, or not shared with you. "
                                        <a href="/">"Your documents"</a>
                                    </p>
                                </section>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Editor(doc: DocumentView) -> impl IntoView {
    let signals = Signals {
        connection: RwSignal::new(Connection::Connecting),
        revision: RwSignal::new(doc.revision.0),
        unsynced: RwSignal::new(false),
        tray: RwSignal::new(Vec::new()),
        flash: RwSignal::new(None),
        role: RwSignal::new(doc.role),
        peers: RwSignal::new(Vec::new()),
    };
    let textarea = NodeRef::<Textarea>::new();

    let session = session::Handle::new();
    {
        let doc = doc.clone();
        // Effects run only in the browser, once the page is hydrated.
        Effect::new(move |started: Option<()>| {
            if started.is_none() {
                if let Some(element) = textarea.get() {
                    session.start(&doc, element, signals);
                }
            }
        });
    }
    let on_input = move |_| session.input();
    let on_composition_start = move |_| session.composing(true);
    let on_composition_end = move |_| session.composing(false);
    let sharing = RwSignal::new(false);
    let id = doc.id.clone();

    view! {
        <section class="editor" data-testid="editor-page">
            <header class="editor-bar">
                <h1 class="doc-title" data-testid="title">{doc.title.clone()}</h1>
                <span class=move || format!("connection {}", signals.connection.get().class()) data-testid="connection">
                    {move || signals.connection.get().label()}
                </span>
                <span class="revision" data-testid="revision">
                    "Revision " {move || signals.revision.get()}
                </span>
                <span class="unsynced" data-testid="unsynced" class:hidden=move || !signals.unsynced.get()>
                    "Unsynced changes"
                </span>
                <span class="view-only" data-testid="view-only" class:hidden=move || signals.role.get() != Role::Viewer>
                    "View only"
                </span>
                <button
                    class="share-button"
                    data-testid="share"
                    class:hidden=move || signals.role.get() != Role::Owner
                    on:click=move |_| sharing.update(|open| *open = !*open)
                >
                    "Share"
                </button>
            </header>
            <ul class="peers" data-testid="peers" aria-label="In this document">
                <For
                    each=move || signals.peers.get()
                    key=|peer| (peer.user.clone(), peer.name.clone(), peer.role)
                    children=|peer| {
                        view! {
                            <li class=format!("chip {}", color_class(&peer.color)) data-testid="peer">
                                {peer.name.clone()}
                                {(peer.role == Role::Viewer).then(|| view! { <span class="muted">" (viewing)"</span> })}
                            </li>
                        }
                    }
                />
            </ul>
            {move || sharing.get().then(|| view! { <share::SharePanel id=id.clone() close=sharing/> })}
            <p class="flash" role="alert" data-testid="flash" class:hidden=move || signals.flash.get().is_none()>
                {move || signals.flash.get().unwrap_or_default()}
            </p>
            <textarea
                node_ref=textarea
                class="text"
                data-testid="editor"
                spellcheck="false"
                aria-label="Document text"
                readonly=move || signals.role.get() == Role::Viewer
                on:input=on_input
                on:compositionstart=on_composition_start
                on:compositionend=on_composition_end
            >
                {initial_text(&doc.text)}
            </textarea>
            <Tray signals session/>
        </section>
    }
}

/// The rejected edits tray.
#[component]
fn Tray(signals: Signals, session: session::Handle) -> impl IntoView {
    view! {
        <aside class="tray" data-testid="tray" class:empty=move || signals.tray.get().is_empty()>
            <h2>"Rejected edits"</h2>
            <p class="muted" class:hidden=move || !signals.tray.get().is_empty()>
                "Edits that lost a conflict are kept here."
            </p>
            <ul>
                <For
                    each=move || signals.tray.get()
                    key=|entry| entry.id
                    children=move |entry| {
                        let id = entry.id;
                        let why = describe(&entry);
                        let inserted = entry.inserted.clone();
                        let copy_text = entry.inserted.clone();
                        view! {
                            <li class="tray-entry" data-testid="tray-entry">
                                <p class="why">{why}</p>
                                <pre class="inserted" data-testid="tray-text">{inserted}</pre>
                                {(!entry.removed.is_empty())
                                    .then(|| {
                                        view! { <p class="removed">"Removed: " <del>{entry.removed.clone()}</del></p> }
                                    })}
                                <div class="actions">
                                    <button
                                        data-testid="reapply"
                                        on:click=move |_| session.reapply(id)
                                    >
                                        "Re-apply"
                                    </button>
                                    <button
                                        data-testid="copy"
                                        on:click=move |_| session::copy(&copy_text)
                                    >
                                        "Copy"
                                    </button>
                                    <button
                                        data-testid="discard"
                                        on:click=move |_| session.discard(id)
                                    >
                                        "Discard"
                                    </button>
                                </div>
                            </li>
                        }
                    }
                />
            </ul>
        </aside>
    }
}

/// The text area's initial content. The HTML parser drops one newline right
/// after `<textarea>`: give it one to drop, so a text that starts with a
/// newline keeps it. Leptos writes a text area's children unescaped, so on
/// the server the text is escaped here: `</textarea>` in a document must not
/// end the element.
fn initial_text(text: &str) -> String {
    let text = format!("\n{text}");
    if cfg!(feature = "ssr") {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    } else {
        text
    }
}

/// Why an entry is in the tray, in a sentence.
fn describe(entry: &TrayEntry) -> String {
    match entry.conflicts.first() {
        Some(conflict) => format!("Line {}: {} changed it first.", entry.line + 1, conflict.author),
        None => format!("Line {}: not saved before the document was reloaded.", entry.line + 1),
    }
}
