# Shared by the bench/ scripts (sourced, from the repository root): the scratch directory, a
# rig of MariaDB and mongo-java-server owned by the script, and cleanup on any exit.
#
#   bench_start NAME [SERVICES...]   WORK=a new scratch dir, RIG=a rig of SERVICES (default
#                                    mariadb mongo) whose rig.env is sourced; an EXIT trap
#                                    stops, in this order, the pids listed in BENCH_PIDS (a
#                                    function printing them, if the script defines one), the
#                                    rig, and removes WORK
#   stop_pid PID [SECONDS]           SIGTERM, then SIGKILL after SECONDS (default 15)
#   cpu_of PID                       user + system CPU seconds so far, threads included

RIG="" WORK=""
stop_pid() {
  local pid=$1 tenths=$((${2:-15} * 10))
  kill -0 "$pid" 2> /dev/null || return 0
  kill -TERM "$pid" 2> /dev/null || true
  for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}
CLK_TCK=$(getconf CLK_TCK)
cpu_of() {
  awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
bench_cleanup() {
  local pid
  if declare -F BENCH_PIDS > /dev/null; then
    for pid in $(BENCH_PIDS); do stop_pid "$pid"; done
  fi
  [ -z "$RIG" ] || bash tests/support/rig.sh stop --dir "$RIG" || true
  [ -z "$WORK" ] || rm -rf "$WORK"
}
bench_start() {
  local name=$1 services
  shift
  services=("$@")
  [ ${#services[@]} -gt 0 ] || services=(mariadb mongo)
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mysync-$name.XXXXXX")
  # --owner: the rig's watchdog stops the servers even if this script is killed
  RIG=$(bash tests/support/rig.sh start --owner $$ "${services[@]}")
  . "$RIG/rig.env"
}
