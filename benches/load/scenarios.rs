//! One run: the raw Argon2id rate, registrations, logins, failed-login timing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Params, Version};
use roster::password::engine::{self, Implementation};

use super::*;

pub(crate) async fn one_run(backend: Backend, plan: Plan) -> RunResult {
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
    if only == "raw" || only.is_empty() {
        implementations_phase(plan, &mut result);
    }
    if only == "raw" {
        server.stop();
        database.drop_it().await;
        return result;
    }
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
    if only == "auth" {
        auth_check_phase(&server, plan, &mut result).await;
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
    auth_check_phase(&server, plan, &mut result).await;

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
pub(crate) async fn login_phase(server: &Server, plan: Plan, result: &mut RunResult) {
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
    let all: u64 = server_cpu.values().chain(self_cpu.values()).sum();
    if all > 0 {
        result.login_hash_share =
            server_cpu.get("argon2").copied().unwrap_or(0) as f64 / all as f64;
    }
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

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub(crate) fn cpu_model() -> String {
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

/// The implementation the raw reference measures: the faster of the two, once
/// [`implementations_phase`] has measured both in this run; libsodium's before that.
static REFERENCE: std::sync::OnceLock<Implementation> = std::sync::OnceLock::new();

fn reference() -> Implementation {
    REFERENCE
        .get()
        .copied()
        .unwrap_or_else(Implementation::preferred)
}

/// Both implementations on one thread and on every core, interleaved (A B B A, twice),
/// each rate the mean of its measurements; the faster one on every core becomes the raw
/// reference of the rest of the run.
fn implementations_phase(plan: Plan, result: &mut RunResult) {
    let sodium = Implementation::preferred();
    let crate_ = Implementation::Crate;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for threads in [1, cores()] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            a.push(raw_rate_of(sodium, threads, plan.hash_secs));
            b.push(raw_rate_of(crate_, threads, plan.hash_secs));
            b.push(raw_rate_of(crate_, threads, plan.hash_secs));
            a.push(raw_rate_of(sodium, threads, plan.hash_secs));
        }
        if threads == 1 {
            (result.raw_sodium_one, result.raw_crate_one) = (mean(&a), mean(&b));
        } else {
            (result.raw_sodium_all, result.raw_crate_all) = (mean(&a), mean(&b));
        }
    }
    result.raw_implementation = sodium.name();
    let faster = if result.raw_sodium_all >= result.raw_crate_all {
        sodium
    } else {
        crate_
    };
    let _ = REFERENCE.set(faster);
    eprintln!(
        "raw Argon2id: {} {:.1}/{:.1}, argon2 crate {:.1}/{:.1} (1 thread / all cores); reference: {}",
        sodium.name(),
        result.raw_sodium_one,
        result.raw_sodium_all,
        result.raw_crate_one,
        result.raw_crate_all,
        faster.name()
    );
}

/// Argon2id with the server's default parameters, one thread per core, reused blocks, with
/// the run's reference implementation.
pub(crate) fn raw_hash_rate(secs: f64) -> f64 {
    raw_rate_of(reference(), cores(), secs)
}

/// Argon2id with the server's default parameters on `threads` threads, each in its own
/// reused buffer (the server's), computed by `implementation`.
fn raw_rate_of(implementation: Implementation, threads: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let params = Params::new(19456, 2, 1, None).unwrap();
                // The server's own buffer (huge pages where the kernel gives them).
                let mut blocks = roster::password::BlockMemory::new(params.block_count());
                let mut out = [0u8; 32];
                let salt = [7u8; 16];
                while !stop.load(Ordering::Relaxed) {
                    engine::compute_with(
                        implementation,
                        Algorithm::Argon2id,
                        Version::V0x13,
                        &params,
                        PASSWORD_BASE.as_bytes(),
                        &salt,
                        &mut out,
                        Some(blocks.as_mut()),
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

/// Failed logins on `clients` connections, each alternating an unknown identifier and a
/// wrong password for the login account; the latencies of each kind.
pub(crate) async fn failed_login_timing(
    addr: SocketAddr,
    clients: usize,
    secs: f64,
) -> (Vec<f64>, Vec<f64>) {
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

#[derive(Default)]
pub(crate) struct LoadResult {
    pub(crate) ok_in_window: u64,
    /// Successes over the whole phase, warm-up included.
    pub(crate) ok_total: u64,
    pub(crate) answered_in_window: u64,
    pub(crate) busy: u64,
    pub(crate) other: u64,
    pub(crate) latencies_ms: Vec<f64>,
}

pub(crate) async fn register_load(
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
pub(crate) async fn register_load_on(
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

/// Forward auth: `/auth/check` with a bearer token against `/healthz`, alternating windows on
/// `plan.login_clients` connections (throughput ratio in the same run), then the check's
/// latency from one probe while logins saturate the hash pool.
pub(crate) async fn auth_check_phase(server: &Server, plan: Plan, result: &mut RunResult) {
    let mut conn = Conn::open(server.addr).await.expect("connect");
    // An account of its own: the login load below signs the login account in so often that
    // the session cap ends its oldest sessions, which would turn the probe's checks into 401s.
    let account = login_accounts() + 1;
    let (status, body) = conn
        .send(&register_body(Payload::LoginAccount(account)))
        .await
        .expect("register the auth-check account");
    assert!(
        status == 200 && contains(&body, b"\"register\":{\"id\""),
        "auth-check account: {}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = conn
        .send(&login_body(
            &login_account_name(std::process::id(), account),
            &format!("{PASSWORD_BASE}-login"),
        ))
        .await
        .expect("log in");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    let token = text
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token")
        .to_owned();
    let check =
        format!("GET /auth/check HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n")
            .into_bytes();
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec();
    let mut check_rates = Vec::new();
    let mut healthz_rates = Vec::new();
    for _ in 0..2 {
        healthz_rates
            .push(get_rate(server.addr, &healthz, plan.login_clients, plan.auth_secs).await);
        check_rates.push(get_rate(server.addr, &check, plan.login_clients, plan.auth_secs).await);
    }
    healthz_rates.push(get_rate(server.addr, &healthz, plan.login_clients, plan.auth_secs).await);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // Minting: one GraphQL mutation and one ES256 signature each, then /healthz again.
    let body = r#"{"query":"mutation { accessToken(audience: \"bench\") { token } }"}"#;
    let mint = format!(
        "POST /graphql HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    // A new connection: the first one has been idle past the server's keep-alive timeout.
    let mut conn = Conn::open(server.addr).await.expect("connect");
    let (status, minted) = conn.send(&mint).await.expect("mint");
    if status == 200 && contains(&minted, b"\"accessToken\":{\"token\"") {
        result.mint_rate = get_rate(server.addr, &mint, plan.login_clients, plan.auth_secs).await;
        let after = get_rate(server.addr, &healthz, plan.login_clients, plan.auth_secs).await;
        let before = healthz_rates[healthz_rates.len() - 1];
        result.mint_ratio = result.mint_rate / ((before + after) / 2.0);
    } else {
        // A build without access tokens (ROSTER_BENCH_SERVER=an older one).
        eprintln!(
            "accessToken not measured: {}",
            String::from_utf8_lossy(&minted)
        );
        result.mint_rate = f64::NAN;
        result.mint_ratio = f64::NAN;
    }
    result.auth_check_rate = mean(&check_rates);
    result.auth_healthz_rate = mean(&healthz_rates);
    // Each check window against the mean of the /healthz windows around it.
    let ratios: Vec<f64> = check_rates
        .iter()
        .enumerate()
        .map(|(i, c)| c / ((healthz_rates[i] + healthz_rates[i + 1]) / 2.0))
        .collect();
    result.auth_check_ratio = mean(&ratios);

    // Latency while logins saturate the hash pool.
    let probe = Probes::start_with(server.addr, vec![check]);
    let _ = register_load(
        server.addr,
        plan.login_clients,
        0.3,
        plan.auth_secs,
        Payload::Login,
    )
    .await;
    let latencies = probe.stop_all().await.pop().unwrap();
    result.auth_check_p99_ms = percentile(&latencies, 99.0);
}

/// Answers per second to `request` (a GET) on `clients` keep-alive connections for `secs`.
async fn get_rate(addr: SocketAddr, request: &[u8], clients: usize, secs: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let request = request.to_vec();
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await.expect("connect");
                let mut ok = 0u64;
                while Instant::now() < deadline {
                    if let Ok((200, _)) = conn.send(&request).await {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / secs
}
