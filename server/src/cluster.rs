//! Cluster mode: several app servers sharing PostgreSQL and Redis.
//!
//! Redis (through `fred`) holds, per app server, a heartbeat key with its
//! address, and per open document a **lease** naming its owner. Only the
//! owner runs the document's actor; a server asked for a document another
//! live server owns sends the client there. A lease whose owner stopped
//! heart-beating (killed, paused, cut off) is taken over at once.
//!
//! Leases only route. Safety comes from PostgreSQL: whoever takes a
//! document also takes a new fencing token there, and every op log append
//! must present the current one, so a former owner (a paused process that
//! wakes up, a server that missed a Redis restart) can never write again.
//!
//! Redis also caches each open document's latest snapshot (written every
//! second while it changes), which other servers read to render a page
//! without taking the document.

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use serde::{Deserialize, Serialize};
use shared::Revision;
use tokio::task::JoinHandle;

use crate::error::Error;

const PREFIX: &str = "collab";

/// Takes the lease unless a live server other than us (and other than one
/// the caller found dead) holds it. Returns the owner afterwards.
const ACQUIRE: &str = r#"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and owner ~= ARGV[4] and redis.call('EXISTS', ARGV[3] .. owner) == 1 then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"#;

/// Extends our lease, or takes it again if it vanished (a Redis restart);
/// 0 when another server holds it now.
const RENEW: &str = r#"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// Gives the lease up if it is ours.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// This server's place in the cluster.
#[derive(Clone)]
pub struct Cluster {
    redis: Client,
    node: String,
    advertise: String,
    lease_ttl: Duration,
    acquire: Script,
    renew: Script,
    release: Script,
}

/// Who serves a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This server: the lease is ours (taken from a server that stopped
    /// answering, if `took_over`).
    Here { took_over: bool },
    /// Another live server, by node id and address.
    Elsewhere { node: String, addr: String },
}

#[derive(Serialize, Deserialize)]
struct CachedSnapshot {
    revision: u64,
    text: String,
}

fn lease_key(document: &str) -> String {
    format!("{PREFIX}:lease:{document}")
}

fn node_key(node: &str) -> String {
    format!("{PREFIX}:node:{node}")
}

fn snapshot_key(document: &str) -> String {
    format!("{PREFIX}:snapshot:{document}")
}

/// How long a starting app server waits for Redis to load its dataset.
const LOADING_WAIT: Duration = Duration::from_secs(120);

/// The settings of this server's Redis clients, from `url`: they reconnect
/// at once, then back off to one try every 2 s.
pub(crate) fn builder(url: &str) -> Result<Builder, Error> {
    let config = Config::from_url(url).map_err(|e| Error::Config(format!("redis url: {e}")))?;
    let mut builder = Builder::from_config(config);
    builder.set_policy(ReconnectPolicy::new_exponential(0, 50, 2000, 2));
    Ok(builder)
}

/// Builds a client with `build` and connects it, waiting while Redis
/// answers `LOADING`: after a restart it reads its append-only file before
/// it serves anyone, and an app server started meanwhile (a cluster started
/// again, or a server restarted beside a restarting Redis) would otherwise
/// give up at once. Each try is a new client (one whose first connection
/// failed is not used again). Any other failure is returned as it comes.
pub(crate) async fn started<C: ClientLike>(build: impl Fn() -> Result<C, fred::error::Error>) -> Result<C, Error> {
    let deadline = tokio::time::Instant::now() + LOADING_WAIT;
    let mut told = false;
    loop {
        let client = build()?;
        match client.init().await {
            Ok(_) => return Ok(client),
            Err(error) if error.details().contains("LOADING") && tokio::time::Instant::now() < deadline => {
                if !told {
                    tracing::info!("redis is loading its dataset; waiting for it");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

impl Cluster {
    /// Connects to Redis as node `node`, reachable by the others at `advertise`
    /// (waiting while Redis loads its dataset, [`started`]).
    pub async fn connect(url: &str, node: &str, advertise: &str, lease_ttl: Duration) -> Result<Cluster, Error> {
        let mut builder = builder(url)?;
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
            })
            .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2));
        let redis = started(|| builder.build()).await?;
        Ok(Cluster {
            redis,
            node: node.to_owned(),
            advertise: advertise.to_owned(),
            lease_ttl,
            acquire: Script::from_lua(ACQUIRE),
            renew: Script::from_lua(RENEW),
            release: Script::from_lua(RELEASE),
        })
    }

    /// This server's node id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a lease lasts without renewal.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Keeps this server's heartbeat key alive (expiring in a third of the
    /// lease time), so others know it is alive.
    pub fn heartbeat(&self) -> JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let ttl = (cluster.lease_ttl / 3).max(Duration::from_millis(300));
            let mut tick = tokio::time::interval(ttl / 3);
            loop {
                tick.tick().await;
                let set: Result<(), _> = cluster
                    .redis
                    .set(
                        node_key(&cluster.node),
                        cluster.advertise.as_str(),
                        Some(Expiration::PX(ttl.as_millis() as i64)),
                        None,
                        false,
                    )
                    .await;
                if let Err(error) = set {
                    tracing::warn!(%error, "heartbeat failed");
                }
            }
        })
    }

    /// Takes the document's lease, or says which live server holds it.
    pub async fn acquire(&self, document: &str) -> Result<Owner, Error> {
        let mut presumed_dead = String::new();
        for _ in 0..2 {
            let owner: String = self
                .acquire
                .evalsha_with_reload(
                    &self.redis,
                    vec![lease_key(document)],
                    vec![
                        self.node.clone(),
                        self.lease_ttl.as_millis().to_string(),
                        format!("{PREFIX}:node:"),
                        presumed_dead.clone(),
                    ],
                )
                .await?;
            if owner == self.node {
                return Ok(Owner::Here {
                    took_over: !presumed_dead.is_empty(),
                });
            }
            let addr: Option<String> = self.redis.get(node_key(&owner)).await?;
            match addr {
                // Its heartbeat may outlive it by a moment: if nothing answers
                // at its address, it is gone; take over at once.
                Some(addr) if reachable(&addr).await => return Ok(Owner::Elsewhere { node: owner, addr }),
                _ => presumed_dead = owner,
            }
        }
        Err(Error::Unavailable)
    }

    /// Renews the lease; false when another server holds it now.
    pub async fn renew(&self, document: &str) -> Result<bool, Error> {
        let renewed: i64 = self
            .renew
            .evalsha_with_reload(
                &self.redis,
                vec![lease_key(document)],
                vec![self.node.clone(), self.lease_ttl.as_millis().to_string()],
            )
            .await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up (the document was unloaded).
    pub async fn release(&self, document: &str) {
        let released: Result<i64, _> = self
            .release
            .evalsha_with_reload(&self.redis, vec![lease_key(document)], vec![self.node.clone()])
            .await;
        if let Err(error) = released {
            tracing::warn!(document, %error, "releasing the lease failed");
        }
    }

    /// Caches the document's latest snapshot.
    pub async fn put_snapshot(&self, document: &str, revision: Revision, text: &str) -> Result<(), Error> {
        let value = serde_json::to_string(&CachedSnapshot {
            revision: revision.0,
            text: text.to_owned(),
        })
        .expect("snapshots serialize");
        let _: () = self
            .redis
            .set(
                snapshot_key(document),
                value,
                Some(Expiration::EX(24 * 3600)),
                None,
                false,
            )
            .await?;
        Ok(())
    }

    /// The cached snapshot, if any.
    pub async fn snapshot(&self, document: &str) -> Option<(Revision, String)> {
        let value: Option<String> = self.redis.get(snapshot_key(document)).await.ok().flatten();
        let cached: CachedSnapshot = serde_json::from_str(&value?).ok()?;
        Some((Revision(cached.revision), cached.text))
    }

    /// Drops the cached snapshot (the document was deleted).
    pub async fn forget(&self, document: &str) {
        let _: Result<i64, _> = self.redis.del(snapshot_key(document)).await;
    }

    /// True when Redis answers.
    pub async fn ready(&self) -> bool {
        let ping: Result<String, _> = self.redis.ping(None).await;
        ping.is_ok()
    }
}

/// Whether something accepts connections at `addr` (within 300 ms).
async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}
