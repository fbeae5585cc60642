//! The floor: the least a WebSocket server on this stack can do for the
//! load generator's load, to tell what the machine allows from what the
//! product costs (`loadgen --relay`, docs/BENCHMARKS.md).
//!
//! Every socket joins the room named by its path (`/room-7`). Every text
//! frame it sends goes, unchanged, to every socket of the room, the
//! sender's own included (its echo stands for the verdict): ten frames out
//! for each frame in with ten editors, as in the product. Nothing is
//! parsed, merged, checked or stored, and a frame goes from the reader
//! straight into the other sockets' queues, with no task between.
//!
//! What it shares with the product's app server: tokio's multi-threaded
//! runtime, tungstenite's WebSockets with 4 KiB read buffers, mimalloc,
//! `TCP_NODELAY`.
//! It writes through one writer task per socket that gathers every queued
//! frame into one write. (The product writes a batch's frames straight
//! into an idle socket instead, `collab::outlet`: a document's batch holds
//! what arrived during a commit. A relay has no batches; written straight
//! away, each frame took a send of its own, 1.0 per frame against 0.67
//! through writer tasks, and 0.15 s of CPU per 1,000 changes against
//! 0.12–0.13.) It stands for what the sockets alone cost. It is not a
//! strict bound: with the load generator's light editors, the product's
//! batched direct writes cost less per change than these writer tasks,
//! and the product sustained as many editors or more (docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The app server's allocator (mimalloc), so that the floor pays what the
/// server pays per allocation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A socket's queue of frames to write, as the product's (8,192 frames).
const QUEUE: usize = 8192;

/// Connections queued before they are accepted, as the product's listener
/// queues them (`server::LISTEN_BACKLOG`), not tokio's default of 128.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` (`host:port`) with [`LISTEN_BACKLOG`].
fn listen(addr: &str) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the address names no host"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A room's sockets: their ids and queues.
type Room = Arc<Mutex<Vec<(u64, mpsc::Sender<Message>)>>>;

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
}

impl Rooms {
    fn join(&self, name: &str, id: u64, queue: mpsc::Sender<Message>) -> Room {
        let mut rooms = self.rooms.lock().expect("rooms");
        let room = rooms.entry(name.to_owned()).or_default().clone();
        room.lock().expect("room").push((id, queue));
        room
    }

    fn leave(&self, name: &str, room: &Room, id: u64) {
        let mut rooms = self.rooms.lock().expect("rooms");
        let mut members = room.lock().expect("room");
        members.retain(|(member, _)| *member != id);
        if members.is_empty() {
            rooms.remove(name);
        }
    }
}

fn main() {
    let addr = match std::env::args().collect::<Vec<_>>().as_slice() {
        [_, flag, addr] if flag == "--addr" => addr.clone(),
        [_] => "127.0.0.1:3100".to_owned(),
        _ => {
            eprintln!(
                "usage: relay [--addr HOST:PORT]\n\n\
                 The floor for loadgen --relay: every text frame a socket sends goes to every\n\
                 socket of its room (the path names it), the sender's own included."
            );
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = match listen(&addr) {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("relay: cannot listen on {addr}: {error}");
                std::process::exit(1);
            }
        };
        println!("relay listening on {addr}");
        let rooms = Arc::new(Rooms::default());
        let mut next_id = 0u64;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            next_id += 1;
            tokio::spawn(connection(stream, rooms.clone(), next_id));
        }
    });
}

async fn connection(stream: TcpStream, rooms: Arc<Rooms>, id: u64) {
    let _ = stream.set_nodelay(true);
    let (queue, mut frames) = mpsc::channel::<Message>(QUEUE);
    // The socket joins its room before the handshake's answer: a client
    // that has its answer is in the room.
    let mut joined: Option<(String, Room)> = None;
    // The callback's error type is tungstenite's, as its trait wants it.
    #[allow(clippy::result_large_err)]
    let join = |request: &Request, response: Response| {
        let name = request.uri().path().trim_start_matches('/').to_owned();
        let room = rooms.join(&name, id, queue);
        joined = Some((name, room));
        Ok(response)
    };
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(stream, join, Some(config)).await;
    let Some((name, room)) = joined else { return };
    let Ok(socket) = accepted else {
        rooms.leave(&name, &room, id);
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(first) = frames.recv().await {
            let mut next = Some(first);
            while let Some(frame) = next.take() {
                if sink.feed(frame).await.is_err() {
                    return;
                }
                next = frames.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(frame)) = stream.next().await {
        if !frame.is_text() {
            continue;
        }
        for (_, member) in room.lock().expect("room").iter() {
            // A full queue drops the frame: the generator counts it as lost.
            let _ = member.try_send(frame.clone());
        }
    }
    rooms.leave(&name, &room, id);
    writer.abort();
}
