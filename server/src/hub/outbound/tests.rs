//! Tests of the queue, the writer's protocol and corks, on a fake sink.

use super::*;
use std::future::poll_fn;

/// A sink that takes `room` frames, then is full until given more room.
#[derive(Default)]
struct TestSink {
    state: Arc<Mutex<SinkState>>,
}

#[derive(Default)]
struct SinkState {
    room: usize,
    written: Vec<String>,
    waker: Option<std::task::Waker>,
    flushes: usize,
}

impl Sink<Message> for TestSink {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let mut s = self.state.lock();
        if s.room > 0 {
            Poll::Ready(Ok(()))
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), axum::Error> {
        let mut s = self.state.lock();
        if let Message::Text(t) = item {
            s.room -= 1;
            s.written.push(t.as_str().to_owned());
        }
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        self.state.lock().flushes += 1;
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
}

fn with_sink(room: usize, capacity: usize) -> (ConnHandle, Arc<Mutex<SinkState>>) {
    let sink = TestSink::default();
    sink.state.lock().room = room;
    let state = Arc::clone(&sink.state);
    (
        ConnHandle::new("1.1".into(), frames(capacity), Some(Box::pin(sink))),
        state,
    )
}

/// A limit in frames only.
fn frames(frames: usize) -> QueueLimit {
    QueueLimit {
        frames,
        bytes: usize::MAX / 2,
    }
}

fn frame(s: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(s)
}

#[tokio::test]
async fn full_queue_marks_slow_consumer() {
    let h = ConnHandle::new("1.1".into(), frames(2), None);
    assert!(h.send(&frame("x")));
    assert!(h.send(&frame("y")));
    assert!(!h.send(&frame("z")));
    assert_eq!(h.killed().await, KillReason::SlowConsumer);
    // The first reason wins; nothing more is queued once killed.
    h.kill(KillReason::Terminated);
    assert_eq!(h.killed().await, KillReason::SlowConsumer);
    assert!(!h.send(&frame("w")));
    assert_eq!(h.take_queued(), ["x", "y"]);
}

#[tokio::test]
async fn every_waiter_sees_the_kill() {
    let h = ConnHandle::new("1.1".into(), frames(1), None);
    let (a, b) = (h.clone(), h.clone());
    let reader = tokio::spawn(async move { a.killed().await });
    let writer = tokio::spawn(async move { poll_fn(|cx| b.poll_writer(cx)).await });
    tokio::task::yield_now().await;
    h.kill(KillReason::Terminated);
    assert_eq!(reader.await.unwrap(), KillReason::Terminated);
    assert!(matches!(
        writer.await.unwrap(),
        WriterExit::Killed(KillReason::Terminated)
    ));
}

#[test]
fn a_cork_writes_each_connection_once_in_order() {
    let (a, sa) = with_sink(100, 10);
    let (b, sb) = with_sink(100, 10);
    {
        let _cork = Cork::new();
        for f in [frame("1"), frame("2"), frame("3")] {
            a.send(&f);
            b.send(&f);
        }
        // Nothing written while corked.
        assert!(sa.lock().written.is_empty());
    }
    for s in [&sa, &sb] {
        let s = s.lock();
        assert_eq!(s.written, ["1", "2", "3"]);
        assert_eq!(s.flushes, 1);
    }
    // Without a cork a frame waits for the writer task.
    a.send(&frame("4"));
    assert_eq!(sa.lock().written.len(), 3);
}

#[tokio::test]
async fn what_a_full_socket_leaves_the_writer_writes_in_order() {
    let (h, s) = with_sink(2, 10);
    {
        let _cork = Cork::new();
        for f in [frame("1"), frame("2"), frame("3"), frame("4")] {
            h.send(&f);
        }
    }
    assert_eq!(s.lock().written, ["1", "2"]);
    // Queued behind the writer now, not written by the next cork.
    {
        let _cork = Cork::new();
        h.send(&frame("5"));
    }
    assert_eq!(s.lock().written, ["1", "2"]);
    let writer = {
        let h = h.clone();
        tokio::spawn(async move { poll_fn(|cx| h.poll_writer(cx)).await })
    };
    tokio::task::yield_now().await;
    // The socket drains: the writer goes on where the cork stopped.
    let waker = {
        let mut st = s.lock();
        st.room = 100;
        st.waker.take()
    };
    waker.expect("the writer waits on the sink").wake();
    tokio::task::yield_now().await;
    assert_eq!(s.lock().written, ["1", "2", "3", "4", "5"]);
    h.finish(None);
    assert!(matches!(writer.await.unwrap(), WriterExit::Ended(None)));
    let (sink, rest) = h.take_sink(true);
    assert!(sink.is_some() && rest.is_empty());
    assert!(!h.send(&frame("6")));
}

#[test]
fn a_drained_burst_gives_its_memory_back() {
    let (h, s) = with_sink(1000, 1000);
    {
        let _cork = Cork::new();
        for _ in 0..200 {
            h.send(&frame("x"));
        }
    }
    // Written 64 at a time; the rest waits for the writer, which would run the same drain.
    assert_eq!(s.lock().written.len(), WRITE_BATCH);
    let mut cx = Context::from_waker(noop_waker_ref());
    while h.0.out.lock().drain(&mut cx).is_pending() {}
    assert_eq!(s.lock().written.len(), 200);
    assert!(h.0.out.lock().queue.capacity() <= KEEP_CAPACITY);
}

#[tokio::test]
async fn a_queue_is_bounded_in_bytes_too() {
    let limit = QueueLimit {
        frames: 100,
        bytes: 10,
    };
    let h = ConnHandle::new("1.1".into(), limit, None);
    // One frame is always taken, even over the limit; then the bytes count.
    assert!(h.send(&frame("0123456789ab")));
    assert!(!h.send(&frame("x")));
    assert_eq!(h.killed().await, KillReason::SlowConsumer);
    let h = ConnHandle::new("1.1".into(), limit, None);
    assert!(h.send(&frame("01234")));
    assert!(h.send(&frame("56789")));
    assert!(!h.send(&frame("!")));
}

#[tokio::test]
async fn a_full_socket_is_reported_stalled_until_it_takes_frames() {
    let (h, s) = with_sink(1, 10);
    {
        let _cork = Cork::new();
        h.send(&frame("1"));
        h.send(&frame("2"));
    }
    assert_eq!(s.lock().written, ["1"]);
    assert!(h.stalled_for().is_some());
    s.lock().room = 10;
    let mut cx = Context::from_waker(noop_waker_ref());
    let _ = h.0.out.lock().drain(&mut cx);
    assert_eq!(s.lock().written, ["1", "2"]);
    assert!(h.stalled_for().is_none());
}

#[test]
fn nested_corks_write_once_at_the_outer_end() {
    let (h, s) = with_sink(100, 10);
    let outer = Cork::new();
    {
        let _inner = Cork::new();
        h.send(&frame("1"));
    }
    assert!(s.lock().written.is_empty());
    drop(outer);
    assert_eq!(s.lock().written, ["1"]);
}
