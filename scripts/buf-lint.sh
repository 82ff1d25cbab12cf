#!/usr/bin/env bash
# Lints proto/ with buf's STANDARD rules (see buf.yaml). Installs the pinned buf from npm
# (`@bufbuild/buf` ships the binary) into the git-ignored .tools/buf on first use, so neither
# CI nor a developer needs buf installed globally.
set -euo pipefail

BUF_VERSION="1.75.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools/buf"
buf="$tools/node_modules/.bin/buf"

if [[ ! -x "$buf" ]] || [[ "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]]; then
  echo "installing @bufbuild/buf@$BUF_VERSION into $tools" >&2
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" "@bufbuild/buf@$BUF_VERSION" >&2
fi

cd "$root"
exec "$buf" lint "$@"
