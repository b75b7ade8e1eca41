#!/usr/bin/env python3
"""Test-only RSA keys for the Google Play suites (tests/fixtures/google): a service-account
key file (the OAuth JWT bearer flow), the key the fake Google signs Pub/Sub push OIDC tokens
with and its JWK set, and a stranger's key. Throwaway keys, committed on purpose."""
import base64, json, os
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "google")
os.makedirs(out, exist_ok=True)


def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def b64(n):
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


sa = key()
with open(os.path.join(out, "service_account.json"), "w") as f:
    json.dump({"type": "service_account", "project_id": "tollgate-test", "private_key_id": "sa-key-1",
               "private_key": pem(sa), "client_email": "verifier@tollgate-test.iam.gserviceaccount.com",
               "token_uri": "https://oauth2.googleapis.com/token"}, f, indent=2)
with open(os.path.join(out, "service_account_public.pem"), "w") as f:
    f.write(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode())
push = key()
with open(os.path.join(out, "push_key.pem"), "w") as f:
    f.write(pem(push))
nums = push.public_key().public_numbers()
with open(os.path.join(out, "push_jwks.json"), "w") as f:
    json.dump({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "push-key-1",
                         "n": b64(nums.n), "e": b64(nums.e)}]}, f, indent=2)
with open(os.path.join(out, "stranger_key.pem"), "w") as f:
    f.write(pem(key()))
print("wrote", out)
