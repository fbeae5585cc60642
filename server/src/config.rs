//! Configuration: command-line flags, environment variables and an optional
//! TOML file, in that order of precedence, over defaults that run embedded
//! (SQLite in `./data`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::document::Settings;
use crate::error::Error;

/// The collaborative editor's app server.
///
/// With no options it serves on the address cargo-leptos chose (or
/// 127.0.0.1:3000) with an SQLite database in ./data.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "collab", version, about, long_about = None)]
pub struct Cli {
    /// A TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "COLLAB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: LEPTOS_SITE_ADDR or 127.0.0.1:3000].
    #[arg(long, env = "COLLAB_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Directory for the embedded database [default: data].
    #[arg(long, env = "COLLAB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://path/file.db` or `postgres://user@host/db`
    /// [default: SQLite in the data directory].
    #[arg(long, env = "COLLAB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest WebSocket message, in bytes [default: 1048576].
    #[arg(long, env = "COLLAB_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Largest document, in characters [default: 10485760].
    #[arg(long, env = "COLLAB_MAX_DOCUMENT_CHARS")]
    pub max_document_chars: Option<usize>,
    /// Accepted changes kept per document for rebasing older ones [default: 4096].
    #[arg(long, env = "COLLAB_REBASE_WINDOW")]
    pub rebase_window: Option<usize>,
    /// How often a changing document is snapshotted, in milliseconds: to the
    /// Redis cache every interval, to the database every tenth [default: 1000].
    #[arg(long, env = "COLLAB_SNAPSHOT_INTERVAL_MS")]
    pub snapshot_interval_ms: Option<u64>,
    /// Seconds without connections before a document is unloaded [default: 60].
    #[arg(long, env = "COLLAB_IDLE_UNLOAD_SECS")]
    pub idle_unload_secs: Option<u64>,
    /// Cluster mode: the Redis holding leases and the snapshot cache
    /// (`redis://host:port`). Use PostgreSQL as the database with it.
    #[arg(long, env = "COLLAB_REDIS_URL")]
    pub redis_url: Option<String>,
    /// This server's name in the cluster; nginx routes by it [default: the address].
    #[arg(long, env = "COLLAB_NODE_ID")]
    pub node_id: Option<String>,
    /// The address other servers reach this one at [default: the listening address].
    #[arg(long, env = "COLLAB_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// How long a document's lease lasts without renewal, in milliseconds [default: 3000].
    #[arg(long, env = "COLLAB_LEASE_MS")]
    pub lease_ms: Option<u64>,
    /// The address users reach the app at, e.g. `https://collab.example.com`.
    /// With `https` session cookies are `Secure` and HSTS is sent; its origin
    /// is allowed [default: none; the request's own host is allowed].
    #[arg(long, env = "COLLAB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// More origins allowed to open WebSockets and send state-changing
    /// requests, comma-separated (`https://a.example,https://b.example`).
    #[arg(long, env = "COLLAB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Behind a reverse proxy: take the client's address from `X-Real-IP`
    /// and the scheme from `X-Forwarded-Proto` [default: false].
    #[arg(long, env = "COLLAB_TRUST_PROXY")]
    pub trust_proxy: Option<bool>,
    /// How long a sign-in lasts, in seconds [default: 1209600, 14 days].
    #[arg(long, env = "COLLAB_SESSION_TTL_SECS")]
    pub session_ttl_secs: Option<u64>,
    /// WebSocket messages per second per connection (bursts of twice as
    /// many pass) [default: 50].
    #[arg(long, env = "COLLAB_MAX_MESSAGES_PER_SEC")]
    pub max_messages_per_sec: Option<u32>,
    /// Open WebSocket connections per user, per app server [default: 32].
    #[arg(long, env = "COLLAB_MAX_CONNECTIONS_PER_USER")]
    pub max_connections_per_user: Option<u32>,
    /// Open WebSocket connections per client address, per app server [default: 256].
    #[arg(long, env = "COLLAB_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<u32>,
}

/// The same settings, as a file may give them.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct File {
    addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    max_message_bytes: Option<usize>,
    max_document_chars: Option<usize>,
    rebase_window: Option<usize>,
    snapshot_interval_ms: Option<u64>,
    idle_unload_secs: Option<u64>,
    redis_url: Option<String>,
    node_id: Option<String>,
    advertise_addr: Option<String>,
    lease_ms: Option<u64>,
    public_url: Option<String>,
    allowed_origins: Option<Vec<String>>,
    trust_proxy: Option<bool>,
    session_ttl_secs: Option<u64>,
    max_messages_per_sec: Option<u32>,
    max_connections_per_user: Option<u32>,
    max_connections_per_ip: Option<u32>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub max_message_bytes: usize,
    pub documents: Settings,
    /// Set in cluster mode.
    pub cluster: Option<ClusterConfig>,
    pub security: Security,
}

/// Who may connect, and how much.
#[derive(Debug, Clone)]
pub struct Security {
    /// Origins (`scheme://host[:port]`) allowed besides the request's own host.
    pub allowed_origins: Vec<String>,
    /// Session cookies are `Secure` and HSTS is sent (the public URL is https).
    pub https: bool,
    /// Trust `X-Real-IP` and `X-Forwarded-Proto` from a reverse proxy.
    pub trust_proxy: bool,
    pub session_ttl: Duration,
    pub max_messages_per_sec: u32,
    pub max_connections_per_user: u32,
    pub max_connections_per_ip: u32,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            allowed_origins: Vec::new(),
            https: false,
            trust_proxy: false,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            max_messages_per_sec: 50,
            max_connections_per_user: 32,
            max_connections_per_ip: 256,
        }
    }
}

/// Cluster mode's settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub node_id: String,
    /// Empty: the listening address, once known.
    pub advertise_addr: String,
    pub lease_ttl: Duration,
}

impl Config {
    /// Resolves flags, environment, file and defaults. `default_addr` is
    /// where Leptos' own configuration says to listen.
    pub fn resolve(cli: Cli, default_addr: SocketAddr) -> Result<Config, Error> {
        let file: File = match &cli.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => File::default(),
        };
        let data_dir = cli.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("data"));
        let database_url = cli
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("collab.db").display()));
        let mut documents = Settings::default();
        if let Some(chars) = cli.max_document_chars.or(file.max_document_chars) {
            documents.limits.max_chars = chars;
        }
        if let Some(window) = cli.rebase_window.or(file.rebase_window) {
            if window == 0 {
                return Err(Error::Config("rebase_window must be at least 1".into()));
            }
            documents.limits.window = window;
        }
        if let Some(ms) = cli.snapshot_interval_ms.or(file.snapshot_interval_ms) {
            documents.snapshot_interval = Duration::from_millis(ms.max(10));
        }
        if let Some(secs) = cli.idle_unload_secs.or(file.idle_unload_secs) {
            documents.idle_timeout = Duration::from_secs(secs.max(1));
        }
        let addr = cli.addr.or(file.addr).unwrap_or(default_addr);
        let cluster = cli.redis_url.or(file.redis_url).map(|redis_url| ClusterConfig {
            redis_url,
            node_id: cli.node_id.or(file.node_id).unwrap_or_else(|| addr.to_string()),
            advertise_addr: cli.advertise_addr.or(file.advertise_addr).unwrap_or_default(),
            lease_ttl: Duration::from_millis(cli.lease_ms.or(file.lease_ms).unwrap_or(3000).max(300)),
        });
        if let Some(cluster) = &cluster {
            if !cluster
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
            {
                return Err(Error::Config("node_id: letters, digits and - _ . : only".into()));
            }
        }
        let mut security = Security::default();
        let mut origins = Vec::new();
        if let Some(url) = cli.public_url.or(file.public_url) {
            let origin = origin_of(&url).ok_or_else(|| Error::Config(format!("public_url: {url:?} is not a URL")))?;
            security.https = origin.starts_with("https://");
            origins.push(origin);
        }
        for origin in cli.allowed_origins.or(file.allowed_origins).unwrap_or_default() {
            let origin = origin.trim();
            if origin.is_empty() {
                continue;
            }
            origins.push(origin_of(origin).ok_or_else(|| Error::Config(format!("allowed_origins: {origin:?}")))?);
        }
        security.allowed_origins = origins;
        if let Some(trust) = cli.trust_proxy.or(file.trust_proxy) {
            security.trust_proxy = trust;
        }
        if let Some(secs) = cli.session_ttl_secs.or(file.session_ttl_secs) {
            security.session_ttl = Duration::from_secs(secs.max(1));
        }
        if let Some(n) = cli.max_messages_per_sec.or(file.max_messages_per_sec) {
            security.max_messages_per_sec = n.max(1);
        }
        if let Some(n) = cli.max_connections_per_user.or(file.max_connections_per_user) {
            security.max_connections_per_user = n.max(1);
        }
        if let Some(n) = cli.max_connections_per_ip.or(file.max_connections_per_ip) {
            security.max_connections_per_ip = n.max(1);
        }
        Ok(Config {
            security,
            addr,
            database_url,
            max_message_bytes: cli
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(1 << 20)
                .max(1024),
            documents,
            cluster,
        })
    }
}

/// `scheme://host[:port]` of a URL, lower case; `None` if it is not an
/// http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let url = url.trim().to_ascii_lowercase();
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() || host.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}
