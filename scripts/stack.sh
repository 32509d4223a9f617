#!/usr/bin/env bash
# The local stack, all on 127.0.0.1: moto's server (the AWS APIs), a private PostgreSQL cluster
# (its own data directory and port, TLS with a test CA, scram-sha-256 for every login, statement
# log on) and `cargo lambda watch` serving this workspace's functions.
#
#   scripts/stack.sh up              start what is not running (a fresh stack when nothing runs)
#   scripts/stack.sh down            stop everything it started
#   scripts/stack.sh status          say what runs
#   scripts/stack.sh running         exit 0 when everything runs
#   scripts/stack.sh env             print the exports that point a shell at the stack
#   scripts/stack.sh run -- CMD...   run CMD against the stack: `up` unless it runs, CMD with
#                                    the exports of `env`, then `down` if this run started it
#
# Also a private MariaDB server (its own data directory and port, TLS with the same test CA,
# general log on), and the policy gate (test-support's bin policy-gate): the functions' AWS
# endpoints point at it, and it refuses every call the role infra/template.yaml gives the
# calling function does not allow, then forwards the rest (RDS, IAM, STS and Secrets Manager to
# the recorder,
# the others to moto). Its decisions go to $stack_dir/policy-gate.jsonl. The tests' own set-up
# calls go to moto and the recorder directly.
#
# Ports: ROTATION_MOTO_PORT (25001), ROTATION_PG_PORT (25432), ROTATION_MYSQL_PORT (23306),
# ROTATION_LAMBDA_PORT (29001): below 32768, outside Linux's ephemeral port range, so that no
# outgoing connection holds one of them when the stack binds it.
# The functions publish rotation outcomes to the EventBridge bus ROTATION_EVENT_BUS_NAME
# (rotation-local) that the stack creates in moto; set it empty to leave events off.
set -euo pipefail
caller_dir=$PWD
root=$(cd "$(dirname "$0")/.." && pwd)
stack_dir=${ROTATION_STACK_DIR:-/tmp/secret-rotation-stack-$(printf %s "$root" | sha256sum | cut -c1-10)}
moto_port=${ROTATION_MOTO_PORT:-25001}
pg_port=${ROTATION_PG_PORT:-25432}
lambda_port=${ROTATION_LAMBDA_PORT:-29001}
mysql_port=${ROTATION_MYSQL_PORT:-23306}
rds_port=${ROTATION_RDS_RECORDER_PORT:-$((moto_port + 1))}
# ListSecrets lags as on AWS (the recorder answers it from a snapshot this many seconds old at
# most), and the compromise function lists again for longer than that.
list_secrets_lag=${ROTATION_LIST_SECRETS_LAG_SECONDS:-3}
compromise_listing_lag=${ROTATION_COMPROMISE_LISTING_LAG_SECONDS:-8}
gate_port=${ROTATION_GATE_PORT:-$((moto_port + 2))}
# The SigV4 services the gate forwards to the recorder rather than to moto (Secrets Manager for
# the recorder's lagging ListSecrets).
gate_recorder_services=${ROTATION_GATE_RECORDER_SERVICES:-rds,iam,sts,secretsmanager}
log_level=${ROTATION_FUNCTION_LOG_LEVEL:-debug}
event_bus=${ROTATION_EVENT_BUS_NAME-rotation-local}
venv="$root/.venv"
log() { printf '[stack] %s\n' "$*" >&2; }

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ]; then echo "$dir"; else dirname "$(command -v initdb)"; fi
}

# PostgreSQL refuses to run as root: as root, the cluster runs as the postgres user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The MariaDB server runs as the mysql user when started as root, else as the caller.
mysql_os_user() {
  if [ "$(id -u)" -eq 0 ]; then echo mysql; else id -un; fi
}

mysql_running() { pid_alive "$stack_dir/mysql/mariadb.pid"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local what=$1 port=$2 tries=${3:-100}
  for _ in $(seq "$tries"); do
    port_open "$port" && return 0
    sleep 0.2
  done
  log "$what did not open 127.0.0.1:$port; see $stack_dir/*.log"
  return 1
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

pg_running() { [ -f "$stack_dir/pg/data/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$stack_dir/pg/data" status >/dev/null 2>&1; }

write_env() {
  cat > "$stack_dir/env" <<ENV
export ROTATION_STACK_DIR='$stack_dir'
export AWS_ENDPOINT_URL='http://127.0.0.1:$moto_port'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_REGION='us-east-1'
export AWS_DEFAULT_REGION='us-east-1'
export ROTATION_LAMBDA_ENDPOINT='http://127.0.0.1:$lambda_port'
export ROTATION_LAMBDA_LOG='$stack_dir/lambda.log'
export ROTATION_PG_HOST='127.0.0.1'
export ROTATION_PG_PORT='$pg_port'
export ROTATION_PG_ADMIN_USER='rotation_admin'
export ROTATION_PG_ADMIN_PASSWORD='$(cat "$stack_dir/pg/admin-password")'
export ROTATION_PG_LOG='$stack_dir/pg/log/postgresql.log'
export ROTATION_DB_CA_FILE='$stack_dir/tls/ca.pem'
export ROTATION_MYSQL_HOST='127.0.0.1'
export ROTATION_MYSQL_PORT='$mysql_port'
export ROTATION_MYSQL_ADMIN_USER='rotation_admin'
export ROTATION_MYSQL_ADMIN_PASSWORD='$(cat "$stack_dir/mysql/admin-password")'
export ROTATION_MYSQL_LOG='$stack_dir/mysql/general.log'
export ROTATION_DB_HOST_OVERRIDES='*.rds.amazonaws.com:5432=127.0.0.1:$pg_port;*.rds.amazonaws.com:3306=127.0.0.1:$mysql_port'
export USERNAME_CHARACTER_LIMIT='32'
export ROTATION_RDS_ENDPOINT='http://127.0.0.1:$rds_port'
export AWS_ENDPOINT_URL_IAM='http://127.0.0.1:$rds_port'
export AWS_ENDPOINT_URL_STS='http://127.0.0.1:$rds_port'
export ROTATION_RDS_RECORD='$stack_dir/rds-requests.jsonl'
export ROTATION_LIST_SECRETS_LAG_SECONDS='$list_secrets_lag'
export ROTATION_COMPROMISE_LISTING_LAG_SECONDS='$compromise_listing_lag'
export ROTATION_EVENT_BUS='$event_bus'
export ROTATION_SECRETS_RECORD='$stack_dir/secrets-used.jsonl'
export ROTATION_POLICY_GATE_ENDPOINT='http://127.0.0.1:$gate_port'
export ROTATION_POLICY_GATE_LOG='$stack_dir/policy-gate.jsonl'
ENV
}

make_tls() {
  local dir="$stack_dir/tls"
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=secret-rotation local test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
}

start_postgres() {
  if pg_running; then log "PostgreSQL already runs on 127.0.0.1:$pg_port"; return; fi
  port_open "$pg_port" && { log "port $pg_port is taken by another process (set ROTATION_PG_PORT)"; exit 1; }
  local bin pg="$stack_dir/pg"
  bin=$(pg_bin)
  rm -rf "$pg"
  mkdir -p "$pg/log" "$pg/sock"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$pg/admin-password"
  cp "$stack_dir/tls/server.pem" "$pg/server.crt"
  cp "$stack_dir/tls/server.key" "$pg/server.key"
  chmod 600 "$pg/server.key"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$pg"
  as_pg "$bin/initdb" -D "$pg/data" -U rotation_admin --pwfile="$pg/admin-password" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$pg/initdb.log" 2>&1
  cat >> "$pg/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg/sock'
ssl = on
ssl_cert_file = '$pg/server.crt'
ssl_key_file = '$pg/server.key'
password_encryption = 'scram-sha-256'
log_statement = 'all'
logging_collector = on
log_directory = '$pg/log'
log_filename = 'postgresql.log'
CONF
  # Members of tls_required may log in only over TLS: the tests use it to prove the functions
  # use TLS by default. Everyone else may also log in without TLS ("ssl": false secrets).
  cat > "$pg/data/pg_hba.conf" <<HBA
local     all all                        scram-sha-256
hostssl   all all           127.0.0.1/32 scram-sha-256
hostnossl all +tls_required 127.0.0.1/32 reject
hostnossl all all           127.0.0.1/32 scram-sha-256
HBA
  as_pg "$bin/pg_ctl" -D "$pg/data" -l "$pg/startup.log" -w start >/dev/null
  PGPASSWORD=$(cat "$pg/admin-password") "$bin/psql" -q -h "$pg/sock" -p "$pg_port" -U rotation_admin \
    -d postgres -c "CREATE ROLE tls_required NOLOGIN" >/dev/null
  log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port (TLS, scram-sha-256)"
}

start_mysql() {
  if mysql_running; then log "MariaDB already runs on 127.0.0.1:$mysql_port"; return; fi
  port_open "$mysql_port" && { log "port $mysql_port is taken by another process (set ROTATION_MYSQL_PORT)"; exit 1; }
  local my="$stack_dir/mysql" user
  user=$(mysql_os_user)
  rm -rf "$my"
  mkdir -p "$my/data"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$my/admin-password"
  cp "$stack_dir/tls/server.pem" "$my/server.pem"
  cp "$stack_dir/tls/server.key" "$my/server.key"
  cp "$stack_dir/tls/ca.pem" "$my/ca.pem"
  chmod 600 "$my/server.key"
  [ "$(id -u)" -eq 0 ] && chown -R mysql: "$my"
  mariadb-install-db --no-defaults --datadir="$my/data" --user="$user" \
    --auth-root-authentication-method=socket --skip-test-db >"$my/install.log" 2>&1
  setsid "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --no-defaults --datadir="$my/data" --user="$user" \
    --bind-address=127.0.0.1 --port="$mysql_port" --socket="$my/mariadb.sock" \
    --pid-file="$my/mariadb.pid" --log-error="$my/error.log" \
    --ssl-ca="$my/ca.pem" --ssl-cert="$my/server.pem" --ssl-key="$my/server.key" \
    --general-log=1 --general-log-file="$my/general.log" \
    --skip-name-resolve >/dev/null 2>&1 < /dev/null &
  wait_for "MariaDB" "$mysql_port"
  for _ in $(seq 50); do [ -S "$my/mariadb.sock" ] && break; sleep 0.1; done
  # The password goes in as its mysql_native_password hash, so the general log never holds it.
  local hash
  hash=$(tr -d '\n' < "$my/admin-password" | openssl sha1 -binary | openssl sha1 | awk '{print toupper($NF)}')
  mariadb --no-defaults -S "$my/mariadb.sock" -u root <<SQL
CREATE USER 'rotation_admin'@'%' IDENTIFIED BY PASSWORD '*$hash';
GRANT ALL PRIVILEGES ON *.* TO 'rotation_admin'@'%' WITH GRANT OPTION;
CREATE DATABASE rotation_test;
SQL
  log "MariaDB $("$(command -v mariadbd || echo /usr/sbin/mariadbd)" --version | awk '{print $3}') on 127.0.0.1:$mysql_port (TLS, password logins)"
}

start_moto() {
  if pid_alive "$stack_dir/moto.pid"; then log "moto already runs on 127.0.0.1:$moto_port"; return; fi
  port_open "$moto_port" && { log "port $moto_port is taken by another process (set ROTATION_MOTO_PORT)"; exit 1; }
  setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$stack_dir/moto.log" 2>&1 < /dev/null &
  echo $! > "$stack_dir/moto.pid"
  wait_for "moto" "$moto_port"
  RDS_APPLY_SECONDS=${ROTATION_RDS_APPLY_SECONDS:-3} PSQL="$(pg_bin)/psql" PG_SOCKET_DIR="$stack_dir/pg/sock" \
    PG_PORT="$pg_port" PG_PASSWORD_FILE="$stack_dir/pg/admin-password" \
    MARIADB="$(command -v mariadb || echo /usr/bin/mariadb)" MARIADB_PORT="$mysql_port" \
    MARIADB_PASSWORD_FILE="$stack_dir/mysql/admin-password" \
  ROTATION_LIST_SECRETS_LAG_SECONDS="$list_secrets_lag" \
    setsid "$venv/bin/python" "$root/scripts/rds-recorder.py" "$rds_port" "http://127.0.0.1:$moto_port" \
    "$stack_dir/rds-requests.jsonl" >"$stack_dir/rds-recorder.log" 2>&1 < /dev/null &
  echo $! > "$stack_dir/rds-recorder.pid"
  wait_for "the RDS recorder" "$rds_port"
  log "moto server on 127.0.0.1:$moto_port (RDS calls recorded and STS signatures checked through 127.0.0.1:$rds_port)"
  if [ -n "$event_bus" ]; then
    "$venv/bin/python" - "$moto_port" "$event_bus" <<'PY'
import sys, boto3
events = boto3.client("events", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
if not any(b["Name"] == sys.argv[2] for b in events.list_event_buses()["EventBuses"]):
    events.create_event_bus(Name=sys.argv[2])
PY
    log "EventBridge bus $event_bus in moto (rotation outcomes)"
  fi
}

# The functions compile while the servers start: on a first `up` the build takes longest.
# `cargo build --bin F...` without -p selects the default members, as the `cargo run --bin F`
# of `cargo lambda watch` does, so both resolve the same features and the watch finds the
# binaries fresh (with -p, cargo would resolve other features and the watch would rebuild).
# Only the functions' binaries are built: the watch serves nothing else.
build_pid=
start_build() {
  local names name bins=()
  names=$("$root/scripts/workspace.py" functions)
  for name in $names; do bins+=(--bin "$name"); done
  log "building the functions (${names//$'\n'/ }; cargo's output in $stack_dir/build.log)"
  # The policy gate is test-support's: built in its own invocation (with -p), after the
  # functions, so that theirs resolves the features the watch's `cargo run` does.
  (cd "$root" && cargo build "${bins[@]}" && exec cargo build -p test-support --bin policy-gate) \
    >"$stack_dir/build.log" 2>&1 < /dev/null &
  build_pid=$!
}

finish_build() {
  [ -n "$build_pid" ] || return 0
  local pid=$build_pid
  build_pid=
  kill -0 "$pid" 2>/dev/null && log "waiting for the build of the functions"
  if ! wait "$pid"; then
    cat "$stack_dir/build.log" >&2
    log "the functions did not build"
    exit 1
  fi
  log "functions built"
}

start_gate() {
  if pid_alive "$stack_dir/policy-gate.pid"; then log "policy gate already runs on 127.0.0.1:$gate_port"; return; fi
  port_open "$gate_port" && { log "port $gate_port is taken by another process (set ROTATION_MOTO_PORT or ROTATION_GATE_PORT)"; exit 1; }
  finish_build
  # shellcheck disable=SC1091
  . "$stack_dir/env"
  setsid "${CARGO_TARGET_DIR:-$root/target}/debug/policy-gate" "$gate_port" "http://127.0.0.1:$moto_port" \
    "http://127.0.0.1:$rds_port" "$gate_recorder_services" "$stack_dir/policy-gate.jsonl" \
    >"$stack_dir/policy-gate.log" 2>&1 < /dev/null &
  echo $! > "$stack_dir/policy-gate.pid"
  wait_for "the policy gate" "$gate_port"
  log "policy gate on 127.0.0.1:$gate_port (the functions' AWS calls, checked against infra/template.yaml)"
}

# The functions exclude no character a password may hold (§ is in no character class, and
# cargo lambda refuses an empty value), so every run exercises quoting of ' " \ : / @.
start_lambda() {
  if pid_alive "$stack_dir/lambda.pid"; then log "cargo lambda watch already runs on 127.0.0.1:$lambda_port"; return; fi
  port_open "$lambda_port" && { log "port $lambda_port is taken by another process (set ROTATION_LAMBDA_PORT)"; exit 1; }
  finish_build
  # shellcheck disable=SC1091
  . "$stack_dir/env"
  cd "$root"
  PATH="$venv/bin:$PATH" setsid "$venv/bin/cargo-lambda" lambda watch \
    -A 127.0.0.1 -P "$lambda_port" --ignore-changes --concurrency 4 \
    --env-var "AWS_ENDPOINT_URL=$ROTATION_POLICY_GATE_ENDPOINT" \
    --env-var "AWS_ENDPOINT_URL_RDS=$ROTATION_POLICY_GATE_ENDPOINT" \
    --env-var "AWS_ENDPOINT_URL_IAM=$ROTATION_POLICY_GATE_ENDPOINT" \
    --env-var "AWS_ENDPOINT_URL_STS=$ROTATION_POLICY_GATE_ENDPOINT" \
    --env-var "ROTATION_COMPROMISE_LISTING_LAG_SECONDS=$compromise_listing_lag" \
    --env-var "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
    --env-var "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" \
    --env-var "AWS_REGION=$AWS_REGION" \
    --env-var "ROTATION_DB_CA_FILE=$ROTATION_DB_CA_FILE" \
    --env-var "ROTATION_DB_HOST_OVERRIDES=$ROTATION_DB_HOST_OVERRIDES" \
    --env-var "USERNAME_CHARACTER_LIMIT=$USERNAME_CHARACTER_LIMIT" \
    --env-var "ROTATION_RDS_WAIT_SECONDS=10" \
    --env-var "ROTATION_IN_USE_WAIT_SECONDS=6" \
    --env-var "ROTATION_WORKFLOW_RESUME_AFTER_SECONDS=5" \
    --env-var "ROTATION_DB_CONNECT_TIMEOUT_SECONDS=5" \
    --env-var "ROTATION_DB_STATEMENT_TIMEOUT_SECONDS=10" \
    --env-var "EXCLUDE_CHARACTERS=§" \
    --env-var "AWS_LAMBDA_LOG_LEVEL=$log_level" \
    --env-var "ROTATION_EVENT_BUS=$ROTATION_EVENT_BUS" \
    --env-var "ROTATION_LOCAL_LAMBDA_ENDPOINT=$ROTATION_LAMBDA_ENDPOINT" \
    >"$stack_dir/lambda.log" 2>&1 < /dev/null &
  echo $! > "$stack_dir/lambda.pid"
  wait_for "cargo lambda watch" "$lambda_port" 300
  log "cargo lambda watch on 127.0.0.1:$lambda_port (functions log to $stack_dir/lambda.log)"
}

stop_pid() {
  local file=$1 pid
  # Read once: a server (MariaDB) removes its own pid file as it stops.
  pid=$(cat "$file" 2>/dev/null) || pid=
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

running() {
  pg_running && mysql_running && pid_alive "$stack_dir/moto.pid" && pid_alive "$stack_dir/policy-gate.pid" \
    && pid_alive "$stack_dir/lambda.pid"
}

up() {
  if ! pg_running && ! mysql_running && ! pid_alive "$stack_dir/moto.pid" && ! pid_alive "$stack_dir/lambda.pid"; then
    rm -rf "$stack_dir"
  fi
  mkdir -p "$stack_dir"
  { pid_alive "$stack_dir/lambda.pid" && pid_alive "$stack_dir/policy-gate.pid"; } || start_build
  "$root/scripts/setup.sh"
  [ -f "$stack_dir/tls/ca.pem" ] || make_tls
  start_postgres
  start_mysql
  write_env
  start_moto
  start_gate
  start_lambda
}

down() {
  stop_pid "$stack_dir/lambda.pid"
  stop_pid "$stack_dir/policy-gate.pid"
  stop_pid "$stack_dir/moto.pid"
  stop_pid "$stack_dir/rds-recorder.pid"
  if pg_running; then as_pg "$(pg_bin)/pg_ctl" -D "$stack_dir/pg/data" -m immediate -w stop >/dev/null; fi
  stop_pid "$stack_dir/mysql/mariadb.pid"
  log "stopped (logs stay in $stack_dir)"
}

# On any exit: no build left running in the background, and, after `run` started the stack,
# the stack stopped.
stop_on_exit=false
on_exit() {
  if [ -n "$build_pid" ]; then kill "$build_pid" 2>/dev/null || true; fi
  if $stop_on_exit; then down; fi
}
trap on_exit EXIT

case "${1:-}" in
  up)
    up
    ;;
  down)
    down
    ;;
  status)
    pg_running && echo "postgres: running on 127.0.0.1:$pg_port" || echo "postgres: stopped"
    mysql_running && echo "mariadb: running on 127.0.0.1:$mysql_port" || echo "mariadb: stopped"
    pid_alive "$stack_dir/moto.pid" && echo "moto: running on 127.0.0.1:$moto_port" || echo "moto: stopped"
    pid_alive "$stack_dir/policy-gate.pid" && echo "policy gate: running on 127.0.0.1:$gate_port" || echo "policy gate: stopped"
    pid_alive "$stack_dir/lambda.pid" && echo "cargo lambda watch: running on 127.0.0.1:$lambda_port" || echo "cargo lambda watch: stopped"
    ;;
  running)
    running
    ;;
  env)
    cat "$stack_dir/env"
    ;;
  run)
    shift
    if [ "${1:-}" = "--" ]; then shift; fi
    if [ "$#" -eq 0 ]; then echo "usage: $0 run -- COMMAND [ARG...]" >&2; exit 2; fi
    running || stop_on_exit=true
    up
    # shellcheck disable=SC1091
    . "$stack_dir/env"
    cd "$caller_dir"
    "$@"
    ;;
  *)
    echo "usage: $0 up|down|status|running|env|run -- COMMAND [ARG...]" >&2
    exit 2
    ;;
esac
