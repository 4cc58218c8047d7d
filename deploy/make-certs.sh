#!/bin/sh
# Make the certificates of the broker's TLS listener (deploy/mosquitto/mosquitto.conf, port 8883):
# a private certificate authority for ChainWatch and a server certificate it signs, with openssl.
#
#   deploy/make-certs.sh OUT_DIR NAME [NAME ...]
#
# NAME: every host name or IP address the gateways use to reach the broker (the certificate's
# subjectAltName; the first also becomes its common name), e.g.
#   deploy/make-certs.sh deploy/mosquitto/certs mqtt.cw.example.gov.cn 203.0.113.10
#
# Writes OUT_DIR/ca.crt (install it on every gateway: it is what they trust) and OUT_DIR/ca.key (keep it
# offline), and the broker's files in OUT_DIR/broker/: server.crt, server.key, ca.crt. docker-compose.yml
# mounts only OUT_DIR/broker into the broker: the CA key never goes into a container.
# Run again to renew the server certificate: an existing CA is kept, so the gateways need nothing new.
# Remove ca.key and ca.crt to start a new CA (then every gateway needs the new ca.crt).
set -eu

usage() {
    echo "usage: $0 OUT_DIR NAME [NAME ...]  (NAME: the broker's host names and IP addresses)" >&2
    exit 2
}
[ "$#" -ge 2 ] || usage
command -v openssl >/dev/null 2>&1 || { echo "$0: openssl not found: apt-get install openssl" >&2; exit 1; }

out=$1
shift
cn=$1
san=""
for name in "$@"; do
    case "$name" in
        *[!0-9.]*)
            case "$name" in
                *:*) kind=IP ;;  # IPv6
                *) kind=DNS ;;
            esac
            ;;
        *) kind=IP ;;
    esac
    san="${san:+$san,}$kind:$name"
done

# openssl, quiet when it works; its last line of output when it does not
ossl() {
    if ! log=$(openssl "$@" 2>&1); then
        echo "$0: openssl $1 failed: $(printf '%s\n' "$log" | tail -n 1)" >&2
        exit 1
    fi
}

CA_DAYS=${CA_DAYS:-3650}          # 10 years: the CA is on every gateway
SERVER_DAYS=${SERVER_DAYS:-825}   # renew the server certificate before it runs out (this script again)

mkdir -p "$out/broker"
umask 077
cd "$out"

if [ -f ca.key ] && [ -f ca.crt ]; then
    echo "keeping the existing CA in $out (ca.crt, ca.key)"
else
    ossl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout ca.key -out ca.crt -days "$CA_DAYS" -sha256 \
        -subj "/O=ChainWatch/CN=ChainWatch MQTT CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    echo "made a new CA: $out/ca.crt (for the gateways), $out/ca.key (keep it offline)"
fi

ext=$(mktemp)
trap 'rm -f "$ext" broker/server.csr' EXIT
cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
ossl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout broker/server.key -out broker/server.csr -subj "/O=ChainWatch/CN=$cn"
ossl x509 -req -in broker/server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out broker/server.crt -days "$SERVER_DAYS" -sha256 -extfile "$ext"
cp ca.crt broker/ca.crt
chmod 644 ca.crt broker/ca.crt broker/server.crt
chmod 600 ca.key broker/server.key
echo "made $out/broker/server.crt for $san, valid $SERVER_DAYS days; key: $out/broker/server.key"
echo "for the broker (uid 1883 in docker-compose.yml): sudo chown -R 1883:1883 $out/broker"
