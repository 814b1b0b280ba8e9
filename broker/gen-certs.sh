#!/usr/bin/env bash
# Creates a development CA, a server certificate for localhost/127.0.0.1 and
# one client certificate per NAME, in DIR (ca.crt, server.{crt,key},
# NAME.{crt,key}). Keys are EC P-256. For development and tests only.
#   usage: broker/gen-certs.sh DIR [NAME...]
set -euo pipefail
DIR=${1:?usage: gen-certs.sh DIR [NAME...]}; shift
mkdir -p "$DIR"; cd "$DIR"
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
if [ ! -f ca.crt ]; then
  gen_key ca.key
  openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=EFSC development CA" -out ca.crt
fi
sign() { # name subject extensions
  gen_key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
[ -f server.crt ] || sign server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
for n in "$@"; do
  sign "$n" "/CN=$n" "extendedKeyUsage=clientAuth"
done
echo "certificates in $DIR: ca.crt server.crt $(printf '%s.crt ' "$@")"
