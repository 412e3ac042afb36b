#!/bin/bash
# The request path of a login without the hash: roster with a 64 KiB, one-pass Argon2id, one
# account, wrk (Debian package `wrk`) logging in over 64 keep-alive connections for 10 s after
# a 3 s warm-up. Prints logins/s and the server's CPU per login (utime+stime of the process).
#
#   bash benches/login_path.sh [path/to/roster] [sqlite|postgres]
#
# Compare two builds by alternating them; the figures move with the machine.
set -euo pipefail
BIN=${1:-target/release/roster}
DB=${2:-sqlite}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
source "$(dirname "$0")/scratch_db.sh"
name="roster_login_path_$$"
scratch_db "$DB" "$dir" "$name"
port=$((20000 + RANDOM % 20000))
ROSTER_REGISTER_RATE_LIMIT=off ROSTER_REQUEST_RATE_LIMIT=off ROSTER_MAX_CONNECTIONS_PER_IP=100000 \
ROSTER_LOGIN_RATE_LIMIT=off ROSTER_LOGIN_FAILURE_LIMIT=off ROSTER_ARGON2_MEMORY_KIB=64 \
ROSTER_ARGON2_ITERATIONS=1 DATABASE_URL="$url" "$BIN" --listen "127.0.0.1:$port" \
  >/dev/null 2>"$dir/server.log" &
pid=$!
for _ in $(seq 100); do grep -q "roster is ready" "$dir/server.log" && break; sleep 0.1; done
endpoint="http://127.0.0.1:$port/graphql"
curl -sf -o /dev/null -H 'content-type: application/json' \
  -d '{"query":"mutation { register(input:{username:\"path_user\",email:\"path_user@example.com\",password:\"bench-Quartz-Lantern-login\"}) { id } }"}' "$endpoint"
cat >"$dir/login.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"mutation L($i: LoginInput!) { login(input: $i) { token } }","variables":{"i":{"identifier":"path_user","password":"bench-Quartz-Lantern-login"}}}'
-- GraphQL errors come with HTTP 200: count answers without a token as failures.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failures = 0 end
function response(status, headers, body)
  if not string.find(body, '"login":{"token"', 1, true) then failures = failures + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("failures") end
  io.write("failed logins: " .. total .. "\n")
end
LUA
wrk -t1 -c64 -d3s -s "$dir/login.lua" "$endpoint" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# PostgreSQL's own CPU: every postgres process (the pool's backends stay up between the reads).
pgticks() { for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
before=$(ticks); pg_before=$(pgticks)
out=$(wrk -t1 -c64 -d10s -s "$dir/login.lua" "$endpoint")
after=$(ticks); pg_after=$(pgticks)
if echo "$out" | grep -qi "non-2xx" || ! echo "$out" | grep -q "^failed logins: 0$"; then
  echo "some logins failed:" >&2; echo "$out" >&2; exit 1
fi
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
python3 -c "print(f'logins/s {float(\"$rps\"):.0f}; server CPU per login {($after - $before) * 10 / (float(\"$rps\") * 10):.3f} ms' + ('' if '$DB' == 'sqlite' else f'; PostgreSQL CPU per login {($pg_after - $pg_before) * 10 / (float(\"$rps\") * 10):.3f} ms'))"
if [ "$DB" != sqlite ]; then kill $pid; wait $pid 2>/dev/null || true; drop_scratch_db "$DB" "$name"; fi
