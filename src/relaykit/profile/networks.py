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
# Not IPv4 clients: the unspecified address and the relay's own loopback (both inside
# the IPv4-compatible ::/96, and in no other embedding).
NOT_EMBEDDED = ipaddress.IPv6Network("::/127")


class Unbounded(ValueError):
    """An entry overlaps a prefix where any IPv4 host may appear."""

    def __init__(self, net: ipaddress.IPv6Network, embedding: Embedding) -> None:
        super().__init__(f"{net} overlaps the {embedding.name} {embedding.prefix}: any "
                         "IPv4 host can appear there, the IPv4 clients it stands for "
                         "cannot be bounded")
        self.embedding = embedding


def embedded(net: ipaddress.IPv6Network) -> list[tuple[Embedding, ipaddress.IPv4Network]]:
    """The IPv4 networks `net` stands for, each with the embedding it stands for it
    through, for every embedding it overlaps.  A net wider than an embedding's prefix
    covers all of it: all of IPv4."""
    if net.subnet_of(NOT_EMBEDDED):
        return []
    out: list[tuple[Embedding, ipaddress.IPv4Network]] = []
    for e in EMBEDDINGS:
        if not net.overlaps(e.prefix):
            continue
        if e.offset is None:
            raise Unbounded(net, e)
        # The IPv4 bits are those of net's address from `offset` on: past net's prefix
        # length they are zero, so the IPv4 network has no host bits set.
        v4 = (int(net.network_address) >> (128 - e.offset - 32)) & 0xFFFFFFFF
        bits = min(max(net.prefixlen - e.offset, 0), 32)
        out.append((e, ipaddress.IPv4Network((v4, bits))))
    return out


def network(cidr: str, strict: bool) -> Network:
    """`a.b.c.d/n`, `[v6]/n` or `v6/n` -> the network.  strict: host bits must be zero
    (Postfix would warn and guess); ValueError otherwise, and for what is no network."""
    return ipaddress.ip_network(cidr.replace("[", "").replace("]", ""), strict=strict)


def networks(cidr: str, strict: bool = True) -> list[Network]:
    """The network, plus the IPv4 networks an IPv6 one stands for (IPv4-mapped,
    -translated, -compatible, NAT64, 6to4).  Raises Unbounded (a ValueError) where any
    IPv4 host may appear (Teredo, NAT64 local-use)."""
    net = network(cidr, strict)
    if isinstance(net, ipaddress.IPv6Network):
        return [net, *(v4 for _, v4 in embedded(net))]
    return [net]
