//! The docs' tables held to the code: change an error code, a flag, its environment name or
//! its default, or rename a test the Security table names, without the doc, and one of these
//! goes red.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The cells of every row of the table whose header row is `header` (in order), trimmed.
/// `|` inside backticks does not split a cell.
fn table(doc: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "no table headed `{header}`");
    lines
        .skip(1) // |---|---|
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for c in line.trim().trim_matches('|').chars() {
        match c {
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

/// Every `` `x` `` in a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// The string value of every `pub const NAME: &str = "value";` in a source file.
fn string_consts(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub const ")?;
            let (_, value) = rest.split_once(": &str = \"")?;
            Some(value.strip_suffix("\";")?.to_owned())
        })
        .collect()
}

#[test]
fn the_error_table_lists_exactly_the_codes_the_code_defines() {
    let source = read("src/error.rs");
    let start = source
        .find("pub mod codes")
        .expect("src/error.rs has `mod codes`");
    let defined = string_consts(&source[start..]);
    assert!(defined.len() >= 10, "{defined:?}");
    let doc = read("docs/errors.md");
    let rows = table(&doc, "| code | HTTP status | when |");
    let documented: Vec<String> = rows.iter().map(|r| code_spans(&r[0]).concat()).collect();
    let unique: BTreeSet<String> = documented.iter().cloned().collect();
    assert_eq!(
        documented.len(),
        unique.len(),
        "one row per code: {documented:?}"
    );
    assert_eq!(
        unique, defined,
        "docs/errors.md against src/error.rs `codes`"
    );
}

#[test]
fn the_field_code_table_lists_exactly_the_field_codes_the_rules_produce() {
    let source = read("src/accounts/mod.rs");
    let start = source
        .find("pub mod codes")
        .expect("src/accounts/mod.rs has `mod codes`");
    let end = start + source[start..].find("\n}").unwrap();
    let defined = string_consts(&source[start..end]);
    let doc = read("docs/errors.md");
    let documented: BTreeSet<String> = table(&doc, "| field | code | rule |")
        .iter()
        .flat_map(|r| code_spans(&r[1]))
        .filter(|c| !c.contains(' ') && !c.contains('*'))
        .collect();
    assert_eq!(
        documented, defined,
        "docs/errors.md field codes against src/accounts/mod.rs"
    );
}

#[test]
fn the_configuration_table_matches_every_flag_env_name_and_default() {
    let command = roster::cli::Cli::command();
    let mut in_code: BTreeMap<String, (Option<String>, Vec<String>)> = BTreeMap::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let defaults = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        in_code.insert(format!("--{long}"), (env, defaults));
    }
    assert!(in_code.len() > 40, "{}", in_code.len());

    let doc = read("docs/configuration.md");
    let rows = table(&doc, "| flag | env | default | meaning |");
    let mut seen = BTreeSet::new();
    for row in &rows {
        let flag = code_spans(&row[0]).concat();
        assert!(seen.insert(flag.clone()), "{flag} is documented twice");
        let Some((env, defaults)) = in_code.get(&flag) else {
            panic!("docs/configuration.md documents {flag}, which `roster` does not have");
        };
        let doc_env = code_spans(&row[1]).concat();
        assert_eq!(Some(&doc_env), env.as_ref(), "{flag}: environment variable");
        let default = &row[2];
        match defaults.as_slice() {
            [] => assert!(
                default.starts_with("none"),
                "{flag} has no default; the doc says {default:?}"
            ),
            values => {
                let want = format!("`{}`", values.join(","));
                assert!(
                    default.starts_with(&want),
                    "{flag}: default is {want}; the doc says {default:?}"
                );
            }
        }
        assert!(!row[3].is_empty(), "{flag} has no meaning");
    }
    let missing: Vec<&String> = in_code.keys().filter(|f| !seen.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

/// Every `fn name` in a file, as a set.
fn functions(path: &Path) -> BTreeSet<String> {
    let Ok(source) = std::fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    source
        .split("fn ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[test]
fn every_test_the_security_table_names_exists() {
    let doc = read("docs/security.md");
    let rows = table(
        &doc,
        "| protection | default | setting | test that fails without it |",
    );
    assert!(rows.len() > 30, "{}", rows.len());
    let mut named = 0;
    for row in &rows {
        let tests = row.last().unwrap();
        for name in code_spans(tests) {
            if name.starts_with(".ci/") {
                assert!(root().join(&name).exists(), "{name} does not exist");
                named += 1;
                continue;
            }
            if !name.contains("::") {
                continue; // prose in code (`last_login`), not a test name
            }
            let parts: Vec<&str> = name.split("::").collect();
            let (function, modules) = parts.split_last().unwrap();
            let files: Vec<PathBuf> = if modules[0] == "sodium_argon2" {
                // The workspace's libsodium crate: one file.
                vec![root().join("libsodium/src/lib.rs")]
            } else if modules.len() == 1 {
                vec![root().join(format!("tests/api/{}.rs", modules[0]))]
            } else {
                // A unit test: `a::b::tests::name` lives in src/a/b.rs or src/a/b/mod.rs.
                let path: Vec<&str> = modules.iter().copied().filter(|m| *m != "tests").collect();
                let base = root().join("src").join(path.join("/"));
                vec![base.with_extension("rs"), base.join("mod.rs")]
            };
            assert!(
                files.iter().any(|f| functions(f).contains(*function)),
                "docs/security.md names `{name}`, which is not a test in {files:?}"
            );
            named += 1;
        }
    }
    assert!(named > 50, "{named}");
}

#[test]
fn every_link_between_the_docs_resolves() {
    let mut docs: Vec<PathBuf> = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (_, rest) in text.match_indices("](").map(|(i, _)| ((), &text[i + 2..])) {
            let target: String = rest.chars().take_while(|c| *c != ')').collect();
            if target.starts_with("http")
                || target.starts_with('#')
                || target.starts_with("mailto:")
            {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let path = doc.parent().unwrap().join(file);
            assert!(path.exists(), "{}: broken link to {target}", doc.display());
        }
    }
}

/// docs/architecture.md's rule, held to the code: the domain owns its types and never reads
/// the command line's structs; `config` builds the domain's types, never the other way.
#[test]
fn the_domain_never_imports_config() {
    let domain = [
        "src/accounts",
        "src/password",
        "src/ratelimit",
        "src/sessions",
        "src/outbox",
        "src/webhooks",
        "src/mail",
        "src/auth",
        "src/tokens",
        "src/admin",
        "src/entity",
        "src/error.rs",
        "src/deadline.rs",
        "src/metrics.rs",
        "src/migrate.rs",
        "src/strict_json.rs",
        "src/telemetry.rs",
    ];
    let mut files = Vec::new();
    for place in domain {
        let path = root().join(place);
        if path.is_dir() {
            let mut stack = vec![path];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(dir).unwrap() {
                    let p = entry.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "rs") {
                        files.push(p);
                    }
                }
            }
        } else {
            files.push(path);
        }
    }
    assert!(files.len() > 30, "{}", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("crate::config"),
            "{} imports config: the domain must own its types (config builds them)",
            file.display()
        );
    }
}
