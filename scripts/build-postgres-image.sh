#!/bin/bash
# Builds a PostgreSQL 15 Docker image from Debian packages, for machines that
# can reach a Debian package mirror but no container image registry.
#
# Usage: scripts/build-postgres-image.sh [IMAGE]
#   IMAGE defaults to $DEALIX_TEST_POSTGRES_IMAGE, then to dealix-postgres:15-bookworm.
#
# The image behaves like the official postgres image as far as the test
# helper (testcontainers-go's postgres module) needs: see
# scripts/postgres-image/entrypoint.sh. It is built with debootstrap from the
# mirror apt is already configured with on this machine, and imported with
# "docker import". Requires root, debootstrap and a running Docker engine.
set -euo pipefail

IMAGE="${1:-${DEALIX_TEST_POSTGRES_IMAGE:-dealix-postgres:15-bookworm}}"
SUITE="${DEBIAN_SUITE:-bookworm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# debian_mirror prints the first Debian archive URI apt is configured with,
# read from deb822 .sources files or from one-line sources.list entries.
debian_mirror() {
	local uri
	uri="$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{for (i = 2; i <= NF; i++) print $i}' | grep -v -E 'security|updates' | head -n1 || true)"
	if [ -z "$uri" ]; then
		uri="$(grep -h -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' |
			grep -v -E 'security' | head -n1 || true)"
	fi
	if [ -z "$uri" ]; then
		echo "build-postgres-image: no Debian mirror found in apt's sources" >&2
		return 1
	fi
	printf '%s\n' "$uri"
}

ROOTFS=""
cleanup() {
	if [ -n "$ROOTFS" ]; then rm -rf "$ROOTFS"; fi
}
trap cleanup EXIT

main() {
	local mirror rootfs
	mirror="$(debian_mirror)"
	rootfs="$(mktemp -d /tmp/dealix-pg-rootfs.XXXXXX)"
	ROOTFS="$rootfs"

	echo "build-postgres-image: debootstrap $SUITE with postgresql-15 into $rootfs"
	debootstrap --variant=minbase --include=postgresql-15 "$SUITE" "$rootfs" "$mirror" >/tmp/dealix-debootstrap.log 2>&1 || {
		tail -n 30 /tmp/dealix-debootstrap.log >&2
		return 1
	}

	install -m 0755 "$HERE/postgres-image/entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
	# The package creates a cluster of its own; the image initialises its
	# data directory at first start instead, like the official image.
	rm -rf "$rootfs/var/lib/postgresql/15" "$rootfs/etc/postgresql/15"
	rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*
	mkdir -p "$rootfs/var/lib/postgresql/data"
	chroot "$rootfs" chown -R postgres:postgres /var/lib/postgresql

	echo "build-postgres-image: importing $IMAGE"
	tar -C "$rootfs" -c . | docker import \
		--change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		--change 'USER postgres' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'EXPOSE 5432' \
		- "$IMAGE" >/dev/null
	echo "build-postgres-image: built $IMAGE"
}

main "$@"
