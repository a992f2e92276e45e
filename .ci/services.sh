#!/usr/bin/env bash
# PostgreSQL and Redis on loopback for the store and API tests, and Debian's Chromium for the web app's
# browser tests. Idempotent: installs from Debian packages only when missing, starts what is not running,
# (re)creates the test role.
#
#   eval "$(.ci/services.sh)"     # exports TASTEMAKER_TEST_POSTGRES_URL and TASTEMAKER_TEST_REDIS_URL
#
# Progress goes to stderr; stdout carries only the export lines. Tests create (and drop) their own
# databases through that role, so parallel test workers never share a schema.
set -euo pipefail
log() { echo "services: $*" >&2; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
PG_USER=tastemaker_test
PG_PASS=tastemaker_test
REDIS_PORT=${TASTEMAKER_TEST_REDIS_PORT:-6379}

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Debian's Chromium for the web app's browser tests (Playwright drives it by executable_path)
[ -x /usr/bin/chromium ] || need+=(chromium)
if ((${#need[@]})); then
  log "installing ${need[*]} from Debian packages"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi

# --- PostgreSQL: the packaged cluster, listening on loopback only
read -r PG_VER PG_CLUSTER PG_PORT PG_STATUS < <(pg_lsclusters -h | head -n1 | awk '{print $1, $2, $3, $4}') || true
if [ -z "${PG_VER:-}" ]; then
  PG_VER=$(ls /usr/lib/postgresql | sort -n | tail -n1)
  log "creating PostgreSQL $PG_VER cluster"
  $SUDO pg_createcluster "$PG_VER" main >&2
  read -r PG_VER PG_CLUSTER PG_PORT PG_STATUS < <(pg_lsclusters -h | head -n1 | awk '{print $1, $2, $3, $4}')
fi
CONF=/etc/postgresql/$PG_VER/$PG_CLUSTER/postgresql.conf
if ! grep -q "^listen_addresses = '127.0.0.1'" "$CONF"; then
  echo "listen_addresses = '127.0.0.1'" | $SUDO tee -a "$CONF" >/dev/null
  [ "$PG_STATUS" = online ] && $SUDO pg_ctlcluster "$PG_VER" "$PG_CLUSTER" restart >&2
fi
if [ "$PG_STATUS" != online ]; then
  log "starting PostgreSQL $PG_VER/$PG_CLUSTER on 127.0.0.1:$PG_PORT"
  $SUDO pg_ctlcluster "$PG_VER" "$PG_CLUSTER" start >&2
fi
psql_admin() { $SUDO -u postgres psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
[ -z "$SUDO" ] && psql_admin() { runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
for _ in $(seq 1 30); do psql_admin -c "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
if [ "$(psql_admin -c "select 1 from pg_roles where rolname = '$PG_USER'")" != 1 ]; then
  psql_admin -c "create role $PG_USER login createdb password '$PG_PASS'" >&2
fi
if [ "$(psql_admin -c "select 1 from pg_database where datname = '$PG_USER'")" != 1 ]; then
  psql_admin -c "create database $PG_USER owner $PG_USER" >&2
fi

# --- Redis: loopback only, no persistence
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' --appendonly no \
    --protected-mode yes >&2
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

echo "export TASTEMAKER_TEST_POSTGRES_URL=postgresql://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_USER"
echo "export TASTEMAKER_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
