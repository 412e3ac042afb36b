# Sourced by the login scripts: a database of their own for one run.
#   scratch_db sqlite|postgres DIR NAME   sets $url: a SQLite file in DIR, or a fresh PostgreSQL
#                                         database NAME on 127.0.0.1 (dropped first if left over)
#   drop_scratch_db sqlite|postgres NAME  drops the PostgreSQL one (SQLite's goes with DIR)
scratch_db() {
  if [ "$1" = sqlite ]; then
    url="sqlite://$2/db.sqlite?mode=rwc"
  else
    PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres \
      -c "DROP DATABASE IF EXISTS $3" -c "CREATE DATABASE $3" postgres
    url="postgres://postgres@127.0.0.1:5432/$3"
  fi
}
drop_scratch_db() {
  if [ "$1" != sqlite ]; then
    PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres \
      -c "DROP DATABASE IF EXISTS $2" postgres || true
  fi
}
