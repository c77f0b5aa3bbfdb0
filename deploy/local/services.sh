#!/usr/bin/env bash
# Runs the project's own services (built by `make build` into bin/) against the local stack.
#
#   services.sh start | stop | status | logs | endpoints
#
# start first migrates the database as its owner (bin/ordersctl migrate; log .local/services/migrate.log).
# Each service gets the stack's configuration (KAFKA_BROKERS, OPENSEARCH_URL), its own HTTP_ADDR, and a
# DATABASE_URL that logs in as its own role (command: orders_command, outbox-relay: orders_relay,
# projector-orders: orders_projector, projector-search: orders_keyreader (the data keys only), query:
# orders_query; deploy/local/stack.sh db-url; the console, an operator tool like ordersctl, logs in as
# the owner), the master key of personal data (PII_MASTER_KEY_FILE, .local/pii/master.key, made by
# stack.sh when missing), and runs with AUTH_MODE=dev: the services trust the development signing key
# under .local/auth (made on first use), and `bin/ordersctl token` signs tokens with it. Logs go to .local/services/<name>.log. A service whose
# binary does not exist yet is listed as "not built". Ports (environment, defaults in brackets):
# COMMAND_PORT [8080], QUERY_PORT [8081], RELAY_PORT [8082], PROJECTOR_ORDERS_PORT [8083],
# PROJECTOR_SEARCH_PORT [8084], CONSOLE_PORT [8085]. Consumer groups: PROJECTOR_ORDERS_GROUP [projector-orders],
# PROJECTOR_SEARCH_GROUP [projector-search].
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
LOCAL=${ORDERS_LOCAL_DIR:-$repo/.local}
BIN=$repo/bin
DIR=$LOCAL/services
STACK_TIMEOUT=${STACK_TIMEOUT:-60}

# name:port, in start order (writers before readers).
SERVICES=(
  "command:${COMMAND_PORT:-8080}"
  "outbox-relay:${RELAY_PORT:-8082}"
  "projector-orders:${PROJECTOR_ORDERS_PORT:-8083}"
  "projector-search:${PROJECTOR_SEARCH_PORT:-8084}"
  "query:${QUERY_PORT:-8081}"
  "console:${CONSOLE_PORT:-8085}"
)

say() { printf '%s\n' "$*" >&2; }
die() { say "services: $*"; exit 1; }
pidfile() { echo "$DIR/$1.pid"; }
# alive PID: the process exists and is not a zombie (an orphan killed with -9 can stay a zombie until
# init reaps it, and kill -0 still succeeds on it).
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }
# running NAME: the pid file's process is alive and is $BIN/NAME (a freed pid goes to another process).
running() {
  local pid
  [ -f "$(pidfile "$1")" ] && pid=$(cat "$(pidfile "$1")") && alive "$pid" &&
    [ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -1)" = "$BIN/$1" ]
}

start_one() {
  local name=$1 port=$2 log=$DIR/$1.log
  [ -x "$BIN/$name" ] || return 0
  if running "$name"; then
    if [ "$(sha256sum <"$BIN/$name")" != "$(cat "$DIR/$name.sha" 2>/dev/null)" ]; then say "services: $name was rebuilt; restarting it"; stop_one "$name"
    else say "services: $name already running"; return 0; fi
  fi
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "port $port (for $name) is already in use by another program. Stop it, or choose another port (see deploy/local/services.sh)"
  fi
  local db_role=""
  case $name in
    command) db_role=orders_command ;;
    outbox-relay) db_role=orders_relay ;;
    projector-orders) db_role=orders_projector ;;
    projector-search) db_role=orders_keyreader ;;
    query) db_role=orders_query ;;
  esac
  local extra=()
  [ -n "$db_role" ] && extra+=("DATABASE_URL=$("$here/stack.sh" db-url "$db_role")")
  case $name in
    projector-orders) extra+=("PROJECTOR_GROUP=${PROJECTOR_ORDERS_GROUP:-projector-orders}") ;;
    projector-search) extra+=("PROJECTOR_GROUP=${PROJECTOR_SEARCH_GROUP:-projector-search}") ;;
    console)
      # Its session cookies are sealed with a key of the local stack's own, kept across restarts.
      local key=$LOCAL/console/session.key
      if [ ! -s "$key" ]; then mkdir -p "$LOCAL/console"; (umask 077; head -c 32 /dev/urandom >"$key"); fi
      extra+=("CONSOLE_SESSION_KEY_FILE=$key"
        "PROJECTOR_ORDERS_URL=http://127.0.0.1:${PROJECTOR_ORDERS_PORT:-8083}" "PROJECTOR_SEARCH_URL=http://127.0.0.1:${PROJECTOR_SEARCH_PORT:-8084}"
        "PROJECTOR_ORDERS_GROUP=${PROJECTOR_ORDERS_GROUP:-projector-orders}" "PROJECTOR_SEARCH_GROUP=${PROJECTOR_SEARCH_GROUP:-projector-search}") ;;
  esac
  env HTTP_ADDR="127.0.0.1:$port" "${extra[@]}" nohup "$BIN/$name" >>"$log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
  sha256sum <"$BIN/$name" >"$DIR/$name.sha"
  local deadline=$((SECONDS + STACK_TIMEOUT))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    if ! running "$name"; then say "services: $name exited during start-up. Last lines of $log:"; tail -n 30 "$log" >&2; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then say "services: $name not ready after ${STACK_TIMEOUT}s. Last lines of $log:"; tail -n 30 "$log" >&2; exit 1; fi
    sleep 0.2
  done
  say "services: $name ready on 127.0.0.1:$port"
}

stop_one() {
  local name=$1 f pid; f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if running "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

mkdir -p "$DIR"
eval "$("$here/stack.sh" env)" # DATABASE_URL (the owner's, for ordersctl migrate), AUTH_*, KAFKA_BROKERS, OPENSEARCH_URL
case "${1:-}" in
  start)
    "$here/stack.sh" pii-key
    # The services may not change the schema: the owner migrates first (idempotent, and safe beside
    # running services).
    if [ -x "$BIN/ordersctl" ]; then
      "$BIN/ordersctl" migrate >>"$DIR/migrate.log" 2>&1 || { say "services: ordersctl migrate failed. Last lines of $DIR/migrate.log:"; tail -n 20 "$DIR/migrate.log" >&2; exit 1; }
    fi
    for s in "${SERVICES[@]}"; do start_one "${s%%:*}" "${s##*:}"; done ;;
  stop) # all at once: each one drains for HTTP_DRAIN_DELAY after SIGTERM
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do s=${SERVICES[$i]}; stop_one "${s%%:*}" & done
    wait ;;
  status)
    for s in "${SERVICES[@]}"; do
      n=${s%%:*}
      if running "$n"; then echo "$n: running (pid $(cat "$(pidfile "$n")"), 127.0.0.1:${s##*:})"
      elif [ -x "$BIN/$n" ]; then echo "$n: stopped"
      else echo "$n: not built"; fi
    done ;;
  logs) for s in "${SERVICES[@]}"; do n=${s%%:*}; [ -f "$DIR/$n.log" ] || continue; echo "==> $n: $DIR/$n.log"; tail -n "${LINES_PER_LOG:-30}" "$DIR/$n.log"; done ;;
  endpoints)
    for s in "${SERVICES[@]}"; do n=${s%%:*}; running "$n" && echo "# $n: http://127.0.0.1:${s##*:}"; done; true ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
