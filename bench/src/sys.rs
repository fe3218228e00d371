//! Process figures from `/proc` and `getrusage`, the clock shared by publisher and subscribers, and
//! the open-files limit.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the tool started: the publisher writes it into each payload and the
/// subscribers subtract it from their own reading (same process, same monotonic clock).
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds of a process, from `/proc/<pid>/stat`.
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This process's own user + system CPU seconds.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Raises the open-files soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain get/set of our own limits.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur
    }
}

/// CPU used by the server and by this tool over a stretch of wall time.
pub struct CpuMeter {
    pid: Option<u32>,
    server0: Option<f64>,
    tool0: f64,
    wall0: Instant,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuUse {
    pub wall_secs: f64,
    /// None when no `--server-pid` was given.
    pub server_cpu_secs: Option<f64>,
    pub tool_cpu_secs: f64,
}

impl CpuUse {
    /// Cores busy on average.
    pub fn server_cores(&self) -> Option<f64> {
        self.server_cpu_secs.map(|s| s / self.wall_secs.max(1e-9))
    }
    pub fn tool_cores(&self) -> f64 {
        self.tool_cpu_secs / self.wall_secs.max(1e-9)
    }
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            server0: pid.and_then(proc_cpu_secs),
            tool0: self_cpu_secs(),
            wall0: Instant::now(),
        }
    }

    pub fn read(&self) -> CpuUse {
        let server = match (self.pid.and_then(proc_cpu_secs), self.server0) {
            (Some(b), Some(a)) => Some(b - a),
            _ => None,
        };
        CpuUse {
            wall_secs: self.wall0.elapsed().as_secs_f64(),
            server_cpu_secs: server,
            tool_cpu_secs: self_cpu_secs() - self.tool0,
        }
    }
}

/// Sleeps until `deadline` unless it has passed.
pub async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        tokio::time::sleep(deadline - now).await;
    }
}

pub fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d.max(0.0))
}
