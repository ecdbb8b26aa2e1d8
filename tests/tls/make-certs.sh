#!/bin/sh
# Makes throw-away TLS test credentials in DIR with the openssl command.
# Run at test time only: no private key is ever committed.
#
#   make-certs.sh DIR
#
# DIR/ca.pem             test CA (self-signed)
# DIR/server.pem|.key    signed by ca, SAN DNS:localhost, IP:127.0.0.1
# DIR/server-enc.key     the same key, encrypted (AES-256) with password "secret"
# DIR/client.pem|.key    signed by ca, CN=lepton-client (for EXTERNAL)
# DIR/wronghost.pem|.key signed by ca, SAN DNS:wrong.example only
# DIR/expired.pem|.key   signed by ca, SAN localhost, valid 2000-2001
# DIR/other-ca.pem       an unrelated CA
# DIR/other-client.pem|.key  signed by other-ca
# DIR/cadir/             ca.pem in a hashed directory (openssl rehash)
set -eu
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

# EC keys: generation is fast, which keeps the tests fast.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

mkca() { # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 -subj "$2" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

cat > ext.cnf <<'EOF'
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[wronghost]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF

issue() { # name ca subject section
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
        -out "$1.pem" -days 825 -extfile ext.cnf -extensions "$4" 2>/dev/null
    rm -f "$1.csr"
}

mkca ca "/O=lepton test/CN=lepton test CA"
mkca other-ca "/O=lepton test/CN=lepton other CA"
issue server ca "/O=lepton test/CN=localhost" server
issue wronghost ca "/O=lepton test/CN=wrong.example" wronghost
issue client ca "/O=lepton test/CN=lepton-client" client
issue other-client other-ca "/O=lepton test/CN=other-client" client
openssl pkey -in server.key -aes256 -passout pass:secret -out server-enc.key 2>/dev/null

# An expired certificate needs explicit dates, which only `openssl ca` takes.
mkdir -p db
: > db/index.txt
echo 1000 > db/serial
cat > ca.cnf <<EOF
[ca]
default_ca = test
[test]
dir = .
database = db/index.txt
serial = db/serial
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
organizationName = optional
EOF
key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/O=lepton test/CN=localhost" 2>/dev/null
openssl ca -batch -config ca.cnf -in expired.csr -out expired.pem -notext \
    -startdate 20000101000000Z -enddate 20010101000000Z \
    -extfile ext.cnf -extensions server >/dev/null 2>&1
rm -rf expired.csr db ca.cnf ext.cnf ./*.srl

# A hashed CA directory (for lep_tls_config_set_ca's ca_dir).
mkdir -p cadir
cp ca.pem cadir/
openssl rehash cadir 2>/dev/null
