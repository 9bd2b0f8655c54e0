#!/usr/bin/env bash
# The load figures with the server's pools behind PgBouncer in transaction
# pooling mode: the seed's bar (100 requests/s of the default mix), then
# POST /api/v1/leads at saturation against the bare handler (both through
# PgBouncer), GET of the list and the replay path at saturation.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/load_pgbouncer \
#     examples/dealix/cmd/load/pgbouncer.sh
#
# DATABASE_URL names a database the server may migrate, as a superuser: the
# script creates two roles with passwords of its own (PgBouncer must know
# them; roles the server generates have passwords it cannot) and runs
# Debian's pgbouncer on 127.0.0.1 in front of the database's server. The
# server then gets four URLs: DATABASE_URL direct (migrations hold a session
# advisory lock), APP_DATABASE_URL and SYSTEM_DATABASE_URL through PgBouncer
# with default_query_exec_mode=cache_describe, LISTEN_DATABASE_URL direct.
#
# Settings (environment): BAR_DURATION (default 60s), SAT_DURATION (20s),
# ROUNDS (alternating full/bare rounds of the POST comparison, default 1),
# CONCURRENCY (32), PGB_POOL_SIZE (PgBouncer's default_pool_size, 20),
# APP_POOL_SIZE (the server's app pool, 20), OUT (reports; default a
# temporary directory), ONLY (space-separated subset of: bar post list
# replay), COMPARE_DIRECT (default 1: a second server on the same database
# with direct pools, and each saturation run repeated against it right
# after, for the ratio). Everything runs on loopback; what the script starts
# is stopped at the end.
set -euo pipefail

: "${DATABASE_URL:?DATABASE_URL must name the database to run the server on, as a superuser}"
bar_duration=${BAR_DURATION:-60s}
sat_duration=${SAT_DURATION:-20s}
rounds=${ROUNDS:-1}
concurrency=${CONCURRENCY:-32}
pool_size=${PGB_POOL_SIZE:-20}
app_pool=${APP_POOL_SIZE:-20}
only=${ONLY:-bar post list replay}
compare_direct=${COMPARE_DIRECT:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/../../../.." && pwd)

pgbouncer=$(command -v pgbouncer || true)
[ -n "$pgbouncer" ] || { [ -x /usr/sbin/pgbouncer ] && pgbouncer=/usr/sbin/pgbouncer; }
[ -n "$pgbouncer" ] || { echo "pgbouncer.sh: pgbouncer is not installed: apt-get install -y pgbouncer" >&2; exit 1; }

work=$(mktemp -d)
chmod 755 "$work"
pids=()
stop() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap stop EXIT

(cd "$root" && go build -o "$work/dealix" ./examples/dealix && go build -o "$work/load" ./examples/dealix/cmd/load)

# The URL's parts, by Python's parser (no credentials printed).
read -r host port dbname < <(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 5432, p.path.lstrip("/") or "postgres")' "$DATABASE_URL")
with_user() { # with_user URL USER PASSWORD [HOST PORT] [QUERY]
	python3 -c 'import sys, urllib.parse as u
url, user, pw, host, port, q = sys.argv[1:7]
p = u.urlparse(url)
print(u.urlunparse(p._replace(netloc="%s:%s@%s:%s" % (user, pw, host, port), query=q)))' "$@"
}

app_role=${APP_ROLE:-dealix_load_pgb_app}
sys_role=${SYSTEM_ROLE:-dealix_load_pgb_system}
app_pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
sys_pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
psql -v ON_ERROR_STOP=1 -q "$DATABASE_URL" >/dev/null <<SQL
SELECT pg_advisory_xact_lock(hashtext('dealix load pgbouncer roles'));
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$app_role') THEN CREATE ROLE $app_role; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$sys_role') THEN CREATE ROLE $sys_role; END IF;
END \$\$;
ALTER ROLE $app_role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '$app_pw';
ALTER ROLE $sys_role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS PASSWORD '$sys_pw';
SQL

pgb_port=${PGB_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
printf '"%s" "%s"\n"%s" "%s"\n"pgbouncer_stats" "pgbouncer_stats_password"\n' "$app_role" "$app_pw" "$sys_role" "$sys_pw" >"$work/userlist.txt"
cat >"$work/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = plain
auth_file = $work/userlist.txt
stats_users = pgbouncer_stats
pool_mode = transaction
default_pool_size = $pool_size
max_client_conn = 2000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile =
pidfile =
INI
user_flag=()
if [ "$(id -u)" -eq 0 ]; then
	# PgBouncer refuses to run as root.
	pg_user=postgres
	id postgres >/dev/null 2>&1 || pg_user=nobody
	chown -R "$pg_user" "$work"
	user_flag=(-u "$pg_user")
fi
"$pgbouncer" "${user_flag[@]}" "$work/pgbouncer.ini" 2>"$work/pgbouncer.log" &
pids+=($!)
for _ in $(seq 1 100); do
	psql -q "postgres://pgbouncer_stats:pgbouncer_stats_password@127.0.0.1:$pgb_port/pgbouncer" -c 'SHOW VERSION' >/dev/null 2>&1 && break
	sleep 0.1
done

pooled_app=$(with_user "$DATABASE_URL" "$app_role" "$app_pw" 127.0.0.1 "$pgb_port" "sslmode=disable&default_query_exec_mode=cache_describe")
pooled_sys=$(with_user "$DATABASE_URL" "$sys_role" "$sys_pw" 127.0.0.1 "$pgb_port" "sslmode=disable&default_query_exec_mode=cache_describe")
direct_sys=$(with_user "$DATABASE_URL" "$sys_role" "$sys_pw" "$host" "$port" "")

key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
# start_server NAME APP_URL SYSTEM_URL LISTEN_URL: runs the server binary and
# sets url_NAME to its URL.
start_server() {
	local name=$1 app=$2 sys=$3 listen=$4
	DATABASE_URL=$DATABASE_URL APP_DATABASE_URL=$app SYSTEM_DATABASE_URL=$sys LISTEN_DATABASE_URL=$listen \
		DEALIX_ADDR=127.0.0.1:0 DEALIX_JWT_HMAC_KEY=$key DEALIX_DEMO=false DEALIX_LOG_LEVEL=warn \
		DEALIX_RATE_LIMIT=10000000/1s DEALIX_APP_POOL_SIZE=$app_pool \
		"$work/dealix" >"$work/banner-$name" 2>"$work/server-$name.log" &
	local pid=$! u=
	pids=("$pid" "${pids[@]}")
	for _ in $(seq 1 600); do
		u=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/banner-$name")
		[ -n "$u" ] && break
		kill -0 "$pid" 2>/dev/null || { cat "$work/server-$name.log" >&2; echo "pgbouncer.sh: the $name server exited" >&2; exit 1; }
		sleep 0.1
	done
	[ -n "$u" ] || { echo "pgbouncer.sh: the $name server did not start" >&2; exit 1; }
	printf -v "url_$name" '%s' "$u"
}
start_server pooled "$pooled_app" "$pooled_sys" "$direct_sys"
direct_app=$(with_user "$DATABASE_URL" "$app_role" "$app_pw" "$host" "$port" "")
if [ "$compare_direct" = 1 ]; then
	# The same server on direct connections, on the same database, for the
	# saturation runs' side-by-side ratio.
	start_server direct "$direct_app" "$direct_sys" ""
fi

export DEALIX_JWT_HMAC_KEY=$key
echo "pgbouncer.sh: server $url_pooled through PgBouncer 127.0.0.1:$pgb_port (transaction mode, pool $pool_size per role), app pool $app_pool${url_direct:+; the same server direct at $url_direct}; reports in $out"
uptime
# saturation NAME LABEL FLAGS...: the run through PgBouncer, then (unless
# COMPARE_DIRECT=0) the same run on the direct server, ROUNDS times in turn.
saturation() {
	local name=$1 label=$2
	shift 2
	for r in $(seq 1 "$rounds"); do
		"$work/load" -target "$url_pooled" "$@" -concurrency "$concurrency" -duration "$sat_duration" \
			-label "through PgBouncer: $label (round $r)" -json "$out/$name-pgbouncer-$r.json" -svg "$out/$name-pgbouncer-$r.svg"
		if [ "$compare_direct" = 1 ]; then
			"$work/load" -target "$url_direct" "$@" -concurrency "$concurrency" -duration "$sat_duration" \
				-label "direct: $label (round $r)" -json "$out/$name-direct-$r.json" -svg "$out/$name-direct-$r.svg"
		fi
		uptime
	done
}
for what in $only; do
	case $what in
	bar) "$work/load" -target "$url_pooled" -rate 100 -duration "$bar_duration" -tenants 4 -prefill 20 -max-p95 500ms -max-errors 0 \
		-label "through PgBouncer: seed's bar, 100 req/s for $bar_duration" -json "$out/bar.json" -svg "$out/bar.svg"
		uptime ;;
	post)
		# The full stack against the bare handler, both through PgBouncer.
		"$work/load" -target "$url_pooled" -mix create=1 -concurrency "$concurrency" -duration "$sat_duration" -rounds "$rounds" \
			-bare-database-url "$pooled_app" -bare-pool-size "$app_pool" \
			-label "through PgBouncer: POST, full stack and bare handler" -json "$out/post-bare.json" -svg "$out/post-bare.svg"
		saturation post "POST at saturation" -mix create=1 ;;
	list) saturation list "GET list at saturation" -mix list=1 -prefill 200 ;;
	replay) saturation replay "replay at saturation" -mix retry=1 -prefill 200 ;;
	*) echo "pgbouncer.sh: unknown run $what (bar post list replay)" >&2; exit 2 ;;
	esac
done
echo "pgbouncer.sh: PgBouncer's counters for $dbname:"
psql -q "postgres://pgbouncer_stats:pgbouncer_stats_password@127.0.0.1:$pgb_port/pgbouncer" -c 'SHOW STATS' | grep -E "database|$dbname"
