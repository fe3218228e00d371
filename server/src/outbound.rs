//! The handle through which the rest of the server reaches one connection: a bounded queue of
//! already-encoded frames, drained by that connection's writer task.
//!
//! Pushing never waits. When a connection's queue is full it is a slow consumer: it is marked for
//! closing (4100) and further frames are dropped for it alone, so memory stays bounded and nobody
//! else is held up. The writer task watches the kill signal itself and writes the goodbye
//! (`pusher:error` and close) directly on the socket, since the full queue cannot carry it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::{mpsc, Notify};

use crate::error::ConnectionError;

/// Why a connection was told to close from outside its own task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KillReason {
    None = 0,
    SlowConsumer = 1,
    Terminated = 2,
}

impl KillReason {
    pub fn error(self) -> Option<ConnectionError> {
        match self {
            Self::None => None,
            Self::SlowConsumer => Some(ConnectionError::SlowConsumer),
            Self::Terminated => Some(ConnectionError::Terminated),
        }
    }
}

/// What the writer task takes from the queue.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded text frame; the bytes are shared by every recipient of a broadcast.
    Frame(Utf8Bytes),
    /// Nothing to write: look at the kill flag and the session's end. The writer reads them with
    /// plain loads between batches instead of polling futures on every delivery.
    Wake,
}

struct Shared {
    socket_id: Box<str>,
    tx: mpsc::Sender<Outbound>,
    kill: AtomicU8,
    /// Set once the session is over; the writer then takes `end` and says goodbye.
    ended: AtomicBool,
    /// Why the session ended (`None`: the client left).
    end: Mutex<Option<ConnectionError>>,
    killed: Notify,
    /// Wakes a writer stuck in a write to a full socket (see [`ConnHandle::writer_killed`]).
    writer_waker: AtomicWaker,
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
    pub fn new(socket_id: String, tx: mpsc::Sender<Outbound>) -> Self {
        Self(Arc::new(Shared {
            socket_id: socket_id.into_boxed_str(),
            tx,
            kill: AtomicU8::new(KillReason::None as u8),
            ended: AtomicBool::new(false),
            end: Mutex::new(None),
            killed: Notify::new(),
            writer_waker: AtomicWaker::new(),
        }))
    }

    pub fn socket_id(&self) -> &str {
        &self.0.socket_id
    }

    /// Queues a frame without waiting. Returns false (and marks the connection for closing) when
    /// the queue is full; returns false quietly when the connection is already gone.
    pub fn send(&self, frame: &Utf8Bytes) -> bool {
        match self.0.tx.try_send(Outbound::Frame(frame.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kill(KillReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection's tasks (reader and writer) to close it; the first reason given wins.
    pub fn kill(&self, reason: KillReason) {
        if self
            .0
            .kill
            .compare_exchange(
                KillReason::None as u8,
                reason as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            // Both the reader and the writer wait for this; either may not be waiting yet, which
            // `killed` covers by checking the flag after registering.
            self.0.killed.notify_waiters();
            // An idle writer waits on the queue; a full queue means it is busy and will look
            // at the flag after its batch, or is stuck in a write, which `writer_killed` covers.
            let _ = self.0.tx.try_send(Outbound::Wake);
            self.0.writer_waker.wake();
        }
    }

    /// The session is over (with its error, if any): the writer sends what is queued, then the
    /// goodbye. Called once, by the connection's own task.
    pub fn finish(&self, end: Option<ConnectionError>) {
        if let Ok(mut slot) = self.0.end.lock() {
            *slot = end;
        }
        self.0.ended.store(true, Ordering::Release);
        // When the queue is full the writer is busy and looks at the flag after its batch.
        let _ = self.0.tx.try_send(Outbound::Wake);
    }

    /// For the writer: `Some` once [`Self::finish`] was called, with the session's error.
    pub fn take_end(&self) -> Option<Option<ConnectionError>> {
        if !self.0.ended.load(Ordering::Acquire) {
            return None;
        }
        Some(self.0.end.lock().ok().and_then(|mut slot| slot.take()))
    }

    /// Like [`Self::killed`], for the connection's one writer task while it waits on its socket.
    pub fn writer_killed(&self) -> WriterKilled<'_> {
        WriterKilled(self)
    }

    /// Resolves once [`Self::kill`] was called, with its reason.
    pub async fn killed(&self) -> KillReason {
        loop {
            // Created before the check: `notify_waiters` reaches it even before its first poll,
            // so a kill between the check and the await is not missed.
            let notified = self.0.killed.notified();
            let reason = self.kill_reason();
            if reason != KillReason::None {
                return reason;
            }
            notified.await;
        }
    }

    pub fn kill_reason(&self) -> KillReason {
        match self.0.kill.load(Ordering::Acquire) {
            1 => KillReason::SlowConsumer,
            2 => KillReason::Terminated,
            _ => KillReason::None,
        }
    }

    pub fn same(&self, other: &ConnHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// See [`ConnHandle::writer_killed`]; only one task may wait on it at a time.
pub struct WriterKilled<'a>(&'a ConnHandle);

impl Future for WriterKilled<'_> {
    type Output = KillReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<KillReason> {
        let conn = self.0;
        let reason = conn.kill_reason();
        if reason != KillReason::None {
            return Poll::Ready(reason);
        }
        conn.0.writer_waker.register(cx.waker());
        // Checked again after registering: a kill in between would otherwise wake nobody.
        match conn.kill_reason() {
            KillReason::None => Poll::Pending,
            reason => Poll::Ready(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_marks_slow_consumer() {
        let (tx, mut rx) = mpsc::channel(2);
        let h = ConnHandle::new("1.1".into(), tx);
        let f = Utf8Bytes::from_static("x");
        assert!(h.send(&f));
        assert!(h.send(&f));
        assert!(!h.send(&f));
        assert_eq!(h.killed().await, KillReason::SlowConsumer);
        // The first reason wins.
        h.kill(KillReason::Terminated);
        assert_eq!(h.killed().await, KillReason::SlowConsumer);
        assert!(matches!(rx.recv().await, Some(Outbound::Frame(f)) if f == "x"));
    }

    #[tokio::test]
    async fn every_waiter_sees_the_kill() {
        let (tx, _rx) = mpsc::channel(1);
        let h = ConnHandle::new("1.1".into(), tx);
        let (a, b) = (h.clone(), h.clone());
        let reader = tokio::spawn(async move { a.killed().await });
        let writer = tokio::spawn(async move { b.writer_killed().await });
        tokio::task::yield_now().await;
        h.kill(KillReason::Terminated);
        assert_eq!(reader.await.unwrap(), KillReason::Terminated);
        assert_eq!(writer.await.unwrap(), KillReason::Terminated);
    }
}
