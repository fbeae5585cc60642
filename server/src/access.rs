//! Access changes, told to every open connection at once: a role granted,
//! changed or taken away, a session ended. In cluster mode they also go
//! through a Redis channel, so the connections on every app server hear them.

use serde::{Deserialize, Serialize};
use shared::api::Role;
use tokio::sync::broadcast;

use crate::error::Error;

const CHANNEL: &str = "collab:access";

/// Something that changes what open connections may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessEvent {
    /// A user's role on a document is now `role` (none: no access).
    Member {
        document: String,
        user: String,
        role: Option<Role>,
    },
    /// A session ended (signed out).
    Session { token_hash: String },
}

/// Where access events are published and heard.
#[derive(Clone)]
pub struct Access {
    local: broadcast::Sender<AccessEvent>,
    redis: Option<fred::clients::Client>,
}

impl Access {
    /// Local only (embedded mode).
    pub fn local() -> Access {
        Access {
            local: broadcast::channel(1024).0,
            redis: None,
        }
    }

    /// Through Redis as well: publishes there, and forwards what any server
    /// publishes to this server's connections.
    pub async fn cluster(url: &str) -> Result<Access, Error> {
        use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
        use fred::types::config::{Config, ReconnectPolicy};
        use fred::types::Builder;
        let config = Config::from_url(url).map_err(|e| Error::Config(format!("redis url: {e}")))?;
        let policy = ReconnectPolicy::new_exponential(0, 50, 2000, 2);
        let publisher = Builder::from_config(config.clone())
            .set_policy(policy.clone())
            .build()?;
        publisher.init().await?;
        let subscriber = Builder::from_config(config)
            .set_policy(policy)
            .build_subscriber_client()?;
        subscriber.init().await?;
        subscriber.manage_subscriptions();
        subscriber.subscribe(CHANNEL).await?;
        let local = broadcast::channel(1024).0;
        let forward = local.clone();
        let mut messages = subscriber.message_rx();
        tokio::spawn(async move {
            // Keeps the subscriber alive as long as the task.
            let _subscriber = subscriber;
            while let Ok(message) = messages.recv().await {
                let Ok(text) = message.value.convert::<String>() else {
                    continue;
                };
                match serde_json::from_str::<AccessEvent>(&text) {
                    Ok(event) => {
                        let _ = forward.send(event);
                    }
                    Err(error) => tracing::warn!(%error, "unreadable access event"),
                }
            }
        });
        Ok(Access {
            local,
            redis: Some(publisher),
        })
    }

    /// Tells every connection (here, and in cluster mode everywhere).
    pub async fn publish(&self, event: AccessEvent) {
        match &self.redis {
            Some(redis) => {
                use fred::prelude::PubsubInterface;
                let text = serde_json::to_string(&event).expect("events serialize");
                let published: Result<i64, _> = redis.publish(CHANNEL, text).await;
                if let Err(error) = published {
                    // Redis is away: at least this server's connections hear it.
                    tracing::warn!(%error, "publishing an access event failed");
                    let _ = self.local.send(event);
                }
            }
            None => {
                let _ = self.local.send(event);
            }
        }
    }

    /// Hears every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AccessEvent> {
        self.local.subscribe()
    }
}
