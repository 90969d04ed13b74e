"""Policy checks beyond the schema: what an expert reviewer of a Postfix relay, and an
attacker, would look at.

Each check is a small function over the schema-VALID, defaulted profile dict (load.py
runs policy only when the schema passed) that yields Findings (path, message, hint).
A check that raises is a bug in relaykit: `run` lets it crash loudly.

Relay safety is judged on the whole result, as Postfix will read it: per listener, its
relay list (after its master.cf override) then the recipient list, first match wins,
map answers parsed with access(5)'s grammar; the union of all mynetworks entries
measured in addresses.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from relaykit.errors import Level
from relaykit.profile import parameters
from relaykit.profile.model import (
    DEFAULT_RELAY_RESTRICTIONS,
    PLAINTEXT_MECHANISMS,
    OutboundTls,
    TlsMode,
)
from relaykit.profile.model import relayhost_port as relayhost_port_of
from relaykit.profile.networks import Network, Unbounded, networks
from relaykit.profile.restrictions import (
    MAP_DIR,
    Answer,
    ArgKind,
    Relay,
    Restriction,
    RestrictionError,
    Verdict,
    parse,
    parse_answer,
    walk,
)
from relaykit.profile.yamlsrc import PathKey

Doc = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    level: Level
    path: PathKey
    message: str
    hint: str
    code: str


def error(path: PathKey, message: str, hint: str, code: str) -> Finding:
    return Finding(Level.ERROR, path, message, hint, code)


def warning(path: PathKey, message: str, hint: str, code: str) -> Finding:
    return Finding(Level.WARNING, path, message, hint, code)


# The public form of a check: the schema-valid document in, findings out.  Other modules
# register theirs with policy.check (e.g. deployment checks of outputs.stack/helm).
Check = Callable[[Doc], Iterator[Finding]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def judged(fn: Callable[[Ctx], Iterator[Finding]]) -> Check:
    """Register a check of this module: it reads the parsed view of the document.
    (functools.wraps keeps fn reachable as __wrapped__: the mutation runner swaps the
    code of fn itself, which on_doc calls.)"""
    @functools.wraps(fn)
    def on_doc(doc: Doc) -> Iterator[Finding]:
        return fn(context(doc))
    return check(on_doc)


_current: list[Ctx] = []


def context(doc: Doc) -> Ctx:
    """The parsed view of doc, made once per run (not once per check)."""
    if not _current or _current[0].doc is not doc:
        _current[:] = [Ctx(doc)]
    return _current[0]


def run(doc: Doc) -> list[Finding]:
    """Every check on a schema-valid document.  No exception is swallowed: a check
    that fails on valid input is a bug to see, not a pass."""
    _current[:] = [Ctx(doc)]  # fresh: the same dict may have changed since
    try:
        found: list[Finding] = []
        for fn in CHECKS:
            found.extend(fn(doc))
        return found
    finally:
        _current.clear()


# --- the parsed view the checks share ------------------------------------------------

MAIN_LISTS = ("client", "helo", "sender", "relay", "recipient")
LISTENER_LISTS = ("client_restrictions", "relay_restrictions")


@dataclass(frozen=True)
class RestrictionList:
    path: PathKey
    items: tuple[Restriction, ...]
    paths: tuple[PathKey, ...]  # of each item (where the item was written)


class Ctx:
    """The document plus what checks derive from it once: parsed restriction lists,
    parsed map answers, and the parse errors found on the way."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.parse_errors: list[Finding] = []
        self.lists: dict[PathKey, RestrictionList] = {}
        seen: dict[str, Restriction | RestrictionError] = {}
        for path, items in self._raw_lists():
            parsed: list[Restriction] = []
            paths: list[PathKey] = []
            for j, item in enumerate(items):
                # Memoized per text: thousands of copies of one item are parsed once.
                result = seen.get(item)
                if result is None:
                    try:
                        result = parse(item)
                    except RestrictionError as exc:
                        result = exc
                    seen[item] = result
                if isinstance(result, RestrictionError):
                    self.parse_errors.append(error((*path, j), result.message, result.hint,
                                                   result.code))
                else:
                    parsed.append(result)
                    paths.append((*path, j))
            self.lists[path] = RestrictionList(path, tuple(parsed), tuple(paths))
        self.answers: dict[str, list[Answer]] = {}
        # One answer per distinct verdict, per map: what relay judgement needs.  Every
        # reference to a map reads this summary, never the map again (12,000 references
        # to a 40,000-entry map were 5 * 10^8 steps).
        self.distinct_answers: dict[str, list[Answer]] = {}
        for name, spec in doc["restrictions"]["maps"].items():
            self.answers[name] = []
            for key, value in spec["entries"].items():
                try:
                    self.answers[name].append(parse_answer(value))
                except RestrictionError as exc:
                    self.parse_errors.append(error(("restrictions", "maps", name, "entries",
                                                    key), exc.message, exc.hint, exc.code))
            by_verdict: dict[object, Answer] = {}
            for answer in self.answers[name]:
                by_verdict.setdefault(answer.verdict, answer)
            self.distinct_answers[name] = list(by_verdict.values())

    def _raw_lists(self) -> Iterator[tuple[PathKey, list[str]]]:
        r = self.doc["restrictions"]
        for key in MAIN_LISTS:
            if r.get(key) is not None:
                yield ("restrictions", key), r[key]
        for i, lis in enumerate(self.doc["listeners"]):
            for key in LISTENER_LISTS:
                if lis.get(key) is not None:
                    yield ("listeners", i, key), lis[key]

    def answers_of(self, r: Restriction) -> list[Answer]:
        """What a map restriction can answer: a declared map's entries, or static:."""
        if r.map is None:
            return []
        if r.map.type == "static":
            try:
                return [parse_answer(r.map.name)]
            except RestrictionError:
                return []  # reported by static_answers
        return self.distinct_answers.get(r.map.name, [])

    @cached_property
    def default_relay(self) -> RestrictionList:
        return self.lists.get(("restrictions", "relay")) or RestrictionList(
            ("restrictions",), DEFAULT_RELAY_RESTRICTIONS,
            tuple(("restrictions",) for _ in DEFAULT_RELAY_RESTRICTIONS))

    def stages(self, i: int | None) -> tuple[RestrictionList, ...]:
        """What Postfix runs at RCPT TO on listener i (None: main.cf alone), in order: its
        relay list (a -o override, else main.cf's), then main.cf's recipient list."""
        relay = self.default_relay if i is None else \
            self.lists.get(("listeners", i, "relay_restrictions"), self.default_relay)
        rcpt = self.lists.get(("restrictions", "recipient"))
        return (relay,) if rcpt is None else (relay, rcpt)


@judged
def restriction_syntax(ctx: Ctx) -> Iterator[Finding]:
    """Every restriction item and map answer parses (deny by default)."""
    yield from ctx.parse_errors


# --- relay decisions -----------------------------------------------------------------

@judged
def no_open_relay(ctx: Ctx) -> Iterator[Finding]:
    seen: set[tuple[PathKey, str]] = set()
    judged = [(lis["name"], ctx.stages(i)) for i, lis in enumerate(ctx.doc["listeners"])]
    # main.cf's own lists are judged even when every listener overrides the relay list:
    # a listener entry lost on the way (a hand edit, a package upgrade) must not open it.
    judged.append(("(main.cf)", ctx.stages(None)))
    for name, stages in judged:
        for finding in _relay_findings(ctx, name, stages):
            key = (finding.path, finding.code)
            if key not in seen:
                seen.add(key)
                yield finding


def _relay_findings(ctx: Ctx, name: str,
                    stages: tuple[RestrictionList, ...]) -> Iterator[Finding]:
    """A refusal in any stage refuses the mail; a permit only ends its own list."""
    permitted: tuple[RestrictionList, int] | None = None
    for rl in stages:
        verdict, i = walk(rl.items, ctx.answers_of)
        if verdict is Verdict.DEFER:
            yield warning(rl.paths[i], f"{rl.items[i].render()} answers 4xx: relay attempts "
                          "are deferred and retried instead of refused",
                          "use reject_unauth_destination (5xx)", "relay-defer")
        if verdict in (Verdict.STOP, Verdict.DEFER):
            return
        if verdict is Verdict.PERMIT and permitted is None:
            permitted = (rl, i)
    if permitted is not None:
        rl, i = permitted
        r = rl.items[i]
        what = f"`{r.render()}`"
        if r.spec.relay is Relay.LOOKUP:
            what += (" (its map can answer OK)" if r.spec.arg is ArgKind.MAP
                     else " (its answer can be OK)")
        yield error(rl.paths[i], f"open relay on listener {name!r}: {what} lets "
                    "unauthenticated clients relay before any reject_unauth_destination",
                    "put reject_unauth_destination before it; trust hosts with "
                    "postfix.mynetworks, users with SASL", "open-relay")
        return
    yield error(stages[0].path, f"open relay on listener {name!r}: neither the relay nor "
                "the recipient restrictions refuse unauthenticated mail to foreign domains",
                "end restrictions.relay with reject_unauth_destination", "open-relay")


@judged
def sasl_before_unauth_destination(ctx: Ctx) -> Iterator[Finding]:
    """On a port with AUTH, an authenticated client must get through every stage."""
    seen: set[PathKey] = set()
    trusted = frozenset({"permit_sasl_authenticated"})
    for i, lis in enumerate(ctx.doc["listeners"]):
        if not lis["auth"]:
            continue  # no AUTH on this port: nobody to let through
        for rl in ctx.stages(i):
            verdict, j = walk(rl.items, ctx.answers_of, trusted)
            if verdict not in (Verdict.STOP, Verdict.DEFER) or rl.path in seen:
                continue
            seen.add(rl.path)
            yield error(rl.paths[j], "permit_sasl_authenticated must come before "
                        f"{rl.items[j].render()}: authenticated users could not relay",
                        f"insert permit_sasl_authenticated before {rl.items[j].render()}",
                        "sasl-order")


# --- mynetworks: the union, in addresses -----------------------------------------------

MAX_TRUSTED_V4 = 2 ** 24  # a /8
MAX_TRUSTED_V6 = 2 ** 96  # a /32
# The IPv4 clients an IPv6 entry stands for: relaykit.profile.networks, which the
# deployment checks (mynetworks against a cluster's networks) share.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _loopback_part(net: Network) -> int:
    """How many of net's addresses are loopback (nets are collapsed: whole or none)."""
    total = 0
    for lo in LOOPBACK:
        if lo.version == net.version and lo.overlaps(net):
            total += min(lo.num_addresses, net.num_addresses)
    return total


@judged
def mynetworks_narrow(ctx: Ctx) -> Iterator[Finding]:
    nets: list[tuple[int, Network]] = []
    for i, cidr in enumerate(ctx.doc["postfix"]["mynetworks"]):
        path = ("postfix", "mynetworks", i)
        try:
            entry = networks(cidr)
        except Unbounded as exc:
            yield error(path, f"mynetworks {cidr} would trust all of IPv4: {exc} (open "
                        "relay)", "list the IPv4 networks themselves, e.g. 192.0.2.0/24",
                        "open-relay")
            continue
        except ValueError as exc:
            yield error(path, f"{cidr!r} is not a network: {exc}",
                        "write address/prefix with zero host bits, e.g. 192.0.2.0/24 or "
                        "[2001:db8::]/64", "bad-network")
            continue
        nets.extend((i, net) for net in entry)
        if any(net.is_global and net.prefixlen < (24 if net.version == 4 else 48)
               for net in entry):
            yield warning(path, f"mynetworks {cidr} trusts a wide public network",
                          "trust a narrower network, or require AUTH", "wide-mynetworks")
    for version, limit, size in ((4, MAX_TRUSTED_V4, "/8"), (6, MAX_TRUSTED_V6, "/32")):
        mine = [(i, n) for i, n in nets if n.version == version]
        union = ipaddress.collapse_addresses(n for _, n in mine)  # type: ignore[type-var]
        # Loopback is the relay itself: nobody outside can send from it.
        total = sum(n.num_addresses - _loopback_part(n) for n in union)
        if total > limit:
            where: PathKey = ("postfix", "mynetworks")
            if len(mine) == 1:
                where = (*where, mine[0][0])
            yield error(where, f"mynetworks trusts {total} IPv{version} addresses in all, "
                        f"more than a {size}: a large part of the Internet could relay "
                        "without AUTH (open relay)", "list only the hosts or LANs you run; "
                        "roaming users authenticate", "open-relay")


# --- listeners -----------------------------------------------------------------------

@judged
def listener_relay_without_auth(ctx: Ctx) -> Iterator[Finding]:
    for i, lis in enumerate(ctx.doc["listeners"]):
        if lis["port"] in (465, 587) and not lis["auth"]:
            yield warning(("listeners", i, "auth"), f"submission port {lis['port']} without "
                          "AUTH: only mynetworks clients can send through it",
                          "set auth: true (RFC 6409/8314 submission needs AUTH)",
                          "submission-no-auth")


INTERFACE_WORDS = frozenset({"all", "loopback-only"})


def _not_an_address(text: str) -> str | None:
    """Why `text` is not an IP address Postfix can bind, or None (ipaddress decides: the
    schema's patterns only say which characters may appear)."""
    try:
        ipaddress.ip_address(text)
    except ValueError as exc:
        return str(exc)
    return None


@judged
def addresses_parse(ctx: Ctx) -> Iterator[Finding]:
    """999.0.0.1 or `:` would validate by shape; Postfix then stops at start (exit 75)."""
    hint = "write an IPv4 address like 192.0.2.1 or an IPv6 address like 2001:db8::1"
    for i, text in enumerate(ctx.doc["postfix"]["inet_interfaces"]):
        why = None if text in INTERFACE_WORDS else _not_an_address(text)
        if why is not None:
            yield error(("postfix", "inet_interfaces", i), f"{text!r} is not `all`, "
                        f"`loopback-only` or an IP address: {why}", hint, "bad-address")
    for i, lis in enumerate(ctx.doc["listeners"]):
        why = None if lis["address"] is None else _not_an_address(lis["address"])
        if why is not None:
            yield error(("listeners", i, "address"), f"{lis['address']!r} is not an IP "
                        f"address: {why}", hint, "bad-address")


@judged
def listeners_unique(ctx: Ctx) -> Iterator[Finding]:
    seen: dict[tuple[str, object], int] = {}
    for i, lis in enumerate(ctx.doc["listeners"]):
        for key, value in (("name", lis["name"]), ("port", (lis["address"], lis["port"]))):
            if (key, value) in seen:
                yield error(("listeners", i, key), f"listener {key} {lis[key]!r} is also "
                            f"used by listeners[{seen[(key, value)]}]",
                            f"give each listener its own {key}", "listener-duplicate")
            seen[(key, value)] = i


# --- SASL ------------------------------------------------------------------------------

@judged
def auth_needs_sasl(ctx: Ctx) -> Iterator[Finding]:
    doc = ctx.doc
    auth = [i for i, lis in enumerate(doc["listeners"]) if lis["auth"] is True]
    if auth and doc.get("sasl") is None:
        yield error(("listeners", auth[0], "auth"), "auth: true but the profile has no "
                    "`sasl` section", "add sasl: {backend: saslauthd, mechanisms: [PLAIN, "
                    "LOGIN]}", "sasl-missing")
    if not auth and doc.get("sasl") is not None:
        yield warning(("sasl",), "sasl is configured but no listener offers AUTH",
                      "set auth: true on a listener, or drop the sasl section", "sasl-unused")


@judged
def noanonymous_always(ctx: Ctx) -> Iterator[Finding]:
    sasl = ctx.doc.get("sasl")
    if sasl is not None:
        for key in ("security_options", "tls_security_options"):
            if "noanonymous" not in sasl[key]:
                yield error(("sasl", key), f"sasl.{key} lacks noanonymous: anonymous AUTH "
                            "would let anyone relay", "add noanonymous", "noanonymous")
    out = ctx.doc["outbound"]
    for key in ("security_options", "tls_security_options"):
        if out["sasl"] and "noanonymous" not in out[key]:
            yield error(("outbound", key), f"outbound.{key} lacks noanonymous",
                        "add noanonymous", "noanonymous")


@judged
def saslauthd_plaintext_only(ctx: Ctx) -> Iterator[Finding]:
    sasl = ctx.doc.get("sasl")
    if sasl is None or sasl["backend"] != "saslauthd":
        return
    for i, mech in enumerate(sasl["mechanisms"]):
        if mech not in PLAINTEXT_MECHANISMS:
            yield error(("sasl", "mechanisms", i), f"saslauthd cannot verify {mech}: it only "
                        "checks plaintext passwords (PLAIN, LOGIN)",
                        "use backend: auxprop for CRAM-MD5/DIGEST-MD5, or offer only PLAIN "
                        "and LOGIN", "saslauthd-mech")


WEAK_MECHANISMS = {
    "DIGEST-MD5": "DIGEST-MD5 is historic (RFC 6331) and needs passwords stored in clear",
    "CRAM-MD5": "CRAM-MD5 needs passwords stored in clear and has no channel binding",
}


@judged
def weak_mechanisms(ctx: Ctx) -> Iterator[Finding]:
    sasl = ctx.doc.get("sasl")
    if sasl is None:
        return
    for i, mech in enumerate(sasl["mechanisms"]):
        if mech in WEAK_MECHANISMS:
            yield warning(("sasl", "mechanisms", i), WEAK_MECHANISMS[mech],
                          "prefer PLAIN/LOGIN inside TLS", "weak-mechanism")


def _plaintext_outside_tls(sasl: Doc) -> list[str]:
    if "noplaintext" in sasl["security_options"]:
        return []
    return [m for m in sasl["mechanisms"] if m in PLAINTEXT_MECHANISMS]


@judged
def no_plaintext_outside_tls(ctx: Ctx) -> Iterator[Finding]:
    sasl = ctx.doc.get("sasl")
    if sasl is None:
        return
    for i, lis in enumerate(ctx.doc["listeners"]):
        mode = TlsMode(lis["tls"])
        if not lis["auth"] or mode.always_encrypted:
            continue
        path = ("listeners", i, "tls")
        if sasl["auth_only_over_tls"]:
            if mode is TlsMode.NONE:
                yield error(path, f"listener {lis['name']!r} offers AUTH without TLS while "
                            "sasl.auth_only_over_tls is on: AUTH is never advertised",
                            "give the listener TLS", "auth-never")
            continue
        exposed = _plaintext_outside_tls(sasl)
        if not exposed:
            continue
        msg = (f"listener {lis['name']!r} offers {', '.join(exposed)} outside TLS: "
               "passwords cross the network in clear")
        hint = ("set sasl.auth_only_over_tls: true, or add noplaintext to "
                "sasl.security_options")
        if sasl["allow_insecure_legacy"]:
            yield warning(path, msg, hint, "plaintext-auth")
        else:
            yield error(path, msg, hint + " (or opt in: sasl.allow_insecure_legacy: true)",
                        "plaintext-auth")


@judged
def mechanisms_reachable(ctx: Ctx) -> Iterator[Finding]:
    sasl = ctx.doc.get("sasl")
    if sasl is None:
        return
    if "noplaintext" in sasl["tls_security_options"]:
        mechs = [m for m in sasl["mechanisms"] if m in PLAINTEXT_MECHANISMS]
        if mechs:
            yield warning(("sasl", "tls_security_options"), f"{', '.join(mechs)} are never "
                          "offered: noplaintext applies inside TLS too",
                          "drop them from mechanisms, or noplaintext from tls_security_options",
                          "dead-mechanism")


# --- outbound --------------------------------------------------------------------------

def _bare_host(relayhost: str) -> str:
    if relayhost.startswith("["):
        return relayhost[1:relayhost.index("]")]
    return relayhost.rsplit(":", 1)[0] if relayhost.count(":") == 1 else relayhost


@judged
def outbound_credentials(ctx: Ctx) -> Iterator[Finding]:
    out = ctx.doc["outbound"]
    if not out["sasl"]:
        return
    relayhost = out["relayhost"]
    if not relayhost:
        yield error(("outbound", "sasl"), "outbound.sasl needs a relayhost: credentials are "
                    "looked up by next-hop", "set outbound.relayhost, e.g. [smtp.example.net]:587",
                    "relayhost-missing")
        return
    key = out["credentials_key"]
    if key is not None and key not in (relayhost, _bare_host(relayhost)):
        yield error(("outbound", "credentials_key"), f"credentials keyed {key!r} are never "
                    f"found for relayhost {relayhost!r}: no AUTH is sent and the smarthost's "
                    "530 bounces mail", f"use {relayhost!r} (as written) or "
                    f"{_bare_host(relayhost)!r}", "credentials-key")
    if not OutboundTls(out["tls_level"]).encrypts:
        yield error(("outbound", "tls_level"), f"tls_level {out['tls_level']!r} lets "
                    "smarthost credentials cross the network unencrypted",
                    "use tls_level: encrypt (or verify/secure)", "outbound-tls")
    if "noplaintext" in out["tls_security_options"]:
        yield warning(("outbound", "tls_security_options"), "noplaintext inside TLS blocks "
                      "PLAIN/LOGIN, often the only mechanisms a smarthost offers",
                      "use [noanonymous]", "outbound-plaintext")


@judged
def relayhost_port(ctx: Ctx) -> Iterator[Finding]:
    out = ctx.doc["outbound"]
    for key in ("relayhost", "credentials_key"):
        port = relayhost_port_of(out[key])
        if port is not None and not 1 <= port <= 65535:
            yield error(("outbound", key), f"port {port} is not a TCP port",
                        "use a port from 1 to 65535, e.g. [smtp.example.net]:587",
                        "relayhost-port")


@judged
def outbound_wrappermode(ctx: Ctx) -> Iterator[Finding]:
    """Port 465 speaks TLS from the first byte: Postfix needs smtp_tls_wrappermode and
    a mandatory TLS level, or it sends nothing (it logs a warning and defers)."""
    out = ctx.doc["outbound"]
    if relayhost_port_of(out["relayhost"]) == 465 and not OutboundTls(out["tls_level"]).encrypts:
        yield error(("outbound", "tls_level"), f"relayhost {out['relayhost']!r} is port 465 "
                    f"(implicit TLS) but tls_level is {out['tls_level']!r}: Postfix needs "
                    "encrypt or stricter in wrapper mode", "use tls_level: encrypt",
                    "outbound-wrapper")


# --- main.cf escape hatch: an allowlist -----------------------------------------------

@judged
def main_cf_allowlist(ctx: Ctx) -> Iterator[Finding]:
    for key, value in ctx.doc["postfix"]["main_cf"].items():
        path = ("postfix", "main_cf", key)
        if key in parameters.ALLOWED:
            grammar = parameters.ALLOWED[key]
            try:
                grammar.parse(value)
            except ValueError as exc:
                yield error(path, f"{key}: {exc}", f"write {grammar.describe()}",
                            "parameter-value")
        elif key in parameters.MANAGED:
            field = parameters.MANAGED[key]
            hint = (f"remove it: relaykit always sets it{field.removeprefix(parameters.FIXED)}"
                    if field.startswith(parameters.FIXED) else f"set {field} instead")
            yield error(path, f"{key} is managed by relaykit", hint, "managed-parameter")
        elif key in parameters.OBSOLETE:
            replacement, removed = parameters.OBSOLETE[key]
            what = ("is obsolete: Postfix ignores it (\"unknown parameter\")" if removed
                    else "is deprecated")
            yield error(path, f"{key} {what}", f"use {replacement}", "obsolete-parameter")
        else:
            why = parameters.NOT_OFFERED.get(key, "relaykit cannot tell that it keeps relay "
                                             "control, authentication and TLS intact")
            yield error(path, f"{key} cannot be set through main_cf: {why}",
                        "main_cf accepts: " + ", ".join(sorted(parameters.ALLOWED)),
                        "parameter-not-allowed")


# --- maps ------------------------------------------------------------------------------

@judged
def maps_declared(ctx: Ctx) -> Iterator[Finding]:
    declared = ctx.doc["restrictions"]["maps"]
    used: set[str] = set()
    for rl in ctx.lists.values():
        for r, path in zip(rl.items, rl.paths, strict=True):
            if r.map is None or r.map.type == "static":
                continue
            used.add(r.map.name)
            if r.map.name not in declared:
                yield error(path, f"map {MAP_DIR}{r.map.name} is not declared, so it is not "
                            "rendered: Postfix would tempfail every lookup",
                            f"declare it under restrictions.maps.{r.map.name}", "map-missing")
            elif declared[r.map.name]["type"] != r.map.type:
                kind = declared[r.map.name]["type"]
                yield error(path, f"map {r.map.name!r} is declared as {kind} but used as "
                            f"{r.map.type}", f"use {kind}:{MAP_DIR}{r.map.name}", "map-type")
    for name in declared:
        if name not in used:
            yield warning(("restrictions", "maps", name), f"map {name!r} is never used",
                          f"reference it as hash:{MAP_DIR}{name}, or remove it", "map-unused")


# Names under /etc/postfix that relaykit or Debian's postfix already use.
RESERVED_MAP_NAMES = frozenset({"sasl", "sasl_passwd", "post-install", "postfix-files",
                                "postfix-script", "main", "master", "dynamicmaps"})


@judged
def map_names_free(ctx: Ctx) -> Iterator[Finding]:
    for name in ctx.doc["restrictions"]["maps"]:
        if name in RESERVED_MAP_NAMES:
            yield error(("restrictions", "maps", name), f"{MAP_DIR}{name} is already used "
                        "by relaykit or Postfix: the map would replace it",
                        "give the map another name", "map-name")


@judged
def static_answers(ctx: Ctx) -> Iterator[Finding]:
    for rl in ctx.lists.values():
        for r, path in zip(rl.items, rl.paths, strict=True):
            if r.map is not None and r.map.type == "static":
                try:
                    parse_answer(r.map.name)
                except RestrictionError as exc:
                    yield error(path, exc.message, exc.hint, exc.code)


@judged
def policy_service_reachable(ctx: Ctx) -> Iterator[Finding]:
    for rl in ctx.lists.values():
        for r, path in zip(rl.items, rl.paths, strict=True):
            if r.spec.arg is ArgKind.POLICY:
                yield warning(path, f"{r.render()}: relaykit does not run this policy "
                              "server; while it is down Postfix answers 451",
                              "run the service beside the relay, or remove it",
                              "policy-service")


# --- TLS -------------------------------------------------------------------------------

@judged
def tls_pair(ctx: Ctx) -> Iterator[Finding]:
    tls = ctx.doc["tls"]
    if (tls["cert_file"] is None) != (tls["key_file"] is None):
        missing = "key_file" if tls["key_file"] is None else "cert_file"
        yield error(("tls", missing), f"tls.{missing} missing: certificate and key come as "
                    "a pair", "set both, or neither (relaykit then manages the pair)",
                    "tls-pair")


# Files relaykit itself writes under its own directory: never a secret's source.
RENDERED_FILES = frozenset({"/etc/relaykit/relaykit.conf"})


@judged
def secret_files_distinct(ctx: Ctx) -> Iterator[Finding]:
    """Each runtime file has one role: users, smarthost credentials, certificate, key.
    A file read for two roles (or one relaykit writes) hands one role's content to the
    other, e.g. credentials or a config file read as logins."""
    doc = ctx.doc
    roles: list[tuple[PathKey, str | None]] = [
        (("sasl", "users_file"), (doc.get("sasl") or {}).get("users_file")),
        (("outbound", "credentials_file"), doc["outbound"]["credentials_file"]),
        (("tls", "cert_file"), doc["tls"]["cert_file"]),
        (("tls", "key_file"), doc["tls"]["key_file"]),
    ]
    seen: dict[str, PathKey] = {}
    for path, value in roles:
        if value is None:
            continue
        if value in RENDERED_FILES:
            yield error(path, f"{value} is written by relaykit, not a source of secrets",
                        "name a file under /run/secrets/ (image) or /etc/relaykit/ "
                        "(package) of its own", "secret-file")
        elif value in seen:
            yield error(path, f"{value} is already .{'.'.join(map(str, seen[value]))}: one "
                        "file would serve two roles", "give each secret its own file",
                        "secret-file")
        seen.setdefault(value, path)


# --- text that reaches Postfix's files verbatim ----------------------------------------

def _strings(node: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), str(key)
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))
    elif isinstance(node, str):
        yield path, node


def _texts(root: Any) -> list[str]:
    """Every key and string value, without paths (iterative: big maps are common)."""
    out: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.extend(map(str, node))
            for value in node.values():
                if isinstance(value, str):
                    out.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, str):
                    out.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return out


# Deny by default: printable ASCII, or a Unicode character that is visible.  Refused:
# control, format (bidi overrides, zero-width), private-use, surrogate and unassigned
# characters, line/paragraph separators, and every white space but U+0020 (a tab, a
# newline or an NBSP would split or disguise a line in main.cf, a map or a package's
# control file).
NOT_PRINTABLE_ASCII = re.compile("[^\x20-\x7e]")
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def _bad_character(text: str) -> str | None:
    for match in NOT_PRINTABLE_ASCII.finditer(text):
        ch = match.group()
        category = unicodedata.category(ch)
        if category in INVISIBLE_CATEGORIES or ch.isspace() or category.startswith("Z"):
            return ch
    return None


def _describe_char(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, unicodedata.category(ch))}"


def _excerpt(text: str) -> str:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return repr(shown)


@judged
def no_control_characters(ctx: Ctx) -> Iterator[Finding]:
    """A newline in any value would start a new main.cf/master.cf/map line: injection;
    an invisible or bidi character would disguise a value in a package or image."""
    if _bad_character(" ".join(_texts(ctx.doc))) is None:
        return  # the usual case, decided in one pass over every key and value
    for path, text in _strings(ctx.doc, ()):
        ch = _bad_character(text)
        if ch is not None:
            yield error(path, f"control, invisible or non-space white-space character "
                        f"({_describe_char(ch)}) in {_excerpt(text)}: it would end, split "
                        "or disguise the line in the rendered files", "write the value on "
                        "one line with visible characters and plain spaces only (no \\n, "
                        "\\r, \\t, NBSP, zero-width or bidi characters)",
                        "control-character")


# --- deployments ------------------------------------------------------------------------
# The deployments a profile declares (outputs.stack, outputs.helm) are judged with the
# rest, so `validate` refuses what `build --format stack|helm` would (e.g. a mynetworks
# that covers the cluster's networks of a published relay).
from relaykit.stack.deployment import declared_deployment_findings  # noqa: E402

check(declared_deployment_findings)
