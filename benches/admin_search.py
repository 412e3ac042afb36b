#!/usr/bin/env python3
"""Admin search benchmark: `users(filter: {search})` over a 200,000-user base.

    python3 benches/admin_search.py [ROWS]        # default 200000; builds the release binary

Generates a Django-shaped `auth_user` with ROWS users (names `<word><n>`, a handful of words, so
prefixes range from a fifth of the base to one user), imports it into a fresh SQLite file and
a fresh PostgreSQL database (ROSTER_BENCH_PG_URL, default
postgres://postgres@127.0.0.1:5432/postgres), makes an API key holding roster.view_user, serves
the release binary, and asks each search REQUESTS times over one keep-alive connection: the
latency median and p99 (ms), and how many users the first page holds. A search answered by a
table scan would grow with the base (tens of milliseconds at 200,000 rows); one answered from
the canonical indexes stays flat. The query plans themselves are held by the test
`admin::the_user_search_is_answered_from_the_indexes` on both databases.
"""
import http.client
import json
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
REQUESTS = int(os.environ.get("ROSTER_BENCH_REQUESTS", "300"))
PG = os.environ.get("ROSTER_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
HASH = "pbkdf2_sha256$1000000$p1tWFPoC91i4ExDLCHr6OC$DuWreUGFmc6QoMRxo2HvdtNY/WAQ30BYpc4XAMQHGGY="
WORDS = ["alice", "bob", "carol", "dave", "erin"]
PORT = 18790

subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "roster"], cwd=ROOT, check=True)
BIN = os.path.join(ROOT, "target", "release", "roster")
work = tempfile.mkdtemp(prefix="roster_search_bench_")

source = os.path.join(work, "django.sqlite3")
fixture = sqlite3.connect(os.path.join(ROOT, "tests", "django", "auth_user.sqlite3"))
schema = fixture.execute("SELECT sql FROM sqlite_master WHERE name = 'auth_user'").fetchone()[0]
db = sqlite3.connect(source)
db.execute(schema)
db.executemany(
    "INSERT INTO auth_user (id, password, last_login, is_superuser, username, last_name, email, "
    "is_staff, is_active, date_joined, first_name) VALUES (?, ?, NULL, 0, ?, '', ?, 0, 1, "
    "'2024-01-01 12:00:00.000000', '')",
    ((n, HASH, f"{WORDS[n % len(WORDS)]}{n}", f"{WORDS[n % len(WORDS)]}{n}@example.com")
     for n in range(1, ROWS + 1)),
)
db.commit()
db.close()

# (label, search): user n is named WORDS[n % 5] + n. A fifth of the base; 21 users; 2 users by
# a longer prefix; one user by a whole address; nobody. Case and width are folded, as login
# compares.
SEARCHES = [
    ("40,000 users (a fifth of the base)", "alice"),
    ("21 users", "BOB1999"),
    ("2 users", "carol19998"),
    ("one user, by address", "dave199998@example.com"),
    ("nobody", "zed"),
    ("no filter (first page)", None),
]
QUERY = "query($f: UserFilter) { users(filter: $f, first: 20) { edges { node { id } } } }"


def measure(target):
    out = subprocess.run([BIN, "--database-url", target, "import-django", f"sqlite://{source}",
                          "--report", os.path.join(work, "report.jsonl")],
                         capture_output=True, text=True, env={**os.environ, "RUST_LOG": "warn"})
    if out.returncode != 0 or f"{ROWS} imported" not in out.stderr:
        sys.exit(f"import failed: {out.stderr}")
    out = subprocess.run([BIN, "--database-url", target, "apikey", "create", "--name", "bench",
                          "--permission", "roster.view_user"], capture_output=True, text=True)
    key = out.stdout.strip()
    if not key.startswith("rsk_"):
        sys.exit(f"apikey failed: {out.stderr}")
    server = subprocess.Popen([BIN, "--database-url", target, "--listen", f"127.0.0.1:{PORT}",
                               "--request-rate-limit", "off", "--migrate-on-start", "false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "RUST_LOG": "warn"})
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        rows = []
        for label, search in SEARCHES:
            body = json.dumps({"query": QUERY, "variables": {"f": {"search": search} if search else {}}})
            times, found = [], None
            for i in range(REQUESTS + 20):
                started = time.perf_counter()
                conn.request("POST", "/graphql", body, headers)
                answer = json.loads(conn.getresponse().read())
                took = (time.perf_counter() - started) * 1000
                if "errors" in answer:
                    sys.exit(f"{label}: {answer}")
                found = len(answer["data"]["users"]["edges"])
                if i >= 20:  # the first twenty warm the caches
                    times.append(took)
            times.sort()
            rows.append((label, search, found, statistics.median(times), times[int(len(times) * 0.99) - 1]))
        return rows
    finally:
        server.terminate()
        server.wait()


print(f"users(filter: {{search}}) over {ROWS:,} users, {REQUESTS} requests each, {os.cpu_count()} cores")
for backend in ["SQLite", "PostgreSQL"]:
    if backend == "SQLite":
        rows = measure(f"sqlite://{work}/roster_{uuid.uuid4().hex}.db?mode=rwc")
    else:
        name = f"roster_bench_{uuid.uuid4().hex}"
        subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {name}"], check=True)
        try:
            rows = measure(PG.rsplit("/", 1)[0] + "/" + name)
        finally:
            subprocess.run(["psql", PG, "-qc", f"DROP DATABASE {name} WITH (FORCE)"])
    for label, search, found, median, p99 in rows:
        print(f"| {backend} | {label} (`{search}`) | {found} on the page | {median:.2f} ms | {p99:.2f} ms |")
