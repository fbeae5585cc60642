//! Access changes, told to the open connections they concern: a role
//! granted, changed or taken away (the user's connections), a session ended
//! (that session's connections). In cluster mode they also go through a
//! Redis channel, so the connections on every app server hear them.
//!
//! Each user and each session with an open connection has a channel of its
//! own ([`Listeners`]): sharing a document wakes the new member's
//! connections, not every connection of the server. (With one channel for
//! all, each of 5,000 connections woke for each of the 225 shares a load
//! test made at once, and the server stalled for seconds.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

impl AccessEvent {
    /// The listeners it concerns.
    fn key(&self) -> String {
        match self {
            AccessEvent::Member { user, .. } => user_key(user),
            AccessEvent::Session { token_hash } => session_key(token_hash),
        }
    }
}

fn user_key(user: &str) -> String {
    format!("user:{user}")
}

fn session_key(token_hash: &str) -> String {
    format!("session:{token_hash}")
}

/// Events queued for one user or session before a slow connection misses
/// some (it then rechecks in the database).
const QUEUED: usize = 64;

/// The channels of the users and sessions that have open connections here:
/// made when the first connection listens, dropped with the last.
#[derive(Default)]
struct Listeners(Mutex<HashMap<String, broadcast::Sender<AccessEvent>>>);

impl Listeners {
    fn subscribe(&self, key: String) -> broadcast::Receiver<AccessEvent> {
        let mut channels = self.0.lock().expect("listeners lock");
        channels
            .entry(key)
            .or_insert_with(|| broadcast::channel(QUEUED).0)
            .subscribe()
    }

    /// Forgets the channels no connection listens to any more.
    fn forget(&self, keys: [&str; 2]) {
        let mut channels = self.0.lock().expect("listeners lock");
        for key in keys {
            if channels.get(key).is_some_and(|c| c.receiver_count() == 0) {
                channels.remove(key);
            }
        }
    }

    /// Tells the connections the event concerns, if any are here.
    fn tell(&self, event: AccessEvent) {
        let channels = self.0.lock().expect("listeners lock");
        if let Some(channel) = channels.get(&event.key()) {
            let _ = channel.send(event);
        }
    }
}

/// What one connection hears: the events of its user and of its session.
pub struct Listening {
    // Fields drop in order: the receivers go first, so that `_forget`
    // finds the channels without them.
    user: broadcast::Receiver<AccessEvent>,
    session: broadcast::Receiver<AccessEvent>,
    _forget: Forget,
}

impl Listening {
    /// The next event; `Lagged` when some were missed (the connection fell
    /// behind), so the caller asks the database instead.
    pub async fn recv(&mut self) -> Result<AccessEvent, broadcast::error::RecvError> {
        tokio::select! {
            event = self.user.recv() => event,
            event = self.session.recv() => event,
        }
    }
}

/// Forgets a connection's channels, if it was their last listener.
struct Forget {
    listeners: Arc<Listeners>,
    keys: [String; 2],
}

impl Drop for Forget {
    fn drop(&mut self) {
        let [user, session] = &self.keys;
        self.listeners.forget([user, session]);
    }
}

/// Where access events are published and heard.
#[derive(Clone)]
pub struct Access {
    local: Arc<Listeners>,
    redis: Option<fred::clients::Client>,
}

impl Access {
    /// Local only (embedded mode).
    pub fn local() -> Access {
        Access {
            local: Arc::default(),
            redis: None,
        }
    }

    /// Through Redis as well: publishes there, and forwards what any server
    /// publishes to this server's connections.
    pub async fn cluster(url: &str) -> Result<Access, Error> {
        use fred::prelude::{EventInterface, PubsubInterface};

        use crate::cluster::{builder, started};
        let builder = builder(url)?;
        let publisher = started(|| builder.build()).await?;
        let subscriber = started(|| builder.build_subscriber_client()).await?;
        subscriber.manage_subscriptions();
        subscriber.subscribe(CHANNEL).await?;
        let local = Arc::<Listeners>::default();
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
                    Ok(event) => forward.tell(event),
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
                    self.local.tell(event);
                }
            }
            None => self.local.tell(event),
        }
    }

    /// Hears, from now on, the events of `user` and of the session whose
    /// token hashes to `token_hash`.
    pub fn listen(&self, user: &str, token_hash: &str) -> Listening {
        let keys = [user_key(user), session_key(token_hash)];
        Listening {
            user: self.local.subscribe(keys[0].clone()),
            session: self.local.subscribe(keys[1].clone()),
            _forget: Forget {
                listeners: self.local.clone(),
                keys,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn member(user: &str) -> AccessEvent {
        AccessEvent::Member {
            document: "d".into(),
            user: user.into(),
            role: None,
        }
    }

    async fn next(listening: &mut Listening) -> Option<AccessEvent> {
        tokio::time::timeout(Duration::from_millis(50), listening.recv())
            .await
            .ok()
            .map(|event| event.expect("no lag"))
    }

    #[tokio::test]
    async fn an_event_reaches_only_the_connections_it_concerns() {
        let access = Access::local();
        let mut ann = access.listen("ann", "ann-1");
        let mut ann_again = access.listen("ann", "ann-2");
        let mut bob = access.listen("bob", "bob-1");

        access.publish(member("ann")).await;
        assert_eq!(next(&mut ann).await, Some(member("ann")));
        assert_eq!(next(&mut ann_again).await, Some(member("ann")));
        assert_eq!(next(&mut bob).await, None, "bob's connection is not woken");

        let signed_out = AccessEvent::Session {
            token_hash: "ann-2".into(),
        };
        access.publish(signed_out.clone()).await;
        assert_eq!(next(&mut ann_again).await, Some(signed_out));
        assert_eq!(next(&mut ann).await, None, "another session of the same user");
        assert_eq!(next(&mut bob).await, None);
    }

    #[tokio::test]
    async fn a_channel_goes_with_its_last_connection() {
        let access = Access::local();
        let channels = || access.local.0.lock().unwrap().len();
        let first = access.listen("ann", "ann-1");
        let second = access.listen("ann", "ann-2");
        assert_eq!(channels(), 3, "ann, and each of her two sessions");
        drop(first);
        assert_eq!(channels(), 2, "ann's channel stays for her other connection");
        drop(second);
        assert_eq!(channels(), 0);
        // Nobody listening: the event is dropped, and a later listener
        // does not get it.
        access.publish(member("ann")).await;
        let mut late = access.listen("ann", "ann-3");
        assert_eq!(next(&mut late).await, None);
    }
}
