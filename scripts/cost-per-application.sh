#!/usr/bin/env bash
# What one application costs each service of a running `tongban local` stack: PostgreSQL
# transactions, events published (outbox rows, with their bytes) and events consumed (inbox
# rows), measured around N runs of `tongban demo` (one application each, walked to APPROVED and
# every platform delivered), with the idle rate of each service measured first and taken out.
#
#   tongban local up --free-ports --state-dir /tmp/tb
#   scripts/cost-per-application.sh /tmp/tb 20
#
# Needs psql. Transactions are PostgreSQL's count (pg_stat_database: commits + rollbacks), so a
# read outside a transaction counts as one; the demo's own polling reads are in the figures.
set -euo pipefail
state=${1:?usage: $0 STATE_DIR [N]}
n=${2:-10}
idle=${IDLE_SECS:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
tongban=${TONGBAN_BIN:-$here/target/debug/tongban}

json() { python3 -c "import json,sys; d=json.load(open('$state/local.json')); print($1)"; }
admin_url=$(json "d['admin_url']")
intake=$(json "[p['grpc'] for p in d['processes'] if p['name']=='intake-1'][0]")
services=(intake approval dispatch notification)
declare -A db
for s in "${services[@]}"; do db[$s]=$(json "d['databases']['$s']"); done
url() { echo "${admin_url%/*}/$1"; }

snapshot() { # service -> "transactions outbox_rows outbox_bytes inbox_rows"
  for s in "${services[@]}"; do
    local x o i
    x=$(psql "$(url postgres)" -tAc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '${db[$s]}'")
    o=$(psql "$(url "${db[$s]}")" -tAc "SELECT count(*) || ' ' || coalesce(sum(length(payload)), 0) FROM outbox")
    i=$(psql "$(url "${db[$s]}")" -tAc "SELECT count(*) FROM inbox")
    echo "$s $x $o $i"
  done
}

a=$(snapshot); sleep "$idle"; b=$(snapshot)
start=$(date +%s.%N)
for _ in $(seq 1 "$n"); do
  "$tongban" demo --data-dir "$state" --server "$intake" --deploy-dir "$here/deploy" >/dev/null
done
end=$(date +%s.%N)
c=$(snapshot)
elapsed=$(echo "$end - $start" | bc)

echo "$n applications in ${elapsed}s; per application (idle transactions of ${elapsed}s taken out):"
printf '%-13s %12s %10s %12s %10s %14s\n' service transactions idle/s published bytes consumed
paste <(echo "$a") <(echo "$b") <(echo "$c") | awk -v n="$n" -v idle="$idle" -v el="$elapsed" '{
  rate = ($7 - $2) / idle
  printf "%-13s %12.1f %10.1f %12.1f %10.0f %14.1f\n", $1, (($12 - $7) - rate * el) / n, rate, ($13 - $8) / n, ($14 - $9) / n, ($15 - $10) / n
}'
