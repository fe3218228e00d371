//! `floor`: what one delivery costs the kernel on this machine, with no server at all.
//!
//! A fan-out server at a low rate makes one `send` per delivered frame, and on loopback the
//! receiving socket's TCP work runs inside that `send` and is charged to the sender. This scenario
//! does only that: one thread writes a frame-sized buffer to each of N accepted loopback sockets,
//! `rate` times per second (a burst per tick, like a broadcast), while another thread reads them.
//! The writer's own CPU time per write (CLOCK_THREAD_CPUTIME_ID) is the floor under any server's
//! "CPU per delivered message" at rates where writes cannot be coalesced.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub struct FloorOpts {
    pub sockets: usize,
    pub rate: f64,
    pub bytes: usize,
    pub duration_secs: f64,
}

fn thread_cpu_secs() -> f64 {
    // SAFETY: clock_gettime writes into the zeroed timespec we own.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

pub fn run(o: &FloorOpts) -> Result<Value> {
    if o.sockets == 0 || o.bytes == 0 || o.rate <= 0.0 {
        bail!("floor needs --sockets, --bytes and --rate above 0");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(o.sockets);
    let mut writers = Vec::with_capacity(o.sockets);
    for _ in 0..o.sockets {
        let r = TcpStream::connect(addr).context("connect")?;
        let (w, _) = listener.accept().context("accept")?;
        // As a server sets it: small frames go out at once.
        w.set_nodelay(true)?;
        r.set_nonblocking(true)?;
        readers.push(r);
        writers.push(w);
    }

    // The reader: a busy poller would hide the wake-up cost a real client causes, so it sleeps
    // between sweeps, like an event loop that has nothing to do.
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let stop = Arc::clone(&stop);
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let mut got = 0u64;
                for r in readers.iter_mut() {
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        got += n as u64;
                    }
                }
                received.fetch_add(got, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };

    let frame = vec![b'x'; o.bytes];
    let tick = Duration::from_secs_f64(1.0 / o.rate);
    let ticks = (o.duration_secs * o.rate).ceil().max(1.0) as u64;
    let start = Instant::now();
    let cpu0 = thread_cpu_secs();
    let mut writes = 0u64;
    for t in 0..ticks {
        for w in writers.iter_mut() {
            w.write_all(&frame)?;
            writes += 1;
        }
        let next = start + tick * (t as u32 + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = thread_cpu_secs() - cpu0;
    let elapsed = start.elapsed().as_secs_f64();
    // Let the reader drain (bounded) before counting.
    let expected = writes * o.bytes as u64;
    let drain_until = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let got = received.load(Ordering::Relaxed);
    Ok(json!({
        "scenario": "floor",
        "ok": got == expected,
        "sockets": o.sockets,
        "target_rate": o.rate,
        "frame_bytes": o.bytes,
        "writes": writes,
        "writes_per_sec": writes as f64 / elapsed,
        "bytes_received": got,
        "bytes_expected": expected,
        "writer_cpu_us_per_write": cpu * 1e6 / writes.max(1) as f64,
        "writer_cores": cpu / elapsed,
    }))
}
