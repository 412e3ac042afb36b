//! What is sampled while load runs: probes' latency, resident memory, CPU per thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// Two probes on their own connections: `{ __typename }` and `/healthz`, every 5 ms.
pub(crate) struct Probes {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<Vec<f64>>>,
}

impl Probes {
    pub(crate) fn start(addr: SocketAddr) -> Self {
        Self::start_with(
            addr,
            vec![
                graphql_request(r#"{"query":"{ __typename }"}"#),
                b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
            ],
        )
    }

    /// One probe per request, each on its own connection, every 5 ms.
    pub(crate) fn start_with(addr: SocketAddr, requests: Vec<Vec<u8>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = requests
            .into_iter()
            .map(|request| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut conn = Conn::open(addr).await.expect("probe connects");
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        if let Ok((200, _)) = conn.send(&request).await {
                            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            latencies.push(f64::INFINITY);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    latencies
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// The `{ __typename }` and `/healthz` latencies of [`Probes::start`].
    pub(crate) async fn stop(self) -> (Vec<f64>, Vec<f64>) {
        let mut out = self.stop_all().await;
        let healthz = out.pop().unwrap();
        (out.pop().unwrap(), healthz)
    }

    /// Every probe's latencies, in the order of its requests (failures as infinity).
    pub(crate) async fn stop_all(self) -> Vec<Vec<f64>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for t in self.tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}

pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// Samples the server's resident memory every 10 ms on its own thread; returns the peak.
pub(crate) struct RssSampler {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) thread: std::thread::JoinHandle<f64>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak_kib = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak_kib = peak_kib.max(kib);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak_kib as f64 / 1024.0
        });
        Self { stop, thread }
    }

    pub(crate) fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system, in clock ticks) of every thread of `pid`, by thread name.
/// The hash workers' (`argon2-N`) total run time in ns (`schedstat`, exact) and their
/// involuntary context switches (times a request thread or another process preempted one).
pub(crate) fn worker_sched(pid: u32) -> (u64, u64) {
    let (mut run_ns, mut preempted) = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.starts_with("argon2-") {
            continue;
        }
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        run_ns += sched
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        preempted += status
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    (run_ns, preempted)
}

pub(crate) type CpuTicks = std::collections::BTreeMap<String, u64>;

/// Adds `after - before`, thread group by thread group, to `total`.
pub(crate) fn add_delta(total: &mut CpuTicks, before: &CpuTicks, after: &CpuTicks) {
    for (group, ticks) in after {
        let delta = ticks.saturating_sub(before.get(group).copied().unwrap_or(0));
        *total.entry(group.clone()).or_insert(0) += delta;
    }
}

pub(crate) fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may contain spaces; fields follow the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        // Group numbered workers (argon2-0, argon2-1) under one name.
        let group = match name.rsplit_once('-') {
            Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) => base.to_owned(),
            _ => name,
        };
        *out.entry(group).or_insert(0) += ticks;
    }
    out
}

pub(crate) fn cpu_split(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    self_before: &std::collections::BTreeMap<String, u64>,
    self_after: &std::collections::BTreeMap<String, u64>,
) -> String {
    let hz = 100.0; // USER_HZ on Linux
    let delta = |a: &std::collections::BTreeMap<String, u64>,
                 b: &std::collections::BTreeMap<String, u64>| {
        a.iter()
            .map(|(k, v)| (k.clone(), (v - b.get(k).copied().unwrap_or(0)) as f64 / hz))
            .filter(|(_, secs)| *secs > 0.0)
            .collect::<Vec<_>>()
    };
    let mut parts: Vec<String> = delta(after, before)
        .into_iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    let bench: f64 = delta(self_after, self_before).iter().map(|(_, v)| v).sum();
    parts.push(format!("bench {bench:.2}"));
    parts.join(", ")
}
