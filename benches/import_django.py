#!/usr/bin/env python3
"""Import benchmark: `roster import-django` over a generated 200,000-user Django table.

    python3 benches/import_django.py [ROWS]       # default 200000; builds the release binary

Generates a Django-shaped `auth_user` (the schema Django 5.2's `migrate` makes, copied from
tests/django/auth_user.sqlite3) with ROWS users carrying PBKDF2 hashes (importing verifies
nothing, so one hash string serves), then imports it into a fresh SQLite file and a fresh
PostgreSQL database (ROSTER_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres),
three times each, and prints rows/s (median, min–max; wall time of the whole command:
start-up, migrations, import, commit) and the importer's peak RSS (VmHWM, polled).
"""
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
RUNS = int(os.environ.get("ROSTER_BENCH_RUNS", "3"))
PG = os.environ.get("ROSTER_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
HASH = "pbkdf2_sha256$1000000$p1tWFPoC91i4ExDLCHr6OC$DuWreUGFmc6QoMRxo2HvdtNY/WAQ30BYpc4XAMQHGGY="

subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "roster"], cwd=ROOT, check=True)
BIN = os.path.join(ROOT, "target", "release", "roster")
work = tempfile.mkdtemp(prefix="roster_import_bench_")

source = os.path.join(work, "django.sqlite3")
fixture = sqlite3.connect(os.path.join(ROOT, "tests", "django", "auth_user.sqlite3"))
schema = fixture.execute("SELECT sql FROM sqlite_master WHERE name = 'auth_user'").fetchone()[0]
db = sqlite3.connect(source)
db.execute(schema)
db.executemany(
    "INSERT INTO auth_user (id, password, last_login, is_superuser, username, last_name, email, "
    "is_staff, is_active, date_joined, first_name) VALUES (?, ?, NULL, 0, ?, '', ?, 0, 1, "
    "'2024-01-01 12:00:00.000000', '')",
    ((n, HASH, f"user{n}", f"user{n}@example.com") for n in range(1, ROWS + 1)),
)
db.commit()
db.close()


def run(target):
    started = time.monotonic()
    child = subprocess.Popen(
        [BIN, "--database-url", target, "import-django", f"sqlite://{source}",
         "--report", os.path.join(work, "report.jsonl")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"})
    peak_kib = 0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    took = time.monotonic() - started
    err = child.stderr.read()
    if child.returncode != 0 or f"{ROWS} imported" not in err:
        sys.exit(f"import failed: {err}")
    return ROWS / took, peak_kib / 1024


def pg_database():
    name = f"roster_bench_{uuid.uuid4().hex}"
    subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {name}"], check=True)
    return name, PG.rsplit("/", 1)[0] + "/" + name


print(f"roster import-django, {ROWS} users, {os.cpu_count()} cores")
for backend in ["SQLite", "PostgreSQL"]:
    rates, peaks = [], []
    for _ in range(RUNS):
        if backend == "SQLite":
            target = f"sqlite://{work}/roster_{uuid.uuid4().hex}.db?mode=rwc"
            rate, peak = run(target)
        else:
            name, target = pg_database()
            try:
                rate, peak = run(target)
            finally:
                subprocess.run(["psql", PG, "-qc", f"DROP DATABASE {name} WITH (FORCE)"])
        rates.append(rate)
        peaks.append(peak)
    print(f"| {backend} | {statistics.median(rates):,.0f} [{min(rates):,.0f}–{max(rates):,.0f}] rows/s "
          f"| peak RSS {max(peaks):.0f} MiB |")
