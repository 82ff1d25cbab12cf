#!/usr/bin/env bash
# Runs every Tongban test. The tests need PostgreSQL (127.0.0.1:5432, user postgres, trust auth)
# and RabbitMQ (127.0.0.1:5672, guest/guest); this script starts them when they are installed
# locally but not running, and fails loudly when they cannot be reached. Tests never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

wait_for() { # name host port seconds
  local name=$1 host=$2 port=$3 secs=$4
  for _ in $(seq 1 "$secs"); do
    if (echo > "/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "error: $name is not reachable on $host:$port" >&2
  return 1
}

if ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
wait_for PostgreSQL 127.0.0.1 5432 60

if ! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "starting RabbitMQ"
  if command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached || true
  fi
fi
wait_for RabbitMQ 127.0.0.1 5672 120

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The end-to-end tests run the real binaries as separate processes.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
