#!/usr/bin/env bash
# Create and start a PostgreSQL cluster for virtplane (tests, a local multi-engine
# setup) with Debian's pg_createcluster/pg_ctlcluster, no systemd. It listens on
# loopback only; a role and a database named virtplane are created. Idempotent:
# a cluster that exists is started if stopped, a role or database that exists is
# kept. Prints the state URL on stdout (everything else goes to stderr).
#   tools/start-postgres.sh           create/start, print the URL
#   tools/start-postgres.sh stop      stop the cluster (the tests' outage drill uses it)
# Environment: VIRTPLANE_PG_PORT (5499), VIRTPLANE_PG_CLUSTER (virtplane),
# VIRTPLANE_PG_VERSION (the newest installed).
set -euo pipefail

PORT=${VIRTPLANE_PG_PORT:-5499}
CLUSTER=${VIRTPLANE_PG_CLUSTER:-virtplane}
ROLE=virtplane
DB=virtplane
# a test cluster on loopback: the password is in the URL the tests read anyway
PASSWORD=virtplane

say() { echo "start-postgres: $*" >&2; }

if [[ -n "${VIRTPLANE_PG_VERSION:-}" ]]; then
    VERSION=$VIRTPLANE_PG_VERSION
else
    VERSION=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1 || true)
fi
if [[ -z "$VERSION" || ! -x /usr/bin/pg_createcluster ]]; then
    say "PostgreSQL is not installed (apt-get install postgresql; tools/setup-system.sh does it)"
    exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
    say "run as root (pg_createcluster and pg_ctlcluster switch to the postgres user)"
    exit 1
fi

if [[ "${1:-}" == "stop" ]]; then
    pg_ctlcluster "$VERSION" "$CLUSTER" stop -m fast >/dev/null 2>&1 || true
    say "cluster $VERSION/$CLUSTER stopped"
    exit 0
fi

# the socket folder is made by systemd-tmpfiles on a booted system, not here
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$CLUSTER"; then
    say "creating cluster $VERSION/$CLUSTER on 127.0.0.1:$PORT"
    pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" \
        -- --auth-local=peer --auth-host=scram-sha-256 >&2
fi
# loopback only; a throw-away test cluster needs no durability on power loss
conf=/etc/postgresql/$VERSION/$CLUSTER/conf.d/virtplane.conf
cat > "$conf.new" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
mv "$conf.new" "$conf"

status=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')
if [[ "$status" != online* ]]; then
    # pg_ctlcluster prints notices ("Removed stale pid file.") on stdout: stdout
    # carries only the URL
    pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 50); do
    runuser -u postgres -- pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.2
done

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" "$@"; }
if [[ -z $(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'") ]]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi
if [[ -z $(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'") ]]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $ROLE"
fi
say "cluster $VERSION/$CLUSTER is up on 127.0.0.1:$PORT (database $DB, role $ROLE)"
echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
