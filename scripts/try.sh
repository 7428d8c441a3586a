#!/usr/bin/env bash
# Set up regctl on a fresh machine and run the main job against a local sandbox:
# ZooKeeper + a contract-compatible registry + demo services, then `regctl list` and `regctl doctor --all`.
# Idempotent: run it again to get the same sandbox back. Stop it with: .venv/bin/regctl sandbox down
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 2 ]; then say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }; else say() { printf '\n==> %s\n' "$*" >&2; }; fi

if [ ! -e /usr/share/java/zookeeper.jar ] && [ -z "${ZOOKEEPER_HOME:-}" ]; then
  say "installing ZooKeeper (Debian package 'zookeeper', needs Java)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq zookeeper >/dev/null
fi

if [ ! -x .venv/bin/regctl ]; then
  say "installing regctl into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e .
fi
export PATH="$PWD/.venv/bin:$PATH"

say "starting the sandbox: regctl sandbox up --demo"
eval "$(regctl sandbox up --demo)"
echo "export CONFIG_SERVICE_URL=$CONFIG_SERVICE_URL ZOOKEEPER_HOSTS=$ZOOKEEPER_HOSTS" >&2

say "regctl list"
regctl list

say "regctl doctor --all   (the demo plants problems on purpose: expect warnings and failures)"
regctl doctor --all || true

say "next: export the line above, then try: regctl inspect asr-service; regctl url asr-service; regctl health --all"
