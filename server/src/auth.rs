//! Accounts and sessions.
//!
//! Passwords are hashed with Argon2id (on the blocking pool: hashing takes
//! tens of milliseconds by design). A session is a random 256-bit token in
//! an `HttpOnly`, `SameSite=Lax` cookie (`Secure` behind HTTPS); the
//! database keeps only its SHA-256 digest, so a leaked table opens nothing,
//! and deleting the row revokes it. Failed sign-ins are throttled per email
//! address and per client address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use shared::api::{clean_email, clean_name, SignIn, SignUp, UserView, COLORS, MIN_PASSWORD_CHARS};

use crate::error::Error;
use crate::store::{now_ms, Store};

pub use shared::api::SESSION_COOKIE;

/// Failed sign-ins allowed per account before waiting.
const FAILURES_PER_ACCOUNT: u32 = 5;
/// Failed sign-ins allowed per client address before waiting (higher: many
/// people may share an address).
const FAILURES_PER_ADDRESS: u32 = 50;
/// How long the failures are remembered (and the wait after too many).
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A signed-in user, as requests carry it.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: UserView,
    /// The digest of the session token (what revocation names).
    pub token_hash: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

/// Sign-up, sign-in, sign-out and the session behind a cookie.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    session_ttl: Duration,
    failures: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
    /// Where passwords are hashed and checked.
    hashing: Hashing,
}

/// The SHA-256 digest of a token, hex.
pub fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token: 32 bytes, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the system has a random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Accounts {
    pub fn new(store: Store, session_ttl: Duration) -> Accounts {
        Accounts {
            store,
            session_ttl,
            failures: Arc::default(),
            hashing: Hashing::start(std::thread::available_parallelism().map_or(2, |n| n.get())),
        }
    }

    /// Creates an account and signs it in; returns the session token.
    pub async fn sign_up(&self, form: SignUp) -> Result<(UserView, String), Error> {
        let email = clean_email(&form.email).map_err(Error::BadRequest)?;
        let name = clean_name(&form.name).map_err(Error::BadRequest)?;
        if form.password.chars().count() < MIN_PASSWORD_CHARS || form.password.len() > 1024 {
            return Err(Error::BadRequest(format!(
                "a password has at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let password = form.password;
        let hash = self.hashing.run(move || hash_password(&password)).await?;
        let id = crate::document::new_id();
        let color = COLORS[id.bytes().map(usize::from).sum::<usize>() % COLORS.len()].to_owned();
        let user = UserView { id, name, color, email };
        if self.store.create_user(&user, &hash).await?.is_none() {
            return Err(Error::BadRequest("an account with that email address exists".into()));
        }
        tracing::info!(user = %user.id, "account created");
        let token = self.start_session(&user.id).await?;
        Ok((user, token))
    }

    /// Signs in; returns the session token. `client` (an address) is
    /// throttled along with the email address.
    pub async fn sign_in(&self, form: SignIn, client: &str) -> Result<(UserView, String), Error> {
        let email = form.email.trim().to_lowercase();
        let keys = [format!("email:{email}"), format!("client:{client}")];
        if let Some(wait) = self.throttled(&keys) {
            return Err(Error::Throttled(wait));
        }
        let user = self.store.user_by_email(&email).await?;
        // Hash even for an unknown address, so timing does not tell.
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let password = form.password;
        let valid = self.hashing.run(move || verify_password(&password, stored)).await?;
        match user.filter(|_| valid) {
            Some(user) => {
                self.clear_failures(&keys[0]);
                let token = self.start_session(&user.view.id).await?;
                Ok((user.view, token))
            }
            None => {
                self.fail(&keys);
                Err(Error::Unauthorized)
            }
        }
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<String, Error> {
        let hash = digest(token);
        self.store.delete_session(&hash).await?;
        Ok(hash)
    }

    /// The session a cookie's token names, if it is live.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, Error> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        self.session_by_hash(&digest(token)).await
    }

    /// Deletes expired sessions every hour, for as long as the server runs.
    pub fn sweep_expired(&self) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                match store.delete_expired_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "expired sessions deleted"),
                    Err(error) => tracing::warn!(%error, "deleting expired sessions failed"),
                }
            }
        })
    }

    /// The session with this token digest, if it is live.
    pub async fn session_by_hash(&self, token_hash: &str) -> Result<Option<Session>, Error> {
        Ok(self
            .store
            .session_user(token_hash)
            .await?
            .map(|(user, expires_at)| Session {
                user,
                token_hash: token_hash.to_owned(),
                expires_at,
            }))
    }

    async fn start_session(&self, user_id: &str) -> Result<String, Error> {
        let token = new_token();
        let expires = now_ms() + self.session_ttl.as_millis() as i64;
        self.store.create_session(&digest(&token), user_id, expires).await?;
        Ok(token)
    }

    /// How long to wait, if any key failed too often lately.
    fn throttled(&self, keys: &[String]) -> Option<Duration> {
        let failures = self.failures.lock().expect("throttle lock");
        keys.iter()
            .filter_map(|k| failures.get(k).map(|entry| (k, entry)))
            .filter(|(key, (count, since))| {
                let allowed = if key.starts_with("email:") {
                    FAILURES_PER_ACCOUNT
                } else {
                    FAILURES_PER_ADDRESS
                };
                *count >= allowed && since.elapsed() < FAILURE_WINDOW
            })
            .map(|(_, entry)| entry)
            .map(|(_, since)| FAILURE_WINDOW - since.elapsed())
            .max()
    }

    fn fail(&self, keys: &[String]) {
        let mut failures = self.failures.lock().expect("throttle lock");
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= FAILURE_WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    fn clear_failures(&self, key: &str) {
        self.failures.lock().expect("throttle lock").remove(key);
    }
}

/// A few threads of their own for Argon2. Each hash takes 19 MiB and tens
/// of milliseconds; on the shared blocking pool a flood of sign-ins would
/// take hundreds of threads, and the allocator would keep an arena of
/// 19 MiB or more for each (600 MiB after 40 concurrent sign-ups). Here
/// they queue, and the memory stays at a few arenas.
#[derive(Clone)]
struct Hashing {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Hashing {
    fn start(threads: usize) -> Hashing {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            job();
                            give_back_memory();
                        }
                        Err(_) => return,
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password thread");
            }
        }
        Hashing { jobs }
    }

    /// Runs `work` on a password thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }
}

/// Hands the memory a hash took (19 MiB) back to the system. The
/// allocator (mimalloc, `main.rs`) keeps freed memory in the thread's heap
/// for the next allocation: each password thread would hold its hash's
/// 19 MiB for ever (40 concurrent sign-ups and 40 sign-ins: 54–68 MiB
/// more resident without this, 7 MiB with it; docs/SECURITY.md).
fn give_back_memory() {
    // SAFETY: mi_collect only frees the calling thread's unused memory; it
    // is safe to call at any time, from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing: {e}")))
}

/// Checks a password against a stored hash; with no hash, spends the same
/// time and says no.
fn verify_password(password: &str, stored: Option<String>) -> Result<bool, Error> {
    // A fixed hash of a random password, to spend the time anyway.
    const DECOY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1b6zSi9VJdSy8cTXWzCuOLL9yh4e9ZbEG1nJ7SX3h4M";
    let hash = stored.as_deref().unwrap_or(DECOY);
    let parsed = PasswordHash::new(hash).map_err(|e| Error::Corrupt(format!("password hash: {e}")))?;
    let valid = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    Ok(valid && stored.is_some())
}

/// The value of `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}
