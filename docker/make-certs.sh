#!/bin/sh
# Self-signed TLS certificate for first use: `make certs` (into certs/, git-ignored) and the
# compose service `certs` (which also installs it into the shared `tls` volume).
#
#   docker/make-certs.sh OUT_DIR [INSTALL_DIR]
#
# Never overwrites an existing certificate. In INSTALL_DIR the key is root:0 mode 0640: the web
# image's user and Grafana's user (uid 472) are both in group 0, nobody else can read it.
set -eu
out="${1:-certs}"
install_dir="${2:-}"
days="${CERT_DAYS:-825}"
cn="${CERT_CN:-localhost}"
san="DNS:localhost,IP:127.0.0.1"
[ "$cn" = "localhost" ] || san="DNS:$cn,$san"

mkdir -p "$out"
if [ -s "$out/server.crt" ] && [ -s "$out/server.key" ]; then
  echo "certificate exists: $out/server.crt (left unchanged)"
else
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days "$days" \
      -subj "/CN=$cn" \
      -addext "subjectAltName=$san" \
      -addext "extendedKeyUsage=serverAuth" \
      -keyout "$out/server.key" -out "$out/server.crt" 2>/dev/null
  )
  chmod 0644 "$out/server.crt"
  echo "generated self-signed certificate $out/server.crt (CN=$cn, valid $days days)"
fi

if [ -n "$install_dir" ]; then
  mkdir -p "$install_dir"
  cp "$out/server.crt" "$install_dir/server.crt"
  cp "$out/server.key" "$install_dir/server.key"
  chown 0:0 "$install_dir/server.crt" "$install_dir/server.key"
  chmod 0644 "$install_dir/server.crt"
  chmod 0640 "$install_dir/server.key"
  echo "installed into $install_dir"
fi
