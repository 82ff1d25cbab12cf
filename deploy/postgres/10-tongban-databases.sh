#!/bin/sh
# Run once by the postgres image's initdb (/docker-entrypoint-initdb.d), on an empty data
# directory only. One login role and one database per Tongban service: role `tongban_<svc>`
# owns database `tongban_<svc>` (so its public schema, where the migrations create tables) and
# nothing else. No role is a superuser or may create databases or roles, and PUBLIC may not
# connect to any database, so a service's credentials open only its own database. Passwords come
# from .env (`<SVC>_DB_PASSWORD`) through docker-compose.yml.
set -eu

for svc in intake approval dispatch notification; do
  var="$(echo "$svc" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  eval "password=\${$var:-}"
  if [ -z "$password" ]; then
    echo "initdb: $var is not set (see deploy/.env.example)" >&2
    exit 1
  fi
  # psql variables quote the role name and the password, whatever characters they hold.
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v role="tongban_$svc" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
  echo "initdb: role and database tongban_$svc created"
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres <<'SQL'
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
REVOKE ALL ON DATABASE template1 FROM PUBLIC;
SQL
