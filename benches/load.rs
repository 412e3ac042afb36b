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
//! `ROSTER_BENCH_ONLY=login|auth|ratio|register|invalid` runs one phase; `ROSTER_BENCH_RUNS=N`;
//! `ROSTER_BENCH_SERVER=/path/to/roster` serves the load from another build;
//! `ROSTER_BENCH_LOGIN_ACCOUNTS=N` spreads the logins over N accounts (default 1).
//!
//! PostgreSQL: `ROSTER_BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`;
//! a query string is kept, e.g. `?sslmode=disable`, or `?host=/var/run/postgresql` for the
//! Unix socket); a fresh database is created per run and dropped afterwards.

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
    /// Each window of the forward-auth phase (`/auth/check` against `/healthz`).
    auth_secs: f64,
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
    auth_secs: 3.0,
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
    auth_secs: 0.5,
};

/// The HTTP client and the request bodies.
#[path = "load/client.rs"]
mod client;
/// The rules' own cost and the worst inputs.
#[path = "load/costs.rs"]
mod costs;
/// `fleet`: several processes on one PostgreSQL.
#[path = "load/fleet.rs"]
mod fleet;
/// Probes, memory and CPU sampled during load.
#[path = "load/sampling.rs"]
mod sampling;
/// One run of every phase.
#[path = "load/scenarios.rs"]
mod scenarios;
/// The server under test and its scratch database.
#[path = "load/server.rs"]
mod server;

use client::*;
use costs::*;
use sampling::*;
use scenarios::*;
use server::*;

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
    /// `libsodium-<simd>`: the implementation measured against the crate.
    raw_implementation: String,
    /// Raw Argon2id rates of both implementations, one thread and all cores.
    raw_sodium_one: f64,
    raw_crate_one: f64,
    raw_sodium_all: f64,
    raw_crate_all: f64,
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
    /// The hash workers' CPU ÷ the CPU of the server's threads and the load generator during
    /// the login windows: what the throughput ratio would be if the raw rate held still. It
    /// moves with the work outside the hash, where the ratio drowns a change of a few points
    /// in the raw rate's drift (docs/benchmarks-log.md, "Login on SQLite in three hand-offs").
    login_hash_share: f64,
    /// Logins in the windows ÷ what the raw rate, interpolated across each window, would
    /// have hashed in them.
    login_ratio: f64,
    /// Every raw measurement of the login phase, in order.
    login_raw_spread: String,
    /// `/auth/check` (bearer) and `/healthz` answers per second, and their ratio per window.
    auth_check_rate: f64,
    auth_healthz_rate: f64,
    auth_check_ratio: f64,
    /// `/auth/check` p99 while logins saturate the hash pool.
    auth_check_p99_ms: f64,
    /// `accessToken` answers per second (one session, no limit), and ÷ `/healthz`.
    mint_rate: f64,
    mint_ratio: f64,
}

struct Row {
    name: &'static str,
    get: fn(&RunResult) -> f64,
    decimals: usize,
    target: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        name: "**`/auth/check` ÷ `/healthz` throughput** ({login} connections each)",
        get: |r| r.auth_check_ratio,
        decimals: 3,
        target: "≥ 0.5",
    },
    Row {
        name: "`/auth/check` (bearer), checks/s",
        get: |r| r.auth_check_rate,
        decimals: 0,
        target: "",
    },
    Row {
        name: "`accessToken` (ES256 JWT) minted/s, {login} connections, one session",
        get: |r| r.mint_rate,
        decimals: 0,
        target: "",
    },
    Row {
        name: "`accessToken` ÷ `/healthz` throughput",
        get: |r| r.mint_ratio,
        decimals: 3,
        target: "",
    },
    Row {
        name: "`/auth/check` p99 while logins saturate the hash pool, ms",
        get: |r| r.auth_check_p99_ms,
        decimals: 2,
        target: "≤ 2",
    },
    Row {
        name: "raw Argon2id, libsodium, hashes/s, 1 thread",
        get: |r| r.raw_sodium_one,
        decimals: 1,
        target: "",
    },
    Row {
        name: "raw Argon2id, argon2 crate, hashes/s, 1 thread",
        get: |r| r.raw_crate_one,
        decimals: 1,
        target: "",
    },
    Row {
        name: "**libsodium ÷ argon2 crate, 1 thread**",
        get: |r| r.raw_sodium_one / r.raw_crate_one,
        decimals: 3,
        target: "",
    },
    Row {
        name: "raw Argon2id, libsodium, hashes/s, all cores",
        get: |r| r.raw_sodium_all,
        decimals: 1,
        target: "",
    },
    Row {
        name: "raw Argon2id, argon2 crate, hashes/s, all cores",
        get: |r| r.raw_crate_all,
        decimals: 1,
        target: "",
    },
    Row {
        name: "**libsodium ÷ argon2 crate, all cores**",
        get: |r| r.raw_sodium_all / r.raw_crate_all,
        decimals: 3,
        target: "",
    },
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
        name: "hash workers' share of the CPU during the login windows (server + load generator)",
        get: |r| r.login_hash_share,
        decimals: 3,
        target: "",
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
