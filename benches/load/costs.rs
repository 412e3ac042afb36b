//! The cost of the rules alone and of the worst inputs, timed through the server's code.

use std::time::Instant;

use super::*;

/// Time of the domain rules alone (username, email, password incl. zxcvbn) for the payloads
/// the benchmark sends, to attribute the per-registration overhead.
pub(crate) fn validation_cost() -> String {
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
pub(crate) fn hostile_costs() {
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
