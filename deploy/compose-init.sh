#!/bin/sh
# The compose `init` step (installed in the image as tongban-compose-init). Runs before every
# start and changes nothing once done: on the first start it creates, in volumes, the secrets
# the repository must not ship, and afterwards leaves them alone. The one argument, the state
# directory, defaults to /var/lib/tongban (tests pass a temporary one).
#   /var/lib/tongban/issuer       the token issuer's Ed25519 key (volume issuer-key; no service
#                                 mounts it)
#   /var/lib/tongban/jwks         the public key set every service verifies tokens with
#   /var/lib/tongban/audit/<svc>  each service's audit-checkpoint signing key (hex seed, 0600)
#                                 and its public key (<svc>.key.pub), one volume per service
# Database and broker passwords and platform credentials come from .env instead.
set -eu

state=${1:-/var/lib/tongban}
umask 077

tongban keys generate --if-missing "$state/issuer"
mkdir -p "$state/jwks"
# Published on every start, so a rotation (`tongban keys generate` on the issuer volume)
# reaches the services, which re-read the file every 10 s. Renamed into place: a service never
# reads half a file.
cp "$state/issuer/jwks.json" "$state/jwks/jwks.json.new"
chmod 0644 "$state/jwks/jwks.json.new"
mv -f "$state/jwks/jwks.json.new" "$state/jwks/jwks.json"

hex() { od -An -v -tx1 | tr -d ' \n'; }

for svc in intake approval dispatch notification; do
  mkdir -p "$state/audit/$svc"
  key="$state/audit/$svc/$svc.key"
  if [ -s "$key" ]; then
    echo "init: audit key for $svc kept"
    continue
  fi
  pem="$state/audit/$svc/.new.pem"
  openssl genpkey -algorithm ed25519 -out "$pem"
  # The last 32 bytes of the DER forms are the seed (PKCS#8) and the public key (SPKI).
  openssl pkey -in "$pem" -pubout -outform DER | tail -c 32 | hex >"$key.pub"
  openssl pkey -in "$pem" -outform DER | tail -c 32 | hex >"$key.new"
  rm -f "$pem"
  chmod 0644 "$key.pub"
  mv -f "$key.new" "$key"
  echo "init: audit key for $svc created; public key $(cat "$key.pub")"
done
