#!/bin/sh
# Regenerates the RFC 3161 fixtures of the manifest's timestamp tests (SPEC R3)
# with openssl 3: a throwaway TSA (key discarded, certificate kept as tsa.crt),
# a query with and one without a nonce for DIGEST, and the TSA's reply to the
# query with the nonce. The tests compare hotsite's TimeStampReq encoding with
# openssl's byte for byte and parse openssl's reply.
#
#   sh make.sh        (in this directory)
#   openssl ts -verify -in resp.tsr -queryfile req.tsq -CAfile tsa.crt   # checks it
set -eu
cd "$(dirname "$0")"
# SHA-256 of "hotsite manifest test".
DIGEST=$(printf '%s' 'hotsite manifest test' | openssl dgst -sha256 -r | cut -d' ' -f1)
export TSA_WORK="$(pwd)/work"
rm -rf "$TSA_WORK" && mkdir "$TSA_WORK"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TSA_WORK/tsa.key"
openssl req -new -x509 -config tsa.cnf -extensions tsa_ext -key "$TSA_WORK/tsa.key" \
    -days 36500 -out tsa.crt
echo 01 > "$TSA_WORK/serial"
openssl ts -query -sha256 -digest "$DIGEST" -cert -out req.tsq
openssl ts -query -sha256 -digest "$DIGEST" -cert -no_nonce -out req-no-nonce.tsq
openssl ts -reply -config tsa.cnf -queryfile req.tsq -out resp.tsr
# The tests read the digest and the nonce (hex) from these.
echo "$DIGEST" > digest.txt
openssl ts -query -in req.tsq -text | sed -n 's/^Nonce: 0x//p' | tr 'A-F' 'a-f' > nonce.txt
rm -rf "$TSA_WORK"
