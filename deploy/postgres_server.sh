#!/usr/bin/env bash
# A PostgreSQL 15 server of the project's own, on loopback, for the PostgreSQL target's tests
# and for trying the target by hand. Nothing is downloaded but Debian's package.
#
#   deploy/postgres_server.sh install          # Debian's postgresql-15 unless already there
#   deploy/postgres_server.sh start DIR [PORT] # initdb DIR/data once, start on 127.0.0.1:PORT
#   deploy/postgres_server.sh stop DIR
#
# `start` writes DIR/env: the PG* variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)
# that dbt's `postgres` target and the pipeline read; `. DIR/env` to use the server. The
# server listens on 127.0.0.1 only, its socket is in DIR, and password authentication
# (scram-sha-256) is required even there. PostgreSQL refuses to run as root: as root, the
# server runs as the `postgres` system user the Debian package creates.
set -euo pipefail

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
ROLE=icp
DATABASE=icp

usage() {
    sed -n '2,13p' "$0" >&2
    exit 2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "postgres_server.sh: not root and no sudo; run: apt-get install postgresql-$PG_VERSION" >&2
        exit 1
    fi
}

# Run a server program as the user owning the server's files.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install() {
    if [ -x "$PG_BIN/initdb" ]; then
        echo "PostgreSQL $PG_VERSION already installed: $("$PG_BIN/postgres" --version)"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "postgresql-$PG_VERSION"
    "$PG_BIN/postgres" --version
}

start() {
    local dir port data password
    dir=$(realpath -m "${1:?start needs a directory}")
    port=${2:-55432}
    data=$dir/data
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    if [ ! -s "$dir/password" ]; then
        # Written by the server's user, read by whoever started it.
        password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
        (umask 077 && printf '%s\n' "$password" >"$dir/password")
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres: "$dir/password"
        fi
    fi
    if [ ! -s "$data/PG_VERSION" ]; then
        as_server_user "$PG_BIN/initdb" --pgdata="$data" --username="$ROLE" \
            --pwfile="$dir/password" --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
            --no-sync >"$dir/initdb.log"
    fi
    as_server_user "$PG_BIN/pg_ctl" --pgdata="$data" --log="$dir/server.log" --wait \
        --options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c fsync=off" \
        start >/dev/null
    password=$(cat "$dir/password")
    if ! PGPASSWORD=$password "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U "$ROLE" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
        PGPASSWORD=$password "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$ROLE" "$DATABASE"
    fi
    (
        umask 077
        cat >"$dir/env" <<EOF
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=$ROLE
export PGPASSWORD=$password
export PGDATABASE=$DATABASE
EOF
    )
    echo "PostgreSQL $PG_VERSION on 127.0.0.1:$port (database $DATABASE, user $ROLE): . $dir/env"
}

stop() {
    local dir
    dir=$(realpath -m "${1:?stop needs a directory}")
    if [ -s "$dir/data/postmaster.pid" ]; then
        as_server_user "$PG_BIN/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null
    fi
}

case "${1:-}" in
install) install ;;
start) shift && start "$@" ;;
stop) shift && stop "$@" ;;
*) usage ;;
esac
