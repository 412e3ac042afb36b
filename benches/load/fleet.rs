//! `cargo bench --bench load -- fleet`: 1, 2 and 3 roster processes on one PostgreSQL, the
//! load spread evenly over them. Reports total register throughput (and its ratio to the
//! raw Argon2id rate measured just before), each process's CPU, and PostgreSQL's own CPU
//! per registration (every `postgres` process on this machine, from `/proc`), from which
//! docs/benchmarks-log.md works out how many roster processes one PostgreSQL can feed.

use super::{
    Backend, BenchDatabase, Payload, Plan, Server, cores, first_answer, raw_hash_rate,
    register_load, thread_cpu,
};

/// USER_HZ on Linux.
const HZ: f64 = 100.0;

/// CPU ticks of every process named `postgres`.
fn postgres_ticks() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in procs.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != "postgres" {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total += ticks(11) + ticks(12);
    }
    total
}

/// All CPU ticks of one process, every thread.
fn process_ticks(pid: u32) -> u64 {
    thread_cpu(pid).values().sum()
}

pub fn run(runtime: &tokio::runtime::Runtime, plan: Plan) {
    println!("\n## Several processes on one PostgreSQL (register load spread evenly)\n");
    println!(
        "| processes | register req/s, total | raw Argon2id/s | ratio | CPU per process, cores | PostgreSQL CPU per registration, ms |"
    );
    println!("|---|---|---|---|---|---|");
    for n in 1..=3usize {
        let (line, ok) = runtime.block_on(async {
            let database = BenchDatabase::create(Backend::Postgres).await;
            // The first start migrates; the others find the schema current.
            let first = Server::start(&database.url);
            let mut servers = vec![first];
            for _ in 1..n {
                servers.push(Server::start(&database.url));
            }
            for s in &servers {
                first_answer(s.addr).await;
            }
            let raw = raw_hash_rate(plan.hash_secs);
            let cpu_before: Vec<u64> = servers.iter().map(|s| process_ticks(s.pid)).collect();
            let pg_before = postgres_ticks();
            let started = std::time::Instant::now();
            let mut loads = Vec::new();
            for s in &servers {
                loads.push(tokio::spawn(register_load(
                    s.addr,
                    plan.register_clients / n,
                    plan.warmup_secs,
                    plan.register_secs,
                    Payload::Unique,
                )));
            }
            let mut ok = 0;
            let mut other = 0;
            for l in loads {
                let r = l.await.expect("load task");
                ok += r.ok_in_window;
                other += r.other;
            }
            let wall = started.elapsed().as_secs_f64();
            let pg = (postgres_ticks() - pg_before) as f64 / HZ;
            let per_process: Vec<String> = servers
                .iter()
                .zip(&cpu_before)
                .map(|(s, b)| format!("{:.2}", (process_ticks(s.pid) - b) as f64 / HZ / wall))
                .collect();
            // Registrations over the whole measured span (warm-up included), for PG's share.
            let rate = ok as f64 / plan.register_secs;
            let total_regs = rate * wall;
            for s in servers {
                s.stop();
            }
            database.drop_it().await;
            (
                format!(
                    "| {n} | {rate:.1} | {raw:.1} | {:.3} | {} | {:.2} |",
                    rate / raw,
                    per_process.join(" / "),
                    pg * 1000.0 / total_regs.max(1.0)
                ),
                other == 0 && ok > 0,
            )
        });
        println!("{line}");
        if !ok {
            eprintln!("fleet run with {n} processes: registrations failed");
            std::process::exit(1);
        }
    }
    println!(
        "\n(this machine: {} cores; every process has one hash worker per core, so the processes \
         share the same cores)",
        cores()
    );
}
