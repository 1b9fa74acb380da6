"""A local OpenID provider on a free loopback port that checks each request as OpenID Connect Core and
RFC 7636 (PKCE) say, and issues RS256 id_tokens with its JWKS.

`users` maps a user name to its extra claims. GET /authorize shows a login page (a form posting the user
name); `auto_login` skips it. `tamper` spoils the next id_token: "signature" or "nonce". Every refused
request lands in `refused` with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLIENT_ID = "linewarden-console"
CLIENT_SECRET = "s3cret-of-the-console"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Refused(Exception):
    pass


class FakeOidc:
    def __init__(self, redirect_uris: list[str], users: dict[str, dict[str, Any]]) -> None:
        self.redirect_uris = redirect_uris
        self.users = users
        self.auto_login: str | None = None
        self.tamper: str | None = None
        self.refused: list[str] = []
        self.token_requests = 0
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                try:
                    status, payload, kind, headers = fake.handle(method, url.path, parse_qs(url.query),
                                                                 parse_qs(body), self.headers.get("Authorization"))
                except _Refused as exc:
                    with fake._lock:
                        fake.refused.append(str(exc))
                    status, payload, kind, headers = 400, json.dumps({"error": "invalid_request",
                                                                      "error_description": str(exc)}).encode(), \
                        "application/json", {}
                self._reply(status, payload, kind, headers)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]],
               auth: str | None) -> tuple[int, bytes, str, dict[str, str]]:
        if method == "GET" and path == "/.well-known/openid-configuration":
            return self._json({"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                               "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                               "response_types_supported": ["code"], "subject_types_supported": ["public"],
                               "id_token_signing_alg_values_supported": ["RS256"],
                               "code_challenge_methods_supported": ["S256"]})
        if method == "GET" and path == "/jwks":
            numbers = self._key.public_key().public_numbers()
            return self._json({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
                                         "n": _b64(numbers.n.to_bytes(256, "big")), "e": _b64(b"\x01\x00\x01")}]})
        if method == "GET" and path == "/authorize":
            params = self._authorization(query)
            if self.auto_login is not None:
                return self._login(params, self.auto_login)
            hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in params.items())
            page = (f"<!doctype html><title>Fake IdP</title><form method=post action=/login>{hidden}"
                    "<label for=username>User</label><input id=username name=username>"
                    "<button type=submit>Sign in</button></form>")
            return 200, page.encode(), "text/html; charset=utf-8", {}
        if method == "POST" and path == "/login":
            params = self._authorization(form)
            return self._login(params, form.get("username", [""])[0])
        if method == "POST" and path == "/token":
            return self._token(form, auth)
        return 404, b"not found", "text/plain", {}

    def _json(self, body: Any) -> tuple[int, bytes, str, dict[str, str]]:
        return 200, json.dumps(body).encode(), "application/json", {"Cache-Control": "no-store"}

    def _authorization(self, params: dict[str, list[str]]) -> dict[str, str]:
        one = {k: v[0] for k, v in params.items() if len(v) == 1 and k != "username"}
        if one.get("response_type") != "code":
            raise _Refused("response_type must be code")
        if one.get("client_id") != CLIENT_ID:
            raise _Refused("unknown client_id")
        if one.get("redirect_uri") not in self.redirect_uris:
            raise _Refused("redirect_uri is not registered")
        if "openid" not in one.get("scope", "").split():
            raise _Refused("scope must contain openid")
        for name in ("state", "nonce", "code_challenge"):
            if not one.get(name):
                raise _Refused(f"{name} is missing")
        if one.get("code_challenge_method") != "S256":
            raise _Refused("code_challenge_method must be S256")
        return one

    def _login(self, params: dict[str, str], username: str) -> tuple[int, bytes, str, dict[str, str]]:
        if username not in self.users:
            raise _Refused(f"no user {username!r}")
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {**params, "username": username}
        location = f"{params['redirect_uri']}?{urlencode({'code': code, 'state': params['state']})}"
        return 302, b"", "text/plain", {"Location": location}

    def _token(self, form: dict[str, list[str]], auth: str | None) -> tuple[int, bytes, str, dict[str, str]]:
        with self._lock:
            self.token_requests += 1
        one = {k: v[0] for k, v in form.items()}
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != expected:
            raise _Refused("client authentication failed")
        if one.get("grant_type") != "authorization_code":
            raise _Refused("grant_type must be authorization_code")
        with self._lock:
            grant = self._codes.pop(one.get("code", ""), None)
        if grant is None:
            raise _Refused("unknown or used code")
        if one.get("redirect_uri") != grant["redirect_uri"]:
            raise _Refused("redirect_uri differs from the authorization request's")
        verifier = one.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["code_challenge"]:
            raise _Refused("code_verifier does not match the code_challenge")
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": f"sub-{grant['username']}", "iat": now,
                  "exp": now + 300, "nonce": grant["nonce"], "preferred_username": grant["username"],
                  **self.users[grant["username"]]}
        tamper, self.tamper = self.tamper, None
        if tamper == "nonce":
            claims["nonce"] = "another-nonce"
        token = self.sign(claims)
        if tamper == "signature":
            head, body, sig = token.split(".")
            spoiled = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            spoiled["roles"] = ["lw-admins"]
            token = f"{head}.{_b64(json.dumps(spoiled).encode())}.{sig}"
        return self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                           "id_token": token})

    def sign(self, claims: dict[str, Any], kid: str = "k1") -> str:
        head = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = self._key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{_b64(signature)}"
