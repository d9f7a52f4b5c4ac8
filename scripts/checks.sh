#!/usr/bin/env bash
# Runs inside `dbus-run-session` (see scripts/test.sh): a throwaway HOME and keyring,
# then lint, types and the test suite.
set -euo pipefail
home=$(mktemp -d)
export HOME="$home" XDG_DATA_HOME="$home/.local/share" XDG_CONFIG_HOME="$home/.config"
export XDG_CACHE_HOME="$home/.cache" XDG_STATE_HOME="$home/.local/state"
export XDG_RUNTIME_DIR="$home/run"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 0700 "$XDG_RUNTIME_DIR"
trap 'rm -rf "$home"' EXIT

# Start and unlock a gnome-keyring with a throwaway password; it exports its variables.
eval "$(printf '%s' "throwaway-test-password" \
  | gnome-keyring-daemon --unlock --components=secrets | sed 's/^/export /')"

# `--pytest-only ARGS…` skips lint and types: for running a few tests during development.
if [ "${1:-}" = "--pytest-only" ]; then
  shift
  exec python3 -m pytest "$@"
fi

python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy --strict
python3 -m pytest "$@"
