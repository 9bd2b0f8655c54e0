#!/bin/bash
# Entrypoint of the locally built PostgreSQL image.
#
# It mirrors what the official postgres image does for the parts that
# testcontainers-go's postgres module relies on:
#   - POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB create the first
#     superuser and database on an empty data directory;
#   - the command is "postgres" followed by server flags;
#   - on first start a temporary server runs the initialisation and stops,
#     so "database system is ready to accept connections" is logged twice:
#     once for initialisation, once for the server that stays up.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [ "${1:-}" = "postgres" ]; then
	shift
else
	# Any other command runs as given (a shell for debugging, say).
	exec "$@"
fi

initialise() {
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "entrypoint: POSTGRES_PASSWORD must be set" >&2
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	local pwfile
	pwfile="$(mktemp)"
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	"$PGBIN/initdb" --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 \
		--locale=C.UTF-8 >/dev/null
	rm -f "$pwfile"
	{
		echo "host all all 0.0.0.0/0 scram-sha-256"
		echo "host all all ::/0 scram-sha-256"
	} >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

	# A temporary server on the local socket only, as the official image does.
	"$PGBIN/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start
	if [ "$POSTGRES_DB" != "postgres" ]; then
		"$PGBIN/psql" -h /tmp -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 \
			-c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
	fi
	"$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	initialise
fi

exec "$PGBIN/postgres" -D "$PGDATA" -c unix_socket_directories=/tmp "$@"
