#!/bin/sh
# Test-only certificate chains shaped like Apple's StoreKit 2 signing chain (root CA ->
# intermediate with OID 1.2.840.113635.100.6.2.1 -> leaf with OID 1.2.840.113635.100.6.11.1).
# The keys are throwaway and committed on purpose; nothing here is trusted outside tests.
# Valid certificates run 20 years from generation; the "expired" leaf runs 30 days, so it is
# expired at the tests' clock (2027-01-15) when generated before mid-December 2026.
set -eu
out=${1:-tests/fixtures/apple}
mkdir -p "$out"
cd "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/ext.cnf" <<'CNF'
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[inter]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
1.2.840.113635.100.6.2.1=ASN1:NULL
[inter_nooid]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
1.2.840.113635.100.6.11.1=ASN1:NULL
[leaf_nooid]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
CNF
key() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key" 2>/dev/null; }
root() {
  key "$1" P-384
  openssl req -x509 -new -key "$1.key" -sha384 -days 7300 -subj "/CN=Tollgate Test $1/O=Tollgate tests" \
    -config "$tmp/ext.cnf" -extensions ca -out "$1.pem"
}
issue() { # name curve issuer extensions days
  key "$1" "$2"
  openssl req -new -key "$1.key" -subj "/CN=Tollgate Test $1/O=Tollgate tests" -out "$tmp/$1.csr"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -sha384 \
    -days "$5" -extfile "$tmp/ext.cnf" -extensions "$4" -out "$1.pem" 2>/dev/null
}
root root
root other_root
issue intermediate P-384 root inter 7300
issue intermediate_nooid P-384 root inter_nooid 7300
issue leaf P-256 intermediate leaf 7300
issue leaf_nooid P-256 intermediate leaf_nooid 7300
issue leaf_expired P-256 intermediate leaf 30
issue leaf_under_nooid P-256 intermediate_nooid leaf 7300
# PKCS#8 for the signing leaves (jsonwebtoken reads PKCS#8 EC keys).
for k in leaf leaf_nooid leaf_expired leaf_under_nooid; do
  openssl pkcs8 -topk8 -nocrypt -in "$k.key" -out "$k.p8"; rm "$k.key"
done
rm -f root.key other_root.key intermediate.key intermediate_nooid.key ./*.srl
# The App Store Server API key (".p8") the fake API checks request JWTs against.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out api_key.p8
openssl pkey -in api_key.p8 -pubout -out api_key_public.pem
