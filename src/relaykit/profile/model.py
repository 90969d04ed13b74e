"""The validated profile as frozen dataclasses: user intent, resolved and immutable.

Built only from a dict that passed the schema and policy checks, with defaults
already applied (the schema holds them), so nothing here re-validates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from relaykit.profile import parameters
from relaykit.profile.restrictions import Restriction, parse

PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


class TlsMode(StrEnum):
    """A listener's TLS: what master.cf says for it."""

    NONE = "none"
    STARTTLS = "starttls"
    STARTTLS_REQUIRED = "starttls-required"
    IMPLICIT = "implicit"

    @property
    def security_level(self) -> str:
        """smtpd_tls_security_level."""
        return {"none": "none", "starttls": "may", "starttls-required": "encrypt",
                "implicit": "encrypt"}[self.value]

    @property
    def wrappermode(self) -> bool:
        """smtpd_tls_wrappermode: TLS from the first byte (RFC 8314)."""
        return self is TlsMode.IMPLICIT

    @property
    def always_encrypted(self) -> bool:
        """No SMTP command (AUTH included) is accepted outside TLS."""
        return self in (TlsMode.STARTTLS_REQUIRED, TlsMode.IMPLICIT)


TLS_MODES = tuple(m.value for m in TlsMode)


class SaslBackend(StrEnum):
    SASLAUTHD = "saslauthd"
    AUXPROP = "auxprop"


class OutboundTls(StrEnum):
    """smtp_tls_security_level towards the next hop."""

    NONE = "none"
    MAY = "may"
    ENCRYPT = "encrypt"
    VERIFY = "verify"
    SECURE = "secure"

    @property
    def encrypts(self) -> bool:
        """TLS is mandatory: credentials never cross in clear."""
        return self not in (OutboundTls.NONE, OutboundTls.MAY)


class TlsProtocols(StrEnum):
    """Floor TLS 1.2: smtpd_tls_protocols and friends, in Postfix >= 3.6 syntax."""

    TLS12 = ">=TLSv1.2"
    TLS13 = ">=TLSv1.3"


class Ciphers(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"


# Never negotiated, on any listener or outbound: no authentication or no encryption.
EXCLUDED_CIPHERS = ("aNULL", "eNULL", "EXPORT", "DES", "RC4", "MD5")
# Postfix's default mailbox_size_limit; message_size_limit may not exceed it (local(8)).
DEFAULT_MAILBOX_SIZE_LIMIT = 51_200_000


@dataclass(frozen=True)
class Base:
    suite: str
    architecture: str | None
    mirror: str | None
    extra_packages: tuple[str, ...]


@dataclass(frozen=True)
class PostfixIdentity:
    myhostname: str
    mydomain: str
    mydestination: tuple[str, ...]
    mynetworks: tuple[str, ...]
    inet_interfaces: tuple[str, ...]
    inet_protocols: str
    message_size_limit: int
    main_cf: tuple[tuple[str, str], ...]  # allowlisted, values in their canonical form

    @property
    def mailbox_size_limit(self) -> int:
        return max(DEFAULT_MAILBOX_SIZE_LIMIT, self.message_size_limit)


@dataclass(frozen=True)
class Listener:
    name: str
    port: int
    address: str | None
    tls: TlsMode
    auth: bool
    client_restrictions: tuple[Restriction, ...] | None
    relay_restrictions: tuple[Restriction, ...] | None

    @property
    def service(self) -> str:
        """master.cf service field: [address:]port."""
        if self.address is None:
            return str(self.port)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Sasl:
    backend: SaslBackend
    realm: str
    mechanisms: tuple[str, ...]
    security_options: tuple[str, ...]
    tls_security_options: tuple[str, ...]
    auth_only_over_tls: bool
    broken_clients: bool
    users_file: str
    allow_insecure_legacy: bool

    @property
    def needs_chroot_sasldb(self) -> bool:
        """auxprop mechanisms open sasldb from inside smtpd's chroot."""
        return self.backend is SaslBackend.AUXPROP


@dataclass(frozen=True)
class AccessMap:
    name: str
    type: str
    entries: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        return f"/etc/postfix/{self.name}"

    @property
    def reference(self) -> str:
        return f"{self.type}:{self.path}"


@dataclass(frozen=True)
class Restrictions:
    client: tuple[Restriction, ...] | None
    helo: tuple[Restriction, ...] | None
    sender: tuple[Restriction, ...] | None
    relay: tuple[Restriction, ...] | None
    recipient: tuple[Restriction, ...] | None
    helo_required: bool
    maps: tuple[AccessMap, ...]


@dataclass(frozen=True)
class Outbound:
    relayhost: str | None
    sasl: bool
    credentials_file: str
    credentials_key: str | None
    tls_level: OutboundTls
    security_options: tuple[str, ...]
    tls_security_options: tuple[str, ...]

    @property
    def wrappermode(self) -> bool:
        """smtp_tls_wrappermode: a smarthost on port 465 speaks TLS from the first byte."""
        return relayhost_port(self.relayhost) == 465


@dataclass(frozen=True)
class Tls:
    cert_file: str
    key_file: str
    managed: bool  # relaykit provides the pair (runtime secret or self-signed)
    protocols: TlsProtocols
    mandatory_ciphers: Ciphers


@dataclass(frozen=True)
class OciOutput:
    name: str
    tags: tuple[str, ...]
    source: str | None


@dataclass(frozen=True)
class DebOutput:
    package: str
    version: str
    maintainer: str
    section: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    version: str
    source_file: str
    base: Base
    postfix: PostfixIdentity
    listeners: tuple[Listener, ...]
    sasl: Sasl | None
    restrictions: Restrictions
    outbound: Outbound
    tls: Tls
    oci: OciOutput | None
    deb: DebOutput | None

    @property
    def auth_listeners(self) -> tuple[Listener, ...]:
        return tuple(lis for lis in self.listeners if lis.auth)

    @property
    def formats(self) -> tuple[str, ...]:
        declared = [("oci", self.oci), ("deb", self.deb)]
        return tuple(name for name, out in declared if out is not None)


MANAGED_TLS_CERT = "/etc/relaykit/tls/tls.crt"
MANAGED_TLS_KEY = "/etc/relaykit/tls/tls.key"


def relayhost_port(relayhost: str | None) -> int | None:
    """[host]:port, host:port -> port; None without a port (25, after MX lookup)."""
    if not relayhost:
        return None
    rest = relayhost.rsplit("]", 1)[-1] if relayhost.startswith("[") else relayhost
    _, sep, port = rest.rpartition(":")
    return int(port) if sep and port.isdigit() else None


def _parsed(value: Any) -> tuple[Restriction, ...] | None:
    """Restriction items, parsed (policy refused every item that does not parse)."""
    return None if value is None else tuple(parse(str(v)) for v in value)


def build_profile(data: dict[str, Any], source_file: str) -> Profile:
    """Turn a schema-valid, defaulted dict into the model."""
    pf = data["postfix"]
    sasl = data.get("sasl")
    tls = data["tls"]
    outputs = data["outputs"]
    return Profile(
        name=data["name"],
        description=data["description"],
        version=str(data["version"]),
        source_file=source_file,
        base=Base(
            suite=data["base"]["suite"],
            architecture=data["base"]["architecture"],
            mirror=data["base"]["mirror"],
            extra_packages=tuple(data["base"]["extra_packages"]),
        ),
        postfix=PostfixIdentity(
            myhostname=pf["myhostname"],
            mydomain=pf["mydomain"],
            mydestination=tuple(pf["mydestination"]),
            mynetworks=tuple(pf["mynetworks"]),
            inet_interfaces=tuple(pf["inet_interfaces"]),
            inet_protocols=pf["inet_protocols"],
            message_size_limit=pf["message_size_limit"],
            main_cf=tuple((k, parameters.ALLOWED[k].parse(v))
                          for k, v in sorted(pf["main_cf"].items())),
        ),
        listeners=tuple(_listener(item) for item in data["listeners"]),
        sasl=None if sasl is None else _sasl(sasl, pf["mydomain"]),
        restrictions=_restrictions(data["restrictions"]),
        outbound=_outbound(data["outbound"]),
        tls=Tls(
            cert_file=tls["cert_file"] or MANAGED_TLS_CERT,
            key_file=tls["key_file"] or MANAGED_TLS_KEY,
            managed=tls["cert_file"] is None,
            protocols=TlsProtocols(tls["protocols"]),
            mandatory_ciphers=Ciphers(tls["mandatory_ciphers"]),
        ),
        oci=_oci(outputs.get("oci")),
        deb=_deb(outputs.get("deb")),
    )


def _listener(item: dict[str, Any]) -> Listener:
    return Listener(
        name=item["name"],
        port=item["port"],
        address=item["address"],
        tls=TlsMode(item["tls"]),
        auth=item["auth"],
        client_restrictions=_parsed(item["client_restrictions"]),
        relay_restrictions=_parsed(item["relay_restrictions"]),
    )


def _sasl(sasl: dict[str, Any], mydomain: str) -> Sasl:
    return Sasl(
        backend=SaslBackend(sasl["backend"]),
        realm=sasl["realm"] or mydomain,
        mechanisms=tuple(sasl["mechanisms"]),
        security_options=tuple(sasl["security_options"]),
        tls_security_options=tuple(sasl["tls_security_options"]),
        auth_only_over_tls=sasl["auth_only_over_tls"],
        broken_clients=sasl["broken_clients"],
        users_file=sasl["users_file"],
        allow_insecure_legacy=sasl["allow_insecure_legacy"],
    )


def _restrictions(r: dict[str, Any]) -> Restrictions:
    maps = tuple(
        AccessMap(name, spec["type"], tuple(sorted(spec["entries"].items())))
        for name, spec in sorted(r["maps"].items())
    )
    return Restrictions(
        client=_parsed(r.get("client")),
        helo=_parsed(r.get("helo")),
        sender=_parsed(r.get("sender")),
        relay=_parsed(r.get("relay")),
        recipient=_parsed(r.get("recipient")),
        helo_required=r["helo_required"],
        maps=maps,
    )


def _outbound(o: dict[str, Any]) -> Outbound:
    return Outbound(
        relayhost=o["relayhost"],
        sasl=o["sasl"],
        credentials_file=o["credentials_file"],
        credentials_key=o["credentials_key"],
        tls_level=OutboundTls(o["tls_level"]),
        security_options=tuple(o["security_options"]),
        tls_security_options=tuple(o["tls_security_options"]),
    )


def _oci(o: dict[str, Any] | None) -> OciOutput | None:
    if o is None:
        return None
    return OciOutput(name=o["name"], tags=tuple(o["tags"]), source=o["source"])


def _deb(d: dict[str, Any] | None) -> DebOutput | None:
    if d is None:
        return None
    return DebOutput(d["package"], d["version"], d["maintainer"], d["section"])

# What relaykit renders when a profile leaves smtpd_relay_restrictions unset: Debian's
# postinst writes defer_unauth_destination (a 4xx that makes spammers retry); we refuse.
DEFAULT_RELAY_RESTRICTIONS: tuple[Restriction, ...] = tuple(
    parse(name) for name in
    ("permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination"))
