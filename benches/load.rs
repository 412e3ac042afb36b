//! roster's load benchmark: one command measures every performance target against the real
//! release binary, on SQLite and on PostgreSQL, and prints a table.
//!
//! ```text
//! cargo bench --bench load -- all      # 3 runs per database, medians with min–max
//! cargo bench --bench load -- sqlite   # one database only (also: postgres)
//! cargo bench --bench load -- smoke    # a few seconds, SQLite; what CI runs so this can't rot
//! ```
//!
//! Method (details in docs/benchmarks-log.md): the server is the `roster` binary in a child process with
//! default settings except `--register-rate-limit off --request-rate-limit off
//! --max-connections-per-ip 100000 --login-rate-limit off --login-failure-limit off` (one load
//! generator is one client address, logging in to one account). The load generator is a minimal
//! HTTP/1.1 keep-alive client on one thread, so it takes as little CPU from the server as
//! possible. The raw Argon2id rate is measured in the same run, same parameters, one thread per
//! core, with the server idle; throughput is reported as a ratio to it: registrations between
//! one raw measurement before and one after, logins in four short windows alternating with
//! five raw measurements (each window against the mean of the two around it). Throughput
//! counts answers completed inside the window. The server's log goes to a file. Peak RSS is
//! the server's `/proc/<pid>/status` VmRSS sampled every 10 ms.
//!
//! `ROSTER_BENCH_ONLY=login|ratio|register|invalid` runs one phase; `ROSTER_BENCH_RUNS=N`;
//! `ROSTER_BENCH_SERVER=/path/to/roster` serves the load from another build;
//! `ROSTER_BENCH_LOGIN_ACCOUNTS=N` spreads the logins over N accounts (default 1).
//!
//! PostgreSQL: `ROSTER_BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`;
//! a query string is kept, e.g. `?sslmode=disable`, or `?host=/var/run/postgresql` for the
//! Unix socket); a fresh database is created per run and dropped afterwards.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use sea_orm::{ConnectionTrait, Database};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const PASSWORD_BASE: &str = "bench-Quartz-Lantern";

#[derive(Clone, Copy)]
struct Plan {
    runs: usize,
    hash_secs: f64,
    warmup_secs: f64,
    register_secs: f64,
    register_clients: usize,
    invalid_secs: f64,
    invalid_clients: usize,
    duplicate_secs: f64,
    flood_secs: f64,
    flood_clients: usize,
    /// The login phase alternates raw-rate measurements and login load: `login_slices`
    /// windows of `login_secs` each (after `login_warmup_secs`), with a raw measurement of
    /// `slice_raw_secs` before the first and after every one.
    login_slices: usize,
    login_secs: f64,
    login_warmup_secs: f64,
    slice_raw_secs: f64,
    login_clients: usize,
    timing_secs: f64,
}

const FULL: Plan = Plan {
    runs: 3,
    hash_secs: 4.0,
    warmup_secs: 2.0,
    register_secs: 10.0,
    register_clients: 64,
    invalid_secs: 4.0,
    invalid_clients: 32,
    duplicate_secs: 3.0,
    flood_secs: 6.0,
    flood_clients: 500,
    login_slices: 4,
    login_secs: 3.0,
    login_warmup_secs: 1.0,
    slice_raw_secs: 2.0,
    login_clients: 64,
    timing_secs: 10.0,
};

const SMOKE: Plan = Plan {
    runs: 1,
    hash_secs: 0.5,
    warmup_secs: 0.2,
    register_secs: 1.0,
    register_clients: 8,
    invalid_secs: 0.5,
    invalid_clients: 8,
    duplicate_secs: 0.3,
    flood_secs: 0.5,
    flood_clients: 50,
    login_slices: 1,
    login_secs: 1.0,
    login_warmup_secs: 0.2,
    slice_raw_secs: 0.5,
    login_clients: 8,
    timing_secs: 1.0,
};

/// `fleet`: several processes on one PostgreSQL.
#[path = "load/fleet.rs"]
mod fleet;

fn main() {
    // `cargo bench` passes `--bench`; take the first other word as the mode.
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "all".into());
    let (plan, backends): (Plan, Vec<Backend>) = match mode.as_str() {
        "all" => (FULL, vec![Backend::Sqlite, Backend::Postgres]),
        "sqlite" => (FULL, vec![Backend::Sqlite]),
        "postgres" => (FULL, vec![Backend::Postgres]),
        "smoke" => (SMOKE, vec![Backend::Sqlite]),
        "fleet" => (FULL, vec![]),
        other => {
            eprintln!("unknown mode {other:?}: use all, sqlite, postgres, fleet or smoke");
            std::process::exit(2);
        }
    };
    println!(
        "validation cost per registration (in-process, median of 200): {}",
        validation_cost()
    );
    hostile_costs();
    let plan = Plan {
        runs: std::env::var("ROSTER_BENCH_RUNS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(plan.runs),
        ..plan
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "roster load benchmark: mode {mode}, {} cores, {}",
        cores(),
        cpu_model()
    );
    if mode == "fleet" {
        fleet::run(&runtime, plan);
        return;
    }
    let mut tables = Vec::new();
    for backend in backends {
        let mut runs = Vec::new();
        for run in 1..=plan.runs {
            eprintln!("[{}] run {run}/{}", backend.name(), plan.runs);
            runs.push(runtime.block_on(one_run(backend, plan)));
        }
        tables.push((backend, runs));
    }
    let mut failed = false;
    for (backend, runs) in &tables {
        println!(
            "\n## {}  ({} run(s); median [min–max])\n",
            backend.name(),
            runs.len()
        );
        println!("| metric | value | target |");
        println!("|---|---|---|");
        for row in ROWS {
            let values: Vec<f64> = runs.iter().map(|r| (row.get)(r)).collect();
            // The client counts are the plan's (smoke runs use fewer than the full run).
            let name = row
                .name
                .replace("{register}", &plan.register_clients.to_string())
                .replace("{login}", &plan.login_clients.to_string())
                .replace("{flood}", &plan.flood_clients.to_string());
            println!(
                "| {} | {} | {} |",
                name,
                summary(&values, row.decimals),
                row.target
            );
        }
        failed |= runs.iter().any(|r| {
            r.register_other > 0 || r.register_ok == 0 || r.login_other > 0 || r.login_ok == 0
        });
        println!(
            "\nCPU seconds during the register phase (server threads by name; bench = this load generator):"
        );
        for (i, r) in runs.iter().enumerate() {
            println!(
                "- run {}: {}; raw Argon2id {}; login phase: {}; raw Argon2id between the login \
                 windows {}; hash worker {:.2} ms CPU per login (raw: {:.2} ms per hash per \
                 core), preempted {:.2} times per login",
                i + 1,
                r.cpu_split,
                r.raw_spread,
                r.login_cpu_split,
                r.login_raw_spread,
                r.login_worker_ms_per_hash,
                1000.0 * cores() as f64 / r.raw_after_login,
                r.login_preemptions_per_hash
            );
        }
    }
    if mode == "smoke" {
        // Smoke mode checks that every phase ran and registrations succeeded, not timings.
        if failed {
            eprintln!("smoke run: registrations failed");
            std::process::exit(1);
        }
        println!("\n1 passed, 0 failed");
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Default, Clone)]
struct RunResult {
    raw_hash_rate: f64,
    register_rate: f64,
    register_p50_ms: f64,
    register_p90_ms: f64,
    register_p99_ms: f64,
    register_ok: u64,
    register_other: u64,
    typename_p50_ms: f64,
    typename_p99_ms: f64,
    healthz_p99_ms: f64,
    register_peak_rss_mib: f64,
    invalid_rate: f64,
    duplicate_rate: f64,
    flood_peak_rss_mib: f64,
    flood_busy: u64,
    flood_typename_p50_ms: f64,
    flood_typename_p99_ms: f64,
    flood_healthz_p99_ms: f64,
    startup_ms: f64,
    /// Where the CPU went during the register phase, by thread group.
    cpu_split: String,
    /// The two raw-rate measurements behind `raw_hash_rate`.
    raw_spread: String,
    invalid_named_rate: f64,
    /// The mean of the login phase's raw measurements.
    raw_after_login: f64,
    login_rate: f64,
    login_ok: u64,
    login_other: u64,
    login_p50_ms: f64,
    login_p99_ms: f64,
    unknown_p50_ms: f64,
    unknown_p99_ms: f64,
    wrong_p50_ms: f64,
    wrong_p99_ms: f64,
    /// The raw rate after the register phase (second half of the register bracket).
    raw_after_register: f64,
    /// Where the CPU went during the login phase.
    login_cpu_split: String,
    /// Hash-worker CPU per login (schedstat run time ÷ successful logins, warm-up included).
    login_worker_ms_per_hash: f64,
    /// Involuntary context switches of the hash workers per login.
    login_preemptions_per_hash: f64,
    /// Logins in the windows ÷ what the raw rate, interpolated across each window, would
    /// have hashed in them.
    login_ratio: f64,
    /// Every raw measurement of the login phase, in order.
    login_raw_spread: String,
}

struct Row {
    name: &'static str,
    get: fn(&RunResult) -> f64,
    decimals: usize,
    target: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        name: "raw Argon2id rate, hashes/s (all cores)",
        get: |r| r.raw_hash_rate,
        decimals: 1,
        target: "reference",
    },
    Row {
        name: "register throughput, req/s ({register} clients)",
        get: |r| r.register_rate,
        decimals: 1,
        target: "",
    },
    Row {
        name: "**throughput ÷ raw hash rate**",
        get: |r| r.register_rate / r.raw_hash_rate,
        decimals: 3,
        target: "≥ 0.95",
    },
    Row {
        name: "register latency p50, ms",
        get: |r| r.register_p50_ms,
        decimals: 1,
        target: "",
    },
    Row {
        name: "register latency p90, ms",
        get: |r| r.register_p90_ms,
        decimals: 1,
        target: "",
    },
    Row {
        name: "register latency p99, ms",
        get: |r| r.register_p99_ms,
        decimals: 1,
        target: "",
    },
    Row {
        name: "register errors (non-success answers)",
        get: |r| r.register_other as f64,
        decimals: 0,
        target: "0",
    },
    Row {
        name: "`{ __typename }` p50 under register load, ms",
        get: |r| r.typename_p50_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "**`{ __typename }` p99 under register load, ms**",
        get: |r| r.typename_p99_ms,
        decimals: 2,
        target: "≤ 5",
    },
    Row {
        name: "**`/healthz` p99 under register load, ms**",
        get: |r| r.healthz_p99_ms,
        decimals: 2,
        target: "≤ 5",
    },
    Row {
        name: "peak RSS during register load, MiB",
        get: |r| r.register_peak_rss_mib,
        decimals: 1,
        target: "",
    },
    Row {
        name: "**peak RSS during {flood}-connection flood, MiB**",
        get: |r| r.flood_peak_rss_mib,
        decimals: 1,
        target: "≤ 150",
    },
    Row {
        name: "flood answers shed with SERVER_BUSY",
        get: |r| r.flood_busy as f64,
        decimals: 0,
        target: "",
    },
    Row {
        name: "`{ __typename }` p50 during the flood, ms",
        get: |r| r.flood_typename_p50_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "`{ __typename }` p99 during the flood, ms",
        get: |r| r.flood_typename_p99_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "`/healthz` p99 during the flood, ms",
        get: |r| r.flood_healthz_p99_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "**invalid registrations, req/s** (every field invalid)",
        get: |r| r.invalid_rate,
        decimals: 0,
        target: "≥ 10000",
    },
    Row {
        name: "invalid registrations with a well-formed username, req/s (+1 DB lookup)",
        get: |r| r.invalid_named_rate,
        decimals: 0,
        target: "",
    },
    Row {
        name: "duplicate-username registrations, req/s (no hash)",
        get: |r| r.duplicate_rate,
        decimals: 0,
        target: "≫ hash rate",
    },
    Row {
        name: "login throughput, req/s ({login} clients, right password)",
        get: |r| r.login_rate,
        decimals: 1,
        target: "",
    },
    Row {
        name: "**login throughput ÷ raw hash rate**",
        get: |r| r.login_ratio,
        decimals: 3,
        target: "≥ 0.9",
    },
    Row {
        name: "login latency p50, ms ({login} clients)",
        get: |r| r.login_p50_ms,
        decimals: 1,
        target: "",
    },
    Row {
        name: "login latency p99, ms",
        get: |r| r.login_p99_ms,
        decimals: 1,
        target: "",
    },
    Row {
        name: "failed login p50, unknown identifier, ms (interleaved)",
        get: |r| r.unknown_p50_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "failed login p50, wrong password, ms (interleaved)",
        get: |r| r.wrong_p50_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "**p50 unknown ÷ p50 wrong password**",
        get: |r| r.unknown_p50_ms / r.wrong_p50_ms,
        decimals: 3,
        target: "0.9–1.1",
    },
    Row {
        name: "failed login p99, unknown identifier, ms",
        get: |r| r.unknown_p99_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "failed login p99, wrong password, ms",
        get: |r| r.wrong_p99_ms,
        decimals: 2,
        target: "",
    },
    Row {
        name: "**p99 unknown ÷ p99 wrong password**",
        get: |r| r.unknown_p99_ms / r.wrong_p99_ms,
        decimals: 3,
        target: "0.9–1.1",
    },
    Row {
        name: "**start-up to first answer (migrated DB), ms**",
        get: |r| r.startup_ms,
        decimals: 1,
        target: "≤ 1000",
    },
];

fn summary(values: &[f64], decimals: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let median = v[v.len() / 2];
    if v.len() == 1 {
        format!("{median:.decimals$}")
    } else {
        format!(
            "{median:.decimals$} [{:.decimals$}–{:.decimals$}]",
            v[0],
            v[v.len() - 1]
        )
    }
}

async fn one_run(backend: Backend, plan: Plan) -> RunResult {
    let database = BenchDatabase::create(backend).await;
    let mut result = RunResult::default();

    // First start applies the migrations; the measured start-up is the second one.
    let server = Server::start(&database.url);
    server.stop();
    let started = Instant::now();
    let server = Server::start(&database.url);
    result.startup_ms = first_answer(server.addr)
        .await
        .map_or(f64::NAN, |_| started.elapsed().as_secs_f64() * 1000.0);

    eprintln!("server pid {}", server.pid);
    // `ROSTER_BENCH_ONLY=register` runs just the register phase (for attaching a profiler);
    // `ratio` the register phase between its two raw-rate measurements, and nothing else
    // (any build can serve it, see `ROSTER_BENCH_SERVER`).
    let only = std::env::var("ROSTER_BENCH_ONLY").unwrap_or_default();
    let only_register = only == "register";
    let only_ratio = only == "ratio";
    if only == "invalid" {
        let invalid = register_load(
            server.addr,
            plan.invalid_clients,
            0.5,
            8.0,
            Payload::Invalid,
        )
        .await;
        result.invalid_rate = invalid.answered_in_window as f64 / 8.0;
        server.stop();
        database.drop_it().await;
        return result;
    }
    if only == "login" {
        // The login phase alone between two raw-rate measurements (for comparing changes to
        // the login path quickly; the full run measures the same phase the same way).
        login_phase(&server, plan, &mut result).await;
        server.stop();
        database.drop_it().await;
        return result;
    }
    // The raw rate is measured just before and just after the register phase and averaged,
    // so a noisy neighbour shifts both sides of the ratio alike.
    let raw_before = if only_register {
        f64::NAN
    } else {
        raw_hash_rate(plan.hash_secs)
    };

    // Register load with probes and RSS sampling.
    let cpu_before = thread_cpu(server.pid);
    let self_before = thread_cpu(std::process::id());
    let sampler = RssSampler::start(server.pid);
    let probes = Probes::start(server.addr);
    let load = register_load(
        server.addr,
        plan.register_clients,
        plan.warmup_secs,
        plan.register_secs,
        Payload::Unique,
    )
    .await;
    let (typename, healthz) = probes.stop().await;
    result.register_peak_rss_mib = sampler.stop();
    if !only_register {
        let raw_after = raw_hash_rate(plan.hash_secs);
        result.raw_after_register = raw_after;
        result.raw_hash_rate = (raw_before + raw_after) / 2.0;
        result.raw_spread = format!("{raw_before:.1} before, {raw_after:.1} after");
    }
    result.cpu_split = cpu_split(
        &cpu_before,
        &thread_cpu(server.pid),
        &self_before,
        &thread_cpu(std::process::id()),
    );
    result.register_rate = load.ok_in_window as f64 / plan.register_secs;
    result.register_ok = load.ok_in_window;
    result.register_other = load.other;
    result.register_p50_ms = percentile(&load.latencies_ms, 50.0);
    result.register_p90_ms = percentile(&load.latencies_ms, 90.0);
    result.register_p99_ms = percentile(&load.latencies_ms, 99.0);
    result.typename_p50_ms = percentile(&typename, 50.0);
    result.typename_p99_ms = percentile(&typename, 99.0);
    result.healthz_p99_ms = percentile(&healthz, 99.0);

    if only_register || only_ratio {
        server.stop();
        database.drop_it().await;
        return result;
    }

    login_phase(&server, plan, &mut result).await;

    // Invalid input: validation errors only, nothing to hash.
    let invalid = register_load(
        server.addr,
        plan.invalid_clients,
        0.5,
        plan.invalid_secs,
        Payload::Invalid,
    )
    .await;
    result.invalid_rate = invalid.answered_in_window as f64 / plan.invalid_secs;

    // Same, but with a well-formed username: one indexed lookup for `taken` as well.
    let invalid_named = register_load(
        server.addr,
        plan.invalid_clients,
        0.5,
        plan.invalid_secs,
        Payload::InvalidNamed,
    )
    .await;
    result.invalid_named_rate = invalid_named.answered_in_window as f64 / plan.invalid_secs;

    // A taken username (otherwise valid): the pre-check answers without hashing.
    let dup = register_load(
        server.addr,
        plan.invalid_clients,
        0.3,
        plan.duplicate_secs,
        Payload::Duplicate,
    )
    .await;
    result.duplicate_rate = dup.answered_in_window as f64 / plan.duplicate_secs;

    // Flood: many connections at once; memory must stay bounded and queries keep answering.
    let sampler = RssSampler::start(server.pid);
    let probes = Probes::start(server.addr);
    let flood = register_load(
        server.addr,
        plan.flood_clients,
        0.0,
        plan.flood_secs,
        Payload::Unique,
    )
    .await;
    let (typename, healthz) = probes.stop().await;
    result.flood_peak_rss_mib = sampler.stop();
    result.flood_busy = flood.busy;
    result.flood_typename_p50_ms = percentile(&typename, 50.0);
    result.flood_typename_p99_ms = percentile(&typename, 99.0);
    result.flood_healthz_p99_ms = percentile(&healthz, 99.0);

    server.stop();
    database.drop_it().await;
    result
}

/// Logins: one account (or `ROSTER_BENCH_LOGIN_ACCOUNTS`), the right password, as many
/// clients as the register phase; then failed logins, an unknown identifier and a wrong
/// password interleaved on each connection so both see the same load, for the timing
/// comparison.
async fn login_phase(server: &Server, plan: Plan, result: &mut RunResult) {
    let mut conn = Conn::open(server.addr).await.expect("connect");
    for account in 0..login_accounts() {
        let (status, body) = conn
            .send(&register_body(Payload::LoginAccount(account)))
            .await
            .expect("register a login account");
        assert!(
            status == 200 && contains(&body, b"\"register\":{\"id\""),
            "login account: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // Slices of load between raw measurements: this machine's raw rate moves by a quarter
    // within a minute, so one measurement on each side of a long phase says little about
    // the middle of it.
    let mut raws = vec![raw_hash_rate(plan.slice_raw_secs)];
    let (mut server_cpu, mut self_cpu) = (CpuTicks::new(), CpuTicks::new());
    let (mut worker_ns, mut preempted, mut ok_total, mut ok, mut expected) = (0, 0, 0, 0, 0.0);
    let mut latencies = Vec::new();
    // The same connections for every window, as in one long phase.
    let mut conns: Vec<Option<Conn>> = (0..plan.login_clients).map(|_| None).collect();
    for _ in 0..plan.login_slices {
        let cpu_before = thread_cpu(server.pid);
        let self_before = thread_cpu(std::process::id());
        let workers_before = worker_sched(server.pid);
        let (login, kept) = register_load_on(
            server.addr,
            conns,
            plan.login_warmup_secs,
            plan.login_secs,
            Payload::Login,
        )
        .await;
        conns = kept;
        add_delta(&mut server_cpu, &cpu_before, &thread_cpu(server.pid));
        add_delta(&mut self_cpu, &self_before, &thread_cpu(std::process::id()));
        let workers_after = worker_sched(server.pid);
        worker_ns += workers_after.0 - workers_before.0;
        preempted += workers_after.1 - workers_before.1;
        ok_total += login.ok_total;
        ok += login.ok_in_window;
        result.login_other += login.other;
        latencies.extend(login.latencies_ms);
        let raw_after = raw_hash_rate(plan.slice_raw_secs);
        expected += plan.login_secs * (raws[raws.len() - 1] + raw_after) / 2.0;
        raws.push(raw_after);
    }
    let empty = CpuTicks::new();
    result.login_cpu_split = cpu_split(&empty, &server_cpu, &empty, &self_cpu);
    if ok_total > 0 {
        result.login_worker_ms_per_hash = worker_ns as f64 / 1e6 / ok_total as f64;
        result.login_preemptions_per_hash = preempted as f64 / ok_total as f64;
    }
    result.login_ok = ok;
    result.login_rate = ok as f64 / (plan.login_secs * plan.login_slices as f64);
    result.login_ratio = ok as f64 / expected;
    result.raw_after_login = raws.iter().sum::<f64>() / raws.len() as f64;
    result.login_raw_spread = raws
        .iter()
        .map(|r| format!("{r:.1}"))
        .collect::<Vec<_>>()
        .join(", ");
    result.login_p50_ms = percentile(&latencies, 50.0);
    result.login_p99_ms = percentile(&latencies, 99.0);
    let (unknown, wrong) = failed_login_timing(server.addr, cores() * 2, plan.timing_secs).await;
    result.unknown_p50_ms = percentile(&unknown, 50.0);
    result.unknown_p99_ms = percentile(&unknown, 99.0);
    result.wrong_p50_ms = percentile(&wrong, 50.0);
    result.wrong_p99_ms = percentile(&wrong, 99.0);
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Argon2id with the server's default parameters, one thread per core, reused blocks.
fn raw_hash_rate(secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let params = Params::new(19456, 2, 1, None).unwrap();
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                // The server's own buffer (huge pages where the kernel gives them).
                let mut blocks = roster::password::BlockMemory::new(params.block_count());
                let mut out = [0u8; 32];
                let salt = [7u8; 16];
                while !stop.load(Ordering::Relaxed) {
                    argon2
                        .hash_password_into_with_memory(
                            PASSWORD_BASE.as_bytes(),
                            &salt,
                            &mut out,
                            &mut blocks,
                        )
                        .unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Skip the first half second (thread start, page faults), then count.
    std::thread::sleep(Duration::from_millis(500));
    let start_count = count.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let hashes = count.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    hashes as f64 / elapsed
}

struct BenchDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

impl BenchDatabase {
    async fn create(backend: Backend) -> Self {
        let name = format!("roster_bench_{}", uuid::Uuid::now_v7().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("ROSTER_BENCH_PG_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let db = Database::connect(&admin)
                    .await
                    .expect("PostgreSQL reachable");
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                db.close().await.ok();
                // The database name is the path's last segment; a query string (`?host=` for
                // a Unix socket, `?sslmode=`) stays as it is.
                let (path, query) = admin
                    .split_once('?')
                    .map_or((admin.as_str(), None), |(p, q)| (p, Some(q)));
                let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                Self {
                    url: format!("{base}/{name}{query}"),
                    cleanup: Cleanup::Postgres { admin, name },
                }
            }
        }
    }

    async fn drop_it(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin, name } => {
                if let Ok(db) = Database::connect(&admin).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    db.close().await.ok();
                }
            }
        }
    }
}

struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

impl Server {
    fn start(database_url: &str) -> Self {
        // `ROSTER_BENCH_SERVER` runs another build (an older release, for a before/after
        // under one harness and one raw-rate reference). Settings go by environment so a
        // build that predates one of them still starts (clap ignores unknown variables).
        let binary = std::env::var("ROSTER_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roster").to_owned());
        // The log goes to a file, as a service's log file would: read through a pipe, every
        // line would wake a reader thread here, and on two cores that wake-up preempts a hash
        // worker — a cost of this harness, not of roster.
        let log_path = std::env::temp_dir().join(format!(
            "roster_bench_{}_{}.log",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        let log = std::fs::File::create(&log_path).expect("server log file");
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .env("ROSTER_REGISTER_RATE_LIMIT", "off")
            .env("ROSTER_REQUEST_RATE_LIMIT", "off")
            // The flood models many clients; from one address it would mostly measure the
            // per-address connection cap instead.
            .env("ROSTER_MAX_CONNECTIONS_PER_IP", "100000")
            // One load generator logs in to one account, over and over.
            .env("ROSTER_LOGIN_RATE_LIMIT", "off")
            .env("ROSTER_LOGIN_FAILURE_LIMIT", "off")
            .env("DATABASE_URL", database_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start roster");
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(|line| {
                line.trim()
                    .strip_prefix("roster is ready: GraphiQL at http://")
                    .map(|rest| rest.trim_end_matches("/graphql").to_owned())
            }) {
                break addr.parse().expect("address");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("roster exited ({status}) before it was ready; its log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "roster did not start; its log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = std::fs::remove_file(&log_path);
        let pid = child.id();
        Self { child, pid, addr }
    }

    /// SIGTERM, as an orchestrator would, then wait.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn first_answer(addr: SocketAddr) -> Option<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let request = graphql_request(r#"{"query":"{ __typename }"}"#);
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(addr).await
            && let Ok((200, _)) = conn.send(&request).await
        {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// A minimal HTTP/1.1 keep-alive client: one request at a time, Content-Length bodies.
struct Conn {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.get_mut().write_all(request).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

fn graphql_request(body: &str) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Clone, Copy, PartialEq)]
enum Payload {
    /// A fresh username and email every time: every request hashes.
    Unique,
    /// Every field invalid (bad username characters, bad email, short password): validation
    /// errors only, no database query, no hash.
    Invalid,
    /// A well-formed username with a bad email and a short password: validation errors plus
    /// the `taken` lookup, no hash.
    InvalidNamed,
    /// A taken username with otherwise valid input: caught by the pre-check.
    Duplicate,
    /// Registers the `n`th account the login phase uses (the first one also serves the
    /// failed-login timing).
    LoginAccount(usize),
    /// A login with the right password: one verification, one session row.
    Login,
}

fn login_body(identifier: &str, password: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"query":"mutation L($i: LoginInput!) {{ login(input: $i) {{ token }} }}","variables":{{"i":{{"identifier":"{identifier}","password":"{password}"}}}}}}"#
    );
    graphql_request(&body)
}

/// Failed logins on `clients` connections, each alternating an unknown identifier and a
/// wrong password for the login account; the latencies of each kind.
async fn failed_login_timing(addr: SocketAddr, clients: usize, secs: f64) -> (Vec<f64>, Vec<f64>) {
    let run = std::process::id();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(async move {
                let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
                let Ok(mut conn) = Conn::open(addr).await else {
                    return (unknown, wrong);
                };
                let mut n = c;
                while Instant::now() < end {
                    n += 1;
                    let is_unknown = n % 2 == 0;
                    let request = if is_unknown {
                        login_body(&format!("nobody_{run}_{n}"), &format!("{PASSWORD_BASE}-x"))
                    } else {
                        login_body(&format!("bench_login_{run}"), &format!("{PASSWORD_BASE}-x"))
                    };
                    let sent = Instant::now();
                    let Ok((200, body)) = conn.send(&request).await else {
                        continue;
                    };
                    let ms = sent.elapsed().as_secs_f64() * 1000.0;
                    if contains(&body, b"INVALID_CREDENTIALS") {
                        if is_unknown {
                            unknown.push(ms);
                        } else {
                            wrong.push(ms);
                        }
                    }
                }
                (unknown, wrong)
            })
        })
        .collect();
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for task in tasks {
        let (u, w) = task.await.unwrap();
        unknown.extend(u);
        wrong.extend(w);
    }
    (unknown, wrong)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many accounts the login phase spreads its logins over, round robin
/// (`ROSTER_BENCH_LOGIN_ACCOUNTS`, default 1: every login is the same user's, the worst case
/// for the database, which serializes them on that user's row).
fn login_accounts() -> usize {
    std::env::var("ROSTER_BENCH_LOGIN_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// The `account`th login account of this run; the first is also the failed-login timing's.
fn login_account_name(run: u32, account: usize) -> String {
    if account == 0 {
        format!("bench_login_{run}")
    } else {
        format!("bench_login_{run}_{account}")
    }
}

fn register_body(payload: Payload) -> Vec<u8> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let run = std::process::id();
    let (username, email, password) = match payload {
        Payload::Login => {
            // Round robin over the accounts, in another case than registered (the canonical
            // lookup is part of the path measured).
            let name = login_account_name(run, n as usize % login_accounts()).to_uppercase();
            return login_body(&name, &format!("{PASSWORD_BASE}-login"));
        }
        Payload::Unique => (
            format!("bench_{run}_{n}"),
            format!("bench_{run}_{n}@example.com"),
            format!("{PASSWORD_BASE}-{n}"),
        ),
        Payload::Invalid => (
            format!("bad name {run} {n}!"),
            "not-an-email".to_owned(),
            "short".to_owned(),
        ),
        Payload::InvalidNamed => (
            format!("bench_bad_{run}_{n}"),
            "not-an-email".to_owned(),
            "short".to_owned(),
        ),
        Payload::Duplicate => (
            format!("bench_{run}_0"),
            format!("dup_{run}_{n}@example.com"),
            format!("{PASSWORD_BASE}-{n}"),
        ),
        Payload::LoginAccount(account) => {
            let name = login_account_name(run, account);
            let email = format!("{name}@example.com");
            (name, email, format!("{PASSWORD_BASE}-login"))
        }
    };
    let body = format!(
        r#"{{"query":"mutation R($i: RegisterInput!) {{ register(input: $i) {{ id }} }}","variables":{{"i":{{"username":"{username}","email":"{email}","password":"{password}"}}}}}}"#
    );
    graphql_request(&body)
}

#[derive(Default)]
struct LoadResult {
    ok_in_window: u64,
    /// Successes over the whole phase, warm-up included.
    ok_total: u64,
    answered_in_window: u64,
    busy: u64,
    other: u64,
    latencies_ms: Vec<f64>,
}

async fn register_load(
    addr: SocketAddr,
    clients: usize,
    warmup: f64,
    secs: f64,
    payload: Payload,
) -> LoadResult {
    let conns = (0..clients).map(|_| None).collect();
    register_load_on(addr, conns, warmup, secs, payload).await.0
}

/// [`register_load`] with one client per element of `conns`, each on the connection it holds
/// (or a new one); the connections come back for the next phase, so a load in slices does
/// not reconnect between them.
async fn register_load_on(
    addr: SocketAddr,
    conns: Vec<Option<Conn>>,
    warmup: f64,
    secs: f64,
    payload: Payload,
) -> (LoadResult, Vec<Option<Conn>>) {
    if payload == Payload::Duplicate {
        // Make sure the duplicated name exists.
        let mut conn = Conn::open(addr).await.expect("connect");
        COUNTER.store(0, Ordering::Relaxed);
        let _ = conn.send(&register_body(Payload::Unique)).await;
    }
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(warmup);
    let end = window_start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|held| {
            tokio::spawn(async move {
                let mut result = LoadResult::default();
                let mut conn = match held {
                    Some(conn) => conn,
                    None => match Conn::open(addr).await {
                        Ok(conn) => conn,
                        Err(_) => {
                            result.other += 1;
                            return (result, None);
                        }
                    },
                };
                while Instant::now() < end {
                    let request = register_body(payload);
                    let sent = Instant::now();
                    let answer = conn.send(&request).await;
                    let done = Instant::now();
                    // Throughput is answers *completed* in the window, whenever they were
                    // sent. Requiring the send in the window too would drop the answers of
                    // about the window's first latency (with 64 clients queued on two
                    // workers a login takes ~0.7 s, so ~7% of a 10 s window).
                    let in_window = done >= window_start && done <= end;
                    match answer {
                        Ok((200, body))
                            if contains(&body, b"\"register\":{\"id\"")
                                || contains(&body, b"\"login\":{\"token\"") =>
                        {
                            result.ok_total += 1;
                            if in_window {
                                result.ok_in_window += 1;
                                result.answered_in_window += 1;
                                result
                                    .latencies_ms
                                    .push((done - sent).as_secs_f64() * 1000.0);
                            }
                        }
                        Ok((200, body))
                            if payload != Payload::Unique && contains(&body, b"BAD_USER_INPUT") =>
                        {
                            if in_window {
                                result.answered_in_window += 1;
                            }
                        }
                        Ok((503, _)) => {
                            result.busy += 1;
                        }
                        Ok(_) => result.other += 1,
                        Err(_) => {
                            result.other += 1;
                            match Conn::open(addr).await {
                                Ok(c) => conn = c,
                                Err(_) => return (result, None),
                            }
                        }
                    }
                }
                (result, Some(conn))
            })
        })
        .collect();
    let mut total = LoadResult::default();
    let mut kept = Vec::new();
    for task in tasks {
        let (r, conn) = task.await.unwrap();
        kept.push(conn);
        total.ok_in_window += r.ok_in_window;
        total.ok_total += r.ok_total;
        total.answered_in_window += r.answered_in_window;
        total.busy += r.busy;
        total.other += r.other;
        total.latencies_ms.extend(r.latencies_ms);
    }
    (total, kept)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Two probes on their own connections: `{ __typename }` and `/healthz`, every 5 ms.
struct Probes {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<f64>>>,
}

impl Probes {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = [
            graphql_request(r#"{"query":"{ __typename }"}"#),
            b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
        ];
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

    async fn stop(self) -> (Vec<f64>, Vec<f64>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for t in self.tasks {
            out.push(t.await.unwrap());
        }
        let healthz = out.pop().unwrap();
        (out.pop().unwrap(), healthz)
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// Samples the server's resident memory every 10 ms on its own thread; returns the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
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

    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
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
fn worker_sched(pid: u32) -> (u64, u64) {
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

type CpuTicks = std::collections::BTreeMap<String, u64>;

/// Adds `after - before`, thread group by thread group, to `total`.
fn add_delta(total: &mut CpuTicks, before: &CpuTicks, after: &CpuTicks) {
    for (group, ticks) in after {
        let delta = ticks.saturating_sub(before.get(group).copied().unwrap_or(0));
        *total.entry(group.clone()).or_insert(0) += delta;
    }
}

fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, u64> {
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

fn cpu_split(
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

/// Time of the domain rules alone (username, email, password incl. zxcvbn) for the payloads
/// the benchmark sends, to attribute the per-registration overhead.
fn validation_cost() -> String {
    use roster::accounts::{Email, Password, Username};
    let policy = roster::config::Config::defaults().policy.policy().unwrap();
    let mut parts = Vec::new();
    for (what, password) in [
        ("valid", format!("{PASSWORD_BASE}-12345")),
        ("invalid", "short".to_owned()),
    ] {
        let mut times: Vec<f64> = (0..200)
            .map(|n| {
                let username = format!("bench_1_{n}");
                let email = format!("bench_1_{n}@example.com");
                let started = Instant::now();
                let _ = Username::parse(&username, &policy);
                let _ = Email::parse(&email);
                let _ = Password::parse(
                    roster::password::Plaintext::new(password.clone()),
                    &policy.password,
                    Some(&username),
                    Some(&email),
                );
                started.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        parts.push(format!("{what} input {:.0} µs", times[times.len() / 2]));
    }
    parts.join(", ")
}

/// The worst inputs an attacker can send, timed through the same code the server runs: the
/// document checker (before async-graphql sees a document) and the registration rules (what
/// `AccountService::validate` runs on the blocking pool). Target: ≤ 2 ms each.
fn hostile_costs() {
    use roster::accounts::{Email, Password, Username};
    let config = roster::config::Config::defaults();
    let policy = config.policy.policy().unwrap();
    let checker = roster::graphql::document_checker(&config.limits);
    let variables = async_graphql::Variables::default();

    let long_name: String = "a".repeat(62_000);
    let expanding: String = "\u{FDFA}".repeat(600); // NFKC: 18 characters each
    let long_email = format!("{}@example.com", "b".repeat(64_000));
    let password_like_name = format!("{}1!", "a".repeat(126));
    let mut fan_out = String::from("{ ...F0 }\n");
    for i in 0..24 {
        fan_out.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    fan_out.push_str("fragment F24 on Query { __typename }");
    let many_tokens = "{ a b c d e f g h }".repeat(6_000);
    let many_args = format!(
        "{{ passwordPolicy({}) {{ minLength }} }}",
        "x: 1 ".repeat(12_000)
    );
    let many_aliases: String = format!(
        "{{ {} }}",
        (0..214)
            .map(|i| format!("a{i}: __schema {{ types {{ name }} }}"))
            .collect::<String>()
    );

    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let cases: Vec<Case> = vec![
        (
            "username of 62,000 characters, compared with the password",
            Box::new(|| {
                let u = Username::parse(&long_name, &policy);
                let _ = Password::parse(
                    roster::password::Plaintext::new(long_name.clone()),
                    &policy.password,
                    u.as_ref().ok().map(|u| u.as_str()),
                    None,
                );
            }),
        ),
        (
            "username of 600 U+FDFA (NFKC ×18)",
            Box::new(|| {
                let _ = Username::parse(&expanding, &policy);
            }),
        ),
        (
            "email of 64,000 characters",
            Box::new(|| {
                let _ = Email::parse(&long_email);
            }),
        ),
        (
            "128-character password vs a 150-character username",
            Box::new(|| {
                let name = "a".repeat(150);
                let _ = Password::parse(
                    roster::password::Plaintext::new(password_like_name.clone()),
                    &policy.password,
                    Some(&name),
                    Some("a@example.com"),
                );
            }),
        ),
        (
            "fragment fan-out, 24 levels (2^24 fields)",
            Box::new(|| {
                let _ = checker.prepare(&fan_out, None, &variables);
            }),
        ),
        (
            "48,000 tokens",
            Box::new(|| {
                let _ = checker.prepare(&many_tokens, None, &variables);
            }),
        ),
        (
            "12,000 repeated arguments",
            Box::new(|| {
                let _ = checker.prepare(&many_args, None, &variables);
            }),
        ),
        (
            "214 aliased introspection selections",
            Box::new(|| {
                let _ = checker.prepare(&many_aliases, None, &variables);
            }),
        ),
    ];
    println!(
        "\nhostile inputs (in-process, the server's own code; median and max of 50; target ≤ 2 ms each):\n"
    );
    println!("| input | median, ms | max, ms |");
    println!("|---|---|---|");
    for (name, run) in &cases {
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let started = Instant::now();
                run();
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {name} | {:.3} | {:.3} |",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    println!();
}
