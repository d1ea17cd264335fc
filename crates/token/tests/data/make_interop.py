#!/usr/bin/env python3
"""Writes interop_es256_tokens.json: access tokens signed by python-cryptography
(an independent JOSE/ECDSA implementation) with the RFC 7515 A.3 P-256 key, each
with the result mcptt-token must give at now = 1800000000.
Run from crates/token/tests/data: python3 make_interop.py"""
import base64, json
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

a3 = json.load(open("../../../../testdata/jose/rfc7515/rfc7515_A3_ES256.json"))
d = int.from_bytes(base64.urlsafe_b64decode(a3["jwk_private"]["d"] + "=="), "big")
key = ec.derive_private_key(d, ec.SECP256R1())
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()

def tok(header, claims, der=False):
    inp = b(json.dumps(header, separators=(",", ":")).encode()) + "." + b(json.dumps(claims, separators=(",", ":")).encode())
    sig = key.sign(inp.encode(), ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s = utils.decode_dss_signature(sig)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return inp + "." + b(sig)

now = 1800000000
c = {"iss": "https://idms.mcptt.example", "sub": "alice", "aud": "sip:mcptt-server@mcptt.example",
     "exp": now + 3600, "iat": now, "jti": "j1", "client_id": "ue",
     "scope": "openid 3gpp:mcptt:ptt_server", "mcptt_id": "sip:alice@mcptt.example"}
h = {"alg": "ES256", "typ": "at+jwt", "kid": "es"}
jwk = dict(a3["jwk_public"], kid="es")
cases = [
    ("valid", tok(h, c), "accept"),
    ("valid, aud array, application/at+jwt", tok(dict(h, typ="application/at+jwt"), dict(c, aud=["x", c["aud"]])), "accept"),
    ("expired", tok(h, dict(c, exp=now - 100)), "expired"),
    ("typ JWT", tok(dict(h, typ="JWT"), c), "bad_typ"),
    ("scope suffix", tok(h, dict(c, scope="3gpp:mcptt:ptt_server_x")), "insufficient_scope"),
    ("mcptt_id without scheme", tok(h, dict(c, mcptt_id="alice")), "bad_mcptt_id"),
    ("DER signature", tok(h, c, der=True), "bad_signature"),
]
json.dump({"source": "python-cryptography 48 (OpenSSL 3.0), ES256 with the RFC 7515 A.3 key; see make_interop.py",
           "now": now, "issuer": c["iss"], "audience": c["aud"], "jwks": {"keys": [jwk]},
           "cases": [{"name": n, "token": t, "expected": e} for n, t, e in cases]},
          open("interop_es256_tokens.json", "w"), indent=1)
