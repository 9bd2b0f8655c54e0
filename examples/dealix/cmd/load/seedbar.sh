#!/usr/bin/env bash
# The seed's bar, run by CI: the reference server under 100 requests/s of
# the default mix for SEED_BAR_DURATION (default 5s; 60s or 5m by hand),
# failing when any operation's p95 reaches 500 ms or any request fails.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/some_database \
#     examples/dealix/cmd/load/seedbar.sh [extra load flags]
#
# DATABASE_URL names a database the server may migrate, as a role that may
# create roles (the server makes its own app and system roles). Everything
# runs on loopback; the server is stopped (SIGTERM) at the end. Reports are
# written to SEED_BAR_OUT (default a temporary directory): bar.json, bar.svg.
set -euo pipefail

: "${DATABASE_URL:?DATABASE_URL must name the database to run the server on}"
duration=${SEED_BAR_DURATION:-5s}
out=${SEED_BAR_OUT:-$(mktemp -d)}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/../../../.." && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

(cd "$root" && go build -o "$bin/dealix" ./examples/dealix && go build -o "$bin/load" ./examples/dealix/cmd/load)

key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
DEALIX_ADDR=127.0.0.1:0 DEALIX_JWT_HMAC_KEY=$key DEALIX_DEMO=false DEALIX_LOG_LEVEL=warn \
	DEALIX_RATE_LIMIT=1000000/1s DEALIX_APP_ROLE=${DEALIX_APP_ROLE:-dealix_seedbar_app} \
	DEALIX_SYSTEM_ROLE=${DEALIX_SYSTEM_ROLE:-dealix_seedbar_system} \
	"$bin/dealix" >"$bin/banner" 2>"$bin/server.log" &
server=$!
stop() { kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$bin"; }
trap stop EXIT

url=
for _ in $(seq 1 600); do
	url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$bin/banner")
	[ -n "$url" ] && break
	kill -0 "$server" 2>/dev/null || { cat "$bin/server.log" >&2; echo "seedbar: the server exited" >&2; exit 1; }
	sleep 0.1
done
[ -n "$url" ] || { echo "seedbar: the server did not start" >&2; exit 1; }

DEALIX_JWT_HMAC_KEY=$key "$bin/load" -target "$url" -rate 100 -duration "$duration" -tenants 4 -prefill 20 \
	-max-p95 500ms -max-errors 0 -label "seed bar: 100 req/s for $duration" \
	-json "$out/bar.json" -svg "$out/bar.svg" "$@"
echo "seedbar: reports in $out"
