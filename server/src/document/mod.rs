//! Documents: the registry of open documents and the operations on them.
//!
//! Each open document is a [`actor`] task, its only writer; [`Documents`]
//! finds or starts it. Reading, renaming, creating and deleting documents
//! also go through here, so HTTP handlers, server functions and WebSocket
//! connections share one path to the data.

pub mod actor;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::api::{
    clean_email, clean_title, AddMember, DocumentSummary, DocumentView, LinkView, NewDocument, Role, Sharing, UserView,
};
use shared::{Limits, Revision};
use tokio::sync::{mpsc, oneshot};

use crate::access::{Access, AccessEvent};
use crate::cluster::{Cluster, Owner};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::Store;
pub use actor::{Command, ConnId, Outlet};

/// How documents behave; from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub limits: Limits,
    pub snapshot_interval: Duration,
    pub idle_timeout: Duration,
    /// The most changes a reconnecting client catches up on; beyond that it
    /// gets the whole text. (Never more than half of `outbound_queue`: a
    /// catch-up is one frame per change, and it must leave room for live ones.)
    pub max_catch_up: u64,
    /// Commands queued per document before senders wait.
    pub queue: usize,
    /// Frames queued for one connection before it counts as too slow: it is
    /// then closed (1013) and reconnects to catch up.
    pub outbound_queue: usize,
    /// Snapshots go to the database every this many intervals (and when a
    /// document closes); in cluster mode to the Redis cache every interval.
    pub db_snapshot_every: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            snapshot_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            max_catch_up: 100_000,
            queue: 4096,
            outbound_queue: 8192,
            db_snapshot_every: 10,
        }
    }
}

/// A running document actor's queue.
#[derive(Clone, Debug)]
pub struct DocumentHandle {
    commands: mpsc::Sender<Command>,
}

impl DocumentHandle {
    /// Queues a command; fails when the actor has stopped.
    pub async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| Error::Unavailable)
    }
}

/// An open document's actor: its generation and its queue.
type Running = (u64, mpsc::Sender<Command>);

/// The open documents, by id, with the generation of their actor.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    open: Arc<Mutex<HashMap<String, Running>>>,
    deleting: Arc<Mutex<HashSet<String>>>,
    generation: Arc<AtomicU64>,
}

impl Registry {
    /// Removes a stopped actor, unless a newer one took its place.
    fn forget(&self, id: &str, generation: u64) {
        let mut open = self.open.lock().expect("registry lock");
        if open.get(id).is_some_and(|(g, _)| *g == generation) {
            open.remove(id);
        }
    }
}

/// What every document actor shares.
#[derive(Clone)]
pub(crate) struct Context {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub registry: Registry,
    pub cluster: Option<Cluster>,
    pub metrics: Arc<Metrics>,
    pub access: Access,
}

/// Where a document is served.
pub enum Route {
    /// Here: its actor's queue.
    Here(DocumentHandle),
    /// By another live app server.
    Elsewhere { node: String, addr: String },
}

/// Every document, open or not.
#[derive(Clone)]
pub struct Documents {
    context: Context,
    closing: Arc<AtomicBool>,
}

impl Documents {
    /// Documents served from `store`; in cluster mode with `cluster`.
    pub fn new(
        store: Store,
        settings: Settings,
        cluster: Option<Cluster>,
        metrics: Arc<Metrics>,
        access: Access,
    ) -> Documents {
        Documents {
            context: Context {
                store,
                settings: Arc::new(settings),
                registry: Registry::default(),
                cluster,
                metrics,
                access,
            },
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The settings documents run with.
    pub fn settings(&self) -> &Settings {
        &self.context.settings
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.context.metrics
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.context.cluster.as_ref()
    }

    /// True when the database (and Redis, in cluster mode) answer.
    pub async fn ready(&self) -> bool {
        let db = self.context.store.ready().await;
        match &self.context.cluster {
            Some(cluster) => db && cluster.ready().await,
            None => db,
        }
    }

    /// How many documents are loaded.
    pub fn open_count(&self) -> usize {
        self.context.registry.open.lock().expect("registry lock").len()
    }

    /// The actor of a document, started (and the document loaded) if needed.
    /// In cluster mode, [`Error::Elsewhere`] when another server owns it.
    pub async fn handle(&self, id: &str) -> Result<DocumentHandle, Error> {
        match self.route(id).await? {
            Route::Here(handle) => Ok(handle),
            Route::Elsewhere { node, .. } => Err(Error::Elsewhere {
                document: id.to_owned(),
                node,
            }),
        }
    }

    /// Where a document is served: here (its actor started if needed, the
    /// lease taken in cluster mode) or by the live server that owns it.
    pub async fn route(&self, id: &str) -> Result<Route, Error> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(Error::Unavailable);
        }
        if self
            .context
            .registry
            .deleting
            .lock()
            .expect("registry lock")
            .contains(id)
        {
            return Err(Error::UnknownDocument(id.to_owned()));
        }
        if let Some(handle) = self.running(id) {
            return Ok(Route::Here(handle));
        }
        if self.context.store.document(id).await?.is_none() {
            return Err(Error::UnknownDocument(id.to_owned()));
        }
        if let Some(cluster) = &self.context.cluster {
            match cluster.acquire(id).await? {
                Owner::Here { took_over } => {
                    if took_over {
                        self.context.metrics.takeovers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Owner::Elsewhere { node, addr } => return Ok(Route::Elsewhere { node, addr }),
            }
        }
        let mut open = self.context.registry.open.lock().expect("registry lock");
        if let Some((_, commands)) = open.get(id).filter(|(_, c)| !c.is_closed()) {
            return Ok(Route::Here(DocumentHandle {
                commands: commands.clone(),
            }));
        }
        let (commands, receiver) = mpsc::channel(self.context.settings.queue);
        let generation = self.context.registry.generation.fetch_add(1, Ordering::Relaxed);
        open.insert(id.to_owned(), (generation, commands.clone()));
        drop(open);
        let (id, context) = (id.to_owned(), self.context.clone());
        tokio::spawn(async move {
            let registry = context.registry.clone();
            match actor::Actor::load(&id, generation, context).await {
                Ok(actor) => actor.run(receiver).await,
                Err(error) => {
                    tracing::error!(document = %id, %error, "loading the document failed");
                    registry.forget(&id, generation);
                }
            }
        });
        Ok(Route::Here(DocumentHandle { commands }))
    }

    fn running(&self, id: &str) -> Option<DocumentHandle> {
        let open = self.context.registry.open.lock().expect("registry lock");
        open.get(id)
            .filter(|(_, c)| !c.is_closed())
            .map(|(_, commands)| DocumentHandle {
                commands: commands.clone(),
            })
    }

    /// The caller's role on a document. No role and no document answer
    /// the same way ([`Error::UnknownDocument`]), so ids cannot be probed.
    pub async fn role(&self, user: &UserView, id: &str) -> Result<Role, Error> {
        self.context
            .store
            .role(id, &user.id)
            .await?
            .ok_or_else(|| Error::UnknownDocument(id.to_owned()))
    }

    /// The caller's role, if it is at least `needed`; otherwise as if the
    /// document did not exist (viewers learn nothing of what they cannot do
    /// beyond "forbidden").
    async fn require(&self, user: &UserView, id: &str, needed: Role) -> Result<Role, Error> {
        let role = self.role(user, id).await?;
        if role < needed {
            return Err(Error::Forbidden(format!("this needs the {} role", needed.name())));
        }
        Ok(role)
    }

    /// Creates a document; the caller owns it.
    pub async fn create(&self, user: &UserView, new: NewDocument) -> Result<DocumentSummary, Error> {
        let title = match new.title.as_deref() {
            Some(title) => clean_title(title).map_err(Error::BadRequest)?,
            None => "Untitled".to_owned(),
        };
        let text = new.text.unwrap_or_default();
        if shared::text::char_count(&text) > self.context.settings.limits.max_chars {
            return Err(Error::BadRequest(format!(
                "the text is longer than {} characters",
                self.context.settings.limits.max_chars
            )));
        }
        let policy = new.policy.unwrap_or_default();
        let id = new_id();
        let meta = self
            .context
            .store
            .create_document(&id, &title, policy, &text, &user.id)
            .await?;
        tracing::info!(document = %id, user = %user.id, "document created");
        Ok(meta.summary(Role::Owner))
    }

    /// The caller's documents, most recently changed first.
    pub async fn list(&self, user: &UserView, limit: u64) -> Result<Vec<DocumentSummary>, Error> {
        Ok(self
            .context
            .store
            .documents_of(&user.id, limit)
            .await?
            .iter()
            .map(|(meta, role)| meta.summary(*role))
            .collect())
    }

    /// A document with its current text: from its actor if it runs here,
    /// otherwise read from storage (without taking the document).
    pub async fn view(&self, user: &UserView, id: &str) -> Result<DocumentView, Error> {
        let role = self.role(user, id).await?;
        let meta = self
            .context
            .store
            .document(id)
            .await?
            .ok_or_else(|| Error::UnknownDocument(id.to_owned()))?;
        let (revision, text) = match self.running(id) {
            Some(handle) => match Self::read(&handle).await {
                Some(read) => read,
                None => self.read_stored(id).await?,
            },
            None => self.read_stored(id).await?,
        };
        Ok(DocumentView {
            id: meta.id,
            title: meta.title,
            revision,
            policy: meta.policy,
            text,
            role,
        })
    }

    async fn read(handle: &DocumentHandle) -> Option<(Revision, String)> {
        let (reply, answer) = oneshot::channel();
        handle.send(Command::Read { reply }).await.ok()?;
        answer.await.ok().map(|(revision, text, _)| (revision, text))
    }

    async fn read_stored(&self, id: &str) -> Result<(Revision, String), Error> {
        let cached = match &self.context.cluster {
            Some(cluster) => cluster.snapshot(id).await,
            None => None,
        };
        self.context.store.read_text(id, cached).await
    }

    /// Accepted changes after `after`, from the op log.
    pub async fn changes(
        &self,
        user: &UserView,
        id: &str,
        after: Revision,
        limit: u64,
    ) -> Result<Vec<shared::AcceptedChange>, Error> {
        self.role(user, id).await?;
        self.context.store.ops_after(id, after, limit).await
    }

    /// Renames a document (editors and owners).
    pub async fn rename(&self, user: &UserView, id: &str, title: &str) -> Result<DocumentSummary, Error> {
        let role = self.require(user, id, Role::Editor).await?;
        let title = clean_title(title).map_err(Error::BadRequest)?;
        if !self.context.store.rename(id, &title).await? {
            return Err(Error::UnknownDocument(id.to_owned()));
        }
        let meta = self
            .context
            .store
            .document(id)
            .await?
            .ok_or_else(|| Error::UnknownDocument(id.to_owned()))?;
        Ok(meta.summary(role))
    }

    /// Deletes a document (owners): its editors are told, its history removed.
    pub async fn delete(&self, user: &UserView, id: &str) -> Result<(), Error> {
        self.require(user, id, Role::Owner).await?;
        let members = self.context.store.members(id).await?;
        self.context
            .registry
            .deleting
            .lock()
            .expect("registry lock")
            .insert(id.to_owned());
        let result = async {
            if let Some(handle) = self.running(id) {
                let (done, stopped) = oneshot::channel();
                if handle.send(Command::Delete { done }).await.is_ok() {
                    let _ = stopped.await;
                }
            }
            if let Some(cluster) = &self.context.cluster {
                cluster.forget(id).await;
            }
            if self.context.store.delete(id).await? {
                tracing::info!(document = %id, "document deleted");
                Ok(())
            } else {
                Err(Error::UnknownDocument(id.to_owned()))
            }
        }
        .await;
        self.context.registry.deleting.lock().expect("registry lock").remove(id);
        for member in members {
            self.tell(id, &member.user.id, None).await;
        }
        result
    }

    /// Who has access and how (owners).
    pub async fn sharing(&self, user: &UserView, id: &str) -> Result<Sharing, Error> {
        self.require(user, id, Role::Owner).await?;
        Ok(Sharing {
            members: self.context.store.members(id).await?,
            links: self.context.store.links(id).await?,
        })
    }

    /// Gives the account with `email` a role (owners).
    pub async fn add_member(&self, user: &UserView, id: &str, add: AddMember) -> Result<Sharing, Error> {
        self.require(user, id, Role::Owner).await?;
        let email = clean_email(&add.email).map_err(Error::BadRequest)?;
        let member = self
            .context
            .store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| Error::BadRequest("no account has that email address".into()))?;
        if member.view.id == user.id {
            return Err(Error::BadRequest("you cannot change your own role".into()));
        }
        self.context.store.set_role(id, &member.view.id, add.role, None).await?;
        self.tell(id, &member.view.id, Some(add.role)).await;
        self.sharing(user, id).await
    }

    /// Takes a member's role away (owners; not their own).
    pub async fn remove_member(&self, user: &UserView, id: &str, member: &str) -> Result<Sharing, Error> {
        self.require(user, id, Role::Owner).await?;
        if member == user.id {
            return Err(Error::BadRequest("you cannot remove yourself".into()));
        }
        if !self.context.store.remove_member(id, member).await? {
            return Err(Error::BadRequest("that user is not a member".into()));
        }
        self.tell(id, member, None).await;
        self.sharing(user, id).await
    }

    /// Makes a link that grants `role` to whoever opens it (owners).
    pub async fn create_link(&self, user: &UserView, id: &str, role: Role) -> Result<LinkView, Error> {
        self.require(user, id, Role::Owner).await?;
        if role == Role::Owner {
            return Err(Error::BadRequest("a link grants the viewer or editor role".into()));
        }
        let token = crate::auth::new_token();
        let mut link = self
            .context
            .store
            .create_link(&new_id(), &crate::auth::digest(&token), id, role, &user.id)
            .await?;
        link.path = Some(format!("/s/{token}"));
        Ok(link)
    }

    /// Revokes a link, and the roles it granted (owners).
    pub async fn revoke_link(&self, user: &UserView, id: &str, link: &str) -> Result<Sharing, Error> {
        self.require(user, id, Role::Owner).await?;
        let granted = self
            .context
            .store
            .revoke_link(id, link)
            .await?
            .ok_or_else(|| Error::BadRequest("no such link".into()))?;
        for member in granted {
            self.tell(id, &member, None).await;
        }
        self.sharing(user, id).await
    }

    /// Opens a share link: the caller gets its role (unless they already
    /// have a higher one). Returns the document's id.
    pub async fn redeem(&self, user: &UserView, token: &str) -> Result<String, Error> {
        let (link, id, role) = self
            .context
            .store
            .link_by_token(&crate::auth::digest(token))
            .await?
            .ok_or_else(|| Error::UnknownDocument("link".into()))?;
        let current = self.context.store.role(&id, &user.id).await?;
        if current.is_none_or(|c| c < role) {
            self.context.store.set_role(&id, &user.id, role, Some(&link)).await?;
            self.tell(&id, &user.id, Some(role)).await;
        }
        Ok(id)
    }

    /// Tells every connection of `user` on document `id` their new role.
    async fn tell(&self, id: &str, user: &str, role: Option<Role>) {
        self.context
            .access
            .publish(AccessEvent::Member {
                document: id.to_owned(),
                user: user.to_owned(),
                role,
            })
            .await;
    }

    /// Where access changes are published.
    pub fn access(&self) -> &Access {
        &self.context.access
    }

    /// Stops every open document, each writing its last snapshot.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let open: Vec<mpsc::Sender<Command>> = self
            .context
            .registry
            .open
            .lock()
            .expect("registry lock")
            .values()
            .map(|(_, c)| c.clone())
            .collect();
        let mut stopped = Vec::new();
        for commands in open {
            let (done, wait) = oneshot::channel();
            if commands.send(Command::Stop { done }).await.is_ok() {
                stopped.push(wait);
            }
        }
        for wait in stopped {
            let _ = wait.await;
        }
    }
}

/// A new id: 12 characters of `[a-z0-9]`, about 62 bits.
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).expect("the system has a random source");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
