"""A running collector whose console logs in through the local OpenID provider (tests/fakes/oidc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.browser.site import Site, prepare, running
from tests.fakes.oidc import CLIENT_ID, CLIENT_SECRET, FakeOidc

IDP_USERS: dict[str, dict[str, Any]] = {
    "olga": {"roles": ["lw-plant", "unrelated"]},
    "vic": {"roles": ["lw-vendor"], "vendor_id": "integrator"},
    "nora": {"roles": ["finance"]},
}


@contextmanager
def oidc_site(folder: Path, broker_port: int) -> Iterator[tuple[Site, FakeOidc]]:
    with FakeOidc([], IDP_USERS) as idp:
        secret = folder / "oidc-secret"
        folder.mkdir(parents=True, exist_ok=True)
        secret.write_text(CLIENT_SECRET + "\n")
        console = (
            "mfa_required_roles = [\"admin\"]\n[console.oidc]\n"
            f'issuer = "{idp.issuer}"\nclient_id = "{CLIENT_ID}"\nclient_secret = {{ file = "{secret}" }}\n'
            'role_claim = "roles"\nvendor_claim = "vendor_id"\n'
            'roles = { "lw-plant" = "plant_it", "lw-vendor" = "vendor", "lw-admins" = "admin" }\n'
        )
        site = prepare(folder / "site", broker_port, console)
        idp.redirect_uris.append(site.url + "/login/oidc/callback")
        with running(site) as up:
            yield up, idp
