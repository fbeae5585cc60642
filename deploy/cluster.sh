#!/usr/bin/env bash
# A local cluster on loopback: PostgreSQL, Redis with AOF (appendfsync
# always), three app servers and nginx in front of them. Installs the Debian
# packages a fresh machine lacks.
#
#   deploy/cluster.sh start      start everything (builds the app if needed)
#   deploy/cluster.sh stop       stop everything cleanly
#   deploy/cluster.sh status     what runs, where
#   deploy/cluster.sh kill-node N | start-node N | pause-node N | resume-node N
#   deploy/cluster.sh restart-redis | restart-postgres
#
# Environment: COLLAB_CLUSTER_DIR (state, default /tmp/collab-cluster),
# COLLAB_CLUSTER_PORT (nginx, default 8080; the app servers take the next
# three ports, Redis and PostgreSQL two more), COLLAB_BIN (the server
# binary, default target/debug/collab), COLLAB_CLUSTER_NODES (default 3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${COLLAB_CLUSTER_DIR:-/tmp/collab-cluster}"
port="${COLLAB_CLUSTER_PORT:-8080}"
nodes="${COLLAB_CLUSTER_NODES:-3}"
redis_port=$((port + nodes + 1))
pg_port=$((port + nodes + 2))
bin="${COLLAB_BIN:-$root/target/debug/collab}"
lease_ms="${COLLAB_LEASE_MS:-3000}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt-get install ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
nginx_bin() { command -v nginx || echo /usr/sbin/nginx; }
node_port() { echo $((port + $1)); }

# Runs a PostgreSQL tool as the postgres user (it refuses to run as root).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
    local pg; pg="$(pg_bin)"
    if [ ! -f "$dir/pg/PG_VERSION" ]; then
        mkdir -p "$dir/pg" "$dir/pg-run"
        [ "$(id -u)" = 0 ] && chown postgres "$dir/pg" "$dir/pg-run"
        as_postgres "$pg/initdb" -D "$dir/pg" -U postgres --auth=trust >/dev/null
    fi
    as_postgres "$pg/pg_ctl" -D "$dir/pg" -l "$dir/pg-run/log" -w \
        -o "-p $pg_port -k $dir/pg-run -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    "$pg/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='collab'" | grep -q 1 \
        || "$pg/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE collab"
}

stop_postgres() {
    [ -f "$dir/pg/postmaster.pid" ] && as_postgres "$(pg_bin)/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null || true
}

start_redis() {
    mkdir -p "$dir/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes \
        --dir "$dir/redis" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --appendonly yes --appendfsync always --save ""
    # Until it answers PONG: while it reads its append-only file it answers
    # LOADING, and redis-cli exits with 0 all the same.
    for _ in $(seq 1 1200); do [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return; sleep 0.1; done
    echo "redis did not start" >&2; exit 1
}

stop_redis() {
    redis-cli -p "$redis_port" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || return 0; sleep 0.1; done
}

start_node() {
    local n=$1 p; p=$(node_port "$1")
    # setsid: a session of its own, so no job-control signal meant for
    # whoever started it (a terminal, a test harness) reaches the server.
    (
        cd "$root"
        COLLAB_ADDR="127.0.0.1:$p" \
        COLLAB_NODE_ID="n$n" \
        COLLAB_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/collab" \
        COLLAB_REDIS_URL="redis://127.0.0.1:$redis_port" \
        COLLAB_LEASE_MS="$lease_ms" \
        COLLAB_TRUST_PROXY=true \
        LEPTOS_OUTPUT_NAME=collab LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg \
        LEPTOS_SITE_ADDR="127.0.0.1:$p" LEPTOS_RELOAD_PORT=$((p + 1000)) LEPTOS_ENV=PROD \
        RUST_LOG="${RUST_LOG:-info}" \
        setsid nohup "$bin" </dev/null >>"$dir/n$n.log" 2>&1 &
        echo $! >"$dir/n$n.pid"
    )
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$p/readyz" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "app server n$n did not start; see $dir/n$n.log" >&2; exit 1
}

node_pid() { cat "$dir/n$1.pid" 2>/dev/null; }

start_nginx() {
    local pins="" servers=""
    for n in $(seq 1 "$nodes"); do
        pins+="        n$n 127.0.0.1:$(node_port "$n");"$'\n'
        servers+="        server 127.0.0.1:$(node_port "$n") max_fails=1 fail_timeout=10s;"$'\n'
    done
    mkdir -p "$dir/nginx-tmp"
    PINS="$pins" SERVERS="$servers" DIR="$dir" PORT="$port" python3 - "$root/deploy/nginx.conf.template" "$dir/nginx.conf" <<'PY'
import os, sys
text = open(sys.argv[1]).read()
for key in ("PINS", "SERVERS", "DIR", "PORT"):
    text = text.replace("@" + key + "@", os.environ[key].rstrip("\n"))
open(sys.argv[2], "w").write(text)
PY
    "$(nginx_bin)" -c "$dir/nginx.conf" -p "$dir" -e "$dir/nginx-error.log"
}

stop_nginx() {
    [ -f "$dir/nginx.pid" ] && "$(nginx_bin)" -c "$dir/nginx.conf" -p "$dir" -e "$dir/nginx-error.log" -s quit 2>/dev/null || true
}

case "${1:-}" in
    start)
        install_missing
        if [ ! -x "$bin" ]; then
            say "building the app (cargo leptos build)"
            (cd "$root" && cargo leptos build)
        fi
        mkdir -p "$dir"
        chmod 755 "$dir"  # PostgreSQL runs as its own user and must get in.
        say "PostgreSQL on 127.0.0.1:$pg_port"; start_postgres
        say "Redis (AOF, appendfsync always) on 127.0.0.1:$redis_port"; start_redis
        for n in $(seq 1 "$nodes"); do say "app server n$n on 127.0.0.1:$(node_port "$n")"; start_node "$n"; done
        say "nginx on http://127.0.0.1:$port"; start_nginx
        ;;
    stop)
        stop_nginx
        for n in $(seq 1 "$nodes"); do
            pid=$(node_pid "$n") || continue
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
        done
        for n in $(seq 1 "$nodes"); do
            pid=$(node_pid "$n") || continue
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        done
        stop_redis
        stop_postgres
        say "stopped"
        ;;
    status)
        for n in $(seq 1 "$nodes"); do
            pid=$(node_pid "$n" || echo "")
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then state=running; else state=stopped; fi
            echo "n$n 127.0.0.1:$(node_port "$n") $state"
        done
        echo "nginx http://127.0.0.1:$port"
        echo "redis redis://127.0.0.1:$redis_port"
        echo "postgres postgres://postgres@127.0.0.1:$pg_port/collab"
        ;;
    kill-node) kill -KILL "$(node_pid "$2")" ;;
    start-node) start_node "$2" ;;
    pause-node) kill -STOP "$(node_pid "$2")" ;;
    resume-node) kill -CONT "$(node_pid "$2")" ;;
    restart-redis) stop_redis; start_redis ;;
    restart-postgres) stop_postgres; as_postgres "$(pg_bin)/pg_ctl" -D "$dir/pg" -l "$dir/pg-run/log" -w \
        -o "-p $pg_port -k $dir/pg-run -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null ;;
    *)
        sed -n '2,16p' "$0"
        exit 2
        ;;
esac
