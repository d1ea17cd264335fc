#!/usr/bin/env python3
"""Regenerates the PKCS#8 DER test keys in this directory from the published
JWK private keys of the vendored vectors (python3-cryptography 48, OpenSSL 3.0).
Run from crates/token/tests/data: python3 make_keys.py"""
import base64, json
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519

J = "../../../../testdata/jose/"
def b(v): return int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")
def raw(v): return base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
def der(key): return key.private_bytes(s.Encoding.DER, s.PrivateFormat.PKCS8, s.NoEncryption())

def rsa_key(j):
    pub = rsa.RSAPublicNumbers(b(j["e"]), b(j["n"]))
    return rsa.RSAPrivateNumbers(b(j["p"]), b(j["q"]), b(j["d"]), b(j["dp"]), b(j["dq"]), b(j["qi"]), pub).private_key()

out = {
    "rsa2048_rfc7515_a2.pk8.der": rsa_key(json.load(open(J + "rfc7515/rfc7515_A2_RS256.json"))["jwk_private"]),
    "rsa2048_rfc7520_3_4.pk8.der": rsa_key(json.load(open(J + "rfc7520/3_4.rsa_private_key.json"))),
    "p256_rfc7515_a3.pk8.der": ec.derive_private_key(b(json.load(open(J + "rfc7515/rfc7515_A3_ES256.json"))["jwk_private"]["d"]), ec.SECP256R1()),
    "ed25519_rfc8037_a1.pk8.der": ed25519.Ed25519PrivateKey.from_private_bytes(raw(json.load(open(J + "rfc8037/rfc8037_A4_EdDSA.json"))["jwk_private"]["d"])),
}
for name, key in out.items():
    open(name, "wb").write(der(key))
    print(name)
