#!/usr/bin/env bash
# Test rig: real servers on loopback ports, data in a temp dir, stopped on exit.
#
#   rig.sh prepare                       build/cache what the servers need (idempotent)
#   rig.sh start [--dir D] [--owner PID] [SERVICE...]
#                                        start services (default: all); prints the rig dir.
#                                        With --owner, a watchdog stops the rig when PID exits.
#   rig.sh stop [--dir D]                stop everything, remove the dir (MS_RIG_KEEP=1 keeps it)
#   rig.sh stop-service SERVICE [--dir D] / start-service SERVICE [--dir D] / restart SERVICE
#                                        for fault tests; a service keeps its port and data
#   rig.sh env [--dir D]                 print the rig's environment file
#
# SERVICE: mariadb (binlog ROW, FULL image and metadata), mariadb-nobinlog, mongo
# (mongo-java-server, H2 file store), ferret (FerretDB v1, SQLite). The dir defaults to
# $MS_RIG_DIR. "$DIR/rig.env" holds MS_RIG_* variables (ports, URIs, users) for the tests.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/rig.sh"
CACHE=${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}
ALL_SERVICES="mariadb mariadb-nobinlog mongo ferret"

die() { echo "rig: $*" >&2; exit 1; }
log() { echo "rig: $*" >&2; }

# A port nobody listens on now (the server's own bind is the final check; callers retry).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

setenv() { # setenv KEY VALUE: add or replace in rig.env
  local f="$DIR/rig.env"
  touch "$f"
  grep -v "^$1=" "$f" > "$f.tmp" || true
  printf '%s=%s\n' "$1" "$2" >> "$f.tmp"
  mv "$f.tmp" "$f"
}
getenv() { { grep "^$1=" "$DIR/rig.env" 2>/dev/null || true; } | tail -n1 | cut -d= -f2-; }

wait_ready_line() { # wait_ready_line LOGFILE PID SECONDS -> prints port
  local out=$1 pid=$2 secs=$3 line
  for _ in $(seq 1 $((secs * 10))); do
    line=$(grep -m1 '^READY ' "$out" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "${line#READY }"; return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ---- MariaDB ---------------------------------------------------------------------------

mariadb_template() { # an initialised, empty datadir, cached per server version
  local ver tpl tmp
  command -v mariadbd >/dev/null || die "mariadbd not found (apt-get install mariadb-server)"
  ver=$(mariadbd --version | awk '{print $3}')
  tpl="$CACHE/mariadb-template/$ver"
  if [ ! -d "$tpl/mysql" ]; then
    mkdir -p "$CACHE/mariadb-template"
    tmp=$(mktemp -d "$CACHE/mariadb-template/tmp.XXXXXX")
    local userarg=()
    [ "$(id -u)" = 0 ] && userarg=(--user=root)
    if ! mariadb-install-db --no-defaults --datadir="$tmp" --auth-root-authentication-method=normal \
        --skip-test-db "${userarg[@]}" > "$tmp.log" 2>&1; then
      cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "mariadb-install-db failed"
    fi
    rm -f "$tmp.log"
    rm -rf "$tpl"; mv "$tmp" "$tpl"
  fi
  echo "$tpl"
}

start_mariadb() { # start_mariadb NAME PREFIX BINLOG(yes|no)
  local name=$1 prefix=$2 binlog=$3 d="$DIR/$1" port tpl pid userarg=() binlogargs=()
  port=$(getenv "${prefix}_PORT")
  if [ ! -d "$d/data" ]; then
    tpl=$(mariadb_template)
    mkdir -p "$d/binlog"
    cp -a "$tpl" "$d/data"
  fi
  [ "$(id -u)" = 0 ] && userarg=(--user=root)
  if [ "$binlog" = yes ]; then
    binlogargs=(--log-bin="$d/binlog/mysql-bin" --binlog-format=ROW --binlog-row-image=FULL
                --binlog-row-metadata=FULL --server-id=1)
  else
    binlogargs=(--skip-log-bin --server-id=1)
  fi
  for attempt in 1 2 3 4 5; do
    [ -n "$port" ] || port=$(free_port)
    mariadbd --no-defaults "${userarg[@]}" --datadir="$d/data" --socket="$d/mysqld.sock" \
      --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
      --pid-file="$d/mariadbd.pid" --log-error="$d/mariadbd.err" \
      "${binlogargs[@]}" --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
      --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
      --innodb-flush-log-at-trx-commit=2 --max-connections=300 --max-allowed-packet=64M \
      > /dev/null 2>&1 &
    pid=$!
    echo "$pid" > "$d/pid"
    for _ in $(seq 1 600); do
      if mariadb-admin --no-defaults --socket="$d/mysqld.sock" -uroot ping >/dev/null 2>&1; then
        break
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && \
       mariadb-admin --no-defaults --socket="$d/mysqld.sock" -uroot ping >/dev/null 2>&1; then
      break
    fi
    if grep -q "Address already in use" "$d/mariadbd.err" 2>/dev/null && [ -z "$(getenv "${prefix}_PORT")" ]; then
      log "$name: port $port taken, retrying"; port=""; continue
    fi
    tail -n 20 "$d/mariadbd.err" >&2 || true
    die "$name did not start"
  done
  # Users: an admin for the tests, and a least-privilege account for mysync itself.
  local pw
  pw=$(getenv MS_RIG_MYSYNC_PASSWORD)
  [ -n "$pw" ] || pw="ms-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  mariadb --no-defaults --socket="$d/mysqld.sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'rig'@'127.0.0.1' IDENTIFIED BY 'rig-admin';
GRANT ALL PRIVILEGES ON *.* TO 'rig'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'mysync'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT SELECT, RELOAD, SHOW VIEW, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION SLAVE ADMIN
  ON *.* TO 'mysync'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
  setenv "${prefix}_PORT" "$port"
  setenv "${prefix}_SOCKET" "$d/mysqld.sock"
  setenv "${prefix}_DATADIR" "$d/data"
  [ "$binlog" = yes ] && setenv "${prefix}_BINLOG_DIR" "$d/binlog"
  setenv MS_RIG_ADMIN_USER rig
  setenv MS_RIG_ADMIN_PASSWORD rig-admin
  setenv MS_RIG_MYSYNC_USER mysync
  setenv MS_RIG_MYSYNC_PASSWORD "$pw"
  log "$name ready on 127.0.0.1:$port"
}

# ---- MongoDB-wire servers --------------------------------------------------------------

start_mongo() {
  local d="$DIR/mongo" cp port pid heap
  cp=$(bash "$HERE/mongo-java-server/build.sh")
  mkdir -p "$d"
  port=$(getenv MS_RIG_MONGO_PORT); port=${port:-0}
  # The heap is kept in rig.env so that a restart by a test keeps it; MS_RIG_JAVA_HEAP
  # (e.g. 4g) is for the full-size fault runs, whose 1 M documents do not fit in 512m.
  heap=$(getenv MS_RIG_JAVA_HEAP); heap=${heap:-${MS_RIG_JAVA_HEAP:-512m}}
  setenv MS_RIG_JAVA_HEAP "$heap"
  : > "$d/out"
  java "-Xmx$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$cp" MysyncMongoServer \
    --port "$port" --data "$d/store.mv.db" > "$d/out" 2> "$d/err" &
  pid=$!
  echo "$pid" > "$d/pid"
  port=$(wait_ready_line "$d/out" "$pid" 120) || { cat "$d/err" >&2; die "mongo-java-server did not start"; }
  setenv MS_RIG_MONGO_PORT "$port"
  setenv MS_RIG_MONGO_URI "mongodb://127.0.0.1:$port"
  log "mongo-java-server ready on 127.0.0.1:$port"
}

start_ferret() {
  local d="$DIR/ferret" bin port pid
  bin=$(bash "$HERE/ferretdb/build.sh")
  mkdir -p "$d/data"
  port=$(getenv MS_RIG_FERRET_PORT); port=${port:-0}
  : > "$d/out"
  "$bin" -listen "127.0.0.1:$port" -data "$d/data" > "$d/out" 2> "$d/err" &
  pid=$!
  echo "$pid" > "$d/pid"
  port=$(wait_ready_line "$d/out" "$pid" 60) || { cat "$d/err" >&2; die "FerretDB did not start"; }
  setenv MS_RIG_FERRET_PORT "$port"
  setenv MS_RIG_FERRET_URI "mongodb://127.0.0.1:$port"
  log "FerretDB ready on 127.0.0.1:$port"
}

start_service() {
  case "$1" in
    mariadb) start_mariadb mariadb MS_RIG_MARIADB yes ;;
    mariadb-nobinlog) start_mariadb mariadb-nobinlog MS_RIG_MARIADB_NOBINLOG no ;;
    mongo) start_mongo ;;
    ferret) start_ferret ;;
    *) die "unknown service '$1' (one of: $ALL_SERVICES)" ;;
  esac
}

stop_service() { # graceful TERM, then KILL after 20 s
  local f="$DIR/$1/pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

kill_service() { # SIGKILL, for crash tests
  local f="$DIR/$1/pid"
  [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true
  rm -f "$f"
}

# ---- commands --------------------------------------------------------------------------

cmd=${1:-}; [ $# -gt 0 ] && shift
DIR=${MS_RIG_DIR:-}
OWNER=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --owner) OWNER=$2; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

case "$cmd" in
  prepare)
    mariadb_template >/dev/null
    bash "$HERE/mongo-java-server/build.sh" >/dev/null
    bash "$HERE/ferretdb/build.sh" >/dev/null
    log "prepared (cache: $CACHE)"
    ;;
  start)
    [ -n "$DIR" ] || DIR=$(mktemp -d "${TMPDIR:-/tmp}/mysync-rig.XXXXXX")
    mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
    touch "$DIR/rig.env"
    setenv MS_RIG_DIR "$DIR"
    setenv MS_RIG_SCRIPT "$SELF"
    if [ -n "$OWNER" ]; then
      # Watchdog: the servers go when their owner goes, even if it crashed.
      setsid bash -c 'while kill -0 '"$OWNER"' 2>/dev/null; do sleep 1; done; exec bash "$0" stop --dir "$1"' \
        "$SELF" "$DIR" > /dev/null 2>&1 < /dev/null &
    fi
    services=("${ARGS[@]}"); [ ${#services[@]} -gt 0 ] || read -r -a services <<< "$ALL_SERVICES"
    for s in "${services[@]}"; do
      start_service "$s" || { bash "$SELF" stop --dir "$DIR"; exit 1; }
    done
    echo "$DIR"
    ;;
  stop)
    [ -n "$DIR" ] || die "stop: no rig dir (--dir or MS_RIG_DIR)"
    [ -d "$DIR" ] || exit 0
    for s in $ALL_SERVICES; do stop_service "$s"; done
    [ "${MS_RIG_KEEP:-0}" = 1 ] || rm -rf "$DIR"
    ;;
  start-service) [ -n "$DIR" ] || die "no rig dir"; start_service "${ARGS[0]}" ;;
  stop-service) [ -n "$DIR" ] || die "no rig dir"; stop_service "${ARGS[0]}" ;;
  kill-service) [ -n "$DIR" ] || die "no rig dir"; kill_service "${ARGS[0]}" ;;
  restart) [ -n "$DIR" ] || die "no rig dir"; stop_service "${ARGS[0]}"; start_service "${ARGS[0]}" ;;
  env) cat "$DIR/rig.env" ;;
  *) sed -n '2,17p' "$SELF" >&2; exit 2 ;;
esac
