//! The connection's writer task: writes what its queue holds when a publisher's cork could not
//! (the socket was full), and at the end says goodbye on the sink directly, never through the
//! bounded queue: the last queued frames, then `pusher:error` and the close frame.

use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::SinkExt;

use crate::error::ConnectionError;
use crate::hub::outbound::{ConnHandle, KillReason, WriterExit};
use crate::wire;

/// How long the writer may take to flush the final frames before the socket is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// A close frame's payload is at most 125 bytes: the 2-byte code and the reason.
const MAX_CLOSE_REASON: usize = 123;

/// Writes what is queued until the connection is killed or the session ends, then says goodbye.
/// A socket that takes nothing for `write_timeout` gets the connection closed as a slow consumer.
pub async fn write_loop(conn: ConnHandle, write_timeout: Duration) {
    let (err, keep) = match writer_exit(&conn, write_timeout).await {
        // Killed from outside (slow consumer, terminated): what is still queued is dropped and
        // the error goes out at once. A slow consumer's queue is full, so it could not carry it.
        WriterExit::Killed(reason) => (Some(reason.error()), false),
        // The session ended (`None`: the client left) after its queue was written.
        WriterExit::Ended(err) => (err, true),
        WriterExit::Failed => {
            // Nothing more is queued for a dead socket.
            conn.take_sink(false);
            return;
        }
    };
    let (Some(mut sink), queued) = conn.take_sink(keep) else {
        return;
    };
    let farewell = async {
        for text in queued {
            if sink.feed(Message::Text(text)).await.is_err() {
                return;
            }
        }
        match err {
            Some(err) => {
                let _ = sink.feed(Message::Text(wire::error(&err))).await;
                let frame = CloseFrame {
                    code: err.close_code(),
                    reason: close_reason(&err).into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            // The client left: complete the close handshake if the socket still works.
            None => {
                let _ = sink.close().await;
            }
        }
    };
    // Bounded: a client that never reads again must not keep the task (and its buffers) alive.
    // Boxed: this runs once, at the end, and inline it would make every idle connection's task
    // as large as the goodbye (timer included) for its whole life.
    let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, farewell)).await;
}

/// Runs the writer until it has to stop. A timer is armed only while the socket is full, so an
/// idle connection pays for none.
async fn writer_exit(conn: &ConnHandle, write_timeout: Duration) -> WriterExit {
    loop {
        let stalled = std::future::poll_fn(|cx| match conn.poll_writer(cx) {
            Poll::Ready(exit) => Poll::Ready(Some(exit)),
            Poll::Pending if conn.stalled_for().is_some() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        });
        if let Some(exit) = stalled.await {
            return exit;
        }
        let waited = conn.stalled_for().unwrap_or_default();
        let rest = write_timeout.saturating_sub(waited);
        let writing = std::future::poll_fn(|cx| conn.poll_writer(cx));
        // Boxed: inline, the timer would make every idle connection's writer task larger.
        match Box::pin(tokio::time::timeout(rest, writing)).await {
            Ok(exit) => return exit,
            Err(_) if conn.stalled_for().is_some_and(|d| d >= write_timeout) => {
                tracing::debug!(
                    socket_id = conn.socket_id(),
                    "socket took nothing for write_timeout"
                );
                conn.kill(KillReason::SlowConsumer);
            }
            // It took frames meanwhile and is waiting again: a new stall, a new wait.
            Err(_) => {}
        }
    }
}

/// The error's message, cut to the 123 bytes a close frame can carry (it may quote client input).
fn close_reason(err: &ConnectionError) -> String {
    let mut reason = err.to_string();
    if reason.len() > MAX_CLOSE_REASON {
        let mut cut = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_reason_fits_a_close_frame_on_a_char_boundary() {
        let err = ConnectionError::AppNotFound("é".repeat(100));
        let reason = close_reason(&err);
        assert!(reason.len() <= MAX_CLOSE_REASON);
        assert!(err.to_string().starts_with(&reason));
        assert_eq!(err.close_code(), 4001);
        assert_eq!(ConnectionError::MessageTooLarge(10).close_code(), 1009);
        assert_eq!(ConnectionError::InvalidUtf8.close_code(), 1007);
    }
}
