//! A connection's way out: frames written straight into its socket.
//!
//! Each connection has one outlet, shared by everything that writes to it
//! (its document's actor, its own reader for error frames). A frame sent to
//! an idle outlet is written into the socket at once, by the sender, in
//! its own task: no queue, no wake-up of another task. Only when the
//! socket cannot take it whole (its send buffer is full, or the reader
//! half holds the socket for a moment) does the frame wait in the outlet's
//! queue, and the connection's [`Writer`] task writes it, and whatever
//! queues behind it, in one flush. While the writer is at it, only the
//! writer touches the socket, so frames keep their order.
//!
//! Why: a change of a document with ten editors goes out as ten frames.
//! Through a queue and a writer task per connection, each frame cost a
//! task wake-up and a poll on top of its `write`, and ten runnable writer
//! tasks per change lengthened the run queues that every actor and reader
//! waits in.
//!
//! A queue that fills (a client that stopped reading) evicts the
//! connection: its writer drops what is queued, says so with a last frame
//! and closes the socket. A client that missed a frame must not stay open
//! as if it had it; it reconnects and catches up.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::sync::Notify;

/// The socket half an outlet writes to; its errors only say it failed.
pub type Socket<M> = Pin<Box<dyn Sink<M, Error = ()> + Send>>;

/// What became of a frame sent to an outlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written, or queued behind frames that will be.
    Queued,
    /// The queue was full: the connection is being closed.
    Evicted,
    /// The connection is closing or closed.
    Gone,
}

/// The sending side, cheap to clone.
pub struct Outlet<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Outlet<M> {
    fn clone(&self) -> Self {
        Outlet {
            shared: self.shared.clone(),
        }
    }
}

impl<M> std::fmt::Debug for Outlet<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlet").finish_non_exhaustive()
    }
}

struct Shared<M> {
    state: Mutex<State<M>>,
    /// Rings when the writer has work: frames to write, or an eviction.
    bell: Notify,
    /// Frames the queue holds at most.
    capacity: usize,
}

struct State<M> {
    socket: Socket<M>,
    queue: VecDeque<M>,
    /// The writer task is writing: no one else touches the socket.
    busy: bool,
    /// Something was written since the writer last looked (it pings only
    /// a connection that has been quiet).
    wrote: bool,
    /// No more frames are taken; the writer writes what is queued and closes.
    closing: bool,
    /// The queue filled: the writer drops it, says `evicted` and closes.
    evicted: bool,
    /// The socket failed.
    failed: bool,
}

impl<M> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding the lock leaves nothing half-written that
        // matters more than the connection, which the writer then closes.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<M: Send + 'static> Outlet<M> {
    /// An outlet on `socket` holding up to `capacity` waiting frames, and
    /// the writer that must run (as a task of its own) for it to work.
    pub fn new(socket: Socket<M>, capacity: usize) -> (Outlet<M>, Writer<M>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                socket,
                queue: VecDeque::new(),
                busy: false,
                wrote: false,
                closing: false,
                evicted: false,
                failed: false,
            }),
            bell: Notify::new(),
            capacity: capacity.max(1),
        });
        (Outlet { shared: shared.clone() }, Writer { shared })
    }

    /// Sends `frame`: written into the socket now if it is idle, else
    /// queued for the writer. A full queue evicts the connection.
    pub fn send(&self, frame: M) -> Sent {
        self.send_all(std::iter::once(frame))
    }

    /// Sends `frames` in order, in one write when the socket is idle (a
    /// document's batch for one connection: what arrived during a commit
    /// goes out together). What the socket cannot take now is queued for
    /// the writer. A full queue evicts the connection.
    pub fn send_all(&self, frames: impl IntoIterator<Item = M>) -> Sent {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if state.closing || state.failed {
            return Sent::Gone;
        }
        state.wrote = true;
        let mut frames = frames.into_iter();
        // Whether the writer must be rung: it has work it does not know of.
        let mut ring = false;
        if !state.busy {
            // Idle: the writer is not waiting on the socket, so polling it
            // here with a waker that does nothing takes no one's wake-up.
            // What cannot finish now, the writer finishes, with its own.
            match write_now(&mut state.socket, &mut state.queue, &mut frames) {
                Poll::Ready(Ok(())) => return Sent::Queued,
                Poll::Ready(Err(())) => {
                    state.failed = true;
                    drop(guard);
                    self.shared.bell.notify_one();
                    return Sent::Gone;
                }
                Poll::Pending => {
                    state.busy = true;
                    ring = true;
                }
            }
        }
        let mut sent = Sent::Queued;
        for frame in frames {
            if state.queue.len() >= self.shared.capacity {
                state.evicted = true;
                state.closing = true;
                sent = Sent::Evicted;
                ring = true;
                break;
            }
            state.queue.push_back(frame);
        }
        drop(guard);
        if ring {
            self.shared.bell.notify_one();
        }
        sent
    }

    /// Sends `frame` as the last one: the writer writes what is queued,
    /// then it, then closes the socket. Later frames are refused.
    pub fn close_with(&self, frame: M) {
        let mut state = self.shared.lock();
        if state.closing || state.failed {
            return;
        }
        state.queue.push_back(frame);
        state.closing = true;
        state.busy = true;
        drop(state);
        self.shared.bell.notify_one();
    }

    /// Closes the socket once what is queued is written.
    pub fn finish(&self) {
        let mut state = self.shared.lock();
        state.closing = true;
        state.busy = true;
        drop(state);
        self.shared.bell.notify_one();
    }
}

/// Writes `frames` into an idle socket and flushes, polling with a waker
/// that does nothing. `Pending` when the socket could not take them all
/// or not flush yet: the frame it refused is at the back of `queue` (the
/// rest is still in `frames`), and what it took waits in its buffer for
/// the writer's flush.
fn write_now<M>(
    socket: &mut Socket<M>,
    queue: &mut VecDeque<M>,
    frames: &mut impl Iterator<Item = M>,
) -> Poll<Result<(), ()>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut took = false;
    for frame in frames {
        match socket.as_mut().poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(())) => return Poll::Ready(Err(())),
            Poll::Pending => {
                queue.push_back(frame);
                return Poll::Pending;
            }
        }
        socket.as_mut().start_send(frame)?;
        took = true;
    }
    if !took {
        return Poll::Ready(Ok(()));
    }
    socket.as_mut().poll_flush(&mut cx)
}

/// The writer of one connection: writes what the outlet could not write at
/// once, pings the connection when it has been quiet, and closes the socket
/// at the end.
pub struct Writer<M> {
    shared: Arc<Shared<M>>,
}

/// How a writer's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Closed as asked (`close_with`, `finish`).
    Closed,
    /// Evicted: the queue filled.
    Evicted,
    /// The socket failed.
    Failed,
}

/// A writer's pings: every `every` with nothing written, `ping()` goes out.
pub struct Pings<M> {
    pub every: Duration,
    pub ping: fn() -> M,
}

impl<M: Send + 'static> Writer<M> {
    /// Runs until the outlet closes or the socket fails, pinging a quiet
    /// connection if asked. On eviction it drops the queue and sends
    /// `evicted` instead. The last frame and the close get `grace` to go
    /// out: a peer that stopped reading would keep them waiting for ever.
    pub async fn run(self, pings: Option<Pings<M>>, evicted: M, grace: Duration) -> Ended {
        let (mut ticks, ping) = match pings {
            Some(pings) => (Some(tokio::time::interval(pings.every)), Some(pings.ping)),
            None => (None, None),
        };
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        let ended = loop {
            tokio::select! {
                () = self.shared.bell.notified() => {}
                _ = async { ticks.as_mut().expect("pings").tick().await }, if ticks.is_some() => {
                    let quiet = !std::mem::replace(&mut self.shared.lock().wrote, false);
                    if let (true, Some(ping)) = (quiet, ping) {
                        Outlet { shared: self.shared.clone() }.send(ping());
                        // A ping is not traffic: the next quiet tick pings again.
                        self.shared.lock().wrote = false;
                    }
                    continue;
                }
            }
            // Write until the queue is empty, unless the bell rings meanwhile
            // (an eviction: a peer that stopped reading keeps a write
            // waiting for ever); then look again.
            let ended = loop {
                tokio::select! {
                    ended = poll_fn(|cx| self.drain(cx)) => break ended,
                    () = self.shared.bell.notified() => {}
                }
            };
            if let Some(ended) = ended {
                break ended;
            }
        };
        let mut socket = {
            let mut state = self.shared.lock();
            state.closing = true;
            state.busy = true;
            state.queue.clear();
            // The socket leaves the state: no one else writes to it now.
            std::mem::replace(
                &mut state.socket,
                Box::pin(futures_util::sink::drain().sink_map_err(|_| ())),
            )
        };
        match ended {
            // A socket that failed is not touched again: it has nothing
            // more to say, and a sink may panic if polled after an error
            // (`sink_map_err` does).
            Ended::Failed => return ended,
            Ended::Evicted => {
                let _ = tokio::time::timeout(grace, socket.send(evicted)).await;
            }
            Ended::Closed => {}
        }
        let _ = tokio::time::timeout(grace, socket.close()).await;
        ended
    }

    /// Writes the queue into the socket and flushes: `None` once idle
    /// again, or how the connection ended.
    fn drain(&self, cx: &mut Context<'_>) -> Poll<Option<Ended>> {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if state.evicted {
            return Poll::Ready(Some(Ended::Evicted));
        }
        if state.failed {
            return Poll::Ready(Some(Ended::Failed));
        }
        if !state.busy {
            return Poll::Ready(None);
        }
        while !state.queue.is_empty() {
            match state.socket.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(())) => return Poll::Ready(Some(state.fail())),
                Poll::Pending => return Poll::Pending,
            }
            let frame = state.queue.pop_front().expect("the queue is not empty");
            if state.socket.as_mut().start_send(frame).is_err() {
                return Poll::Ready(Some(state.fail()));
            }
        }
        match state.socket.as_mut().poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(())) => return Poll::Ready(Some(state.fail())),
            Poll::Pending => return Poll::Pending,
        }
        if state.closing {
            return Poll::Ready(Some(Ended::Closed));
        }
        state.busy = false;
        Poll::Ready(None)
    }
}

impl<M> State<M> {
    fn fail(&mut self) -> Ended {
        self.failed = true;
        Ended::Failed
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures_util::SinkExt;
    use tokio::sync::mpsc;

    use super::{Ended, Outlet, Pings, Sent, Socket};

    /// A socket that is a channel of `room` frames: full, it makes its
    /// writer wait, as a socket whose peer does not read.
    fn socket(room: usize) -> (Socket<u32>, mpsc::Receiver<u32>) {
        let (frames, received) = mpsc::channel(room);
        let sink = futures_util::sink::unfold(frames, |frames, frame: u32| async move {
            frames.send(frame).await.map_err(|_| ())?;
            Ok::<_, ()>(frames)
        });
        (Box::pin(sink), received)
    }

    /// A socket whose peer is gone: every write and close fails, and,
    /// through `sink_map_err` as the server's sockets are, a second
    /// failure panics.
    fn broken() -> Socket<u32> {
        struct Broken;
        impl futures_util::Sink<u32> for Broken {
            type Error = &'static str;
            fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn start_send(self: Pin<&mut Self>, _: u32) -> Result<(), Self::Error> {
                Err("connection reset")
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Err("connection reset"))
            }
            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Err("connection reset"))
            }
        }
        Box::pin(Broken.sink_map_err(|_| ()))
    }

    const GRACE: Duration = Duration::from_millis(200);
    const EVICTED: u32 = 1013;

    #[tokio::test]
    async fn frames_to_an_idle_socket_are_written_at_once_in_order() {
        let (socket, mut received) = socket(16);
        let (outlet, writer) = Outlet::new(socket, 4);
        let writer = tokio::spawn(writer.run(None, EVICTED, GRACE));
        for frame in 1..=10 {
            assert_eq!(outlet.send(frame), Sent::Queued);
        }
        // Written by `send` itself: no writer task ran in between.
        for frame in 1..=10 {
            assert_eq!(received.try_recv(), Ok(frame));
        }
        outlet.finish();
        assert_eq!(writer.await.unwrap(), Ended::Closed);
        assert_eq!(outlet.send(11), Sent::Gone);
    }

    #[tokio::test]
    async fn a_failed_socket_ends_its_writer_and_is_not_touched_again() {
        let (outlet, writer) = Outlet::new(broken(), 4);
        let writer = tokio::spawn(writer.run(None, EVICTED, GRACE));
        assert_eq!(outlet.send(1), Sent::Gone, "the write failed");
        assert_eq!(outlet.send(2), Sent::Gone, "a failed outlet takes nothing more");
        outlet.finish();
        assert_eq!(writer.await.expect("the writer does not panic"), Ended::Failed);
    }

    #[tokio::test]
    async fn frames_a_busy_socket_cannot_take_wait_for_the_writer_in_order() {
        let (socket, mut received) = socket(1);
        let (outlet, writer) = Outlet::new(socket, 64);
        let writer = tokio::spawn(writer.run(None, EVICTED, GRACE));
        for frame in 1..=50 {
            assert_eq!(outlet.send(frame), Sent::Queued);
        }
        outlet.finish();
        for frame in 1..=50 {
            assert_eq!(received.recv().await, Some(frame));
        }
        assert_eq!(writer.await.unwrap(), Ended::Closed);
        assert_eq!(received.recv().await, None, "the socket is closed after the last frame");
    }

    #[tokio::test]
    async fn a_full_queue_evicts_and_the_last_frame_says_so() {
        let (socket, mut received) = socket(1);
        let (outlet, writer) = Outlet::new(socket, 8);
        let writer = tokio::spawn(writer.run(None, EVICTED, GRACE));
        // The peer reads nothing: the socket takes one frame and one more
        // waits in it; eight wait in the queue; the next is one too many.
        let sent: Vec<Sent> = (1..=12).map(|frame| outlet.send(frame)).collect();
        assert!(sent.contains(&Sent::Evicted), "{sent:?}");
        assert_eq!(outlet.send(99), Sent::Gone, "an evicted outlet takes nothing more");
        // The writer gives up on what is queued and says why, if the peer
        // reads again within the grace.
        let mut heard = Vec::new();
        while let Some(frame) = received.recv().await {
            heard.push(frame);
        }
        assert_eq!(writer.await.unwrap(), Ended::Evicted);
        assert_eq!(heard.first(), Some(&1));
        assert_eq!(heard.last(), Some(&EVICTED), "{heard:?}");
        assert!(heard.len() < 12, "the queued frames were dropped: {heard:?}");
    }

    #[tokio::test]
    async fn close_with_writes_what_is_queued_then_the_last_frame() {
        let (socket, mut received) = socket(1);
        let (outlet, writer) = Outlet::new(socket, 64);
        let writer = tokio::spawn(writer.run(None, EVICTED, GRACE));
        for frame in 1..=5 {
            outlet.send(frame);
        }
        outlet.close_with(1000);
        assert_eq!(outlet.send(6), Sent::Gone);
        let mut heard = Vec::new();
        while let Some(frame) = received.recv().await {
            heard.push(frame);
        }
        assert_eq!(heard, vec![1, 2, 3, 4, 5, 1000]);
        assert_eq!(writer.await.unwrap(), Ended::Closed);
    }

    #[tokio::test]
    async fn a_quiet_connection_is_pinged() {
        let (socket, mut received) = socket(16);
        let (outlet, writer) = Outlet::new(socket, 4);
        let pings = Pings {
            every: Duration::from_millis(20),
            ping: || 0,
        };
        let writer = tokio::spawn(writer.run(Some(pings), EVICTED, GRACE));
        let first = tokio::time::timeout(Duration::from_secs(5), received.recv()).await;
        assert_eq!(first.unwrap(), Some(0));
        outlet.finish();
        assert_eq!(writer.await.unwrap(), Ended::Closed);
    }

    #[tokio::test]
    async fn a_failed_socket_refuses_what_follows() {
        let (socket, received) = socket(4);
        drop(received);
        let (outlet, writer) = Outlet::new(socket, 4);
        let writer = tokio::spawn(writer.run(None, EVICTED, GRACE));
        assert_eq!(outlet.send(1), Sent::Gone);
        assert_eq!(outlet.send(2), Sent::Gone);
        assert_eq!(writer.await.unwrap(), Ended::Failed);
    }
}
