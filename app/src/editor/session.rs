//! The editing session in the browser: the text area, the shared sync
//! engine (`ClientState`) and the WebSocket, tied together.
//!
//! - Each input event diffs the text area against the engine's local text;
//!   the engine composes it into the buffer and sends at once when nothing
//!   is in flight.
//! - Messages from the server go through the engine; when the local text
//!   moves, the text area is updated and the caret and selection mapped
//!   through the delta, so remote typing never moves your caret. During IME
//!   composition incoming messages wait until the composition ends.
//! - A predicted conflict restores the text at once, flashes who changed
//!   which line first, and adds the rejected edit to the tray, which is kept
//!   in `localStorage` across reloads.
//! - A lost connection reconnects with backoff and resends what was not
//!   acknowledged.
//!
//! Outside the browser (server rendering) every method does nothing.

#[cfg(feature = "hydrate")]
use std::{cell::RefCell, rc::Rc};

#[cfg(feature = "hydrate")]
use leptos::prelude::*;
use shared::api::DocumentView;

use super::Signals;

#[cfg(feature = "hydrate")]
type Shared = Rc<RefCell<imp::Session>>;

/// The page's handle on its session (empty until hydration starts it).
/// On the server it holds nothing: a thread-bound value must not be made
/// where requests move between threads.
#[derive(Clone, Copy)]
pub struct Handle(#[cfg(feature = "hydrate")] StoredValue<Option<Shared>, LocalStorage>);

impl Handle {
    pub fn new() -> Handle {
        Handle(
            #[cfg(feature = "hydrate")]
            StoredValue::new_local(None),
        )
    }

    /// Starts the session on the hydrated text area.
    pub fn start(&self, doc: &DocumentView, textarea: leptos::web_sys::HtmlTextAreaElement, signals: Signals) {
        #[cfg(feature = "hydrate")]
        self.0.set_value(Some(imp::Session::start(doc, textarea, signals)));
        #[cfg(not(feature = "hydrate"))]
        let _ = (doc, textarea, signals);
    }

    #[cfg(feature = "hydrate")]
    fn with(&self, f: impl FnOnce(&Shared)) {
        self.0.with_value(|session| {
            if let Some(session) = session {
                f(session)
            }
        });
    }

    /// The text area changed.
    pub fn input(&self) {
        #[cfg(feature = "hydrate")]
        self.with(imp::input);
    }

    /// IME composition started (`true`) or ended.
    pub fn composing(&self, on: bool) {
        #[cfg(feature = "hydrate")]
        self.with(|s| imp::composing(s, on));
        #[cfg(not(feature = "hydrate"))]
        let _ = on;
    }

    /// Re-applies a rejected edit.
    pub fn reapply(&self, id: u64) {
        #[cfg(feature = "hydrate")]
        self.with(|s| imp::reapply(s, id));
        #[cfg(not(feature = "hydrate"))]
        let _ = id;
    }

    /// Discards a rejected edit.
    pub fn discard(&self, id: u64) {
        #[cfg(feature = "hydrate")]
        self.with(|s| imp::discard(s, id));
        #[cfg(not(feature = "hydrate"))]
        let _ = id;
    }
}

/// Copies text to the clipboard.
pub fn copy(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

#[cfg(feature = "hydrate")]
mod imp {
    use std::cell::RefCell;
    use std::rc::{Rc, Weak};
    use std::time::Duration;

    use leptos::prelude::*;
    use shared::api::DocumentView;
    use shared::protocol::{ClientMessage, ErrorCode, ServerMessage};
    use shared::text::Lines;
    use shared::{AcceptedChange, Bias, ClientId, ClientState, Delta, Error, TrayEntry, Update};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{CloseEvent, HtmlTextAreaElement, MessageEvent, WebSocket};

    use super::super::positions::{char_to_utf16, utf16_to_char};
    use super::super::{Connection, Signals};
    use super::Shared;

    pub struct Session {
        document: String,
        client: ClientState,
        textarea: HtmlTextAreaElement,
        signals: Signals,
        socket: Option<WebSocket>,
        /// Callbacks of the current socket, kept alive with it.
        callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
        composing: bool,
        held: Vec<ServerMessage>,
        attempts: u32,
        /// When the change in flight was sent (milliseconds, `Date.now()`).
        sent_at: Option<f64>,
        this: Weak<RefCell<Session>>,
    }

    use shared::protocol::close::{ACCESS_REVOKED, MOVED, SIGNED_OUT};
    /// How long a change may go unanswered before the connection is presumed dead.
    const UNANSWERED_MS: f64 = 5000.0;

    fn storage() -> Option<web_sys::Storage> {
        window().local_storage().ok().flatten()
    }

    fn tray_key(document: &str) -> String {
        format!("collab.tray.{document}")
    }

    impl Session {
        pub fn start(doc: &DocumentView, textarea: HtmlTextAreaElement, signals: Signals) -> Shared {
            let id = (js_sys::Math::random() * ClientId::MAX as f64) as u64;
            let mut client = ClientState::new(
                ClientId::new(id).expect("below 2^53"),
                doc.policy,
                doc.revision,
                doc.text.clone(),
            );
            client.disconnect();
            let session = Rc::new_cyclic(|this| {
                RefCell::new(Session {
                    document: doc.id.clone(),
                    client,
                    textarea,
                    signals,
                    socket: None,
                    callbacks: Vec::new(),
                    composing: false,
                    held: Vec::new(),
                    attempts: 0,
                    sent_at: None,
                    this: this.clone(),
                })
            });
            {
                let mut s = session.borrow_mut();
                // Text typed before hydration finished.
                s.local_input();
                s.restore_tray();
                s.connect();
            }
            let weak = Rc::downgrade(&session);
            let warn = window_event_listener(leptos::ev::beforeunload, move |ev| {
                if let Some(session) = weak.upgrade() {
                    let s = session.borrow();
                    s.save_tray();
                    if s.client.has_unsynced() {
                        ev.prevent_default();
                        ev.set_return_value("Some of your changes are not saved yet.");
                    }
                }
            });
            // The listener lives as long as the page.
            std::mem::forget(warn);
            let weak = Rc::downgrade(&session);
            let _ = set_interval_with_handle(
                move || {
                    if let Some(session) = weak.upgrade() {
                        session.borrow_mut().watchdog();
                    }
                },
                Duration::from_secs(1),
            );
            session
        }

        fn connect(&mut self) {
            self.signals.connection.set(Connection::Connecting);
            let location = window().location();
            let scheme = if location.protocol().as_deref() == Ok("https:") {
                "wss"
            } else {
                "ws"
            };
            let host = location.host().unwrap_or_default();
            // The document's own path, so a load balancer can route by it
            // (and by the node cookie the server sets for that path).
            let socket = match WebSocket::new(&format!("{scheme}://{host}/ws/d/{}", self.document)) {
                Ok(socket) => socket,
                Err(_) => return self.retry_later(),
            };
            let this = self.this.clone();
            let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(s) = this.upgrade() {
                    s.borrow_mut().opened();
                }
            });
            let this = self.this.clone();
            let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let Some(text) = event.dyn_into::<MessageEvent>().ok().and_then(|e| e.data().as_string()) else {
                    return;
                };
                if let Some(s) = this.upgrade() {
                    s.borrow_mut().message(&text);
                }
            });
            let this = self.this.clone();
            let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let code = event.dyn_into::<CloseEvent>().map(|e| e.code()).unwrap_or(0);
                if let Some(s) = this.upgrade() {
                    s.borrow_mut().closed(code);
                }
            });
            socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            self.callbacks = vec![on_open, on_message, on_close];
            self.socket = Some(socket);
        }

        fn send(&self, message: &ClientMessage) {
            if let Some(socket) = &self.socket {
                if socket.ready_state() == WebSocket::OPEN {
                    let _ = socket.send_with_str(&serde_json::to_string(message).expect("messages serialize"));
                }
            }
        }

        fn join_message(&self, revision: Option<shared::Revision>) -> ClientMessage {
            ClientMessage::Join {
                document: self.document.clone(),
                client: self.client.client(),
                revision,
                name: None,
            }
        }

        fn opened(&mut self) {
            self.send(&self.join_message(Some(self.client.revision())));
            if let Some(change) = self.client.reconnect() {
                self.send(&ClientMessage::Submit { change });
                self.sent_at = Some(js_sys::Date::now());
            }
            self.pump();
        }

        fn closed(&mut self, code: u16) {
            self.socket = None;
            self.callbacks.clear();
            self.client.disconnect();
            self.sent_at = None;
            let deleted = self
                .signals
                .flash
                .get_untracked()
                .is_some_and(|f| f.contains("deleted"));
            if code == 1000 && deleted {
                self.signals.connection.set(Connection::Offline(0));
                return;
            }
            if code == SIGNED_OUT || code == ACCESS_REVOKED {
                // No way back in on this page: keep what was not saved.
                let (why, flash) = if code == SIGNED_OUT {
                    ("Signed out", "You were signed out. Sign in again to go on editing.")
                } else {
                    ("Access removed", "Your access to this document was removed.")
                };
                self.keep_unsynced();
                self.signals.connection.set(Connection::Ended(why.into()));
                self.signals.role.set(shared::api::Role::Viewer);
                self.signals.peers.set(Vec::new());
                self.signals.flash.set(Some(flash.into()));
                return;
            }
            if code == MOVED && self.attempts < 3 {
                // Another app server serves the document now: go there at
                // once (a few times; then back off like any failure).
                self.attempts += 1;
                self.signals.connection.set(Connection::Connecting);
                self.connect();
                return;
            }
            self.retry_later();
        }

        /// Called every second: a change unanswered for too long means the
        /// server is stuck or gone without closing the socket; start over.
        fn watchdog(&mut self) {
            let stuck = self.sent_at.is_some_and(|at| js_sys::Date::now() - at > UNANSWERED_MS);
            if stuck && self.client.in_flight().is_some() {
                leptos::logging::warn!("no answer from the server; reconnecting");
                if let Some(socket) = self.socket.take() {
                    socket.set_onclose(None);
                    let _ = socket.close();
                }
                self.closed(0);
            }
        }

        fn retry_later(&mut self) {
            let delay_ms = (250u64 << self.attempts.min(5)).min(5000) + (js_sys::Math::random() * 250.0) as u64;
            self.attempts += 1;
            self.signals
                .connection
                .set(Connection::Offline(delay_ms.div_ceil(1000) as u32));
            let this = self.this.clone();
            set_timeout(
                move || {
                    if let Some(s) = this.upgrade() {
                        s.borrow_mut().connect();
                    }
                },
                Duration::from_millis(delay_ms),
            );
        }

        /// Sends the buffer if nothing is in flight.
        fn pump(&mut self) {
            while let Some(change) = self.client.poll_send() {
                self.send(&ClientMessage::Submit { change });
                self.sent_at = Some(js_sys::Date::now());
            }
            if self.client.in_flight().is_none() {
                self.sent_at = None;
            }
            self.refresh();
        }

        fn message(&mut self, text: &str) {
            let message: ServerMessage = match serde_json::from_str(text) {
                Ok(message) => message,
                Err(error) => {
                    leptos::logging::warn!("unreadable message from the server: {error}");
                    return;
                }
            };
            if self.composing {
                self.held.push(message);
            } else {
                self.handle(message);
            }
        }

        fn handle(&mut self, message: ServerMessage) {
            let result = match message {
                ServerMessage::Joined { revision, text, .. } => {
                    self.attempts = 0;
                    self.signals.connection.set(Connection::Connected);
                    match text {
                        Some(text) if revision != self.client.revision() || text != self.client.server_text() => {
                            self.client.resync(revision, text)
                        }
                        _ => Ok(Update::default()),
                    }
                }
                ServerMessage::Accepted { change } => self.client.receive(&change),
                ServerMessage::Verdict { seq, verdict } => self.client.receive_verdict(seq, &verdict),
                ServerMessage::Error { code, message, seq } => {
                    self.error(code, &message, seq);
                    Ok(Update::default())
                }
                ServerMessage::Presence { peers } => {
                    self.signals.peers.set(peers);
                    Ok(Update::default())
                }
                ServerMessage::Role { role } => {
                    self.signals.role.set(role);
                    if role == shared::api::Role::Viewer {
                        self.signals
                            .flash
                            .set(Some("You can now view this document but not change it.".into()));
                    }
                    Ok(Update::default())
                }
            };
            match result {
                Ok(update) => self.apply(update),
                Err(error) => self.out_of_step(error),
            }
            self.pump();
        }

        fn error(&mut self, code: ErrorCode, message: &str, seq: Option<shared::Seq>) {
            match code {
                ErrorCode::DocumentDeleted => {
                    self.signals.flash.set(Some("This document was deleted.".into()));
                }
                ErrorCode::RateLimited | ErrorCode::TooManyConnections => {
                    // Nothing was applied: reconnect after a pause and resend.
                    leptos::logging::warn!("slowed down by the server ({code:?}): {message}");
                    self.attempts += 2;
                    if let Some(socket) = self.socket.take() {
                        socket.set_onclose(None);
                        let _ = socket.close();
                    }
                    self.closed(0);
                }
                ErrorCode::Forbidden => {
                    self.signals.role.set(shared::api::Role::Viewer);
                    self.signals.flash.set(Some(
                        "You can view this document but not change it; your edit was kept in Rejected edits.".into(),
                    ));
                    if seq.is_some() && seq == self.client.in_flight() {
                        self.send(&self.join_message(None));
                    }
                }
                // Our change was refused: start over from the server's text
                // (the change goes to the tray).
                _ if seq.is_some() && seq == self.client.in_flight() => {
                    leptos::logging::warn!("change refused ({code:?}): {message}");
                    self.send(&self.join_message(None));
                }
                _ => leptos::logging::warn!("server error ({code:?}): {message}"),
            }
        }

        /// The engine and the server disagree: start over from the server's text.
        fn out_of_step(&mut self, error: Error) {
            leptos::logging::error!("out of step with the server: {error}; resynchronising");
            self.send(&self.join_message(None));
        }

        fn apply(&mut self, update: Update) {
            if update.resync {
                self.send(&self.join_message(None));
            }
            if let Some(local) = &update.local {
                self.show(local);
            }
            if !update.rejected.is_empty() {
                self.flash_rejected(&update.rejected);
                self.save_tray();
            }
        }

        /// Puts the engine's local text in the text area, mapping the
        /// selection through `local` (old local text to new).
        fn show(&self, local: &Delta) {
            let new = self.client.text();
            let old = self.textarea.value();
            if old == new {
                return;
            }
            let old_chars = shared::text::char_count(&old);
            let map = |units: Option<u32>| {
                let at = utf16_to_char(&old, units.unwrap_or(0) as usize);
                if local.base_len() == old_chars {
                    local.map_position(at, Bias::Left)
                } else {
                    at.min(shared::text::char_count(new))
                }
            };
            let start = map(self.textarea.selection_start().ok().flatten());
            let end = map(self.textarea.selection_end().ok().flatten()).max(start);
            let scroll = self.textarea.scroll_top();
            self.textarea.set_value(new);
            let _ = self
                .textarea
                .set_selection_range(char_to_utf16(new, start) as u32, char_to_utf16(new, end) as u32);
            self.textarea.set_scroll_top(scroll);
        }

        fn flash_rejected(&self, ids: &[u64]) {
            let Some(entry) = self.client.tray().iter().find(|e| ids.contains(&e.id)) else {
                return;
            };
            let message = match entry.conflicts.first() {
                Some(conflict) => {
                    let line = self.client.server_text().line_of(conflict.current.start) + 1;
                    format!(
                        "{} changed line {line} first; your edit was kept in Rejected edits.",
                        conflict.author
                    )
                }
                None => "The document was reloaded; your unsaved edit was kept in Rejected edits.".to_owned(),
            };
            self.signals.flash.set(Some(message));
        }

        fn refresh(&self) {
            self.signals.revision.set(self.client.revision().0);
            self.signals.unsynced.set(self.client.has_unsynced());
            let tray = self.client.tray();
            let same = self
                .signals
                .tray
                .with_untracked(|shown| shown.len() == tray.len() && shown.iter().zip(tray).all(|(a, b)| a.id == b.id));
            if !same {
                self.signals.tray.set(tray.to_vec());
            }
        }

        /// Reads the text area into the engine.
        fn local_input(&mut self) {
            if self.composing {
                return;
            }
            let value = self.textarea.value();
            if let Err(error) = self.client.edit_text(&value) {
                leptos::logging::error!("local edit failed: {error}");
            }
            self.pump();
        }

        /// Moves every unsaved local edit to the tray (the session is over).
        fn keep_unsynced(&mut self) {
            if !self.client.has_unsynced() {
                return;
            }
            let (revision, text) = (self.client.revision(), self.client.server_text().to_owned());
            match self.client.resync(revision, text) {
                Ok(update) => {
                    if let Some(local) = &update.local {
                        self.show(local);
                    }
                }
                Err(error) => leptos::logging::error!("unsaved edits could not be kept: {error}"),
            }
            self.save_tray();
            self.refresh();
        }

        fn save_tray(&self) {
            if let Some(storage) = storage() {
                let key = tray_key(&self.document);
                let tray = self.client.tray();
                let _ = if tray.is_empty() {
                    storage.remove_item(&key)
                } else {
                    storage.set_item(&key, &serde_json::to_string(tray).expect("tray entries serialize"))
                };
            }
        }

        fn restore_tray(&mut self) {
            let Some(saved) = storage().and_then(|s| s.get_item(&tray_key(&self.document)).ok().flatten()) else {
                return;
            };
            let Ok(entries) = serde_json::from_str::<Vec<TrayEntry>>(&saved) else {
                return;
            };
            let oldest = entries.iter().map(|e| e.revision).min();
            self.client.restore_tray(entries);
            self.refresh();
            if let Some(oldest) = oldest.filter(|r| *r < self.client.revision()) {
                self.fetch_history(oldest);
            }
        }

        /// Fetches the changes since `after` to bring older tray entries up to date.
        fn fetch_history(&self, after: shared::Revision) {
            let url = format!("/api/documents/{}/changes?after={}", self.document, after.0);
            let this = self.this.clone();
            leptos::task::spawn_local(async move {
                let Ok(response) = wasm_bindgen_futures::JsFuture::from(window().fetch_with_str(&url)).await else {
                    return;
                };
                let Ok(response) = response.dyn_into::<web_sys::Response>() else {
                    return;
                };
                let Ok(text) = response.text() else { return };
                let Ok(text) = wasm_bindgen_futures::JsFuture::from(text).await else {
                    return;
                };
                let Some(text) = text.as_string() else { return };
                let Ok(changes) = serde_json::from_str::<Vec<AcceptedChange>>(&text) else {
                    return;
                };
                if let Some(s) = this.upgrade() {
                    let mut s = s.borrow_mut();
                    if let Err(error) = s.client.catch_up_tray(&changes) {
                        leptos::logging::warn!("rejected edits could not be brought up to date: {error}");
                    }
                    s.save_tray();
                }
            });
        }
    }

    pub fn input(session: &Shared) {
        session.borrow_mut().local_input();
    }

    pub fn composing(session: &Shared, on: bool) {
        let mut s = session.borrow_mut();
        s.composing = on;
        if !on {
            s.local_input();
            for message in std::mem::take(&mut s.held) {
                s.handle(message);
            }
        }
    }

    pub fn reapply(session: &Shared, id: u64) {
        let mut s = session.borrow_mut();
        match s.client.reapply(id) {
            Ok(update) => {
                if let Some(local) = &update.local {
                    s.show(local);
                }
                s.signals.flash.set(None);
                s.save_tray();
                s.pump();
            }
            Err(Error::HistoryUnavailable { since }) => {
                s.signals.flash.set(Some(
                    "Fetching what changed since this edit; try again in a moment.".into(),
                ));
                s.fetch_history(since);
            }
            Err(error) => leptos::logging::error!("re-apply failed: {error}"),
        }
    }

    pub fn discard(session: &Shared, id: u64) {
        let mut s = session.borrow_mut();
        let _ = s.client.discard(id);
        s.save_tray();
        s.refresh();
    }
}
