"""The id_token checks and the claim mapping of the console's OpenID Connect client, against the local
OpenID provider's discovery document, JWKS and signing key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.console.errors import NotAllowed
from collector.console.oidc import Provider, SsoFailed
from linewarden.config.base import Secret
from linewarden.config.collector import OidcConfig
from tests.fakes.oidc import CLIENT_ID, FakeOidc


@pytest.fixture
def idp() -> Iterator[FakeOidc]:
    with FakeOidc([], {}) as fake:
        yield fake


def _provider(idp: FakeOidc, tmp_path: Path) -> Provider:
    (tmp_path / "secret").write_text("x")
    return Provider(OidcConfig(issuer=idp.issuer, client_id=CLIENT_ID, client_secret=Secret(file=tmp_path / "secret"),
                               roles={"ops": "plant_it", "ext": "vendor", "root": "admin"}, vendor_claim="vendor",
                               site_claim="sites"))


def _claims(idp: FakeOidc, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.issuer, "aud": CLIENT_ID, "sub": "s1", "iat": now, "exp": now + 300, "nonce": "n1",
            "preferred_username": "Olga", **changes}


# Times are offsets from the moment the test runs (not from collection, which may be minutes earlier).
@pytest.mark.parametrize(("changes", "reason"), [
    ({"exp": -120}, "expired"),
    ({"iat": 600}, "future"),
    ({"aud": "another-client"}, "another client"),
    ({"aud": [CLIENT_ID, "other"]}, "another client"),  # several audiences and no azp
    ({"iss": "https://evil.example"}, "another issuer"),
    ({"nonce": "n2"}, "nonce"),
    ({"sub": ""}, "no subject"),
])
def test_an_id_token_failing_a_check_is_refused(idp: FakeOidc, tmp_path: Path, changes: dict[str, Any],
                                                reason: str) -> None:
    provider = _provider(idp, tmp_path)
    now = int(time.time())
    changes = {k: now + v if k in ("exp", "iat") else v for k, v in changes.items()}
    with pytest.raises(SsoFailed, match=reason):
        provider.verify(idp.sign(_claims(idp, **changes)), "n1", int(time.time() * 1000))


def test_unsigned_and_unknown_key_tokens_are_refused(idp: FakeOidc, tmp_path: Path) -> None:
    provider = _provider(idp, tmp_path)
    good = idp.sign(_claims(idp))
    body = good.split(".")[1]
    with pytest.raises(SsoFailed, match="RS256"):
        provider.verify(f"eyJhbGciOiJub25lIn0.{body}.", "n1", int(time.time() * 1000))  # {"alg":"none"}
    with pytest.raises(SsoFailed, match="does not publish"):
        provider.verify(idp.sign(_claims(idp), kid="k9"), "n1", int(time.time() * 1000))
    with pytest.raises(SsoFailed, match="malformed"):
        provider.verify("not a token", "n1", int(time.time() * 1000))
    assert provider.verify(good, "n1", int(time.time() * 1000))["sub"] == "s1"


def test_claims_map_to_role_vendor_and_sites(idp: FakeOidc, tmp_path: Path) -> None:
    provider = _provider(idp, tmp_path)
    who = provider.identity(_claims(idp, roles=["ops", "root"], sites=["p2", "p1", 7]))
    assert (who.username, who.role, who.vendor, who.sites) == ("olga", "admin", None, ("p1", "p2"))
    vendor = provider.identity(_claims(idp, roles="ext", vendor="integrator"))
    assert (vendor.role, vendor.vendor) == ("vendor", "integrator")
    with pytest.raises(NotAllowed, match="no single vendor"):
        provider.identity(_claims(idp, roles=["ext"]))
    with pytest.raises(NotAllowed, match="no role"):
        provider.identity(_claims(idp, roles=["unknown"]))


def test_an_unreachable_provider_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    provider = Provider(OidcConfig(issuer="http://127.0.0.1:9", client_id=CLIENT_ID,
                                   client_secret=Secret(file=tmp_path / "secret"), roles={"ops": "plant_it"}))
    with pytest.raises(SsoFailed, match="cannot be reached"):
        provider.start("http://127.0.0.1/cb", "/console/", int(time.time() * 1000))
