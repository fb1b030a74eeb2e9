#!/usr/bin/env bash
# A production-shaped gridsvc on one host, on loopback ports (issue 23, docs/scaling.md):
#   nginx :8080 → gunicorn app servers :8101 :8102 (GRIDSVC_PGBOUNCER=1, --no-control-socket)
#   → PgBouncer :6439 (transaction mode) → PostgreSQL primary :5439 (the cluster of setup.sh)
#   tiles/heatmaps/reports GETs → a streaming-replication standby :5440 (pg_basebackup -R)
#   two supervised procrastinate workers (scripts/worker.sh) straight on the primary (LISTEN)
#
#   scripts/cluster.sh start|stop|status
#
# Debian packages only (nginx, pgbouncer; PostgreSQL from scripts/setup.sh). Everything the
# cluster runs lives in CLUSTER_DIR (pids, logs, rendered configs); the standby's data in
# STANDBY_DIR. Ports, paths and roles can be changed with the variables below (the test uses a
# throwaway primary and free ports). Idempotent: start twice starts nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/var/cluster}"
NGINX_PORT="${NGINX_PORT:-8080}"
APP_PORTS="${APP_PORTS:-8101 8102}"
APP_WORKERS="${APP_WORKERS:-2}"          # gunicorn processes per app server …
APP_THREADS="${APP_THREADS:-4}"          # … × threads (gthread, gridsvc/gunicorn_conf.py)
PGBOUNCER_PORT="${PGBOUNCER_PORT:-6439}"
PRIMARY_PORT="${PRIMARY_PORT:-${GRIDSVC_PG_PORT:-5439}}"
PRIMARY_SOCKET="${PRIMARY_SOCKET:-/var/run/postgresql}"
STANDBY_PORT="${STANDBY_PORT:-5440}"
STANDBY_DIR="${STANDBY_DIR:-/var/lib/postgresql/gridsvc-standby}"
DB_NAME="${DB_NAME:-gridsvc}"
APP_DB_USER="${APP_DB_USER:-gridsvc_app}"
APP_DB_PASSWORD="${APP_DB_PASSWORD:-gridsvc_app}"
REPL_USER="${REPL_USER:-gridsvc_replicator}"
WORKERS="${CLUSTER_WORKERS:-2}"
# PgBouncer's pools, derived from the primary's max_connections unless set (derive_pools):
# the web gets 15 % of it as server connections (200 → 30), two thirds as the pool, a sixth
# in reserve (200 → 20 + 5)
POOL_SIZE="${POOL_SIZE:-}"
RESERVE_POOL="${RESERVE_POOL:-}"
MAX_DB_CONNECTIONS="${MAX_DB_CONNECTIONS:-}"
# a client waiting longer for a server connection gets an error → the app's 503 + Retry-After
QUERY_WAIT_TIMEOUT="${QUERY_WAIT_TIMEOUT:-10}"
RATE="${NGINX_RATE:-50}"
BURST="${NGINX_BURST:-200}"
LOGIN_RATE="${NGINX_LOGIN_RATE:-60}"
PY=".venv/bin/python"
RUN="$CLUSTER_DIR"

log() { printf '\033[1;35m[cluster]\033[0m %s\n' "$*"; }
# need_root, apt_install (apt-get update only when a package is missing)
source scripts/lib.sh
as_pg() { need_root runuser -u postgres -- "$@"; }
PG_BIN="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n1)/bin"
psql_primary() { as_pg psql -h "$PRIMARY_SOCKET" -p "$PRIMARY_PORT" -d "$DB_NAME" -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_standby() { as_pg psql -h "$STANDBY_DIR" -p "$STANDBY_PORT" -d "$DB_NAME" -qtA "$@"; }

pid_runs() {  # pid: the process runs — a zombie does not (kill -0 succeeds on one until its
  # parent reaps it; a killed daemon's parent is PID 1, which may reap late: the fresh-clone CI
  # of bcf408a saw a SIGKILLed app server counted as running, and never started again)
  local stat state
  kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${stat##*) }  # the field after the command name, which may hold spaces or ')'
  state=${state%% *}
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
alive() { [ -f "$1" ] && pid_runs "$(cat "$1")"; }  # pidfile
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local i
  for i in $(seq 1 "${2:-60}"); do port_open "$1" && return 0; sleep 0.5; done
  echo "port $1 did not open (see $RUN/*.log)" >&2
  tail -n 5 "$RUN"/*.log >&2 2>/dev/null || true  # the last lines of each, for who reads stderr
  return 1
}
render() {  # template → file, replacing @NAME@ with the shell variable NAME
  local src=$1 dst=$2 text name
  text=$(cat "$src")
  for name in RUN_DIR NGINX_PORT STATIC_ROOT UPSTREAMS RATE BURST LOGIN_RATE DB_NAME PRIMARY_PORT \
    PGBOUNCER_PORT APP_DB_USER POOL_SIZE RESERVE_POOL MAX_DB_CONNECTIONS QUERY_WAIT_TIMEOUT; do
    text=${text//@${name}@/${!name-}}
  done
  printf '%s\n' "$text" >"$dst"
}

# ------------------------------------------------------------------ standby (pg_basebackup -R)
start_standby() {
  if [ ! -f "$STANDBY_DIR/standby.signal" ]; then
    log "replication role $REPL_USER and a base backup of the primary into $STANDBY_DIR"
    local pass
    if [ ! -f "$RUN/replication.pass" ]; then
      head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$RUN/replication.pass"
      chmod 600 "$RUN/replication.pass"
    fi
    pass=$(cat "$RUN/replication.pass")
    if [ "$(psql_primary -c "select 1 from pg_roles where rolname='$REPL_USER'")" = "1" ]; then
      psql_primary -c "alter role $REPL_USER with login replication password '$pass'" >/dev/null
    else
      psql_primary -c "create role $REPL_USER with login replication password '$pass'" >/dev/null
    fi
    need_root rm -rf "$STANDBY_DIR"
    need_root mkdir -p "$STANDBY_DIR"
    need_root chown postgres:postgres "$STANDBY_DIR"
    need_root chmod 700 "$STANDBY_DIR"
    as_pg env PGPASSWORD="$pass" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" \
      -U "$REPL_USER" -D "$STANDBY_DIR" -X stream -R --no-sync -c fast
    # Debian clusters keep their configuration outside the data directory: the standby gets
    # its own (hot standby, loopback only). A hot standby needs these limits at least as high
    # as the primary's: copied from it.
    local limits
    limits=$(psql_primary -F ' = ' -c "select name, setting from pg_settings where name in
      ('max_connections','max_worker_processes','max_wal_senders','max_prepared_transactions',
       'max_locks_per_transaction')")
    as_pg tee "$STANDBY_DIR/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $STANDBY_PORT
unix_socket_directories = '$STANDBY_DIR'
$limits
shared_buffers = 128MB
hot_standby = on
hot_standby_feedback = on
# the base backup is taken with --no-sync: the first start syncs the data directory, one
# syncfs() per file system rather than an fsync per file (minutes for the 3 GB of a
# development cluster full of test databases on a busy disk)
recovery_init_sync_method = syncfs
max_standby_streaming_delay = 30s
jit = off
CONF
    as_pg tee "$STANDBY_DIR/pg_hba.conf" >/dev/null <<HBA
local all all peer
host all all 127.0.0.1/32 scram-sha-256
HBA
    as_pg sh -c "cat >> '$STANDBY_DIR/postgresql.auto.conf'" <<<"primary_conninfo = 'host=127.0.0.1 port=$PRIMARY_PORT user=$REPL_USER password=$pass application_name=gridsvc_standby'"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$STANDBY_DIR" status >/dev/null 2>&1; then
    log "starting the standby on port $STANDBY_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$STANDBY_DIR" -l "$STANDBY_DIR/log" -w \
      -t "${STANDBY_START_TIMEOUT:-600}" start >/dev/null
  fi
}

# ------------------------------------------------------------------ PgBouncer
derive_pools() {  # pool sizes from the primary's max_connections (docs/scaling.md)
  local max workers_conns app_procs
  max=$(psql_primary -c "show max_connections")
  : "${MAX_DB_CONNECTIONS:=$(( max * 15 / 100 > 4 ? max * 15 / 100 : 4 ))}"
  : "${POOL_SIZE:=$(( MAX_DB_CONNECTIONS * 2 / 3 > 2 ? MAX_DB_CONNECTIONS * 2 / 3 : 2 ))}"
  : "${RESERVE_POOL:=$(( MAX_DB_CONNECTIONS / 6 > 1 ? MAX_DB_CONNECTIONS / 6 : 1 ))}"
  # the budget: web (through PgBouncer) + workers (direct: a pool of 2 and Django's each,
  # counted 4) must leave at least half of max_connections to admin, backups, migrations
  workers_conns=$(( WORKERS * 4 ))
  app_procs=$(( $(wc -w <<<"$APP_PORTS") * APP_WORKERS * APP_THREADS ))
  log "max_connections $max: PgBouncer pool $POOL_SIZE (+$RESERVE_POOL reserve, at most" \
    "$MAX_DB_CONNECTIONS server connections) for $app_procs app threads; workers ~$workers_conns"
  if (( MAX_DB_CONNECTIONS + workers_conns > max / 2 )); then
    echo "the cluster would take more than half of max_connections ($max): lower" \
      "MAX_DB_CONNECTIONS or CLUSTER_WORKERS" >&2
    return 1
  fi
}
start_pgbouncer() {
  if alive "$RUN/pgbouncer.pid"; then
    port_open "$PGBOUNCER_PORT" && return 0
    # alive but not listening: a PgBouncer in its safe shutdown (SIGINT) that has closed its
    # port and not yet exited. Wait for it to go (else "start only what is missing" would
    # start nothing and the app servers would find no pooler), then stop it if it lingers.
    local i
    for i in $(seq 1 20); do alive "$RUN/pgbouncer.pid" || break; sleep 0.5; done
    if alive "$RUN/pgbouncer.pid"; then
      kill -TERM "$(cat "$RUN/pgbouncer.pid")" 2>/dev/null || true
      for i in $(seq 1 20); do alive "$RUN/pgbouncer.pid" || break; sleep 0.5; done
    fi
  fi
  derive_pools
  log "PgBouncer (transaction mode) on port $PGBOUNCER_PORT"
  RUN_DIR="$RUN" render deploy/pgbouncer.ini "$RUN/pgbouncer.ini"
  printf '"%s" "%s"\n' "$APP_DB_USER" "$APP_DB_PASSWORD" >"$RUN/userlist.txt"
  need_root chown postgres "$RUN/pgbouncer.ini" "$RUN/userlist.txt"
  chmod 600 "$RUN/userlist.txt"
  as_pg pgbouncer -d -q "$RUN/pgbouncer.ini"
  wait_port "$PGBOUNCER_PORT" 20
}

# ------------------------------------------------------------------ app servers and workers
app_env() {
  # transaction mode: no server-side cursors, no prepared statements (gridsvc/prepared.py
  # also turns itself off with GRIDSVC_PGBOUNCER; said twice on purpose)
  export GRIDSVC_PGBOUNCER=1 GRIDSVC_PREPARED=0 GRIDSVC_TRUSTED_PROXIES=1
  export DATABASE_URL="postgis://$APP_DB_USER:$APP_DB_PASSWORD@127.0.0.1:$PGBOUNCER_PORT/$DB_NAME"
  export DATABASE_REPLICA_URL="postgis://$APP_DB_USER:$APP_DB_PASSWORD@127.0.0.1:$STANDBY_PORT/$DB_NAME"
}
start_apps() {
  local port
  for port in $APP_PORTS; do
    alive "$RUN/app-$port.pid" && continue
    log "gunicorn app server on port $port"
    # as scripts/serve.sh: gridsvc/gunicorn_conf.py (gthread, preload; threads keep nginx's
    # upstream connections alive, a sync worker would close each one)
    (app_env; exec setsid .venv/bin/gunicorn gridsvc.wsgi -c gridsvc/gunicorn_conf.py \
      -b "127.0.0.1:$port" -w "$APP_WORKERS" --threads "$APP_THREADS" \
      --no-control-socket --timeout 60 --graceful-timeout 20 --forwarded-allow-ips 127.0.0.1 \
      --pid "$RUN/app-$port.pid" --access-logfile "$RUN/app-$port.access.log" \
      >>"$RUN/app-$port.log" 2>&1) &
  done
  for port in $APP_PORTS; do wait_port "$port" 120; done
}
start_workers() {
  local i
  for i in $(seq 1 "$WORKERS"); do
    alive "$RUN/worker-$i.pid" && continue
    log "worker $i (scripts/worker.sh, on the primary directly)"
    # LISTEN/NOTIFY and the job locks need a session: not through PgBouncer
    (export DATABASE_URL="postgis://$APP_DB_USER:$APP_DB_PASSWORD@127.0.0.1:$PRIMARY_PORT/$DB_NAME"
     exec setsid bash scripts/worker.sh >>"$RUN/worker-$i.log" 2>&1) &
    echo $! >"$RUN/worker-$i.pid"
  done
}
start_nginx() {
  local port
  UPSTREAMS=""
  for port in $APP_PORTS; do
    UPSTREAMS+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
  done
  STATIC_ROOT="$ROOT/var/static"
  RUN_DIR="$RUN" render deploy/nginx.conf "$RUN/nginx.conf"
  cp deploy/nginx-proxy.conf "$RUN/proxy_params.conf"
  if [ "$(id -u)" -eq 0 ]; then sed -i '1i user www-data;' "$RUN/nginx.conf"; fi
  if alive "$RUN/nginx.pid"; then nginx -c "$RUN/nginx.conf" -s reload; return 0; fi
  log "nginx on port $NGINX_PORT"
  nginx -t -q -c "$RUN/nginx.conf"
  nginx -c "$RUN/nginx.conf"
  wait_port "$NGINX_PORT" 20
}

stop_pidfile() {  # pidfile [signal]
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if pid_runs "$pid"; then
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do pid_runs "$pid" || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # each part runs in a process group of its own (setsid, or the daemon's own): what the
  # leader started (gunicorn's workers, the supervisor's `manage.py worker`) goes too, even
  # when the leader had died before (SIGKILL) and left them behind
  if kill -TERM -- "-$pid" 2>/dev/null; then
    for i in $(seq 1 20); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_start() {
  local fresh svc
  fresh=$(apt_missing nginx pgbouncer)
  apt_install nginx pgbouncer
  # Debian starts a packaged service on install (nginx :80, pgbouncer :6432); the cluster runs
  # its own, so the services this run installed are stopped and disabled: nothing of the
  # cluster keeps running after `cluster.sh stop`
  for svc in $fresh; do
    if command -v systemctl >/dev/null && systemctl is-enabled "$svc" >/dev/null 2>&1; then
      need_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null; then
      need_root service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
  mkdir -p "$RUN"
  need_root chown postgres "$RUN" 2>/dev/null || true
  chmod 755 "$RUN"
  [ "${CLUSTER_SKIP_COLLECTSTATIC:-0}" = 1 ] || "$PY" manage.py collectstatic --no-input -v 0
  start_standby
  start_pgbouncer
  start_apps
  start_workers
  start_nginx
  cat <<MSG

  gridsvc cluster is up:   http://127.0.0.1:${NGINX_PORT}/   (nginx)
    app servers:           ${APP_PORTS} (gunicorn, via PgBouncer :${PGBOUNCER_PORT})
    primary / standby:     :${PRIMARY_PORT} / :${STANDBY_PORT} (streaming replication)
    workers:               ${WORKERS} (scripts/worker.sh)
    logs:                  ${RUN}/
  stop: scripts/cluster.sh stop

MSG
}

cmd_stop() {
  local f port
  stop_pidfile "$RUN/nginx.pid" QUIT
  for f in "$RUN"/worker-*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
  for port in $APP_PORTS; do stop_pidfile "$RUN/app-$port.pid"; done
  stop_pidfile "$RUN/pgbouncer.pid" INT
  if [ -f "$STANDBY_DIR/PG_VERSION" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$STANDBY_DIR" -m fast -w stop >/dev/null 2>&1 || true
  fi
  # nothing of the cluster may stay behind (a later `make test` or `make demo` shares the
  # machine): every port closed, or say which is not
  local left=""
  for port in "$NGINX_PORT" $APP_PORTS "$PGBOUNCER_PORT" "$STANDBY_PORT"; do
    port_open "$port" && left+=" $port"
  done
  if [ -n "$left" ]; then
    echo "still listening after stop:$left (started outside $RUN?)" >&2
    return 1
  fi
  log "stopped (the primary keeps running; the standby's data stays in $STANDBY_DIR)"
}

cmd_status() {
  local port rc=0 f
  show() {  # label command args…
    local label=$1; shift
    if "$@"; then printf '  %-28s up\n' "$label"; else printf '  %-28s DOWN\n' "$label"; rc=1; fi
  }
  show "nginx :$NGINX_PORT" port_open "$NGINX_PORT"
  for port in $APP_PORTS; do show "app server :$port" port_open "$port"; done
  show "pgbouncer :$PGBOUNCER_PORT" port_open "$PGBOUNCER_PORT"
  show "primary :$PRIMARY_PORT" port_open "$PRIMARY_PORT"
  show "standby :$STANDBY_PORT" port_open "$STANDBY_PORT"
  for f in "$RUN"/worker-*.pid; do [ -e "$f" ] && show "$(basename "$f" .pid)" alive "$f"; done
  if port_open "$STANDBY_PORT"; then
    printf '  replay lag (s):              %s\n' \
      "$(psql_standby -c "select case when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0
        else coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0) end::int" \
        2>/dev/null || echo '?')"
  fi
  return $rc
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop; cmd_start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
