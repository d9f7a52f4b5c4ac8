#!/usr/bin/env bash
# Installs what the tests need (Python packages in a virtual environment), then runs every
# check inside a private D-Bus session with a throwaway, unlocked gnome-keyring, so the
# keyring tests use a real Secret Service.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dbus-run-session >/dev/null || need+=(dbus)
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v secret-tool >/dev/null || need+=(libsecret-tools)
command -v curl >/dev/null || need+=(curl)  # the peer-uid test connects as another user
command -v systemd-analyze >/dev/null || need+=(systemd)  # verifies the generated user unit
command -v Xvfb >/dev/null || need+=(xvfb)  # the tray's screen
command -v trayer >/dev/null || need+=(trayer)  # a tray host on that screen
command -v zsh >/dev/null || need+=(zsh)  # the completion scripts are syntax-checked
command -v fish >/dev/null || need+=(fish)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${need[*]} (what the keyring, socket, service and tray tests run against)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A virtual environment holding only what pyproject.toml declares, so a package that happens
# to be on this machine cannot hide an undeclared import. In CI (CI=true) it is made fresh
# for every run; elsewhere .venv/ is kept between runs and brought up to date.
if [ "${CI:-}" = "true" ]; then
  venv=$(mktemp -d)/venv
else
  venv=.venv
fi
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
"$venv/bin/python3" -m pip install -q --disable-pip-version-check -e '.[dev]'
export PATH="$(cd "$venv/bin" && pwd):$PATH"

exec dbus-run-session -- bash scripts/checks.sh "$@"
