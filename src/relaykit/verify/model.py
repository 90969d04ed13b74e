"""Inputs and outputs of the SMTP conformance suite, plus their JSON spec form.

The spec never carries the password itself, only the path of a file holding it, so a
spec can be logged or passed on a command line safely.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TlsMode = Literal["none", "starttls", "starttls-required", "implicit"]
TLS_MODES: tuple[TlsMode, ...] = ("none", "starttls", "starttls-required", "implicit")


@dataclass(frozen=True)
class Listener:
    """One SMTP endpoint of the relay and what it must look like."""

    name: str
    host: str
    port: int
    tls: TlsMode = "none"
    auth: bool = False
    expect_mechanisms: frozenset[str] = frozenset()
    auth_before_tls: bool = False  # True: AUTH offered (with the same set) before STARTTLS

    @property
    def has_tls(self) -> bool:
        return self.tls != "none"


@dataclass(frozen=True)
class Expectations:
    """Everything the suite needs to judge a relay. `password` is a secret."""

    listeners: tuple[Listener, ...]
    user: str
    password: str = field(repr=False)
    wrong_password: str = field(default="relaykit-wrong-password", repr=False)
    local_sender_domain: str = "relay.example"
    relay_domain: str = ""  # domain the relay itself accepts; "" = local_sender_domain
    foreign_domain: str = "foreign.example"
    sink_dir: Path | None = None  # where authenticated relay mail must show up
    sink_timeout: float = 30.0
    cert_sha256: str | None = None  # hex SHA-256 of the expected DER certificate
    server_name: str = ""  # host part of the DIGEST-MD5 digest-uri; "" = listener host
    source_address: str | None = None  # bind the client here (must be outside mynetworks)
    timeout: float = 15.0
    use_swaks: bool = True
    # Sender binding: MAIL FROM after AUTH.  sender "" = rk-verify@local_sender_domain;
    # foreign_sender "" = binding not checked; it must be refused with 5xx.
    sender: str = ""
    foreign_sender: str = ""
    granted_sender: str = ""  # an extra address granted to the user: must get 250
    null_sender_refused: bool = False
    # anvil counts per client address: more source addresses to spread the suite's
    # AUTH commands over, and one kept apart to measure the AUTH throttle (0 = none).
    extra_sources: tuple[str, ...] = ()
    auth_rate_limit: int = 0
    throttle_source: str | None = None

    @property
    def own_domain(self) -> str:
        return self.relay_domain or self.local_sender_domain


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check. `detail` never contains a secret."""

    name: str
    listener: str
    ok: bool
    detail: str
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listener": self.listener,
            "ok": self.ok,
            "detail": self.detail,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            name=str(data["name"]),
            listener=str(data["listener"]),
            ok=bool(data["ok"]),
            detail=str(data["detail"]),
            skipped=bool(data.get("skipped", False)),
        )


def normalize_fingerprint(text: str) -> str:
    """Accept 'AB:CD:..' or 'abcd..' and return lower-case hex without separators."""
    return text.replace(":", "").replace(" ", "").strip().lower()


def der_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pem_sha256(pem: str) -> str:
    """SHA-256 of the first certificate in a PEM text, over its DER form."""
    return der_sha256(ssl.PEM_cert_to_DER_cert(pem))


def listener_to_json(lst: Listener) -> dict[str, Any]:
    return {
        "name": lst.name,
        "host": lst.host,
        "port": lst.port,
        "tls": lst.tls,
        "auth": lst.auth,
        "expect_mechanisms": sorted(lst.expect_mechanisms),
        "auth_before_tls": lst.auth_before_tls,
    }


def listener_from_json(data: dict[str, Any]) -> Listener:
    tls = str(data.get("tls", "none"))
    if tls not in TLS_MODES:
        raise ValueError(f"listener {data.get('name')!r}: tls must be one of {TLS_MODES}")
    return Listener(
        name=str(data["name"]),
        host=str(data["host"]),
        port=int(data["port"]),
        tls=tls,
        auth=bool(data.get("auth", False)),
        expect_mechanisms=frozenset(str(m).upper() for m in data.get("expect_mechanisms", [])),
        auth_before_tls=bool(data.get("auth_before_tls", False)),
    )


def expectations_to_spec(exp: Expectations, password_file: Path) -> dict[str, Any]:
    """JSON-able spec; the caller must have written exp.password to password_file."""
    return {
        "listeners": [listener_to_json(lst) for lst in exp.listeners],
        "user": exp.user,
        "password_file": str(password_file),
        "wrong_password": exp.wrong_password,  # deliberately wrong, not a secret
        "local_sender_domain": exp.local_sender_domain,
        "relay_domain": exp.relay_domain,
        "foreign_domain": exp.foreign_domain,
        "sink_dir": None if exp.sink_dir is None else str(exp.sink_dir),
        "sink_timeout": exp.sink_timeout,
        "cert_sha256": exp.cert_sha256,
        "server_name": exp.server_name,
        "source_address": exp.source_address,
        "timeout": exp.timeout,
        "use_swaks": exp.use_swaks,
        "sender": exp.sender,
        "foreign_sender": exp.foreign_sender,
        "granted_sender": exp.granted_sender,
        "null_sender_refused": exp.null_sender_refused,
        "extra_sources": list(exp.extra_sources),
        "auth_rate_limit": exp.auth_rate_limit,
        "throttle_source": exp.throttle_source,
    }


def _cert_pin(spec: dict[str, Any]) -> str | None:
    if spec.get("cert_sha256"):
        return normalize_fingerprint(str(spec["cert_sha256"]))
    if spec.get("cert_pem_file"):
        return pem_sha256(Path(str(spec["cert_pem_file"])).read_text())
    return None


def expectations_from_spec(spec: dict[str, Any]) -> Expectations:
    """Build Expectations from a spec dict, reading the password from its file."""
    password = Path(str(spec["password_file"])).read_text().rstrip("\r\n")
    sink = spec.get("sink_dir")
    exp = Expectations(
        listeners=tuple(listener_from_json(item) for item in spec["listeners"]),
        user=str(spec["user"]),
        password=password,
        wrong_password=str(spec.get("wrong_password", "relaykit-wrong-password")),
        local_sender_domain=str(spec.get("local_sender_domain", "relay.example")),
        relay_domain=str(spec.get("relay_domain", "")),
        foreign_domain=str(spec.get("foreign_domain", "foreign.example")),
        sink_dir=None if not sink else Path(str(sink)),
        sink_timeout=float(spec.get("sink_timeout", 30.0)),
        cert_sha256=_cert_pin(spec),
        server_name=str(spec.get("server_name", "")),
        source_address=spec.get("source_address") or None,
        timeout=float(spec.get("timeout", 15.0)),
        use_swaks=bool(spec.get("use_swaks", True)),
        sender=str(spec.get("sender", "")),
        foreign_sender=str(spec.get("foreign_sender", "")),
        granted_sender=str(spec.get("granted_sender", "")),
        null_sender_refused=bool(spec.get("null_sender_refused", False)),
        extra_sources=tuple(str(s) for s in spec.get("extra_sources", [])),
        auth_rate_limit=int(spec.get("auth_rate_limit", 0)),
        throttle_source=spec.get("throttle_source") or None,
    )
    if exp.wrong_password == exp.password:
        raise ValueError("wrong_password must differ from the password")
    return exp
