"""A minimal DIGEST-MD5 client (RFC 2831), because smtplib has none.

Only qop=auth (authentication, no integrity/confidentiality layer) is supported;
that is all SMTP AUTH uses.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import overload

_PAIR = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*,?')


def parse_challenge(text: str) -> dict[str, str]:
    """Parse `k=v, k="v"` pairs; repeated keys (realm) keep the first value."""
    out: dict[str, str] = {}
    for key, raw in _PAIR.findall(text):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.setdefault(key.lower(), value)
    return out


def _h(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class DigestParams:
    """The values that enter the response computation."""

    username: str
    realm: str
    password: str = field(repr=False)
    nonce: str
    cnonce: str
    nc: str
    qop: str
    digest_uri: str
    authzid: str = ""


def _ha1(p: DigestParams) -> str:
    # A1 = { H( user ":" realm ":" passwd ) } ":" nonce ":" cnonce [ ":" authzid ]
    inner = _h(f"{p.username}:{p.realm}:{p.password}".encode())
    a1 = inner + f":{p.nonce}:{p.cnonce}".encode()
    if p.authzid:
        a1 += f":{p.authzid}".encode()
    return _hex(a1)


def _kd_response(p: DigestParams, a2: str) -> str:
    tail = f"{p.nonce}:{p.nc}:{p.cnonce}:{p.qop}:{_hex(a2.encode())}"
    return _hex(f"{_ha1(p)}:{tail}".encode())


def response_value(p: DigestParams) -> str:
    """The `response=` directive (RFC 2831 section 2.1.2.1)."""
    return _kd_response(p, f"AUTHENTICATE:{p.digest_uri}")


def rspauth_value(p: DigestParams) -> str:
    """The server's expected `rspauth=` (A2 without the method)."""
    return _kd_response(p, f":{p.digest_uri}")


class DigestMD5Client:
    """Callable for smtplib.SMTP.auth(): answers the challenge, then checks rspauth."""

    def __init__(self, user: str, password: str, service: str, host: str) -> None:
        self._user = user
        self._password = password
        self._uri = f"{service}/{host}"
        self._params: DigestParams | None = None
        self.server_verified = False

    @overload
    def __call__(self, challenge: None = None, /) -> str | None: ...
    @overload
    def __call__(self, challenge: bytes, /) -> str: ...

    def __call__(self, challenge: bytes | None = None, /) -> str | None:
        text = (challenge or b"").decode("utf-8", "replace")
        if self._params is None:
            return self._first(parse_challenge(text))
        fields = parse_challenge(text)
        # Mutual authentication: the server proves it knows the password too.
        self.server_verified = fields.get("rspauth") == rspauth_value(self._params)
        return ""

    def _first(self, ch: dict[str, str]) -> str:
        if "auth" not in ch.get("qop", "auth").split(","):
            raise ValueError("server offers no qop=auth")
        self._params = DigestParams(
            username=self._user,
            realm=ch.get("realm", ""),
            password=self._password,
            nonce=ch["nonce"],
            cnonce=secrets.token_hex(16),
            nc="00000001",
            qop="auth",
            digest_uri=self._uri,
        )
        return build_response(self._params, utf8=ch.get("charset", "") == "utf-8")


def build_response(p: DigestParams, *, utf8: bool = True) -> str:
    parts = [f"username={_quote(p.username)}"]
    if p.realm:
        parts.append(f"realm={_quote(p.realm)}")
    parts += [
        f"nonce={_quote(p.nonce)}",
        f"cnonce={_quote(p.cnonce)}",
        f"nc={p.nc}",
        f"qop={p.qop}",
        f"digest-uri={_quote(p.digest_uri)}",
        f"response={response_value(p)}",
    ]
    if utf8:
        parts.append("charset=utf-8")
    return ",".join(parts)
