//! The handle through which the rest of the server reaches one connection: a bounded queue of
//! already-encoded frames in front of the connection's WebSocket sink.
//!
//! Two ways drain the queue into the sink, one at a time (both under the connection's lock):
//! - the connection's writer task ([`ConnHandle::poll_writer`]), woken when a frame is queued;
//! - a [`Cork`]: a publisher (HTTP API request, client event, Redis bus message) that delivers to
//!   many connections marks them, then writes each one's queued frames itself when it is done, so
//!   a broadcast costs one `send` per subscriber and no task wake-ups. When a socket cannot take
//!   everything, the rest is left to the writer task, which waits for the socket to drain.
//!
//! Pushing never waits on a socket. When a connection's queue is full (in frames or in bytes) it is
//! a slow consumer: it is marked for closing (4100) and further frames are dropped for it alone, so
//! memory stays bounded and nobody else is held up. The writer then takes the sink and writes the
//! goodbye (`pusher:error` and close) itself, since the full queue cannot carry it. The writer also
//! closes a connection whose socket has taken nothing for `write_timeout`
//! ([`ConnHandle::stalled_for`]), however little is queued and whatever the client sends meanwhile.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::task::{noop_waker_ref, AtomicWaker};
use futures_util::Sink;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::ConnectionError;

/// The connection's WebSocket sink (boxed so that the queue logic is testable without a socket).
pub type WsSink = Pin<Box<dyn Sink<Message, Error = axum::Error> + Send>>;

/// Frames written before one flush and before the writer gives other tasks a turn.
const WRITE_BATCH: usize = 64;
/// Queue slots an emptied queue may keep allocated.
const KEEP_CAPACITY: usize = 16;

/// How much one connection may have queued and not yet written.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimit {
    pub frames: usize,
    /// The frames' bytes; one frame is always accepted into an empty queue, whatever its size.
    pub bytes: usize,
}

/// Why a connection was told to close from outside its own task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KillReason {
    SlowConsumer = 1,
    Terminated = 2,
}

/// The kill flag's value while nobody asked the connection to close.
const NOT_KILLED: u8 = 0;

impl KillReason {
    pub fn error(self) -> ConnectionError {
        match self {
            Self::SlowConsumer => ConnectionError::SlowConsumer,
            Self::Terminated => ConnectionError::Terminated,
        }
    }
}

/// Why the writer task stops writing queued frames.
pub enum WriterExit {
    /// Killed from outside: what is queued is dropped; the goodbye goes out at once.
    Killed(KillReason),
    /// The session ended (with its error; `None`: the client left) and the queue is written.
    Ended(Option<ConnectionError>),
    /// The socket failed; nothing more can be written.
    Failed,
}

struct Out {
    queue: VecDeque<Utf8Bytes>,
    /// Bytes of the frames in `queue`.
    bytes: usize,
    /// Since when the socket has taken nothing (its buffer full); `None` while it takes frames.
    stalled_since: Option<Instant>,
    /// Taken by the writer when it says goodbye; `None` also for a handle without a socket.
    sink: Option<WsSink>,
    /// The writer task owns the sink's progress: it holds unflushed bytes (the socket is full)
    /// or the writer is already woken. Nobody else touches the sink until this clears.
    busy: bool,
    /// Already in the current cork's list.
    corked: bool,
    /// The writer took the sink: nothing more is accepted.
    closed: bool,
}

impl Out {
    /// Moves queued frames into the sink and flushes it. `Pending` leaves the rest queued and
    /// means the sink registered `cx` to be woken when the socket can take more.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let Some(sink) = self.sink.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut written = 0;
        while !self.queue.is_empty() && written < WRITE_BATCH {
            match sink.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => self.stalled_since = None,
                Poll::Pending => {
                    self.stalled_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
                other => return other,
            }
            if let Some(frame) = self.queue.pop_front() {
                self.bytes -= frame.len();
                sink.as_mut().start_send(Message::Text(frame))?;
                written += 1;
            }
        }
        if self.queue.is_empty() && self.queue.capacity() > KEEP_CAPACITY {
            // A burst is over: an idle connection does not keep a long queue's memory.
            self.queue = VecDeque::new();
        }
        match sink.as_mut().poll_flush(cx) {
            Poll::Ready(Ok(())) if !self.queue.is_empty() => {
                self.stalled_since = None;
                // A long queue: give other tasks a turn, then go on.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                self.stalled_since = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                self.stalled_since.get_or_insert_with(Instant::now);
                Poll::Pending
            }
            other => other,
        }
    }
}

struct Shared {
    socket_id: Box<str>,
    limit: QueueLimit,
    out: Mutex<Out>,
    kill: AtomicU8,
    /// Set once the session is over; the writer then takes `end` and says goodbye.
    ended: AtomicBool,
    /// Why the session ended (`None`: the client left).
    end: Mutex<Option<ConnectionError>>,
    killed: Notify,
    /// The writer task: woken when there is something to write, a kill, or the session's end.
    writer: AtomicWaker,
}

/// Cheap to clone; equality is identity of the connection.
#[derive(Clone)]
pub struct ConnHandle(Arc<Shared>);

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnHandle")
            .field(&self.0.socket_id)
            .finish()
    }
}

impl ConnHandle {
    /// A connection writing to `sink` (`None`: frames stay queued, for tests) that holds at most
    /// `limit` not yet written.
    pub fn new(socket_id: String, limit: QueueLimit, sink: Option<WsSink>) -> Self {
        Self(Arc::new(Shared {
            socket_id: socket_id.into_boxed_str(),
            limit,
            out: Mutex::new(Out {
                queue: VecDeque::new(),
                bytes: 0,
                stalled_since: None,
                sink,
                busy: false,
                corked: false,
                closed: false,
            }),
            kill: AtomicU8::new(NOT_KILLED),
            ended: AtomicBool::new(false),
            end: Mutex::new(None),
            killed: Notify::new(),
            writer: AtomicWaker::new(),
        }))
    }

    pub fn socket_id(&self) -> &str {
        &self.0.socket_id
    }

    /// Queues a frame without waiting. Returns false (and marks the connection for closing) when
    /// the queue is full; returns false quietly when the connection is already gone.
    pub fn send(&self, frame: &Utf8Bytes) -> bool {
        let mut out = self.0.out.lock();
        if out.closed || self.kill_reason().is_some() {
            return false;
        }
        let limit = self.0.limit;
        let over_bytes = !out.queue.is_empty() && out.bytes + frame.len() > limit.bytes;
        if out.queue.len() >= limit.frames || over_bytes {
            drop(out);
            self.kill(KillReason::SlowConsumer);
            return false;
        }
        out.bytes += frame.len();
        out.queue.push_back(frame.clone());
        if out.busy || out.corked {
            return true;
        }
        if Cork::add(self) {
            out.corked = true;
            return true;
        }
        out.busy = true;
        drop(out);
        self.0.writer.wake();
        true
    }

    /// A cork's turn at this connection: writes what is queued unless the writer task has it.
    fn flush_corked(&self) {
        let mut out = self.0.out.lock();
        out.corked = false;
        if out.busy || out.closed || out.queue.is_empty() {
            return;
        }
        // Not the writer's own context: whatever the sink registers it for is overwritten when
        // the writer, woken below, polls it again.
        let mut cx = Context::from_waker(noop_waker_ref());
        if let Poll::Ready(Ok(())) = out.drain(&mut cx) {
            return;
        }
        // The socket is full (or failed): the writer takes over and finds out which.
        out.busy = true;
        drop(out);
        self.0.writer.wake();
    }

    /// The writer task's step: writes what is queued, and returns once it has to stop.
    pub fn poll_writer(&self, cx: &mut Context<'_>) -> Poll<WriterExit> {
        // Registered first: a kill, a frame or the end arriving after a check below wakes us.
        self.0.writer.register(cx.waker());
        loop {
            if let Some(reason) = self.kill_reason() {
                return Poll::Ready(WriterExit::Killed(reason));
            }
            let mut out = self.0.out.lock();
            if out.queue.is_empty() && !out.busy {
                if self.0.ended.load(Ordering::Acquire) {
                    return Poll::Ready(WriterExit::Ended(self.0.end.lock().take()));
                }
                return Poll::Pending;
            }
            out.busy = true;
            match out.drain(cx) {
                Poll::Ready(Ok(())) => out.busy = false,
                Poll::Ready(Err(_)) => return Poll::Ready(WriterExit::Failed),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// For the writer, once it stopped: takes the sink (nothing more is accepted) and, when
    /// `keep` is false, drops what is still queued. Returns the sink and what to write first.
    pub fn take_sink(&self, keep: bool) -> (Option<WsSink>, Vec<Utf8Bytes>) {
        let mut out = self.0.out.lock();
        out.closed = true;
        out.bytes = 0;
        let rest = std::mem::take(&mut out.queue);
        (out.sink.take(), if keep { rest.into() } else { Vec::new() })
    }

    /// Asks the connection's tasks (reader and writer) to close it; the first reason given wins.
    pub fn kill(&self, reason: KillReason) {
        if self
            .0
            .kill
            .compare_exchange(
                NOT_KILLED,
                reason as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            // The reader may not be waiting yet, which `killed` covers by checking the flag after
            // registering; the writer checks it after registering its waker.
            self.0.killed.notify_waiters();
            self.0.writer.wake();
        }
    }

    /// The session is over (with its error, if any): the writer sends what is queued, then the
    /// goodbye. Called once, by the connection's own task.
    pub fn finish(&self, end: Option<ConnectionError>) {
        *self.0.end.lock() = end;
        self.0.ended.store(true, Ordering::Release);
        self.0.writer.wake();
    }

    /// Resolves once [`Self::kill`] was called, with its reason.
    pub async fn killed(&self) -> KillReason {
        loop {
            // Created before the check: `notify_waiters` reaches it even before its first poll,
            // so a kill between the check and the await is not missed.
            let notified = self.0.killed.notified();
            if let Some(reason) = self.kill_reason() {
                return reason;
            }
            notified.await;
        }
    }

    /// Why the connection was told to close, if it was.
    pub fn kill_reason(&self) -> Option<KillReason> {
        match self.0.kill.load(Ordering::Acquire) {
            1 => Some(KillReason::SlowConsumer),
            2 => Some(KillReason::Terminated),
            _ => None,
        }
    }

    /// How long the socket has taken nothing while frames wait for it.
    pub fn stalled_for(&self) -> Option<Duration> {
        let out = self.0.out.lock();
        out.stalled_since
            .filter(|_| !out.queue.is_empty() || out.busy)
            .map(|since| since.elapsed())
    }

    pub fn same(&self, other: &ConnHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// What is queued and not yet written (for tests of handles without a socket).
    #[cfg(test)]
    pub fn take_queued(&self) -> Vec<String> {
        let mut out = self.0.out.lock();
        out.bytes = 0;
        out.queue.drain(..).map(|f| f.as_str().to_owned()).collect()
    }
}

thread_local! {
    /// The connections the current [`Cork`] on this thread delivered to; `None`: no cork.
    static CORKED: RefCell<Option<Vec<ConnHandle>>> = const { RefCell::new(None) };
}

/// While alive, frames queued on this thread are not handed to the connections' writer tasks:
/// the cork writes them itself when dropped, every connection once, whatever it queued. Meant for
/// code that delivers and then returns (it is not `Send`, so it cannot be held across an await).
/// A cork inside another does nothing; the outer one writes.
pub struct Cork {
    outer: bool,
    _not_send: PhantomData<*const ()>,
}

impl Cork {
    pub fn new() -> Self {
        let outer = CORKED.with(|c| {
            let mut c = c.borrow_mut();
            let outer = c.is_none();
            if outer {
                *c = Some(Vec::new());
            }
            outer
        });
        Self {
            outer,
            _not_send: PhantomData,
        }
    }

    /// Adds `conn` to this thread's cork; false when there is none.
    fn add(conn: &ConnHandle) -> bool {
        CORKED.with(|c| match c.borrow_mut().as_mut() {
            Some(list) => {
                list.push(conn.clone());
                true
            }
            None => false,
        })
    }
}

impl Default for Cork {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        // Taken out first: writing may not queue again here, but must not find the cork on.
        let corked = CORKED.with(|c| c.borrow_mut().take()).unwrap_or_default();
        if corked.is_empty() {
            return;
        }
        // Outside tokio's cooperative budget: within a task, after ~128 socket operations every
        // further write would answer `Pending` (time to yield) and go to the writer tasks.
        let mut flush = std::pin::pin!(tokio::task::unconstrained(std::future::poll_fn(|_| {
            for conn in &corked {
                conn.flush_corked();
            }
            Poll::Ready(())
        })));
        let _ = flush
            .as_mut()
            .poll(&mut Context::from_waker(noop_waker_ref()));
    }
}

#[cfg(test)]
mod tests;
