"""Console sessions: a signed, expiring cookie that names a role and which key logged in, never
the key itself.

The cookie is ``<payload>.<signature>``, both base64url: the payload is JSON (``role``, ``key``:
a fingerprint of the key, ``exp``: expiry in Unix seconds, ``nonce``), the signature
HMAC-SHA256 of the payload under the server's session secret. The secret is derived from the
configured admin and reviewer keys (``SessionSigner.from_keys``), so every process of one
deployment (``serve --workers N``) accepts the same sessions without a secret of its own to
distribute, and changing the keys ends every session. The key fingerprint is checked against
the keys configured now: a session of a key that was removed is refused at once.

Roles: ``admin``, and ``reviewer`` for the review queues (docs/console.md). A reviewer's session
names the key's fingerprint only; the console maps it to the configured reviewer id on the server.

A form that changes something carries ``csrf_token(cookie)``: an HMAC of the session cookie, so
a page of another site can neither read nor forge it (the cookie is also ``SameSite=Strict``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "reviewer"]
COOKIE = "flywheel_console"
SESSION_SECONDS = 8 * 3600
"""How long a session lasts after login."""
_CONTEXT = b"feedback-flywheel console session v1"


@dataclass(frozen=True)
class Session:
    """A valid session: who (a role and the fingerprint of the key that logged in), until when."""

    role: Role
    key: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session cookies for a set of keys, each with its role."""

    def __init__(
        self,
        secret: bytes,
        keys: dict[str, Role],
        *,
        ttl_s: int = SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._clock = clock
        self.ttl_s = ttl_s
        self._keys = [(key.encode(), role, self.fingerprint(key)) for key, role in keys.items()]

    @classmethod
    def from_keys(
        cls, keys: dict[str, Role], *, ttl_s: int = SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> SessionSigner:  # fmt: skip
        """A signer whose secret is derived from the keys (sorted, so their order is not part
        of it): the same in every process given the same keys."""
        material = b"\0".join(sorted(key.encode() for key in keys))
        secret = hmac.new(_CONTEXT, material, hashlib.sha256).digest()
        return cls(secret, keys, ttl_s=ttl_s, clock=clock)

    def fingerprint(self, key: str) -> str:
        """What a session records of the key that logged in: not reversible to the key."""
        return hmac.new(self._secret, b"key:" + key.encode(), hashlib.sha256).hexdigest()[:16]

    def role_of(self, presented: str) -> Role | None:
        """The role of a presented key (None for an unknown one), compared in constant time
        against every configured key."""
        found: Role | None = None
        candidate = presented.encode()
        for key, role, _ in self._keys:
            if hmac.compare_digest(candidate, key):
                found = role
        return found

    def issue(self, presented: str) -> str | None:
        """A session cookie's value for a configured key; None for any other."""
        role = self.role_of(presented)
        if role is None:
            return None
        payload = {
            "role": role,
            "key": self.fingerprint(presented),
            "exp": int(self._clock()) + self.ttl_s,
            "nonce": secrets.token_hex(8),
        }
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._sign(body)}"

    def csrf_token(self, cookie: str) -> str:
        """The token a form posted with the session ``cookie`` must carry."""
        digest = hmac.new(self._secret, b"csrf:" + cookie.encode(), hashlib.sha256).digest()
        return _b64(digest)

    def check_csrf(self, cookie: str, token: str) -> bool:
        """Whether ``token`` is the form token of the session ``cookie``."""
        return hmac.compare_digest(token.encode(), self.csrf_token(cookie).encode())

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def check(self, value: str | None, roles: Iterable[Role] = ("admin",)) -> Session | None:
        """The session a cookie holds, if its signature is right, it has not expired, its key
        is still configured with the same role, and that role is one of ``roles``."""
        if not value or value.count(".") != 1 or len(value) > 1024 or not value.isascii():
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            payload = json.loads(_unb64(body))
            role, key, expires = payload["role"], str(payload["key"]), int(payload["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= self._clock() or role not in set(roles):
            return None
        if not any(
            hmac.compare_digest(key.encode(), known.encode()) and role == r
            for _, r, known in self._keys
        ):
            return None
        return Session(role=role, key=key, expires_at=expires)
