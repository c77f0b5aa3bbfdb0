#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL 15 (Debian packages), Apache Kafka in KRaft combined mode and
# OpenSearch 2.19 (both from Maven Central through mvn), each on loopback, with data under .local/.
#
#   stack.sh install            install what is missing (idempotent; downloads cached in ~/.m2)
#   stack.sh start [NAME...]    start the servers (and, with names, only those) and wait for readiness
#   stack.sh stop  [NAME...]    stop them; leaves no process of ours running
#   stack.sh status             one line per server
#   stack.sh logs  [NAME]       the tail of each server's log
#   stack.sh env                the configuration as `export NAME=value` lines
#   stack.sh db-url ROLE        the Postgres URL of a service's login role (orders_command, orders_relay,
#                               orders_projector, orders_query, orders_keyreader), with its local password
#   stack.sh pii-key            make the local master key of personal data when missing (start does it)
#   stack.sh roles              create or update the owner and the services' login roles (start does it)
#   stack.sh is-up              exit 0 when all three servers answer
#
# Names: postgres kafka opensearch. Settings (environment, defaults in brackets):
#   ORDERS_LOCAL_DIR [<repo>/.local]  data, logs and pid files
#   PG_PORT [5432]  KAFKA_PORT [9092]  KAFKA_CONTROLLER_PORT [9093]  OPENSEARCH_PORT [9200]
#   OPENSEARCH_HEAP [512m]  KAFKA_HEAP [512m]  STACK_TIMEOUT [120] seconds to wait for readiness
#   STACK_USER [orders-stack] the unprivileged user that runs OpenSearch (and owns its files) when run as root
#   PG_DATABASE [orders]  the database (one stack can hold several, e.g. a second work tree's)
#
# Postgres roles: `orders` owns the database and runs the migrations and ordersctl (it has CREATEROLE so
# the migrations may create the service roles, and pg_signal_backend for the tests); each service logs in
# as its own role (orders_command, orders_relay, orders_projector, orders_query, orders_keyreader) with a
# random password made once and kept in .local/pg/service-roles.env (mode 600). docs/security.md says
# what each may do.
#
# Personal data (docs/privacy.md) is sealed with data keys that a master key wraps: start makes a random
# one, once, in .local/pii/master.key (mode 600); env prints it as PII_MASTER_KEY_FILE. Deleting it makes
# every sealed field of this stack unreadable (as an erasure of everyone would).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

PG_VERSION=15
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
OPENSEARCH_VERSION=2.19.3

LOCAL=${ORDERS_LOCAL_DIR:-$repo/.local}
PG_PORT=${PG_PORT:-5432}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
OPENSEARCH_PORT=${OPENSEARCH_PORT:-9200}
OPENSEARCH_HEAP=${OPENSEARCH_HEAP:-512m}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
STACK_TIMEOUT=${STACK_TIMEOUT:-120}
STACK_USER=${STACK_USER:-orders-stack}

PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
JAVA_HOME_17=${ORDERS_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
ALL=(postgres kafka opensearch)

PG_DATABASE=${PG_DATABASE:-orders}
DATABASE_URL="postgres://orders:orders@127.0.0.1:$PG_PORT/$PG_DATABASE?sslmode=disable"
SERVICE_ROLES=(orders_command orders_relay orders_projector orders_query orders_keyreader)
PII_MASTER_KEY_FILE=$LOCAL/pii/master.key
ROLES_ENV=$LOCAL/pg/service-roles.env
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
OPENSEARCH_URL="http://127.0.0.1:$OPENSEARCH_PORT"

say() { printf '%s\n' "$*" >&2; }
die() { say "stack: $*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# as USER CMD...: run a command as USER (root switches with runuser; anyone else runs it as themselves).
as() {
  local user=$1; shift
  if is_root && [ "$user" != root ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}
pg_user() { if is_root; then echo postgres; else id -un; fi; }
os_user() { if is_root; then echo "$STACK_USER"; else id -un; fi; }

pidfile() { echo "$LOCAL/run/$1.pid"; }
# alive PID: the process exists and is not a zombie (kill -0 succeeds on a zombie).
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }
# ours NAME PID: PID runs what this script started for NAME, by its command line. A pid file outlives
# its process (kill -9), and the kernel gives a freed pid to another process, sooner than one thinks
# on a busy machine: "kafka already running" for someone else's pid left Kafka down in a fault run.
ours() {
  local want
  case $1 in
    postgres) want=$LOCAL/pg/data ;;
    kafka) want=$LOCAL/kafka/server.properties ;;
    opensearch) want=$LOCAL/opensearch/ ;;
    *) return 1 ;;
  esac
  tr '\0' '\n' <"/proc/$2/cmdline" 2>/dev/null | grep -qF -- "$want"
}
running() { # running NAME: our process for NAME is alive
  local f pid; f=$(pidfile "$1")
  [ -f "$f" ] && pid=$(cat "$f") && alive "$pid" && ours "$1" "$pid"
}

port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1; }
check_port() { # check_port NAME PORT VAR: fail clearly if PORT is taken by something that is not ours
  local name=$1 port=$2 var=$3
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "port $port (for $name) is already in use by another program ($(port_owner "$port")). Stop it, or choose another port: $var=<port> make up"
  fi
}

probe_bin() { echo "$LOCAL/bin/probe"; }
build_probe() {
  local bin; bin=$(probe_bin)
  if [ ! -x "$bin" ] || [ -n "$(find "$here/probe" -newer "$bin" -name '*.go' 2>/dev/null)" ]; then
    command -v go >/dev/null || die "Go is not installed (https://go.dev/dl): the readiness probe is written in Go"
    (cd "$repo" && go build -o "$bin" ./deploy/local/probe)
  fi
}

wait_ready() { # wait_ready NAME KIND ENDPOINT LOG
  local name=$1 kind=$2 endpoint=$3 log=$4 deadline=$((SECONDS + STACK_TIMEOUT)) err=""
  while :; do
    if err=$("$(probe_bin)" "$kind" "$endpoint" 2>&1); then return 0; fi
    if ! running "$name"; then
      say "stack: $name exited during start-up. Last lines of $log:"; tail -n 40 "$log" >&2 || true; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "stack: $name not ready after ${STACK_TIMEOUT}s ($err). Last lines of $log:"; tail -n 40 "$log" >&2 || true; exit 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------- install
apt_install() {
  is_root || die "missing: $*. Install them with: sudo apt-get install -y $*"
  say "stack: installing $* from Debian packages"
  if [ -z "${_apt_updated:-}" ]; then apt-get update -qq >&2; _apt_updated=1; fi
  # A Debian postgresql package would otherwise create and start its own cluster on port 5432.
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf ||
    echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

install_packages() {
  local missing=()
  [ -x "$PG_BIN/postgres" ] || missing+=("postgresql-$PG_VERSION")
  [ -x "$JAVA_HOME_17/bin/java" ] || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v unzip >/dev/null || missing+=(unzip)
  command -v ss >/dev/null || missing+=(iproute2)
  # The console's browser tests drive headless Chromium (make test); a font to render its pages.
  command -v chromium >/dev/null || missing+=(chromium)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  if is_root && ! id "$STACK_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$STACK_USER"
  fi
}

mvn_get() { # quiet on success; the whole output on failure
  local log; log=$(mktemp)
  if ! JAVA_HOME=$JAVA_HOME_17 mvn -q -B -Dstyle.color=never "$@" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; die "mvn failed: mvn $*"
  fi
  rm -f "$log"
}

install_kafka() {
  local libs=$LOCAL/kafka/libs stamp=$LOCAL/kafka/libs/.stamp want
  want=$(sha256sum "$here/pom.xml" | cut -c1-16)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  say "stack: fetching Kafka $KAFKA_VERSION from Maven Central (cached in ~/.m2)"
  rm -rf "$libs"; mkdir -p "$libs"
  mvn_get -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs"
  echo "$want" >"$stamp"
}

install_opensearch() {
  local dist=$LOCAL/opensearch/dist stamp=$LOCAL/opensearch/dist/.stamp
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$OPENSEARCH_VERSION" ] && return 0
  say "stack: fetching OpenSearch $OPENSEARCH_VERSION from Maven Central (cached in ~/.m2)"
  local dl=$LOCAL/downloads
  mkdir -p "$dl"
  mvn_get dependency:copy -Dartifact="org.opensearch.distribution.integ-test-zip:opensearch:$OPENSEARCH_VERSION:zip" \
    -DoutputDirectory="$dl"
  rm -rf "$dist" "$LOCAL/opensearch/unpack"; mkdir -p "$LOCAL/opensearch/unpack"
  unzip -q "$dl/opensearch-$OPENSEARCH_VERSION.zip" -d "$LOCAL/opensearch/unpack"
  mv "$LOCAL/opensearch/unpack/opensearch-$OPENSEARCH_VERSION" "$dist"
  rm -rf "$LOCAL/opensearch/unpack" "$dl/opensearch-$OPENSEARCH_VERSION.zip"
  echo "$OPENSEARCH_VERSION" >"$stamp"
}

cmd_install() {
  mkdir -p "$LOCAL"/{run,bin}
  install_packages
  # The servers run as other users when we are root: they must be able to reach the data directory.
  if is_root; then
    runuser -u postgres -- test -x "$LOCAL" ||
      die "$LOCAL is not reachable by the postgres user (a parent directory is private). Set ORDERS_LOCAL_DIR to a directory under /var/tmp or /srv."
  fi
  install_kafka
  install_opensearch
  build_probe
}

# ------------------------------------------------------------------------------------------- postgres
start_postgres() {
  local data=$LOCAL/pg/data sock=$LOCAL/pg/sock log=$LOCAL/pg/postgres.log u; u=$(pg_user)
  if running postgres; then return 0; fi
  check_port postgres "$PG_PORT" PG_PORT
  mkdir -p "$LOCAL/pg" "$sock"
  is_root && chown -R postgres: "$LOCAL/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    as "$u" "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 \
      --locale=C.UTF-8 >"$LOCAL/pg/initdb.log" 2>&1 || { tail -20 "$LOCAL/pg/initdb.log" >&2; die "initdb failed"; }
    cat >>"$data/postgresql.conf" <<EOF
# orders local stack
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
# durable: benchmarks measure with fsync on
fsync = on
synchronous_commit = on
log_min_messages = warning
EOF
  fi
  # The port lives on the command line so PG_PORT can change between starts.
  as "$u" "$PG_BIN/pg_ctl" -D "$data" -l "$log" -o "-p $PG_PORT" -w -t "$STACK_TIMEOUT" start >/dev/null ||
    { tail -n 40 "$log" >&2; die "postgres did not start"; }
  head -1 "$data/postmaster.pid" >"$(pidfile postgres)"
  cmd_roles # before the probe: it logs in as the owner, which a new cluster does not have yet
  wait_ready postgres postgres "$DATABASE_URL" "$log"
}

# service_password ROLE: the role's local password, made once (random) and kept in ROLES_ENV.
service_password() {
  local role=$1 var
  var=$(echo "$role" | tr '[:lower:]' '[:upper:]')_PASSWORD
  if ! grep -qs "^$var=" "$ROLES_ENV"; then
    mkdir -p "$(dirname "$ROLES_ENV")"
    (umask 077; echo "$var=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" >>"$ROLES_ENV")
  fi
  sed -n "s/^$var=//p" "$ROLES_ENV" | head -1
}

# cmd_roles: the owner role orders (CREATEROLE for the migrations, pg_signal_backend for the tests), the
# database, and the services' login roles with their local passwords. Idempotent.
cmd_roles() {
  local sock=$LOCAL/pg/sock args=() r
  for r in "${SERVICE_ROLES[@]}"; do args+=(-v "pw_$r=$(service_password "$r")"); done
  as "$(pg_user)" "$PG_BIN/psql" -h "$sock" -p "$PG_PORT" -U postgres -qAt -v ON_ERROR_STOP=1 -v db="$PG_DATABASE" "${args[@]}" >/dev/null <<'EOF'
SELECT 'CREATE ROLE orders LOGIN CREATEDB CREATEROLE PASSWORD ''orders''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders')\gexec
-- The migrations create the service roles (where missing) and their grants: the owner needs CREATEROLE.
ALTER ROLE orders CREATEROLE;
SELECT format('CREATE DATABASE %I OWNER orders', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
-- Tests drop their databases WITH (FORCE), which must end every session in them, an autovacuum
-- worker's too: pg_signal_backend lets a non-superuser do that (never a superuser's session).
GRANT pg_signal_backend TO orders;
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['orders_command', 'orders_relay', 'orders_projector', 'orders_query', 'orders_keyreader']) AS r
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)\gexec
ALTER ROLE orders_command LOGIN PASSWORD :'pw_orders_command';
ALTER ROLE orders_relay LOGIN PASSWORD :'pw_orders_relay';
ALTER ROLE orders_projector LOGIN PASSWORD :'pw_orders_projector';
ALTER ROLE orders_query LOGIN PASSWORD :'pw_orders_query';
ALTER ROLE orders_keyreader LOGIN PASSWORD :'pw_orders_keyreader';
EOF
}

# cmd_pii_key: the local master key of personal data, made once (32 random bytes, base64), mode 600.
cmd_pii_key() {
  [ -s "$PII_MASTER_KEY_FILE" ] && return 0
  mkdir -p "$(dirname "$PII_MASTER_KEY_FILE")"
  (umask 077; head -c 32 /dev/urandom | base64 >"$PII_MASTER_KEY_FILE.tmp") && mv "$PII_MASTER_KEY_FILE.tmp" "$PII_MASTER_KEY_FILE"
  say "stack: made the master key of personal data: $PII_MASTER_KEY_FILE"
}

# cmd_db_url ROLE: the URL a service logs in with.
cmd_db_url() {
  local role=${1:-}
  case " ${SERVICE_ROLES[*]} " in *" $role "*) ;; *) die "db-url: want one of ${SERVICE_ROLES[*]}";; esac
  echo "postgres://$role:$(service_password "$role")@127.0.0.1:$PG_PORT/$PG_DATABASE?sslmode=disable"
}

stop_postgres() {
  local data=$LOCAL/pg/data
  if [ -f "$data/postmaster.pid" ]; then
    as "$(pg_user)" "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -f "$(pidfile postgres)"
}

# ---------------------------------------------------------------------------------------------- kafka
start_kafka() {
  local dir=$LOCAL/kafka log=$LOCAL/kafka/logs/server.log props=$LOCAL/kafka/server.properties
  if running kafka; then return 0; fi
  check_port kafka "$KAFKA_PORT" KAFKA_PORT
  check_port kafka-controller "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$props" <<EOF
# Generated by deploy/local/stack.sh: single-node KRaft, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a crash (kill -9) the restarted broker cannot register until the controller has expired the
# session of its previous incarnation (DUPLICATE_BROKER_REGISTRATION, retried every 2 s): 9 s by
# default, most of a restart. One node on loopback: 4 s (make chaos measures the restart).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
EOF
  local cp="$dir/libs/*"
  local java=(env JAVA_HOME="$JAVA_HOME_17" "$JAVA_HOME_17/bin/java" -cp "$cp")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id; id=$("${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    "${java[@]}" -Dlog4j2.configurationFile="$here/kafka-log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
      kafka.tools.StorageTool format -t "$id" -c "$props" --ignore-formatted >"$dir/logs/format.log" 2>&1 ||
      { tail -20 "$dir/logs/format.log" >&2; die "kafka storage format failed"; }
  fi
  nohup env JAVA_HOME="$JAVA_HOME_17" "$JAVA_HOME_17/bin/java" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
    -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/kafka-log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$cp" kafka.Kafka "$props" >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$(pidfile kafka)"
  wait_ready kafka kafka "$KAFKA_BROKERS" "$log"
}

# stop_pid NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
  local name=$1 f pid; f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if running "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}
stop_kafka() { stop_pid kafka; }

# ----------------------------------------------------------------------------------------- opensearch
start_opensearch() {
  local dir=$LOCAL/opensearch conf=$LOCAL/opensearch/config log=$LOCAL/opensearch/logs/orders-local.log u
  u=$(os_user)
  if running opensearch; then return 0; fi
  check_port opensearch "$OPENSEARCH_PORT" OPENSEARCH_PORT
  mkdir -p "$dir/data" "$dir/logs" "$conf"
  cp -r "$dir/dist/config/." "$conf/"
  cat >"$conf/opensearch.yml" <<EOF
# Generated by deploy/local/stack.sh: single node, loopback only, no security plugin in this distribution.
cluster.name: orders-local
node.name: orders-local-1
path.data: $dir/data
path.logs: $dir/logs
network.host: 127.0.0.1
http.port: $OPENSEARCH_PORT
transport.port: $((OPENSEARCH_PORT + 100))
discovery.type: single-node
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: false
EOF
  cat >"$conf/jvm.options.d/heap.options" <<EOF
-Xms$OPENSEARCH_HEAP
-Xmx$OPENSEARCH_HEAP
EOF
  is_root && chown -R "$u:" "$dir"
  # A pid file left by an earlier run would be taken for the new one (and its dead pid for a crash).
  rm -f "$dir/opensearch.pid"
  as "$u" env OPENSEARCH_JAVA_HOME="$JAVA_HOME_17" JAVA_HOME="$JAVA_HOME_17" OPENSEARCH_PATH_CONF="$conf" \
    "$dir/dist/bin/opensearch" -d -p "$dir/opensearch.pid" >"$dir/logs/stdout.log" 2>&1 ||
    { tail -n 40 "$dir/logs/stdout.log" "$log" >&2 2>/dev/null; die "opensearch did not start"; }
  for _ in $(seq 1 20); do [ -s "$dir/opensearch.pid" ] && break; sleep 0.25; done
  cp "$dir/opensearch.pid" "$(pidfile opensearch)"
  wait_ready opensearch opensearch "$OPENSEARCH_URL" "$log"
}
stop_opensearch() { stop_pid opensearch; }

# ------------------------------------------------------------------------------------------- commands
names() { if [ $# -eq 0 ]; then echo "${ALL[@]}"; else echo "$@"; fi; }

cmd_start() {
  cmd_install
  for n in $(names "$@"); do
    case $n in postgres|kafka|opensearch) ;; *) die "unknown server '$n' (postgres, kafka, opensearch)";; esac
    local t0=$SECONDS
    if running "$n"; then say "stack: $n already running"; continue; fi
    "start_$n"
    say "stack: $n ready in $((SECONDS - t0))s"
  done
  # The roles, also on a cluster that was already running, started by an older release (idempotent).
  case " $(names "$@") " in *" postgres "*) cmd_roles ;; esac
  cmd_pii_key
}

cmd_stop() {
  for n in $(names "$@"); do "stop_$n"; say "stack: $n stopped"; done
}

cmd_status() {
  local rc=0
  for n in "${ALL[@]}"; do
    if running "$n"; then echo "$n: running (pid $(cat "$(pidfile "$n")"))"; else echo "$n: stopped"; rc=3; fi
  done
  return $rc
}

cmd_logs() {
  local -A logs=([postgres]="$LOCAL/pg/postgres.log" [kafka]="$LOCAL/kafka/logs/server.log"
    [opensearch]="$LOCAL/opensearch/logs/orders-local.log")
  for n in $(names "$@"); do
    echo "==> $n: ${logs[$n]}"
    tail -n "${LINES_PER_LOG:-30}" "${logs[$n]}" 2>/dev/null || echo "(no log yet)"
  done
}

cmd_env() {
  echo "export DATABASE_URL='$DATABASE_URL'"
  echo "export AUTH_MODE=dev AUTH_DEV_DIR='$LOCAL/auth'"
  echo "export KAFKA_BROKERS='$KAFKA_BROKERS'"
  echo "export OPENSEARCH_URL='$OPENSEARCH_URL'"
  echo "export PII_MASTER_KEY_FILE='$PII_MASTER_KEY_FILE'"
}

cmd_is_up() {
  for n in "${ALL[@]}"; do running "$n" || return 1; done
  build_probe
  "$(probe_bin)" postgres "$DATABASE_URL" 2>/dev/null && "$(probe_bin)" kafka "$KAFKA_BROKERS" 2>/dev/null &&
    "$(probe_bin)" opensearch "$OPENSEARCH_URL" 2>/dev/null
}

case "${1:-}" in
  install) shift; cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  env) cmd_env ;;
  db-url) shift; cmd_db_url "$@" ;;
  roles) cmd_roles ;;
  pii-key) cmd_pii_key ;;
  is-up) cmd_is_up ;;
  *) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
