//! The cluster test: three app servers behind nginx, with PostgreSQL and
//! Redis (AOF), started by `deploy/cluster.sh`. 50 documents, 10 clients per
//! document typing unique tokens over real WebSockets (mostly each on its
//! own line, now and then anywhere); one app server is
//! killed (`kill -9`) in the middle. Afterwards every token is in its
//! document exactly once (or in its typist's rejected edits tray), every
//! client's text equals the server's, and the op log has no gap and no
//! duplicate. Every client is signed in: ten editor accounts, one per line,
//! each editing all fifty documents, which one owner created and shared.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{check_op_log, shared_documents, verify, ClusterClient, LocalCluster, Tally};

const DOCUMENTS: usize = 50;
const CLIENTS: usize = 10;
const TOKENS: usize = 12;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_documents_survive_a_killed_app_server() {
    let cluster = LocalCluster::start("failover", 3, 2000);
    let addr = cluster.addr();
    let (owner, editors, documents) = shared_documents(&addr, DOCUMENTS, CLIENTS).await;
    let deadline = Instant::now() + Duration::from_secs(240);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (d, id) in documents.iter().enumerate() {
        for (c, account) in editors.iter().enumerate().take(CLIENTS) {
            let (addr, id, account) = (addr.clone(), id.clone(), account.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = ClusterClient::new(&addr, &id, 1 + (d * CLIENTS + c) as u64, &account);
                let mut rng = Rng(0x5EED + (d * CLIENTS + c) as u64);
                client.ensure_connected(deadline).await;
                for n in 0..TOKENS {
                    // Mostly on one's own line; now and then anywhere, which
                    // can conflict with someone else's line.
                    let token = format!("<{d}.{c}.{n}>");
                    if rng.below(10) == 0 {
                        client.type_token(token, rng.below(1000) as usize);
                    } else {
                        client.type_on_line(token, c);
                    }
                    client.pump().await;
                    client
                        .receive_for(Duration::from_millis(150 + rng.below(300)), deadline)
                        .await;
                }
                client.settle(shared::Revision(0), deadline).await;
                client
            }));
        }
    }
    // Mid-run, one app server dies without warning.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cluster.run(&["kill-node", "2"]);
    let killed_at = started.elapsed();

    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let typing = started.elapsed();
    let mut kept = 0;
    let mut trays = 0;
    let mut tally = Tally::default();
    for document in clients.chunks_mut(CLIENTS) {
        let (k, t) = verify(&addr, &owner, document, deadline).await;
        kept += k;
        trays += t;
        for client in document.iter() {
            tally.resent += client.tally.resent;
            tally.reconnects += client.tally.reconnects;
            tally.moved += client.tally.moved;
        }
    }
    let appended = check_op_log(&cluster.database_url()).await;
    let typed = DOCUMENTS * CLIENTS * TOKENS;
    println!(
        "cluster: 3 app servers, {DOCUMENTS} documents × {CLIENTS} clients × {TOKENS} tokens = {typed} typed; \
         n2 killed at {:.1} s, typing done at {:.1} s; {kept} tokens acknowledged and in the text exactly once, \
         {} rejected (in {trays} tray entries); {appended} changes in the op log; {} changes resent after reconnects, \
         {} reconnects, {} moves to the owner",
        killed_at.as_secs_f64(),
        typing.as_secs_f64(),
        typed - kept,
        tally.resent,
        tally.reconnects,
        tally.moved
    );
    assert!(kept > typed / 2, "most tokens made it");
    assert!(tally.resent > 0 || tally.reconnects > 0, "the kill was noticed");
}
