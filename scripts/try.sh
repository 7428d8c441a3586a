#!/usr/bin/env bash
# Set up regctl on a fresh machine and run the main job against a local sandbox:
# ZooKeeper + a contract-compatible registry + demo services, then `regctl list` and `regctl doctor --all`.
# Idempotent: run it again to get the same sandbox back. Stop it with: .venv/bin/regctl sandbox down
# Its last two lines (on stdout) are what to paste into a shell to use regctl and the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
Usage: bash scripts/try.sh [--zk-port N] [--registry-port N] [--dir PATH] [-h|--help]

Installs what is missing (the Debian 'zookeeper' package, regctl into .venv), starts the local
sandbox with demo services, runs `regctl list` and `regctl doctor --all`, and ends with the two
lines to paste into your shell:
  export PATH="<repo>/.venv/bin:$PATH"
  export CONFIG_SERVICE_URL=http://127.0.0.1:<port> ZOOKEEPER_HOSTS=127.0.0.1:<port>

Options (each also read from the environment variable in brackets; an option wins):
  --zk-port N        ZooKeeper's client port [REGCTL_TRY_ZK_PORT] (default 2181; 0 = any free)
  --registry-port N  the registry's HTTP port [REGCTL_TRY_REGISTRY_PORT] (default 8082; 0 = any free)
  --dir PATH         the sandbox's state directory [REGCTL_SANDBOX_DIR]
                     (default ~/.local/state/regctl/sandbox)
  -h, --help         this help

A port already in use stops the script before anything starts, naming the port and the option
to change it (exit 2), unless it is this sandbox's own (a second run reuses the running sandbox).
An existing .venv/bin/regctl is used as is: nothing is installed again (remove .venv to reinstall).
Stop the sandbox with: .venv/bin/regctl sandbox down
EOF
}

die() { printf 'try.sh: error: %s\n' "$*" >&2; exit 2; }

zk_port="${REGCTL_TRY_ZK_PORT:-2181}"
registry_port="${REGCTL_TRY_REGISTRY_PORT:-8082}"
sandbox_dir="${REGCTL_SANDBOX_DIR:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --zk-port|--registry-port|--dir)
      [ $# -ge 2 ] || die "$1 needs a value; try: bash scripts/try.sh --help"
      case "$1" in
        --zk-port) zk_port="$2" ;;
        --registry-port) registry_port="$2" ;;
        --dir) sandbox_dir="$2" ;;
      esac
      shift 2 ;;
    --zk-port=*) zk_port="${1#*=}"; shift ;;
    --registry-port=*) registry_port="${1#*=}"; shift ;;
    --dir=*) sandbox_dir="${1#*=}"; shift ;;
    *) die "unknown option '$1'; try: bash scripts/try.sh --help" ;;
  esac
done

check_port_value() {  # $1 value, $2 option, $3 environment variable
  case "$1" in
    ''|*[!0-9]*) die "$2 '$1' is not a port number; try: $2 N with N from 1 to 65535 (or 0 for a free one), or unset $3" ;;
  esac
  [ "$1" -le 65535 ] || die "$2 $1 is not a port number; try: $2 N with N from 1 to 65535 (or 0 for a free one)"
}
check_port_value "$zk_port" --zk-port REGCTL_TRY_ZK_PORT
check_port_value "$registry_port" --registry-port REGCTL_TRY_REGISTRY_PORT
[ "$zk_port" = 0 ] || [ "$zk_port" != "$registry_port" ] || die "--zk-port and --registry-port are both $zk_port; try: two different ports"

if [ -n "$sandbox_dir" ]; then
  export REGCTL_SANDBOX_DIR="$sandbox_dir"
fi

if [ -t 2 ]; then say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }; else say() { printf '\n==> %s\n' "$*" >&2; }; fi

port_busy() {  # something accepts connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A running sandbox of ours is reused as is; otherwise both ports must be free before anything starts.
ours_running=""
if [ -x .venv/bin/regctl ] && .venv/bin/regctl sandbox status >/dev/null 2>&1; then
  ours_running=1
fi
if [ -z "$ours_running" ]; then
  for spec in "$zk_port:ZooKeeper:--zk-port:REGCTL_TRY_ZK_PORT" "$registry_port:the registry:--registry-port:REGCTL_TRY_REGISTRY_PORT"; do
    IFS=: read -r port what opt var <<<"$spec"
    if [ "$port" != 0 ] && port_busy "$port"; then
      die "port $port (for $what) is already in use on 127.0.0.1; try: bash scripts/try.sh $opt N with a free port (or $opt 0 for any free one; or set $var), or stop what listens there"
    fi
  done
fi

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
bin="$PWD/.venv/bin"
export PATH="$bin:$PATH"

say "starting the sandbox: regctl sandbox up --demo --zk-port $zk_port --api-port $registry_port"
# Not eval "$(...)": a failed `up` must stop here with its own message, not an empty export line.
env_line="$(regctl sandbox up --demo --zk-port "$zk_port" --api-port "$registry_port")" || exit $?
case "$env_line" in
  "export CONFIG_SERVICE_URL="*" ZOOKEEPER_HOSTS="*) ;;
  *) printf 'try.sh: error: regctl sandbox up printed no export line (%s); try: regctl sandbox status\n' "$env_line" >&2; exit 3 ;;
esac
eval "$env_line"

say "regctl list"
regctl list || true

say "regctl doctor --all   (the demo plants problems on purpose: expect warnings and failures)"
regctl doctor --all || true

stop="regctl sandbox down"
if [ -n "$sandbox_dir" ]; then
  env_line="$env_line REGCTL_SANDBOX_DIR=$(printf '%q' "$REGCTL_SANDBOX_DIR")"
fi
say "paste the two lines below into your shell, then follow the README's tour (stop the sandbox with: $stop)"
printf 'export PATH="%s:$PATH"\n' "$bin"
printf '%s\n' "$env_line"
