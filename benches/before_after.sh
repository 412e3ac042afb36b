#!/usr/bin/env bash
# Registration (or login) throughput before and after, interleaved, under one harness and one
# reference:
#
#   [PHASE=login] benches/before_after.sh /path/to/old/roster [ROUNDS] [sqlite|postgres ...]
#
# Each round runs `ROSTER_BENCH_ONLY=ratio` (raw Argon2id rate, register phase, raw rate again;
# with PHASE=login, `ROSTER_BENCH_ONLY=login`: login windows between raw measurements) once
# with the old server binary and once with this checkout's, alternating which goes first,
# and prints one line per run; the medians are yours to take. req/s is the server's own
# throughput; the ratio is to the raw rate of this checkout's reference implementation
# (the faster one), the same for both builds. Build the old binary in its own
# worktree and target dir first, e.g.
#   git worktree add /tmp/base <commit> && (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base_target \
#     cargo build --release --bin roster)
set -euo pipefail
old=${1:?usage: benches/before_after.sh /path/to/old/roster [ROUNDS] [sqlite|postgres ...]}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
databases=("${@:-postgres sqlite}")
# shellcheck disable=SC2206
databases=(${databases[*]})
cd "$(dirname "$0")/.."
cargo bench --bench load --no-run --quiet 2>/dev/null
phase=${PHASE:-register}
if [ "$phase" = login ]; then only=login; rate='login throughput, req/s'; ratio='login throughput ÷ raw'
else only=ratio; rate='register throughput, req/s'; ratio='throughput ÷ raw hash rate'; fi
run() { # label server database
  local out
  out=$(ROSTER_BENCH_ONLY=$only ROSTER_BENCH_RUNS=1 ROSTER_BENCH_SERVER="$2" \
    cargo bench --quiet --bench load -- "$3" 2>/dev/null)
  printf '%-9s %-8s %-8s raw %6s  req/s %6s  ratio %s\n' "$3" "$phase" "$1" \
    "$(grep -m1 'raw Argon2id rate' <<<"$out" | awk -F'|' '{print $3}' | awk '{print $1}')" \
    "$(grep -m1 "$rate" <<<"$out" | awk -F'|' '{print $3}' | awk '{print $1}')" \
    "$(grep -m1 "$ratio" <<<"$out" | awk -F'|' '{print $3}' | awk '{print $1}')"
}
current=$(pwd)/target/release/roster
cargo build --release --quiet --bin roster
for db in "${databases[@]}"; do
  for ((i = 1; i <= rounds; i++)); do
    if (( i % 2 )); then run old "$old" "$db"; run current "$current" "$db"
    else run current "$current" "$db"; run old "$old" "$db"; fi
  done
done
