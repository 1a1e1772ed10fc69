#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster on 127.0.0.1 for the test suite.
# Usage: scripts/postgres.sh start|stop   (prints the SQLAlchemy URL on start)
# Installs Debian's postgresql when missing and running as root.
set -euo pipefail
PGPORT=${PGPORT:-54329}
PGDATA=${PGDATA:-/tmp/pozytywka-pg}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  else
    echo "postgresql is not installed" >&2; exit 1
  fi
fi
as_pg() { if [ "$(id -u)" = "0" ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
case "${1:-start}" in
  start)
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
      mkdir -p "$PGDATA"; [ "$(id -u)" = "0" ] && chown postgres "$PGDATA"
      as_pg "$bin/initdb -D $PGDATA -U postgres -A trust --no-sync >/dev/null"
    fi
    if ! as_pg "$bin/pg_ctl -D $PGDATA status" >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl -D $PGDATA -l $PGDATA/server.log -w -o '-h 127.0.0.1 -p $PGPORT -k /tmp -c fsync=off -c max_connections=200' start" >/dev/null
    fi
    as_pg "$bin/psql -h 127.0.0.1 -p $PGPORT -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='pozytywka_test'\"" | grep -q 1 \
      || as_pg "$bin/createdb -h 127.0.0.1 -p $PGPORT -U postgres pozytywka_test"
    echo "postgresql+psycopg://postgres@127.0.0.1:$PGPORT/pozytywka_test"
    ;;
  stop)
    as_pg "$bin/pg_ctl -D $PGDATA -m fast stop" >/dev/null 2>&1 || true
    ;;
esac
