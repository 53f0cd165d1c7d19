"""OpenID metadata + JWKS stand-in with a test signing key, in its own thread.

botbuilder fetches the metadata with a blocking `requests.get` on the event loop, so
this server must not run on that loop.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://api.botframework.com"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OpenIdStandIn:
    def __init__(self) -> None:
        self.key = new_key()
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self.requests = 0
        # When set, every request waits for it: a key download that hangs.
        self.gate: threading.Event | None = None
        self.entered = threading.Event()  # set at the first request
        self.waiting = 0  # requests held at the gate right now
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests += 1
                stand_in.entered.set()
                if stand_in.gate is not None:
                    stand_in.waiting += 1
                    stand_in.gate.wait(30)
                    stand_in.waiting -= 1
                if self.path.endswith("/openid-configuration"):
                    payload: dict[str, Any] = {
                        "issuer": ISSUER,
                        "jwks_uri": f"{stand_in.base_url}/keys",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path.endswith("/keys"):
                    jwk = json.loads(RSAAlgorithm.to_jwk(stand_in.key.public_key()))
                    jwk.update({"kid": stand_in.kid, "use": "sig", "endorsements": ["msteams"]})
                    payload = {"keys": [jwk]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.metadata_url = f"{self.base_url}/v1/.well-known/openid-configuration"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OpenIdStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def token(
        self,
        *,
        audience: str,
        service_url: str,
        issuer: str = ISSUER,
        expires_in: int = 3600,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "serviceurl": service_url,
            "nbf": now - 60,
            "iat": now - 60,
            "exp": now + expires_in,
        }
        claims.update(extra or {})
        return jwt.encode(
            claims,
            key or self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )
