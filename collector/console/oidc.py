"""Single sign-on over OpenID Connect: the authorization code flow with PKCE (S256), `state` and `nonce`.

The provider's discovery document and JWKS are fetched from the issuer (short timeouts, cached; the JWKS is
fetched again once when an id_token names an unknown key). The id_token's RS256 signature is verified with
`cryptography`, then `iss`, `aud` (and `azp` when there are several audiences), `exp`, `iat` and `nonce`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from collector.console.errors import ConsoleError, NotAllowed
from collector.console.users import ROLES, Role
from linewarden.config.collector import OidcConfig

PENDING_MS = 10 * 60 * 1000
LEEWAY_MS = 60 * 1000
MAX_PENDING = 10_000


class SsoFailed(ConsoleError):
    """The provider's answer does not prove who the user is (bad state, token, signature, nonce...)."""


@dataclass(frozen=True)
class Pending:
    nonce: str
    verifier: str
    next: str
    started_at: int


@dataclass(frozen=True)
class Identity:
    subject: str
    username: str
    role: Role
    vendor: str | None
    sites: tuple[str, ...]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise SsoFailed("the id_token is malformed") from None


def challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class Provider:
    """One configured provider; `pending` holds started logins by their `state` (one collector process)."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, rsa.RSAPublicKey] | None = None

    def _get(self, url: str) -> dict[str, Any]:
        try:
            reply = httpx.get(url, timeout=self.config.timeout.total_seconds())
            reply.raise_for_status()
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SsoFailed(f"the identity provider cannot be reached: {type(exc).__name__}") from None
        if not isinstance(body, dict):
            raise SsoFailed("the identity provider's answer is not a JSON object")
        return cast(dict[str, Any], body)

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            found = self._get(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if found.get("issuer") != self.config.issuer:
                raise SsoFailed("the discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(found.get(key), str):
                    raise SsoFailed(f"the discovery document has no {key}")
            self._discovery = found
        return self._discovery

    def _jwks(self, refresh: bool) -> dict[str, rsa.RSAPublicKey]:
        if self._keys is None or refresh:
            keys: dict[str, rsa.RSAPublicKey] = {}
            for jwk in self._get(str(self.discovery()["jwks_uri"])).get("keys", []):
                if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and jwk.get("use", "sig") == "sig":
                    try:
                        numbers = rsa.RSAPublicNumbers(int.from_bytes(_unb64url(str(jwk["e"])), "big"),
                                                       int.from_bytes(_unb64url(str(jwk["n"])), "big"))
                        keys[str(jwk.get("kid", ""))] = numbers.public_key()
                    except (KeyError, ValueError, SsoFailed):
                        continue
            self._keys = keys
        return self._keys

    def start(self, redirect_uri: str, next_: str, now: int) -> tuple[str, str]:
        """The provider's authorization URL and the `state` (also set as a cookie by the caller)."""
        endpoint = str(self.discovery()["authorization_endpoint"])
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if now - p.started_at < PENDING_MS}
            if len(self._pending) >= MAX_PENDING:
                raise ConsoleError("too many single sign-on logins under way: try again in a few minutes")
            self._pending[state] = Pending(nonce, verifier, next_, now)
        query = urlencode({"response_type": "code", "client_id": self.config.client_id, "redirect_uri": redirect_uri,
                           "scope": " ".join(self.config.scopes), "state": state, "nonce": nonce,
                           "code_challenge": challenge(verifier), "code_challenge_method": "S256"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", state

    def take(self, state: str, cookie: str, now: int) -> Pending:
        """The login `state` started, once; it must be this browser's (the cookie) and recent."""
        if not state or not cookie or not secrets.compare_digest(state, cookie):
            raise SsoFailed("the single sign-on answer does not belong to this browser's login (state)")
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or now - pending.started_at >= PENDING_MS:
            raise SsoFailed("the single sign-on login expired or was used already: log in again")
        return pending

    def finish(self, code: str, redirect_uri: str, pending: Pending, now: int) -> dict[str, Any]:
        """Redeem the code and return the verified id_token's claims."""
        try:
            reply = httpx.post(str(self.discovery()["token_endpoint"]),
                               data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                     "code_verifier": pending.verifier},
                               auth=(self.config.client_id, self.config.client_secret.reveal()),
                               timeout=self.config.timeout.total_seconds())
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SsoFailed(f"the identity provider's token answer failed: {type(exc).__name__}") from None
        if reply.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise SsoFailed(f"the identity provider refused the code ({str(error)[:80] or reply.status_code})")
        return self.verify(body["id_token"], pending.nonce, now)

    def verify(self, token: str, nonce: str, now: int) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise SsoFailed("the id_token is malformed")
        try:
            header, claims = json.loads(_unb64url(parts[0])), json.loads(_unb64url(parts[1]))
        except ValueError:
            raise SsoFailed("the id_token is malformed") from None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise SsoFailed("the id_token is not signed with RS256")
        kid = str(header.get("kid", ""))
        key = self._jwks(False).get(kid) or self._jwks(True).get(kid)
        if key is None:
            raise SsoFailed("the id_token is signed with a key the provider does not publish")
        try:
            key.verify(_unb64url(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(),
                       hashes.SHA256())
        except InvalidSignature:
            raise SsoFailed("the id_token's signature does not verify") from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != self.config.issuer:
            raise SsoFailed("the id_token is from another issuer")
        client = self.config.client_id
        if client not in audiences or (len(audiences) > 1 and claims.get("azp") != client):
            raise SsoFailed("the id_token is meant for another client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp * 1000 + LEEWAY_MS < now:
            raise SsoFailed("the id_token has expired")
        if isinstance(iat, int | float) and iat * 1000 - LEEWAY_MS > now:
            raise SsoFailed("the id_token was issued in the future")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(str(claims["nonce"]), nonce):
            raise SsoFailed("the id_token's nonce does not match this login")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SsoFailed("the id_token names no subject")
        return cast(dict[str, Any], claims)

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The console user the claims map to; NotAllowed when no role (or a vendor user's vendor) is given."""
        config = self.config
        values = _strings(claims.get(config.role_claim))
        mapped = {config.roles[v] for v in values if v in config.roles}
        role = next((r for r in reversed(ROLES) if r in mapped), None)  # the most powerful mapped role
        name = str(claims.get(config.username_claim) or "").strip().lower()
        if role is None:
            raise NotAllowed(f"your identity provider account ({name or claims['sub']}) has no role in this console: "
                             "ask plant IT to assign one")
        vendor = None
        if role == "vendor":
            vendors = _strings(claims.get(config.vendor_claim)) if config.vendor_claim else []
            if len(vendors) != 1:
                raise NotAllowed("your account is a vendor account but the identity provider names no single vendor")
            vendor = vendors[0]
        sites = tuple(sorted(set(_strings(claims.get(config.site_claim))))) if config.site_claim else ()
        return Identity(str(claims["sub"]), name, role, vendor, sites)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
