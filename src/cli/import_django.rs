use crate::config::Config;

/// `roster import-django`: migrates the target database, imports, prints a summary.
/// Exit status 0 when the import ran (conflicts listed), 1 when `--on-conflict fail` refused
/// it, 2 when it could not run.
pub async fn run(config: &Config, args: &crate::import::ImportArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    if args.status {
        return import_status(config).await;
    }
    let result = async {
        config.validate().map_err(|e| e.to_string())?;
        let params = config.hashing.settings()?.params;
        // The import asks PostgreSQL the same `IN (…500 values…)` questions page after page
        // while the table grows inside its transaction; a cached generic plan for those
        // turns into a sequential scan per query (200 rows/s measured). Custom plans use
        // the unique indexes.
        let custom_plans = vec![("plan_cache_mode", "force_custom_plan".to_owned())];
        let admin = crate::db::connect_with(config, Vec::new(), 1)
            .await
            .map_err(|e| e.to_string())?;
        crate::db::migrate(&admin, config)
            .await
            .map_err(|e| e.to_string())?;
        let _ = admin.close().await;
        let db = crate::db::connect(config, custom_plans)
            .await
            .map_err(|e| e.to_string())?;
        let mut report: Box<dyn std::io::Write> = match &args.report {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        let started = std::time::Instant::now();
        // django-otp devices are sealed with the server secret, as roster's own.
        let keys = config
            .tokens
            .server_secret(&config.database_url)?
            .map(|(secret, _)| crate::mfa::Keys::new(&secret));
        let summary = crate::import::run(
            &db,
            args,
            config.hashing.settings()?.limits,
            &params,
            keys.as_ref(),
            &mut report,
        )
        .await
        .map_err(|e| e.to_string())?;
        let _ = db.close().await;
        Ok::<_, String>((summary, started.elapsed()))
    }
    .await;
    match result {
        Ok((s, took)) => {
            let algorithms: Vec<String> = s
                .by_algorithm
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect();
            eprintln!(
                "import-django: {} read, {} imported, {} skipped (already imported), {} deleted in roster (not brought back), {} conflicts, {} warnings in {:.1} s ({:.0} rows/s); by hash: {}",
                s.read,
                s.imported,
                s.skipped,
                s.deleted,
                s.conflicts,
                s.warnings,
                took.as_secs_f64(),
                s.read as f64 / took.as_secs_f64().max(1e-9),
                if algorithms.is_empty() {
                    "none".to_owned()
                } else {
                    algorithms.join(", ")
                }
            );
            if s.perms.groups + s.perms.permissions > 0 {
                eprintln!(
                    "import-django: {} groups, {} permissions, {} new links (user-group, user-permission, group-permission)",
                    s.perms.groups, s.perms.permissions, s.perms.links
                );
            }
            if s.devices.totp + s.devices.recovery_codes + s.devices.not_imported > 0 {
                eprintln!(
                    "import-django: {} TOTP devices, {} recovery codes (django-otp static tokens, allauth recovery codes), {} devices not imported (see the report)",
                    s.devices.totp, s.devices.recovery_codes, s.devices.not_imported
                );
            }
            if s.committed {
                ExitCode::SUCCESS
            } else if args.dry_run {
                eprintln!("import-django: dry run, nothing written");
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "import-django: {} conflicts and --on-conflict fail: nothing written",
                    s.conflicts
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("import-django: {e}");
            ExitCode::from(2)
        }
    }
}

/// `roster import-django --status`: users by stored hash, on standard output; exit 0, or 2
/// when the database could not be read. Reads only; migrates nothing.
async fn import_status(config: &Config) -> std::process::ExitCode {
    use std::process::ExitCode;
    let result = async {
        config.validate().map_err(|e| e.to_string())?;
        let params = config.hashing.settings()?.params;
        // The default URL creates its SQLite file (`mode=rwc`); a status must not.
        if let Some(path) = crate::db::sqlite_file(&config.database_url)
            && !path.exists()
        {
            return Err(format!("no database at {}", path.display()));
        }
        let db = crate::db::connect(config, Vec::new())
            .await
            .map_err(|e| e.to_string())?;
        // Read-only, so it does not migrate; it says so rather than "no such table".
        match crate::migrate::check(&db).await {
            Ok(()) => {}
            Err(crate::migrate::SchemaError::Pending(n)) => {
                return Err(format!(
                    "the database lacks {n} migration(s): run `roster migrate` (or an import) first"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        let status = crate::import::status(&db, &params)
            .await
            .map_err(|e| e.to_string());
        let _ = db.close().await;
        status
    }
    .await;
    match result {
        Ok(s) => {
            println!("users: {} ({} imported from Django)", s.users, s.imported);
            for (algorithm, n) in &s.by_algorithm {
                println!("  {algorithm:<30} {n:>10}");
            }
            println!(
                "to upgrade at next login: {} (hashes other than Argon2id with the configured parameters; {} more on deactivated accounts, which cannot log in)",
                s.to_upgrade, s.to_upgrade_inactive
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("import-django --status: {e}");
            ExitCode::from(2)
        }
    }
}
