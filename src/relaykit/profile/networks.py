"""IP networks as profiles write them (`a.b.c.d/n`, `[v6]/n` in mynetworks, `v6/n` in a
deployment's cluster_networks), and the IPv4 clients an IPv6 prefix stands for.

One helper for every check that compares networks: policy's mynetworks count
(relaykit.profile.policy) and the overlap of mynetworks with a cluster's networks
(relaykit.stack.deployment).  Imports nothing of relaykit: both can use it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Embedding:
    """An IPv6 prefix whose addresses stand for IPv4 clients.  `offset`: the bit where
    the 32-bit IPv4 address starts; None when the mapping cannot be bounded (the IPv4
    address is chosen by the operator's prefix length, or any IPv4 host can take an
    address there through a public relay): every overlapping entry is refused.
    Python's ipaddress calls some of these "private": never trust is_private here."""

    prefix: ipaddress.IPv6Network
    name: str
    offset: int | None


EMBEDDINGS = tuple(Embedding(ipaddress.IPv6Network(p), name, offset) for p, name, offset in (
    ("::ffff:0:0/96", "IPv4-mapped", 96),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT, RFC 2765)", 96),
    ("::/96", "IPv4-compatible (RFC 4291)", 96),
    ("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052)", 96),
    ("2002::/16", "6to4 (RFC 3056)", 16),
    ("64:ff9b:1::/48", "NAT64 local-use prefix (RFC 8215)", None),
    ("2001::/32", "Teredo (RFC 4380)", None),
))
# Not IPv4 clients: the unspecified address and the relay's own loopback.
NOT_EMBEDDED = ipaddress.IPv6Network("::/127")
COMPATIBLE = ipaddress.IPv6Network("::/96")


class Unbounded(ValueError):
    """An entry overlaps a prefix where any IPv4 host may appear."""


def embedded_v4(net: ipaddress.IPv6Network) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks `net` stands for, through every embedding it overlaps."""
    out: list[ipaddress.IPv4Network] = []
    for e in EMBEDDINGS:
        if not net.overlaps(e.prefix):
            continue
        if e.prefix == COMPATIBLE and net.subnet_of(NOT_EMBEDDED):
            continue
        if e.offset is None:
            raise Unbounded(f"{net} overlaps the {e.name} {e.prefix}: any IPv4 host can "
                            "appear there, the IPv4 clients it stands for cannot be bounded")
        if net.prefixlen <= e.prefix.prefixlen:
            out.append(ipaddress.IPv4Network("0.0.0.0/0"))
            continue
        shift = 128 - e.offset - 32
        v4 = (int(net.network_address) >> shift) & 0xFFFFFFFF
        bits = min(net.prefixlen - e.offset, 32)
        out.append(ipaddress.IPv4Network((v4, bits), strict=False))
    return out


def network(cidr: str, strict: bool = True) -> Network:
    """`a.b.c.d/n`, `[v6]/n` or `v6/n` -> the network.  strict: host bits must be zero
    (Postfix would warn and guess); ValueError otherwise, and for what is no network."""
    return ipaddress.ip_network(cidr.replace("[", "").replace("]", ""), strict=strict)


def networks(cidr: str, strict: bool = True) -> list[Network]:
    """The network, plus the IPv4 networks an IPv6 one stands for (IPv4-mapped,
    -translated, -compatible, NAT64, 6to4).  Raises Unbounded (a ValueError) where any
    IPv4 host may appear (Teredo, NAT64 local-use)."""
    net = network(cidr, strict)
    if isinstance(net, ipaddress.IPv6Network):
        return [net, *embedded_v4(net)]
    return [net]
