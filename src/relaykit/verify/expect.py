"""What a relay built from a profile must look like on the wire.

Derives the SMTP conformance suite's expectations (relaykit.verify) from the profile,
so the image and the package are judged by the same rules.
"""

from __future__ import annotations

from pathlib import Path

from relaykit.profile.model import PLAINTEXT_MECHANISMS, Listener, Profile
from relaykit.verify.model import Expectations
from relaykit.verify.model import Listener as WireListener


def offered_mechanisms(p: Profile, lis: Listener, *, inside_tls: bool) -> frozenset[str]:
    """The AUTH mechanisms Postfix advertises on this listener, before or inside TLS."""
    s = p.sasl
    if s is None or not lis.auth:
        return frozenset()
    if not inside_tls:
        # encrypt level implies smtpd_tls_auth_only; implicit TLS has no "before".
        if lis.tls in ("starttls-required", "implicit") or s.auth_only_over_tls:
            return frozenset()
        options = s.security_options
    else:
        options = s.tls_security_options
    mechs = set(s.mechanisms)
    if "noplaintext" in options:
        mechs -= PLAINTEXT_MECHANISMS
    return frozenset(mechs)


def wire_listener(p: Profile, lis: Listener, host: str) -> WireListener:
    inside = offered_mechanisms(p, lis, inside_tls=lis.tls != "none")
    before = offered_mechanisms(p, lis, inside_tls=False)
    return WireListener(name=lis.name, host=host, port=lis.port, tls=lis.tls,  # type: ignore[arg-type]
                        auth=bool(inside), expect_mechanisms=inside,
                        auth_before_tls=bool(before) and lis.tls != "implicit")


def own_address(p: Profile, user: str) -> str:
    """The address a SASL user owns under sender binding: user@realm."""
    if "@" in user or p.sasl is None:
        return user
    return f"{user}@{p.sasl.realm}"


def expectations(p: Profile, *, host: str, user: str, password: str, sink_dir: Path | None,
                 cert_sha256: str | None, source_address: str | None = None,
                 extra_sources: tuple[str, ...] = (), throttle_source: str | None = None,
                 granted_sender: str = "") -> Expectations:
    """Expectations for every listener reachable at host (loopback-only ones excluded
    when host is not loopback).  The AUTH throttle is measured only from a
    throttle_source the other checks do not use (anvil counts per client address)."""
    a = p.abuse
    bound = p.sasl is not None and a.sender_binding == "reject"
    return Expectations(
        listeners=tuple(wire_listener(p, lis, host) for lis in p.listeners),
        user=user,
        password=password,
        local_sender_domain=p.postfix.myhostname,
        relay_domain=p.postfix.myhostname,
        foreign_domain="foreign.example",
        sink_dir=sink_dir,
        cert_sha256=cert_sha256,
        server_name=p.postfix.myhostname,
        source_address=source_address,
        sender=own_address(p, user) if bound else "",
        foreign_sender=f"rk-someone-else@{p.sasl.realm}" if bound and p.sasl else "",
        granted_sender=granted_sender if bound else "",
        null_sender_refused=p.sasl is not None and a.null_sender == "reject",
        extra_sources=extra_sources,
        auth_rate_limit=a.auth_rate if throttle_source else 0,
        throttle_source=throttle_source,
    )
