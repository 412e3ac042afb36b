#!/bin/bash
# Instructions per request outside the hash, counted by callgrind: the figure tracked for
# PostgreSQL (where the login ratio measures the shared two cores more than roster) and on
# SQLite beside the ratio. It repeats to within a fraction of a percent from run to run,
# whatever else the machine does.
#
# roster runs under valgrind with a 64 KiB, one-pass Argon2id; the hash's instructions are
# subtracted — all of libsodium's `argon2_ctx` (since 2026-12-07 night), or, in a build
# without libsodium, the `argon2` crate's block function `compress` (the rest of the crate's
# hash is inlined into the worker and cannot be told apart: such a build counts about 100,000
# more per login) — so what is left is everything a request costs besides the hash: HTTP, GraphQL, validation (zxcvbn for a registration), the database driver and, on
# SQLite, the engine itself (on PostgreSQL the server's instructions are in other processes).
# Each measurement warms up, zeroes the counters, then runs N requests on one keep-alive
# connection: N logins of one account, or N registrations of new users.
#
#   bash benches/instructions.sh [--check] [path/to/roster] [N]
#
# Prints one line per database and request. With --check, compares each figure with
# benches/instructions.baseline and exits 1 if any is more than 5% above its baseline (a
# change that makes a request dearer must say so by moving the baseline, in the same
# commit, with the reason). KEEP_CG=DIR keeps the callgrind files, in DIR/<database>-<request>/.
set -euo pipefail
CHECK=
if [ "${1:-}" = --check ]; then CHECK=1; shift; fi
BIN=${1:-target/release/roster}
N=${2:-200}
# The figures depend on N (200 logins of one account reach the session cap and trim; the
# tables grow), so the baseline holds for its own N only.
if [ -n "$CHECK" ] && [ "$N" != 200 ]; then echo "--check compares N=200 runs; leave N out" >&2; exit 2; fi
HERE=$(dirname "$0")
BASELINE="$HERE/instructions.baseline"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
source "$HERE/scratch_db.sh"

# measure DB WHAT: prints "DB WHAT <instructions per request outside the hash> <total per request>"
measure() {
  local db=$1 what=$2 dir name port pid url out
  dir=$(mktemp -d)
  name="roster_instr_$$_${what}"
  scratch_db "$db" "$dir" "$name"
  port=$((20000 + RANDOM % 20000))
  ROSTER_REGISTER_RATE_LIMIT=off ROSTER_REQUEST_RATE_LIMIT=off ROSTER_LOGIN_RATE_LIMIT=off \
  ROSTER_LOGIN_FAILURE_LIMIT=off ROSTER_MAIL_RATE_LIMIT=off ROSTER_MAIL_ADDRESS_LIMIT=off \
  ROSTER_ARGON2_MEMORY_KIB=64 ROSTER_ARGON2_ITERATIONS=1 \
  DATABASE_URL="$url" valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$BIN" --listen "127.0.0.1:$port" >/dev/null 2>"$dir/server.log" &
  pid=$!
  for _ in $(seq 240); do grep -q "roster is ready" "$dir/server.log" && break; sleep 0.25; done
  grep -q "roster is ready" "$dir/server.log" || { echo "roster did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }
  drive "$port" "$what" warm 30
  callgrind_control -z "$pid" >/dev/null 2>&1
  drive "$port" "$what" measured "$N"
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  out=
  for f in "$dir"/cg.out*; do if [ -s "$f" ]; then out=$f; fi; done
  callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$out" 2>/dev/null |
    python3 -c "
import re, sys
n, total, whole, block = $N, None, 0, 0
for line in sys.stdin:
    m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)', line)
    if not m: continue
    ir, name = int(m.group(1).replace(',', '')), m.group(2)
    if 'PROGRAM TOTALS' in name: total = ir
    elif 'argon2_ctx' in name: whole = max(whole, ir)
    elif 'argon2::Argon2::compress::compress' in name: block = max(block, ir)
hashing = whole or block
print('$db', '$what', round((total - hashing) / n), round(total / n))
"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  drop_scratch_db "$db" "$name"
  if [ -n "${KEEP_CG:-}" ]; then mkdir -p "$KEEP_CG/$db-$what" && cp "$dir"/cg.out* "$KEEP_CG/$db-$what"/; fi
  rm -rf "$dir"
}

# drive PORT login|register PHASE N: N requests on one keep-alive connection.
drive() {
  python3 - "$@" <<'PY'
import http.client, json, sys
port, what, phase, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
def post(body):
    c.request("POST", "/graphql", body=json.dumps(body), headers={"Content-Type": "application/json"})
    return c.getresponse().read()
register = 'mutation R($i: RegisterInput!) { register(input: $i) { id } }'
password = "bench-Quartz-Lantern-login"
if what == "login":
    if phase == "warm":
        b = post({"query": register, "variables": {"i": {"username": "instr_user", "email": "instr_user@example.com", "password": password}}})
        assert b'"register":{"id"' in b, b
    q = {"query": "mutation L($i: LoginInput!) { login(input: $i) { token } }",
         "variables": {"i": {"identifier": "INSTR_USER", "password": password}}}
    for _ in range(n):
        b = post(q)
        assert b'"login":{"token"' in b, b
else:
    for i in range(n):
        name = f"instr_{phase}_{i}"
        b = post({"query": register, "variables": {"i": {"username": name, "email": f"{name}@example.com", "password": password}}})
        assert b'"register":{"id"' in b, b
PY
}

results=$(for db in sqlite postgres; do for what in login register; do measure "$db" "$what"; done; done)
echo "instructions per request outside the hash (total with the 64 KiB hash), $N requests each:"
echo "$results" | while read -r db what outside total; do
  printf '  %-9s %-9s %12s  (%s)\n' "$db" "$what" "$(printf "%'d" "$outside")" "$(printf "%'d" "$total")"
done
if [ -n "$CHECK" ]; then
  status=0
  while read -r db what outside _; do
    base=$(awk -v d="$db" -v w="$what" '$1 == d && $2 == w { print $3 }' "$BASELINE")
    [ -n "$base" ] || { echo "no baseline for $db $what in $BASELINE" >&2; status=1; continue; }
    if [ "$outside" -gt $((base * 105 / 100)) ]; then
      echo "REGRESSION: $db $what: $outside instructions per request, baseline $base (+5% allowed)" >&2
      status=1
    fi
  done <<<"$results"
  [ "$status" -eq 0 ] && echo "within 5% of $BASELINE"
  exit "$status"
fi
