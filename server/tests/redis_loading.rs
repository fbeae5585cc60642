//! An app server started while Redis is still loading its dataset waits for
//! it. After a restart Redis answers `LOADING` to every command until it
//! has read its append-only file; an app server started meanwhile (a
//! cluster started again, or a server restarted beside a restarting Redis)
//! used to give up at once. A real Redis, kept loading for seconds by its
//! `key-load-delay` setting (a pause per key read).

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use collab::access::Access;
use collab::cluster::{Cluster, Owner};
use support::cluster::free_ports;
use support::TempDir;

/// Keys in the append-only file, each read with a pause of
/// `LOAD_DELAY_US`: about 4 s of loading.
const KEYS: usize = 40_000;
const LOAD_DELAY_US: u32 = 100;

/// A Redis server with an append-only file, stopped on drop.
struct Redis {
    port: u16,
    process: Child,
}

impl Redis {
    fn start(port: u16, dir: &TempDir, extra: &[&str]) -> Redis {
        let process = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir.0)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { port, process }
    }

    fn cli(&self, args: &[&str], input: Option<String>) -> String {
        let mut cli = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = cli.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        String::from_utf8(cli.wait_with_output().unwrap().stdout).unwrap()
    }

    /// Shuts the server down cleanly, its append-only file synced.
    fn shut_down(mut self) {
        self.cli(&["shutdown"], None);
        self.process.wait().unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_server_waits_for_redis_to_load_its_dataset() {
    let dir = TempDir::new("redis-loading");
    let port = free_ports(1);
    let redis = Redis::start(port, &dir, &[]);
    let sets: String = (0..KEYS).map(|i| format!("SET filler:{i} {i}\r\n")).collect();
    let piped = redis.cli(&["--pipe"], Some(sets));
    assert!(piped.contains(&format!("replies: {KEYS}")), "{piped}");
    redis.shut_down();

    let delay = LOAD_DELAY_US.to_string();
    let redis = Redis::start(port, &dir, &["--key-load-delay", &delay]);
    let url = format!("redis://127.0.0.1:{port}");
    let asked = Instant::now();
    let answer = redis.cli(&["ping"], None);
    assert!(answer.starts_with("LOADING"), "Redis should still be loading: {answer}");

    let cluster = Cluster::connect(&url, "n1", "127.0.0.1:1", Duration::from_secs(5))
        .await
        .expect("the app server waits for Redis instead of giving up");
    let waited = asked.elapsed();
    assert_eq!(redis.cli(&["ping"], None).trim(), "PONG");
    assert_eq!(
        cluster.acquire("a-document").await.unwrap(),
        Owner::Here { took_over: false },
        "the lease is taken once Redis serves"
    );
    Access::cluster(&url).await.expect("access events through Redis too");
    let keys: usize = redis.cli(&["dbsize"], None).trim().parse().unwrap();
    assert!(keys > KEYS, "every key loaded, and the lease: {keys}");
    println!("waited {:.1} s for Redis to load {KEYS} keys", waited.as_secs_f64());
}
