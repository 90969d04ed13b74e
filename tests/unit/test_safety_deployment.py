"""Relay safety of a scaled deployment, as an attacker would probe it: a mynetworks entry
that trusts the cluster's own networks, written in a form the overlap check might not
read.  Once the relay is published (Swarm host ports, a LoadBalancer or NodePort
Service), clients proxied or SNATed from the cluster arrive from those networks and
relay without AUTH: an open relay.

Every IPv6 form that stands for IPv4 clients (profile/networks.py; the same helper
policy's mynetworks count uses) is tried in both directions: an IPv4-embedding
mynetworks entry against IPv4 cluster networks, and IPv6 cluster networks against IPv4
(or differently embedded) mynetworks.  The embedded forms below are worked out by hand
from the RFCs, not from the code: 10.244.1.0 is 0a.f4.01.00, 172.20.0.0 is ac.14.00.00,
192.0.2.0 is c0.00.02.00, 10.0.0.0 is 0a.00.00.00.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relaykit import commands
from relaykit.errors import Diagnostic, Level, ProfileError
from relaykit.profile.load import load_profile
from relaykit.stack.deployment import declared_deployment_findings

from ..diagnostics import profile_diagnostics as diagnostics

HELM = "{helm: {service_type: LoadBalancer}}"  # published; pods 10.244.0.0/16 by default
STACK = "{stack: {publish: host}}"  # published; bridge pool 172.16.0.0/12 by default


def text(entry: str, outputs: str) -> str:
    """roaming with mynetworks [loopback, entry] (entry on line 6) and the outputs."""
    return (f"extends: roaming\nname: c\npostfix:\n  mynetworks:\n    - 127.0.0.0/8\n"
            f"    - '{entry}'\noutputs: {outputs}\n")


def cluster_relay(found: list[Diagnostic]) -> list[tuple[Level, int, str]]:
    return [(d.level, d.line, d.path) for d in found if d.code == "cluster-relay"]


def relay_error_on_line_6(found: list[Diagnostic]) -> bool:
    return cluster_relay(found) == [(Level.ERROR, 6, ".postfix.mynetworks[1]")]


# --- an IPv6 mynetworks entry that stands for the cluster's IPv4 networks -------------

POD_SUBNET = [  # 10.244.1.0/24, inside the default pod network 10.244.0.0/16
    ("[::ffff:af4:100]/120", "10.244.1.0/24", "IPv4-mapped"),
    ("[::ffff:10.244.1.0]/120", "10.244.1.0/24", "IPv4-mapped"),
    ("[::ffff:0:af4:100]/120", "10.244.1.0/24", "IPv4-translated (SIIT, RFC 2765)"),
    ("[::af4:100]/120", "10.244.1.0/24", "IPv4-compatible (RFC 4291)"),
    ("[64:ff9b::af4:100]/120", "10.244.1.0/24", "NAT64 well-known prefix (RFC 6052)"),
    ("[64:ff9b::10.244.1.0]/120", "10.244.1.0/24", "NAT64 well-known prefix (RFC 6052)"),
    ("[2002:af4:100::]/40", "10.244.1.0/24", "6to4 (RFC 3056)"),
    # A 6to4 site's /64 subnet stands for the one IPv4 host of its /48.
    ("[2002:af4:101:1::]/64", "10.244.1.1/32", "6to4 (RFC 3056)"),
]


@pytest.mark.parametrize(("entry", "v4", "form"), POD_SUBNET, ids=[e for e, _, _ in POD_SUBNET])
def test_embedded_pod_subnet_in_mynetworks_of_a_published_chart_is_refused(
        tmp_path: Path, entry: str, v4: str, form: str) -> None:
    found = diagnostics(tmp_path, text(entry, HELM))
    assert relay_error_on_line_6(found), [d.format() for d in found]
    [diag] = [d for d in found if d.code == "cluster-relay"]
    # The user reads which IPv4 network the IPv6 entry stands for, how, and what it hits.
    assert f"mynetworks {entry} (which stands for IPv4 {v4} as {form}) overlaps" in diag.message
    assert "network(s) 10.244.0.0/16 while" in diag.message and "open relay" in diag.message


BRIDGE_POOL = [  # 172.20.0.0/16, inside the default bridge pool 172.16.0.0/12
    ("[64:ff9b::ac14:0]/112", "NAT64"),
    ("[2002:ac14::]/32", "6to4"),
    ("[::ac14:0]/112", "IPv4-compatible"),
    ("[::ffff:0:ac14:0]/112", "IPv4-translated"),
]


@pytest.mark.parametrize(("entry", "form"), BRIDGE_POOL, ids=[f for _, f in BRIDGE_POOL])
def test_embedded_bridge_pool_in_mynetworks_of_a_published_stack_is_refused(
        tmp_path: Path, entry: str, form: str) -> None:
    found = diagnostics(tmp_path, text(entry, STACK))
    assert relay_error_on_line_6(found), [d.format() for d in found]


WHOLE_10 = [  # 10.0.0.0/8, which covers the pod and service networks
    ("[64:ff9b::a00:0]/104", "NAT64"),
    ("[2002:a00::]/24", "6to4"),
    ("[::a00:0]/104", "IPv4-compatible"),
    ("[::ffff:0:a00:0]/104", "IPv4-translated"),
    ("[::ffff:a00:0]/104", "IPv4-mapped"),
]


@pytest.mark.parametrize(("entry", "form"), WHOLE_10, ids=[f for _, f in WHOLE_10])
def test_the_briefs_forms_of_ten_slash_eight_are_refused(tmp_path: Path, entry: str,
                                                        form: str) -> None:
    """The hits name every default pod/service network 10.0.0.0/8 covers."""
    found = diagnostics(tmp_path, text(entry, HELM))
    errors = [d for d in found if d.code == "cluster-relay" and d.level is Level.ERROR]
    assert [d.path for d in errors] == [".postfix.mynetworks[1]"], [d.format() for d in found]
    for pool in ("10.96.0.0/12", "10.244.0.0/16", "10.42.0.0/15"):
        assert pool in errors[0].message
    assert "192.168.0.0/16" not in errors[0].message


def test_unpublished_chart_trusting_an_embedded_pod_network_warns(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, text("[64:ff9b::af4:100]/120",
                                       "{helm: {service_type: ClusterIP}}"))
    assert cluster_relay(found) == [(Level.WARNING, 6, ".postfix.mynetworks[1]")]
    [diag] = [d for d in found if d.code == "cluster-relay"]
    assert "stands for IPv4 10.244.1.0/24" in diag.message


def test_build_with_an_undeclared_format_refuses_an_embedded_cluster_network(
        tmp_path: Path, build_dir: Path) -> None:
    """`build --format stack` checks the default settings of an undeclared stack."""
    path = tmp_path / "u.yaml"
    path.write_text("extends: roaming\nname: u\npostfix:\n  mynetworks:\n"
                    "    - '[2002:ac14::]/32'\n")
    with pytest.raises(ProfileError) as info:
        commands.build(str(path), fmt="stack", log=lambda _m: None)
    assert [(d.code, d.line) for d in info.value.diagnostics] == [("cluster-relay", 5)]
    assert not (build_dir / "u").exists()


# --- neighbours that stand for other IPv4 networks must not be refused ----------------

OUTSIDE = [  # 192.0.2.0/24 (TEST-NET-1): in no default cluster network
    "[64:ff9b::c000:200]/120", "[2002:c000:200::]/40", "[::ffff:c000:200]/120",
    "[::ffff:0:c000:200]/120", "[::c000:200]/120",
    "[fd00:1::]/64",  # plain ULA, no IPv4 in it
]


@pytest.mark.parametrize("entry", OUTSIDE)
@pytest.mark.parametrize("outputs", [HELM, STACK])
def test_embedded_networks_outside_the_cluster_are_fine(tmp_path: Path, entry: str,
                                                        outputs: str) -> None:
    found = diagnostics(tmp_path, text(entry, outputs))
    assert cluster_relay(found) == [], [d.format() for d in found]


# --- the reverse: IPv6 cluster networks ---------------------------------------------

def cluster_text(cluster: str, entry: str) -> str:
    return (f"extends: roaming\nname: c\npostfix:\n  mynetworks:\n    - 127.0.0.0/8\n"
            f"    - '{entry}'\noutputs:\n  helm:\n    service_type: NodePort\n"
            f"    cluster_networks: ['{cluster}']\n")


OVERLAPPING = [  # (cluster network, mynetworks entry, why they overlap)
    ("64:ff9b::a00:0/104", "10.1.0.0/16", "NAT64 cluster of 10.0.0.0/8, IPv4 entry"),
    ("2002:a00::/24", "10.1.0.0/16", "6to4 cluster, IPv4 entry"),
    ("::ffff:a00:0/104", "10.1.0.0/16", "mapped cluster, IPv4 entry"),
    ("::ffff:0:a00:0/104", "10.1.0.0/16", "translated cluster, IPv4 entry"),
    ("::a00:0/104", "10.1.0.0/16", "compatible cluster, IPv4 entry"),
    ("64:ff9b::a00:0/104", "[2002:a01::]/32", "NAT64 cluster, 6to4 entry: via IPv4 only"),
    ("2002:a00::/24", "[::ffff:a01:0]/112", "6to4 cluster, mapped entry: via IPv4 only"),
    ("fd00:10::/48", "[fd00:10:0:1::]/64", "plain IPv6 in plain IPv6"),
    ("64:ff9b::c000:0/104", "[64:ff9b::c000:200]/120", "NAT64 cluster, NAT64 entry"),
]


@pytest.mark.parametrize(("cluster", "entry", "why"), OVERLAPPING,
                         ids=[w for _, _, w in OVERLAPPING])
def test_ipv6_cluster_network_overlapping_mynetworks_is_refused(
        tmp_path: Path, cluster: str, entry: str, why: str) -> None:
    found = diagnostics(tmp_path, cluster_text(cluster, entry))
    assert relay_error_on_line_6(found), [d.format() for d in found]


DISJOINT = [
    ("64:ff9b::a00:0/104", "192.168.1.0/24"),
    ("2002:a00::/24", "[64:ff9b::c000:200]/120"),
    ("fd00:10::/48", "10.1.0.0/16"),  # IPv6 without IPv4 in it: no IPv4 entry overlaps
    ("2002:c000:200::/40", "10.1.0.0/16"),
]


@pytest.mark.parametrize(("cluster", "entry"), DISJOINT)
def test_ipv6_cluster_network_apart_from_mynetworks_is_fine(
        tmp_path: Path, cluster: str, entry: str) -> None:
    found = diagnostics(tmp_path, cluster_text(cluster, entry))
    assert cluster_relay(found) == [], [d.format() for d in found]


# --- a cluster network the check cannot read must not switch the check off -----------

@pytest.mark.parametrize("bad", ["999.0.0.0/8", "10.0.0.0/33", "fd00:::/8"])
def test_malformed_cluster_network_is_refused_and_the_others_still_checked(
        tmp_path: Path, bad: str) -> None:
    found = diagnostics(tmp_path, "extends: roaming\nname: c\npostfix:\n  mynetworks:\n"
                        "    - 127.0.0.0/8\n    - 10.244.1.0/24\noutputs:\n  helm:\n"
                        "    service_type: NodePort\n"
                        f"    cluster_networks: ['{bad}', 10.244.0.0/16]\n")
    assert relay_error_on_line_6(found), [d.format() for d in found]
    [diag] = [d for d in found if d.code == "bad-network"]
    assert (diag.level, diag.line, diag.path) == (
        Level.ERROR, 10, ".outputs.helm.cluster_networks[0]")
    assert bad in diag.message and "is not a network" in diag.message
    assert "10.96.0.0/12" in diag.hint


@pytest.mark.parametrize(("cluster", "name"), [
    ("2001::/32", "Teredo (RFC 4380) 2001::/32"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix (RFC 8215) 64:ff9b:1::/48"),
    ("2001::/16", "Teredo (RFC 4380) 2001::/32")])
def test_cluster_network_where_any_ipv4_host_may_appear_is_refused(
        tmp_path: Path, cluster: str, name: str) -> None:
    """Teredo and the NAT64 local-use prefix carry any IPv4 host: which IPv4 clients the
    cluster stands for cannot be bounded, so no mynetworks can be judged against it."""
    found = diagnostics(tmp_path, cluster_text(cluster, "192.0.2.0/24"))
    [diag] = [d for d in found if d.code == "bad-network"]
    assert (diag.level, diag.line, diag.path) == (
        Level.ERROR, 10, ".outputs.helm.cluster_networks[0]")
    assert f"cluster network {cluster} cannot be compared with mynetworks: {cluster} " \
           f"overlaps the {name}: any IPv4 host can appear there" in diag.message
    assert "cannot be bounded" in diag.message


# --- straight at the check: entries policy refuses for other reasons ------------------

def resolved(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "d.yaml"
    path.write_text("extends: roaming\nname: d\noutputs: {helm: {service_type: LoadBalancer}}\n")
    data: dict[str, Any] = load_profile(str(path)).resolved
    return data


@pytest.mark.parametrize(("entry", "name"), [
    ("[2001::]/32", "Teredo (RFC 4380)"),
    ("[64:ff9b:1::]/48", "NAT64 local-use prefix (RFC 8215)")])
def test_an_entry_that_trusts_any_ipv4_host_covers_the_cluster_too(
        tmp_path: Path, entry: str, name: str) -> None:
    """Teredo / NAT64 local-use in mynetworks: policy refuses it (open-relay); the
    deployment check, run on its own at build time, must not read it as harmless."""
    data = resolved(tmp_path)
    data["postfix"]["mynetworks"] = ["127.0.0.0/8", entry]
    found = list(declared_deployment_findings(data))
    assert [(f.code, f.level, f.path) for f in found] == [
        ("cluster-relay", Level.ERROR, ("postfix", "mynetworks", 1))]
    assert f"(which stands for IPv4 0.0.0.0/0 as {name}) overlaps" in found[0].message
    # every default pod/service network is hit
    assert "10.96.0.0/12, 10.244.0.0/16, 10.42.0.0/15, 192.168.0.0/16 while" \
        in found[0].message


def test_host_bits_do_not_hide_an_overlap(tmp_path: Path) -> None:
    """policy reports host bits (bad-network); the overlap is still judged."""
    data = resolved(tmp_path)
    data["postfix"]["mynetworks"] = ["[64:ff9b::af4:101]/120"]
    assert [f.code for f in declared_deployment_findings(data)] == ["cluster-relay"]


@pytest.mark.parametrize(("entry", "name"), [
    ("[::ffff:0:0]/96", "IPv4-mapped"),  # the whole mapped prefix
    ("[64:ff9b::]/96", "NAT64 well-known prefix (RFC 6052)"),
    ("[2002::]/15", "6to4 (RFC 3056)"),  # wider than 2002::/16
])
def test_a_whole_embedding_prefix_stands_for_all_of_ipv4(tmp_path: Path, entry: str,
                                                         name: str) -> None:
    """Not only the low half: the 192.168.0.0/16 pod network is hit as well."""
    data = resolved(tmp_path)
    data["postfix"]["mynetworks"] = [entry]
    [found] = declared_deployment_findings(data)
    assert f"(which stands for IPv4 0.0.0.0/0 as {name}) overlaps" in found.message
    assert "10.42.0.0/15, 192.168.0.0/16 while" in found.message


def test_a_malformed_mynetworks_entry_does_not_hide_the_next(tmp_path: Path) -> None:
    """policy reports the malformed entry (bad-network); the overlap check goes on."""
    data = resolved(tmp_path)
    data["postfix"]["mynetworks"] = ["10.0.0.0/33", "[::ffff:af4:100]/120"]
    assert [(f.code, f.path) for f in declared_deployment_findings(data)] == [
        ("cluster-relay", ("postfix", "mynetworks", 1))]


def test_a_cluster_network_with_host_bits_is_read_as_its_network(tmp_path: Path) -> None:
    """A pool written as an address inside it (10.244.1.1/16, as `ip addr` shows it) is
    the network 10.244.0.0/16: not refused, and still compared."""
    found = diagnostics(tmp_path, cluster_text("10.244.1.1/16", "10.244.7.0/24"))
    assert relay_error_on_line_6(found), [d.format() for d in found]
    assert not [d for d in found if d.code == "bad-network"]
    [diag] = [d for d in found if d.code == "cluster-relay"]
    assert "network(s) 10.244.0.0/16 while" in diag.message


# --- what the user reads, per backend --------------------------------------------------

def test_published_chart_message_and_hint(tmp_path: Path) -> None:
    [diag] = [d for d in diagnostics(tmp_path, text("10.244.1.0/24", HELM))
              if d.code == "cluster-relay"]
    assert diag.message == (
        "mynetworks 10.244.1.0/24 overlaps the cluster's pod/service network(s) "
        "10.244.0.0/16 while the Helm chart publishes the relay: clients that arrive "
        "proxied or SNATed from there relay without AUTH (open relay)")
    assert diag.hint == ("trust only loopback (and hosts outside the cluster); let "
                         "in-cluster senders authenticate, or do not publish the relay")


def test_unpublished_stack_message_and_hint(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, text("[64:ff9b::ac14:0]/112", "{stack: {publish: none}}"))
    [diag] = [d for d in found if d.code == "cluster-relay"]
    assert (diag.level, diag.line) == (Level.WARNING, 6)
    assert diag.message == (
        "mynetworks [64:ff9b::ac14:0]/112 (which stands for IPv4 172.20.0.0/16 as NAT64 "
        "well-known prefix (RFC 6052)) overlaps the cluster's container (overlay/bridge) "
        "network(s) 172.16.0.0/12: every workload there relays without AUTH")
    assert diag.hint == "trust only the workloads that send mail, or make them authenticate"


def test_unbounded_cluster_network_hint(tmp_path: Path) -> None:
    [diag] = [d for d in diagnostics(tmp_path, cluster_text("2001::/32", "192.0.2.0/24"))
              if d.code == "bad-network"]
    assert diag.hint == "list the networks the cluster's workloads really use"


# --- build time: the formats asked for but not declared, with their defaults -----------

def test_build_refuses_when_one_asked_format_is_unsafe_and_another_only_warns(
        tmp_path: Path, build_dir: Path) -> None:
    """Defaults: the stack publishes (host ports) and covers 10.0.0.0/8, the chart is
    ClusterIP: one error and one warning for the same entry -> refused, nothing built."""
    path = tmp_path / "m.yaml"
    path.write_text("extends: roaming\nname: m\npostfix:\n  mynetworks:\n"
                    "    - '[64:ff9b::af4:100]/120'\n")
    with pytest.raises(ProfileError) as info:
        commands.build(str(path), formats=("stack", "helm"), log=lambda _m: None)
    assert sorted((d.level.value, d.code, d.line) for d in info.value.diagnostics) == [
        ("error", "cluster-relay", 5), ("warning", "cluster-relay", 5)]
    assert not (build_dir / "m").exists()


def test_build_of_an_undeclared_chart_reports_its_warning(tmp_path: Path,
                                                          build_dir: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("extends: roaming\nname: w\npostfix:\n  mynetworks:\n"
                    "    - '[2002:af4:100::]/40'\n")
    logged: list[str] = []
    commands.build(str(path), fmt="helm", log=logged.append)
    [line] = [m for m in logged if "[cluster-relay]" in m]
    assert f"{path}:5:" in line and "warning:" in line and "10.244.1.0/24 as 6to4" in line


# --- what a deployment exposes -------------------------------------------------------

LISTENERS = ("listeners:\n"
             "  - {name: submission, port: 587, tls: starttls-required, auth: true}\n"
             "  - {name: local4, port: 2525, tls: none, auth: false, address: 127.0.0.1}\n"
             "  - {name: local6, port: 2526, tls: none, auth: false, address: '::1'}\n"
             "  - {name: lan, port: 2527, tls: starttls-required, auth: true,"
             " address: 192.0.2.10}\n")


def test_only_listeners_beyond_loopback_are_published(tmp_path: Path) -> None:
    """A listener on the relay's loopback is for its own senders: no published port, no
    Service port, no NetworkPolicy ingress for it."""
    from relaykit.stack.compose import stack_document
    from relaykit.stack.deployment import public_listeners, stack_settings

    path = tmp_path / "l.yaml"
    path.write_text("extends: roaming\nname: l\n" + LISTENERS)
    p = load_profile(str(path)).profile
    assert [lis.port for lis in public_listeners(p)] == [587, 2527]
    ports = stack_document(p, stack_settings(p))["services"]["relay"]["ports"]
    assert [port["published"] for port in ports] == [587, 2527]


def test_a_satellite_publishes_nothing() -> None:
    """inet_interfaces loopback-only: Postfix listens on no network, whatever the
    listeners say."""
    from relaykit.stack.deployment import public_listeners

    satellite = load_profile("satellite").profile
    assert satellite.postfix.inet_interfaces == ("loopback-only",)
    assert satellite.listeners and all(lis.address is None for lis in satellite.listeners)
    assert public_listeners(satellite) == ()


@pytest.mark.parametrize(("addresses", "scalable"), [
    (["127.0.0.1"], False), (["'::1'"], False), (["127.0.0.1", "'::1'"], False),
    (["127.0.0.1", None], True), (["127.0.0.1", "192.0.2.10"], True), ([None], True)])
def test_a_relay_listening_only_on_loopback_cannot_be_scaled(
        tmp_path: Path, addresses: list[str | None], scalable: bool) -> None:
    listeners = "".join(
        f"  - {{name: l{i}, port: {2525 + i}, tls: starttls-required, auth: true"
        + ("" if a is None else f", address: {a}") + "}\n" for i, a in enumerate(addresses))
    found = diagnostics(tmp_path, "extends: roaming\nname: s\nlisteners:\n" + listeners
                        + "outputs: {helm: {}}\n")
    refused = [(d.code, d.line, d.path) for d in found if d.code == "not-scalable"]
    assert refused == ([] if scalable else [("not-scalable", 3, ".listeners")])
    if not scalable:
        [diag] = [d for d in found if d.code == "not-scalable"]
        assert diag.message == ("every listener is on loopback: the replicas of a Helm "
                                "chart would serve nobody")
        assert diag.hint == ("scale a relay that listens on the network (e.g. the roaming "
                             "profile), not a satellite")


def test_an_address_that_does_not_parse_is_refused_once(tmp_path: Path) -> None:
    """999.0.0.1 passes the schema's pattern: policy says bad-address, and the deployment
    check neither crashes nor takes it for loopback."""
    found = diagnostics(tmp_path, "extends: roaming\nname: s\nlisteners:\n"
                        "  - {name: l, port: 587, tls: starttls-required, auth: true,"
                        " address: 999.0.0.1}\noutputs: {helm: {}}\n")
    assert [(d.code, d.path) for d in found] == [("bad-address", ".listeners[0].address")]


def test_every_secret_a_deployment_mounts_private_but_the_certificate(tmp_path: Path
                                                                      ) -> None:
    """Passwords and the TLS key: 0400 (root only); the certificate chain is public."""
    from relaykit.stack.compose import stack_document
    from relaykit.stack.deployment import stack_settings

    path = tmp_path / "o.yaml"
    path.write_text("extends: roaming\nname: o\noutbound:\n"
                    "  relayhost: '[smarthost.example.net]:587'\n  sasl: true\n"
                    "  tls_level: encrypt\n  credentials_file: /run/secrets/sasl-passwd\n")
    p = load_profile(str(path)).profile
    secrets = stack_document(p, stack_settings(p))["services"]["relay"]["secrets"]
    assert {s["target"]: s["mode"] for s in secrets} == {
        "sasl-users": 0o400, "tls.crt": 0o444, "tls.key": 0o400, "sasl-passwd": 0o400}


# --- secrets where a deployment mounts them ------------------------------------------

SASL = "sasl:\n  backend: saslauthd\n  mechanisms: [PLAIN]\n  users_file: {path}\n"
OUTBOUND = ("outbound:\n  relayhost: '[smarthost.example.net]:587'\n  sasl: true\n"
            "  tls_level: encrypt\n  credentials_file: {path}\n")


@pytest.mark.parametrize(("section", "path", "where", "hint"), [
    # One secret file may not stand in for another: the TLS key would be read as users.
    (SASL, "/run/secrets/tls.key", ".sasl.users_file", "use /run/secrets/tls.key"),
    (SASL, "/run/secrets/tls.crt", ".sasl.users_file", "use /run/secrets/tls.crt"),
    (OUTBOUND, "/etc/relaykit/sasl-passwd", ".outbound.credentials_file",
     "use /run/secrets/sasl-passwd"),
    (OUTBOUND, "/run/secrets/tls.key", ".outbound.credentials_file",
     "use /run/secrets/tls.key"),
])
def test_a_secret_outside_its_own_file_in_run_secrets_is_refused(
        tmp_path: Path, section: str, path: str, where: str, hint: str) -> None:
    found = diagnostics(tmp_path, "extends: roaming\nname: s\n" + section.format(path=path)
                        + "outputs: {stack: {}}\n")
    [diag] = [d for d in found if d.code == "secret-path"]
    assert (diag.level, diag.path) == (Level.ERROR, where)
    assert diag.message == (f"{path} is not a file of its own directly in /run/secrets: "
                            "a Swarm stack mounts secrets only there")
    assert diag.hint == hint


def test_fixed_certificate_path_hint(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, "extends: roaming\nname: t\ntls: {cert_file: /etc/relaykit/"
                        "tls/relay.pem, key_file: /etc/relaykit/tls/relay.key}\n"
                        "outputs: {helm: {}}\n")
    [diag] = [d for d in found if d.code == "secret-path"]
    assert diag.message == ("a fixed certificate path cannot be shared by the replicas of "
                            "a Helm chart")
    assert diag.hint == ("leave tls.cert_file and key_file unset: replicas read tls.crt "
                         "and tls.key from the secret")


def test_a_deployment_without_an_image_is_refused(tmp_path: Path) -> None:
    data = resolved(tmp_path)
    del data["outputs"]["oci"]
    found = list(declared_deployment_findings(data))
    assert [(f.code, f.path) for f in found] == [("no-image", ("outputs",))]
    assert found[0].message == ("a Helm chart runs the profile's image, and the profile "
                                "declares no outputs.oci")
    assert found[0].hint == "add outputs: {oci: {name: ..., tags: [...]}}"


@pytest.mark.parametrize(("request_", "limit"), [
    ("cpu_request_millicores", "cpu_millicores"), ("memory_request_mib", "memory_mib")])
def test_a_request_may_equal_its_limit_not_exceed_it(tmp_path: Path, request_: str,
                                                     limit: str) -> None:
    body = ("extends: roaming\nname: r\noutputs:\n  stack:\n"
            "    resources: {{{r}: 512, {lim}: {n}}}\n")
    assert diagnostics(tmp_path, body.format(r=request_, lim=limit, n=512)) == []
    [diag] = diagnostics(tmp_path, body.format(r=request_, lim=limit, n=511))
    assert (diag.code, diag.path) == ("resources", f".outputs.stack.resources.{request_}")
    assert diag.message == f"{request_} 512 is above the limit {limit} 511"


def test_secret_creation_lines_say_what_each_file_holds(tmp_path: Path) -> None:
    """The stack file's header is what the operator follows to create the secrets."""
    from relaykit.stack.compose import header

    path = tmp_path / "o.yaml"
    path.write_text("extends: roaming\nname: o\noutbound:\n"
                    "  relayhost: '[smarthost.example.net]:587'\n  sasl: true\n"
                    "  tls_level: encrypt\n  credentials_file: /run/secrets/sasl-passwd\n")
    lines = header(load_profile(str(path)).profile).splitlines()
    assert [line for line in lines if "docker secret create" in line and "#" in line[2:]] == [
        "#   docker secret create o-sasl-users FILE   # SASL users, user[@realm]:password "
        "per line",
        "#   docker secret create o-tls-crt FILE   # TLS certificate chain (PEM)",
        "#   docker secret create o-tls-key FILE   # TLS private key (PEM)",
        "#   docker secret create o-sasl-passwd FILE   # smarthost credentials, Postfix "
        "sasl_passwd format"]


# Measured (tests/integration/test_k8s_secrets.py, test_swarm.py): Postfix's master (root:
# chroot, setuid to postfix, ports < 1024) and saslauthd run with exactly these.  One
# more is a privilege the relay does not need; one fewer and the relay does not start.
NEEDED_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "NET_BIND_SERVICE",
                       "SETGID", "SETUID", "SYS_CHROOT"]


def test_stack_and_chart_grant_exactly_the_needed_capabilities(tmp_path: Path) -> None:
    from relaykit.chart.render import values
    from relaykit.stack.compose import stack_document
    from relaykit.stack.deployment import helm_settings, stack_settings

    p = load_profile("roaming").profile
    relay = stack_document(p, stack_settings(p))["services"]["relay"]
    assert (relay["cap_drop"], sorted(relay["cap_add"])) == (["ALL"], NEEDED_CAPABILITIES)
    caps = values(p, helm_settings(p))["securityContext"]["capabilities"]
    assert (caps["drop"], sorted(caps["add"])) == (["ALL"], NEEDED_CAPABILITIES)
