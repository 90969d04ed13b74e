"""The restrictions relaykit knows, parsed into typed form, and how Postfix would judge them.

ONE table (RESTRICTIONS) says, for every restriction a profile may use, what argument it
takes and what it does to the client an attacker is: untrusted (outside mynetworks),
unauthenticated, without a client certificate, sending to a foreign domain.  Anything not
in the table is refused.  Whether a restriction "may permit" is derived from its argument
kind (a lookup the client influences) and from what its map can answer, never from a
hand-kept list of names.

Access-map answers are parsed with access(5)'s grammar: OK, RELAY, all-numerical, REJECT,
DEFER, 4NN/5NN text, DISCARD, HOLD, PREPEND, ... and, for anything else, a restriction list
evaluated as one.  Rendering uses Restriction.render(), never the profile's raw text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = rf"{_LABEL}(\.{_LABEL}){{0,126}}"  # a DNS name (callers bound its length)
MAP_NAME = r"[a-z][a-z0-9_-]*"
MAP_DIR = "/etc/postfix/"


class ArgKind(StrEnum):
    NONE = "none"
    MAP = "map"  # one access table: a declared map, or static:ANSWER
    DNSLIST = "dnslist"  # an RBL/RHSBL/DNSWL domain, optionally =answer pattern
    POLICY = "policy"  # a policy service endpoint
    SECONDS = "seconds"


class Relay(StrEnum):
    """What a restriction does to an untrusted, unauthenticated client relaying to a
    foreign domain (the attacker)."""

    PERMIT = "permit"  # ends the list with OK, for the attacker too
    TRUSTED = "permit-if-trusted"  # OK only for mynetworks, SASL, or a listed certificate
    LOOKUP = "may-permit"  # OK when a lookup answers OK: depends on the answers
    REJECT_FOREIGN = "reject-foreign"  # 5xx for a foreign destination
    DEFER_FOREIGN = "defer-foreign"  # 4xx for a foreign destination
    REJECT = "reject"  # 5xx for everybody
    DEFER = "defer"  # 4xx for everybody
    WARN_NEXT = "warn-next"  # warn_if_reject: the next restriction only logs its reject
    NEUTRAL = "neutral"  # an attacker can always pass it (or it never ends the list)


@dataclass(frozen=True)
class Spec:
    name: str
    arg: ArgKind
    relay: Relay


def _specs(arg: ArgKind, relay: Relay, names: str) -> list[Spec]:
    return [Spec(n, arg, relay) for n in names.split()]


def _access_checks() -> str:
    subjects = ("client", "reverse_client_hostname", "helo", "sender", "recipient")
    kinds = ("access", "a_access", "mx_access", "ns_access")
    names = [f"check_{s}_{k}" for s in subjects for k in kinds]
    return " ".join(names + ["check_ccert_access", "check_sasl_access"])


_TABLE: list[Spec] = [
    *_specs(ArgKind.NONE, Relay.PERMIT,
            # permit_naked_ip_address and permit_mx_backup: the client picks the HELO or
            # the recipient domain's MX; a public CA signs certificates for anybody.
            "permit permit_naked_ip_address permit_mx_backup permit_tls_all_clientcerts"),
    *_specs(ArgKind.NONE, Relay.TRUSTED,
            "permit_mynetworks permit_sasl_authenticated permit_tls_clientcerts "
            "permit_inet_interfaces"),
    *_specs(ArgKind.MAP, Relay.LOOKUP, _access_checks()),
    *_specs(ArgKind.DNSLIST, Relay.LOOKUP, "permit_dnswl_client permit_rhswl_client"),
    *_specs(ArgKind.POLICY, Relay.LOOKUP, "check_policy_service"),
    *_specs(ArgKind.NONE, Relay.REJECT_FOREIGN, "reject_unauth_destination"),
    *_specs(ArgKind.NONE, Relay.DEFER_FOREIGN, "defer_unauth_destination"),
    *_specs(ArgKind.NONE, Relay.REJECT, "reject"),
    *_specs(ArgKind.NONE, Relay.DEFER, "defer"),
    *_specs(ArgKind.NONE, Relay.WARN_NEXT, "warn_if_reject"),
    *_specs(ArgKind.SECONDS, Relay.NEUTRAL, "sleep"),
    *_specs(ArgKind.DNSLIST, Relay.NEUTRAL,
            "reject_rbl_client reject_rhsbl_client reject_rhsbl_reverse_client "
            "reject_rhsbl_helo reject_rhsbl_sender reject_rhsbl_recipient"),
    *_specs(ArgKind.NONE, Relay.NEUTRAL, """
        permit_auth_destination defer_if_permit defer_if_reject
        reject_unauth_pipelining reject_plaintext_session reject_multi_recipient_bounce
        reject_unknown_client_hostname reject_unknown_reverse_client_hostname
        reject_unknown_forward_client_hostname reject_invalid_helo_hostname
        reject_non_fqdn_helo_hostname reject_unknown_helo_hostname reject_non_fqdn_sender
        reject_unknown_sender_domain reject_unlisted_sender reject_unverified_sender
        reject_non_fqdn_recipient reject_unknown_recipient_domain reject_unlisted_recipient
        reject_unverified_recipient"""),
]
RESTRICTIONS: dict[str, Spec] = {s.name: s for s in _TABLE}
assert len(RESTRICTIONS) == len(_TABLE), "a restriction is listed twice"


class MapType(StrEnum):
    HASH = "hash"
    TEXTHASH = "texthash"


@dataclass(frozen=True)
class MapRef:
    """A declared map (/etc/postfix/NAME) or a static: answer."""

    type: str  # a MapType, or "static"
    name: str  # map name, or the static answer

    def render(self) -> str:
        if self.type == "static":
            return f"static:{self.name}"
        return f"{self.type}:{MAP_DIR}{self.name}"


@dataclass(frozen=True)
class Restriction:
    spec: Spec
    arg: str | None = None  # canonical text of the argument, checked by its grammar
    map: MapRef | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def render(self) -> str:
        return self.name if self.arg is None else f"{self.name} {self.arg}"

    def __str__(self) -> str:  # as written in main.cf, wherever a string is expected
        return self.render()


class RestrictionError(Exception):
    def __init__(self, message: str, hint: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


_MAP_RE = re.compile(rf"^(?P<type>[a-z]+):{re.escape(MAP_DIR)}(?P<name>{MAP_NAME})$")
_STATIC_RE = re.compile(r"^static:(?P<answer>[A-Za-z0-9_.-]{1,64})$")
_DNSLIST_RE = re.compile(rf"^{HOSTNAME}(=[0-9.\[\];]{{1,64}})?$")
_POLICY_RE = re.compile(
    rf"^(inet:(?P<host>127\.0\.0\.1|\[::1\]|{HOSTNAME}):(?P<port>[0-9]{{1,5}})"
    r"|unix:private/[a-z0-9][a-z0-9_-]{0,62})$")
_SECONDS_RE = re.compile(r"^[0-9]{1,3}$")
MAX_SLEEP = 60


def parse(item: str) -> Restriction:
    """One list item as written in a profile -> Restriction, or RestrictionError."""
    words = item.split(" ")
    spec = RESTRICTIONS.get(words[0])
    if spec is None:
        raise RestrictionError(f"{words[0]!r} is not a restriction relaykit knows",
                               _did_you_mean(words[0]), "unknown-restriction")
    args = words[1:]
    if spec.arg is ArgKind.NONE:
        if args:
            raise RestrictionError(f"{spec.name} takes no argument, got {' '.join(args)!r}",
                                   f"write just {spec.name}", "restriction-argument")
        return Restriction(spec)
    if len(args) != 1 or not args[0]:
        raise RestrictionError(f"{spec.name} takes exactly one argument ({_ARG_HELP[spec.arg]})",
                               f"e.g. {spec.name} {_ARG_EXAMPLE[spec.arg]}",
                               "restriction-argument")
    return _PARSERS[spec.arg](spec, args[0])


def _did_you_mean(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(RESTRICTIONS), n=1)
    return f"did you mean {close[0]!r}?" if close else \
        "see docs/profile-reference.md for the restrictions relaykit supports"


def _bad(spec: Spec, arg: str) -> RestrictionError:
    return RestrictionError(f"{spec.name}: {arg!r} is not {_ARG_HELP[spec.arg]}",
                            f"e.g. {spec.name} {_ARG_EXAMPLE[spec.arg]}",
                            "restriction-argument")


def _parse_map(spec: Spec, arg: str) -> Restriction:
    static = _STATIC_RE.match(arg)
    if static:
        ref = MapRef("static", static["answer"])
        return Restriction(spec, ref.render(), ref)
    m = _MAP_RE.match(arg)
    if m is None:
        raise RestrictionError(
            f"{spec.name}: {arg!r} is not a map relaykit can read",
            f"declare the map under restrictions.maps and write hash:{MAP_DIR}NAME "
            "(or static:ANSWER); other map types (inline:, cidr:, tcp:, ...) cannot be "
            "checked for an OK answer", "map-type")
    if m["type"] not in MapType.__members__.values():
        raise RestrictionError(f"{spec.name}: map type {m['type']!r} is not supported",
                               f"use hash:{MAP_DIR}{m['name']} or texthash:", "map-type")
    ref = MapRef(m["type"], m["name"])
    return Restriction(spec, ref.render(), ref)


def _parse_dnslist(spec: Spec, arg: str) -> Restriction:
    if not _DNSLIST_RE.match(arg):
        raise _bad(spec, arg)
    return Restriction(spec, arg)


def _parse_policy(spec: Spec, arg: str) -> Restriction:
    m = _POLICY_RE.match(arg)
    if m is None or (m["port"] is not None and not 1 <= int(m["port"]) <= 65535):
        raise _bad(spec, arg)
    return Restriction(spec, arg)


def _parse_seconds(spec: Spec, arg: str) -> Restriction:
    if not _SECONDS_RE.match(arg) or int(arg) > MAX_SLEEP:
        raise _bad(spec, arg)
    return Restriction(spec, str(int(arg)))


_PARSERS: dict[ArgKind, Callable[[Spec, str], Restriction]] = {
    ArgKind.MAP: _parse_map, ArgKind.DNSLIST: _parse_dnslist,
    ArgKind.POLICY: _parse_policy, ArgKind.SECONDS: _parse_seconds,
}
_ARG_HELP = {
    ArgKind.MAP: f"a declared map (hash:{MAP_DIR}NAME, texthash:...) or static:ANSWER",
    ArgKind.DNSLIST: "a DNS list domain, optionally =127.0.0.N",
    ArgKind.POLICY: "inet:127.0.0.1:PORT, inet:HOST:PORT or unix:private/NAME",
    ArgKind.SECONDS: f"a number of seconds up to {MAX_SLEEP}",
}
_ARG_EXAMPLE = {
    ArgKind.MAP: f"hash:{MAP_DIR}client_access", ArgKind.DNSLIST: "zen.spamhaus.org",
    ArgKind.POLICY: "inet:127.0.0.1:10023", ArgKind.SECONDS: "1",
}


# --- access(5) answers -----------------------------------------------------------------

class Verdict(StrEnum):
    """The effect of a lookup answer (or a list) on the attacker's mail."""

    PERMIT = "permit"  # relayed, unless a later list stage refuses
    STOP = "stop"  # refused (REJECT, DEFER, 4NN/5NN) or discarded: not relayed
    DEFER = "defer"  # 4xx: refused now, retried
    CONTINUE = "continue"  # no decision: the next restriction decides


@dataclass(frozen=True)
class Answer:
    text: str
    verdict: Verdict
    restrictions: tuple[Restriction, ...] = ()  # when the answer is a restriction list


# Actions that end nothing for the attacker: the next restriction decides.
_CONTINUE_ACTIONS = frozenset({"DUNNO", "HOLD", "PREPEND", "WARN", "INFO",
                               "DEFER_IF_REJECT", "DEFER_IF_PERMIT"})
_TEXT_REQUIRED = frozenset({"PREPEND", "WARN"})
_PERMIT_ACTIONS = frozenset({"OK", "RELAY"})
_STOP_ACTIONS = frozenset({"REJECT", "DISCARD"})  # DISCARD: accepted, never delivered
_CODE_RE = re.compile(r"^[45][0-9][0-9]$")


@lru_cache(maxsize=4096)  # answers repeat: 100,000-entry maps are benchmarked
def parse_answer(text: str) -> Answer:
    """access(5), as smtpd_check.c reads it; anything unknown is a RestrictionError."""
    words = text.split()
    if not words:
        raise RestrictionError("empty map answer", "write an action, e.g. REJECT",
                               "map-answer")
    first = words[0]
    action = first.upper()
    if len(words) == 1 and first.isdigit() and first.isascii():
        return Answer(text, Verdict.PERMIT)  # all-numerical: OK (access(5))
    if _CODE_RE.match(first) and len(words) > 1:
        return Answer(text, Verdict.DEFER if first[0] == "4" else Verdict.STOP)
    if action in _PERMIT_ACTIONS:
        return Answer(text, Verdict.PERMIT)
    if action in _STOP_ACTIONS:
        return Answer(text, Verdict.STOP)
    if action == "DEFER":
        return Answer(text, Verdict.DEFER)
    if action in _CONTINUE_ACTIONS:
        if action in _TEXT_REQUIRED and len(words) == 1:
            raise RestrictionError(f"{first} needs text", f"e.g. {first} X-Note: example",
                                   "map-answer")
        return Answer(text, Verdict.CONTINUE)
    return _restriction_list_answer(text, words)


def _restriction_list_answer(text: str, words: list[str]) -> Answer:
    """An answer that is not an action is a restriction list (access(5)): every word a
    restriction without argument."""
    items: list[Restriction] = []
    for word in words:
        spec = RESTRICTIONS.get(word)
        if spec is None or spec.arg is not ArgKind.NONE:
            what = ("takes an argument" if spec is not None
                    else "is neither an access(5) action nor a restriction")
            raise RestrictionError(
                f"map answer {text!r}: {word!r} {what}",
                "use OK, REJECT [text], DEFER [text], 4NN/5NN text, DISCARD, HOLD, "
                "PREPEND header, WARN text, INFO text, DUNNO, or restrictions without "
                "arguments", "map-answer")
        items.append(Restriction(spec))
    verdict, _ = walk(items, lambda _r: ())
    return Answer(text, verdict, tuple(items))


# --- evaluation ------------------------------------------------------------------------

AnswersOf = Callable[[Restriction], Iterable[Answer]]


def item_verdict(r: Restriction, answers_of: AnswersOf) -> Verdict:
    """The attacker's outcome at one restriction.  A declared map's entries can be
    avoided (the attacker picks keys that do not match) but also chosen: one answer
    that permits is enough.  A static: answer applies to everybody."""
    relay = r.spec.relay
    if relay is Relay.PERMIT:
        return Verdict.PERMIT
    if relay in (Relay.REJECT_FOREIGN, Relay.REJECT):
        return Verdict.STOP
    if relay in (Relay.DEFER_FOREIGN, Relay.DEFER):
        return Verdict.DEFER
    if relay is Relay.LOOKUP:
        if r.spec.arg is not ArgKind.MAP:
            return Verdict.PERMIT  # a DNS whitelist or policy server may say OK
        answers = [a.verdict for a in answers_of(r)]
        if Verdict.PERMIT in answers:
            return Verdict.PERMIT
        if r.map is not None and r.map.type == "static" and answers:
            return answers[0]
    return Verdict.CONTINUE


def walk(items: Iterable[Restriction], answers_of: AnswersOf,
         trusted: frozenset[str] = frozenset()) -> tuple[Verdict, int]:
    """First match wins, as Postfix evaluates a list: the verdict and where it fell.
    `trusted` names the TRUSTED restrictions the client passes (e.g. an authenticated
    client passes permit_sasl_authenticated); for the attacker it is empty."""
    warn_next = False
    i = -1
    for i, r in enumerate(items):
        if r.spec.relay is Relay.WARN_NEXT:
            warn_next = True
            continue
        if r.spec.relay is Relay.TRUSTED:
            verdict = Verdict.PERMIT if r.name in trusted else Verdict.CONTINUE
        else:
            verdict = item_verdict(r, answers_of)
        if warn_next and verdict in (Verdict.STOP, Verdict.DEFER):
            verdict = Verdict.CONTINUE  # warn_if_reject: logged, not refused
        warn_next = False
        if verdict is not Verdict.CONTINUE:
            return verdict, i
    return Verdict.CONTINUE, i + 1
