#!/bin/sh
# Writes ./.env for docker compose from deploy/.env.example, giving every empty value a fresh
# random secret (48 hex digits: URL-safe). Never overwrites an existing .env.
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
  echo "compose-env: .env exists; not overwriting it" >&2
  exit 1
fi
umask 077
while IFS= read -r line; do
  case "$line" in
    '#'* | '') printf '%s\n' "$line" ;;
    *=) printf '%s%s\n' "$line" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" ;;
    *) printf '%s\n' "$line" ;;
  esac
done <deploy/.env.example >.env
echo "compose-env: wrote .env (mode 0600); keep it out of version control"
