#!/bin/bash
# Instructions per login on the request path, counted by callgrind: the one figure on this
# noisy machine that repeats to within a fraction of a percent from run to run. roster runs
# under valgrind with a 64 KiB, one-pass Argon2id (the hash is then a small, fixed part);
# one client logs in 50 times to warm up, the counters are zeroed, then it logs in N times
# (default 300) on one keep-alive connection. Prints instructions per login for the whole
# process and for the parts worth watching.
#
#   bash benches/login_instructions.sh [path/to/roster] [sqlite|postgres] [N]
#
# On PostgreSQL only roster's own instructions count (the server's are in other processes).
# KEEP_CG=DIR keeps the callgrind files in DIR, for `callgrind_annotate --inclusive=no` and the like.
set -euo pipefail
BIN=${1:-target/release/roster}
DB=${2:-sqlite}
N=${3:-300}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
source "$(dirname "$0")/scratch_db.sh"
dir=$(mktemp -d)
name="roster_login_instr_$$"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  drop_scratch_db "$DB" "$name"
  [ -n "${KEEP_CG:-}" ] && cp "$dir"/cg.out* "$KEEP_CG"/ ; rm -rf "$dir"
}
trap cleanup EXIT
scratch_db "$DB" "$dir" "$name"
port=$((20000 + RANDOM % 20000))
ROSTER_REGISTER_RATE_LIMIT=off ROSTER_REQUEST_RATE_LIMIT=off ROSTER_LOGIN_RATE_LIMIT=off \
ROSTER_LOGIN_FAILURE_LIMIT=off ROSTER_ARGON2_MEMORY_KIB=64 ROSTER_ARGON2_ITERATIONS=1 \
DATABASE_URL="$url" valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
  "$BIN" --listen "127.0.0.1:$port" >/dev/null 2>"$dir/server.log" &
pid=$!
for _ in $(seq 240); do grep -q "roster is ready" "$dir/server.log" && break; sleep 0.25; done
grep -q "roster is ready" "$dir/server.log" || { echo "roster did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }
drive() {
  python3 - "$port" "$@" <<'PY'
import http.client, json, sys
port, what, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
def post(body):
    c.request("POST", "/graphql", body=json.dumps(body), headers={"Content-Type": "application/json"})
    return c.getresponse().read()
if what == "register":
    b = post({"query": 'mutation { register(input:{username:"instr_user",email:"instr_user@example.com",password:"bench-Quartz-Lantern-login"}) { id } }'})
    assert b'"register":{"id"' in b, b
else:
    q = {"query": "mutation L($i: LoginInput!) { login(input: $i) { token } }",
         "variables": {"i": {"identifier": "INSTR_USER", "password": "bench-Quartz-Lantern-login"}}}
    for _ in range(n):
        b = post(q)
        assert b'"login":{"token"' in b, b
PY
}
drive register 1
drive login 50
callgrind_control -z "$pid" >/dev/null 2>&1
drive login "$N"
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 1
out=$(ls "$dir"/cg.out* | grep -v '^$' | while read -r f; do [ -s "$f" ] && echo "$f"; done | tail -1)
callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$out" 2>/dev/null | python3 -c "
import re, sys
n = $N
rows = {}
total = None
for line in sys.stdin:
    m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)', line)
    if not m: continue
    ir, name = int(m.group(1).replace(',', '')), m.group(2)
    if 'PROGRAM TOTALS' in name: total = ir; continue
    for label, pat in [('SQLite statements (sqlite3_step)', ':sqlite3_step '),
                       ('  of which re-preparing them (sqlite3Reprepare)', ':sqlite3Reprepare '),
                       ('Argon2id block function (64 KiB, 1 pass)', '/src/lib.rs:argon2::Argon2::compress::compress')]:
        if pat in name: rows[label] = max(rows.get(label, 0), ir)
print(f'$DB, {n} logins: {total / n:,.0f} instructions per login (roster process)')
for label, ir in rows.items():
    print(f'  {label}: {ir / n:,.0f} per login ({100 * ir / total:.1f}%)')
"
