//! Faults a cluster survives, each while clients type: Redis restarted,
//! PostgreSQL restarted, and the owner of a document paused (SIGSTOP) until
//! its lease expires and another app server takes the document over, then
//! resumed: its writes are refused by the fencing token, and the op log has
//! no gap and no duplicate.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::cluster::{check_op_log, shared_documents, verify, ClusterClient, LocalCluster};
use support::Account;

const DOCUMENTS: usize = 3;
const CLIENTS: usize = 3;

/// Clients typing on their own lines until `stop`, then settling.
fn typists(
    addr: &str,
    documents: &[String],
    editors: &[Account],
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Vec<tokio::task::JoinHandle<ClusterClient>> {
    let mut tasks = Vec::new();
    for (d, id) in documents.iter().enumerate() {
        for (c, account) in editors.iter().enumerate().take(CLIENTS) {
            let (addr, id, stop, account) = (addr.to_owned(), id.clone(), stop.clone(), account.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = ClusterClient::new(&addr, &id, 500 + (d * CLIENTS + c) as u64, &account);
                client.ensure_connected(deadline).await;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    client.type_on_line(format!("<{d}.{c}.{n}>"), c);
                    n += 1;
                    client.pump().await;
                    client.receive_for(Duration::from_millis(200), deadline).await;
                }
                client.settle(shared::Revision(0), deadline).await;
                client
            }));
        }
    }
    tasks
}

/// The node (1-based) whose lease holds `document`, read from Redis
/// (waiting a little if the lease is between owners).
async fn lease_holder(cluster: &LocalCluster, document: &str) -> usize {
    let redis_port = cluster.port as usize + cluster.nodes + 1;
    for _ in 0..400 {
        let output = std::process::Command::new("redis-cli")
            .args([
                "-p",
                &redis_port.to_string(),
                "GET",
                &format!("collab:lease:{document}"),
            ])
            .output()
            .unwrap();
        let node = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if let Some(n) = node.strip_prefix('n').and_then(|n| n.parse().ok()) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no owner for {document}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_postgres_restarts_and_a_paused_owner() {
    let cluster = LocalCluster::start("faults", 3, 2000);
    let addr = cluster.addr();
    let (owner, editors, documents) = shared_documents(&addr, DOCUMENTS, CLIENTS).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = typists(&addr, &documents, &editors, stop.clone(), deadline);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Redis restarts (leases, heartbeats and the snapshot cache come back
    // from its append-only file; renewals fail meanwhile).
    cluster.run(&["restart-redis"]);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // PostgreSQL restarts: appends fail for a moment and are retried;
    // nothing is acknowledged before it is durable.
    cluster.run(&["restart-postgres"]);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The owner of the first document stops dead (SIGSTOP) with its
    // connections open. Its heartbeat and lease expire; its clients give up
    // on it and another server takes the document over.
    let paused = lease_holder(&cluster, &documents[0]).await;
    let fenced_before = cluster.metric(paused, "collab_fenced_appends_total").await;
    cluster.run(&["pause-node", &paused.to_string()]);
    let taken_over = Instant::now();
    let new_owner = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let node = lease_holder(&cluster, &documents[0]).await;
        if node != paused {
            break node;
        }
        assert!(
            taken_over.elapsed() < Duration::from_secs(30),
            "no server took the document over"
        );
    };
    let takeover = taken_over.elapsed();
    // Typing goes on at the new owner for a while, then the paused one wakes up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.run(&["resume-node", &paused.to_string()]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fenced = cluster.metric(paused, "collab_fenced_appends_total").await - fenced_before;

    stop.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let mut kept = 0;
    let mut typed = 0;
    for document in clients.chunks_mut(CLIENTS) {
        typed += document.iter().map(|c| c.typed.len()).sum::<usize>();
        kept += verify(&addr, &owner, document, deadline).await.0;
    }
    let appended = check_op_log(&cluster.database_url()).await;
    let resent: usize = clients.iter().map(|c| c.tally.resent).sum();
    println!(
        "faults: {typed} tokens typed across a Redis restart, a PostgreSQL restart and a paused owner \
         (n{paused} paused, n{new_owner} owned the document {:.1} s later; {fenced} of the paused owner's writes refused \
         when it woke); {kept} tokens in the texts exactly once; {appended} changes in the op log, no gap, \
         no duplicate; {resent} changes resent",
        takeover.as_secs_f64(),
    );
    assert!(
        fenced >= 1,
        "the paused owner's writes were refused by the fencing token"
    );
}
