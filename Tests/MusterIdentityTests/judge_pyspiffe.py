"""Outside judge: py-spiffe parses Muster's SVIDs and bundle and validates the chains; pyca/cryptography checks
that each JWK in the SPIFFE bundle JSON matches its x5c certificate. Usage: judge_pyspiffe.py DIR"""
import base64
import json
import pathlib
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from spiffe import TrustDomain, X509Bundle, X509Svid

d = pathlib.Path(sys.argv[1])
td = TrustDomain("example.org")
bundle = X509Bundle.parse(td, (d / "bundle.pem").read_bytes())
roots = list(bundle.x509_authorities)
assert len(roots) == 1, roots

for name in ("poller", "agent"):
    svid = X509Svid.parse((d / f"{name}.pem").read_bytes(), (d / f"{name}.key").read_bytes())
    chain = svid.cert_chain
    # Each certificate is signed by the next one, the last by a root of the bundle.
    for child, parent in zip(chain, chain[1:] + [roots[0]]):
        child.verify_directly_issued_by(parent)
    print(name, svid.spiffe_id)

doc = json.loads((d / "bundle.json").read_text())
entries = [k for k in doc["keys"] if k.get("use") == "x509-svid"]
assert len(entries) == 1 and "kid" not in entries[0]
cert = x509.load_der_x509_certificate(base64.b64decode(entries[0]["x5c"][0]))
numbers = cert.public_key().public_numbers()
pad = lambda s: s + "=" * (-len(s) % 4)
assert int.from_bytes(base64.urlsafe_b64decode(pad(entries[0]["x"])), "big") == numbers.x
assert int.from_bytes(base64.urlsafe_b64decode(pad(entries[0]["y"])), "big") == numbers.y
assert cert == roots[0]
print("bundle.json ok, sequence", doc["spiffe_sequence"])
