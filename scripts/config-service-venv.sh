#!/usr/bin/env bash
# Build the real Config Service's own virtualenv (test equipment, not regctl's): .venv-config-service.
# Usage: bash scripts/config-service-venv.sh [SOURCE]   (SOURCE default: $REGCTL_CONFIG_SERVICE_SRC or ../shared/config-service)
# The packages are what its code imports (its requirements.txt lists more that it never imports).
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-${REGCTL_CONFIG_SERVICE_SRC:-../shared/config-service}}"
[ -f "$src/earlier/main.py" ] || { echo "no Config Service source at $src" >&2; exit 1; }
venv=.venv-config-service
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --no-input -q \
    'fastapi>=0.104' 'uvicorn>=0.24' 'sqlalchemy>=2' 'asyncpg>=0.29' greenlet 'redis>=5' 'pydantic>=2.4' \
    'pydantic-settings>=2' 'aiokafka>=0.8' pyyaml 'kazoo>=2.9' aiohttp 'alembic>=1.12' </dev/null
# a copy: pip builds in the folder it is given, and the source is read-only
tmp="$(mktemp -d)"; cp -r "$src/later-extras/ai4icore_env" "$tmp/"; chmod -R u+w "$tmp"
"$venv/bin/pip" install --disable-pip-version-check --no-input -q "$tmp/ai4icore_env" </dev/null
rm -rf "$tmp"
echo "$venv ready"
