"""Policy checks beyond the schema: what an expert reviewer of a Postfix relay would flag.

Each check is a small function over the schema-valid, defaulted profile dict that
yields Findings (path, message, hint).  A check never raises on odd data: `run`
isolates them, so one surprising value cannot hide the other findings.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from relaykit.errors import Level
from relaykit.profile.model import DEFAULT_RELAY_RESTRICTIONS, PLAINTEXT_MECHANISMS
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


Check = Callable[[Doc], Iterator[Finding]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def run(doc: Doc) -> list[Finding]:
    found: list[Finding] = []
    for fn in CHECKS:
        try:
            found.extend(fn(doc))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            continue  # the schema reports malformed data; policy only judges sane data
    return found


# --- restriction lists -----------------------------------------------------------------

REJECT_FOREIGN = ("reject_unauth_destination", "reject")
DEFER_FOREIGN = ("defer_unauth_destination", "defer")
# Restrictions that can say OK to an unauthenticated client: a relay hazard when they
# come before the relay decision.
MAY_PERMIT = ("check_client_access", "check_recipient_access", "check_sender_access",
              "check_helo_access", "check_ccert_access", "permit_tls_all_clientcerts",
              "check_client_a_access", "check_sender_mx_access", "check_recipient_mx_access")


def _word(item: str) -> str:
    return item.split()[0]


@dataclass(frozen=True)
class RestrictionList:
    path: PathKey
    items: tuple[str, ...]
    listener: str  # "" for main.cf lists


def _relay_stages(doc: Doc) -> Iterator[tuple[str, RestrictionList, RestrictionList | None]]:
    """Per listener: the relay list it runs, then the recipient list (if any)."""
    r = doc["restrictions"]
    for i, lis in enumerate(doc["listeners"]):
        if lis.get("relay_restrictions") is not None:
            relay = RestrictionList(("listeners", i, "relay_restrictions"),
                                    tuple(lis["relay_restrictions"]), lis["name"])
        elif r.get("relay") is not None:
            relay = RestrictionList(("restrictions", "relay"), tuple(r["relay"]), "")
        else:
            relay = RestrictionList(("restrictions",), DEFAULT_RELAY_RESTRICTIONS, "")
        rcpt = None
        if r.get("recipient") is not None:
            rcpt = RestrictionList(("restrictions", "recipient"), tuple(r["recipient"]), "")
        yield lis["name"], relay, rcpt


# Restrictions that accept mail from clients outside mynetworks without AUTH.
PERMITS_STRANGERS = ("permit", "permit_naked_ip_address", "permit_mx_backup")


def _ok_like(action: str) -> bool:
    """access(5): OK, RELAY, an all-numerical result, 2NN, or a permit_* restriction."""
    words = action.split()
    if not words:
        return False
    first = words[0]
    if first.isdigit():
        return len(words) == 1 or first[:1] == "2"
    return first.upper() in ("OK", "RELAY") or first.lower().startswith("permit")


def _map_values(doc: Doc, ref: str) -> list[str]:
    """Actions an access map can answer: declared maps, static: and inline: maps."""
    kind, _, rest = ref.partition(":")
    if kind == "static":
        return [rest.strip("{}")]
    if kind == "inline":
        pairs = rest.strip("{} ").split(",")
        return [pair.partition("=")[2].strip() for pair in pairs]
    name = rest.rsplit("/", 1)[-1]
    return [str(v) for v in doc["restrictions"]["maps"].get(name, {}).get("entries", {}).values()]


def _map_permits(doc: Doc, item: str) -> bool:
    """True when an access map in this item is known to hold an OK-like action."""
    parts = item.split()
    if len(parts) < 2:
        return _word(item) == "permit_tls_all_clientcerts"
    return any(_ok_like(v) for ref in parts[1:] for v in _map_values(doc, ref))


def _unauth_foreign_outcome(doc: Doc, rl: RestrictionList) -> tuple[str, int]:
    """Walk a list as Postfix would for an untrusted, unauthenticated client relaying
    to a foreign domain: ("reject"|"defer"|"permit"|"may-permit"|"none", index)."""
    for i, item in enumerate(rl.items):
        word = _word(item)
        if i > 0 and _word(rl.items[i - 1]) == "warn_if_reject":
            continue  # only logs: Postfix does not count it as a relay decision
        if word in REJECT_FOREIGN:
            return "reject", i
        if word in DEFER_FOREIGN:
            return "defer", i
        if word in PERMITS_STRANGERS:
            return "permit", i
        if word in MAY_PERMIT and _map_permits(doc, item):
            return "may-permit", i
    return "none", len(rl.items)


@check
def no_open_relay(doc: Doc) -> Iterator[Finding]:
    found: dict[tuple[PathKey, str], Finding] = {}
    for name, relay, rcpt in _relay_stages(doc):
        for finding in _relay_findings(doc, name, relay, rcpt):
            found.setdefault((finding.path[:2], finding.code), finding)
    yield from found.values()


def _relay_findings(doc: Doc, name: str, relay: RestrictionList,
                    rcpt: RestrictionList | None) -> Iterator[Finding]:
    """Postfix runs the relay list, then the recipient list: a reject in either refuses
    the mail, a permit only ends the list it is in."""
    permitted: tuple[RestrictionList, int, str] | None = None
    for rl in (relay, rcpt):
        if rl is None:
            continue
        outcome, i = _unauth_foreign_outcome(doc, rl)
        if outcome == "defer":
            yield warning((*rl.path, i), f"{rl.items[i]} answers 4xx: relay attempts are "
                          "deferred and retried instead of refused",
                          "use reject_unauth_destination (5xx)", "relay-defer")
        if outcome in ("reject", "defer"):
            return
        if outcome in ("permit", "may-permit") and permitted is None:
            permitted = (rl, i, outcome)
    if permitted is not None:
        rl, i, outcome = permitted
        what = (f"`{rl.items[i]}`" if outcome == "permit"
                else f"{rl.items[i]!r} (its map can answer OK)")
        yield error((*rl.path, i), f"open relay on listener {name!r}: {what} lets "
                    "unauthenticated clients past every reject_unauth_destination",
                    "put reject_unauth_destination before it", "open-relay")
        return
    yield error(relay.path, f"open relay on listener {name!r}: neither the relay nor the "
                "recipient restrictions refuse unauthenticated mail to foreign domains",
                "end restrictions.relay with reject_unauth_destination", "open-relay")


@check
def sasl_before_unauth_destination(doc: Doc) -> Iterator[Finding]:
    seen: set[PathKey] = set()
    auth = {lis["name"] for lis in doc["listeners"] if lis["auth"] is True}
    for name, relay, rcpt in _relay_stages(doc):
        if name not in auth:
            continue  # no AUTH on this port: nobody to let through
        for rl in (relay, rcpt):
            if rl is None or rl.path in seen:
                continue
            seen.add(rl.path)
            words = [_word(x) for x in rl.items]
            stop = next((i for i, w in enumerate(words)
                         if w in REJECT_FOREIGN + DEFER_FOREIGN), None)
            if stop is None or "permit_sasl_authenticated" in words[:stop]:
                continue
            yield error((*rl.path, stop), "permit_sasl_authenticated must come before "
                        f"{rl.items[stop]}: authenticated users could not relay",
                        f"insert permit_sasl_authenticated before {rl.items[stop]}",
                        "sasl-order")


@check
def mynetworks_not_wide(doc: Doc) -> Iterator[Finding]:
    for i, cidr in enumerate(doc["postfix"]["mynetworks"]):
        try:
            net = ipaddress.ip_network(cidr.replace("[", "").replace("]", ""), strict=False)
        except ValueError as exc:
            yield error(("postfix", "mynetworks", i), f"{cidr!r} is not a network: {exc}",
                        "write address/prefix, e.g. 192.0.2.0/24 or [2001:db8::]/64",
                        "bad-network")
            continue
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and \
                net.network_address.ipv4_mapped is not None:
            net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
        path = ("postfix", "mynetworks", i)
        limit = 8 if net.version == 4 else 32
        if net.prefixlen < limit:
            yield error(path, f"mynetworks {cidr} trusts a large part of the Internet to "
                        "relay without AUTH (open relay)",
                        "list only the hosts or LANs you run; roaming users authenticate",
                        "open-relay")
        elif net.is_global and net.prefixlen < (24 if net.version == 4 else 48):
            yield warning(path, f"mynetworks {cidr} trusts a wide public network",
                          "trust a narrower network, or require AUTH", "wide-mynetworks")


@check
def listener_relay_without_auth(doc: Doc) -> Iterator[Finding]:
    for i, lis in enumerate(doc["listeners"]):
        if lis["port"] in (465, 587) and not lis["auth"]:
            yield warning(("listeners", i, "auth"), f"submission port {lis['port']} without "
                          "AUTH: only mynetworks clients can send through it",
                          "set auth: true (RFC 6409/8314 submission needs AUTH)",
                          "submission-no-auth")


# --- SASL ------------------------------------------------------------------------------

@check
def auth_needs_sasl(doc: Doc) -> Iterator[Finding]:
    auth = [i for i, lis in enumerate(doc["listeners"]) if lis["auth"] is True]
    if auth and doc.get("sasl") is None:
        yield error(("listeners", auth[0], "auth"), "auth: true but the profile has no "
                    "`sasl` section", "add sasl: {backend: saslauthd, mechanisms: [PLAIN, "
                    "LOGIN]}", "sasl-missing")
    if not auth and doc.get("sasl") is not None:
        yield warning(("sasl",), "sasl is configured but no listener offers AUTH",
                      "set auth: true on a listener, or drop the sasl section", "sasl-unused")


@check
def noanonymous_always(doc: Doc) -> Iterator[Finding]:
    sasl = doc.get("sasl")
    if sasl is not None:
        for key in ("security_options", "tls_security_options"):
            if "noanonymous" not in sasl[key]:
                yield error(("sasl", key), f"sasl.{key} lacks noanonymous: anonymous AUTH "
                            "would let anyone relay", "add noanonymous", "noanonymous")
    out = doc["outbound"]
    for key in ("security_options", "tls_security_options"):
        if out["sasl"] and "noanonymous" not in out[key]:
            yield error(("outbound", key), f"outbound.{key} lacks noanonymous",
                        "add noanonymous", "noanonymous")


@check
def saslauthd_plaintext_only(doc: Doc) -> Iterator[Finding]:
    sasl = doc.get("sasl")
    if sasl is None or sasl["backend"] != "saslauthd":
        return
    for i, mech in enumerate(sasl["mechanisms"]):
        if mech not in PLAINTEXT_MECHANISMS:
            yield error(("sasl", "mechanisms", i), f"saslauthd cannot verify {mech}: it only "
                        "checks plaintext passwords (PLAIN, LOGIN)",
                        "use backend: auxprop for CRAM-MD5/DIGEST-MD5, or offer only PLAIN "
                        "and LOGIN", "saslauthd-mech")


@check
def weak_mechanisms(doc: Doc) -> Iterator[Finding]:
    sasl = doc.get("sasl")
    if sasl is None:
        return
    notes = {
        "DIGEST-MD5": "DIGEST-MD5 is historic (RFC 6331) and needs passwords stored in clear",
        "CRAM-MD5": "CRAM-MD5 needs passwords stored in clear and has no channel binding",
    }
    for i, mech in enumerate(sasl["mechanisms"]):
        if mech in notes:
            yield warning(("sasl", "mechanisms", i), notes[mech],
                          "prefer PLAIN/LOGIN inside TLS", "weak-mechanism")


def _plaintext_outside_tls(sasl: Doc) -> list[str]:
    if "noplaintext" in sasl["security_options"]:
        return []
    return [m for m in sasl["mechanisms"] if m in PLAINTEXT_MECHANISMS]


@check
def no_plaintext_outside_tls(doc: Doc) -> Iterator[Finding]:
    sasl = doc.get("sasl")
    if sasl is None:
        return
    for i, lis in enumerate(doc["listeners"]):
        if not lis["auth"] or lis["tls"] in ("implicit", "starttls-required"):
            continue
        path = ("listeners", i, "tls")
        if sasl["auth_only_over_tls"]:
            if lis["tls"] == "none":
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


@check
def mechanisms_reachable(doc: Doc) -> Iterator[Finding]:
    sasl = doc.get("sasl")
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
    host = relayhost
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@check
def outbound_credentials(doc: Doc) -> Iterator[Finding]:
    out = doc["outbound"]
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
    if out["tls_level"] in ("none", "may"):
        yield error(("outbound", "tls_level"), f"tls_level {out['tls_level']!r} lets "
                    "smarthost credentials cross the network unencrypted",
                    "use tls_level: encrypt (or verify/secure)", "outbound-tls")
    if "noplaintext" in out["tls_security_options"]:
        yield warning(("outbound", "tls_security_options"), "noplaintext inside TLS blocks "
                      "PLAIN/LOGIN, often the only mechanisms a smarthost offers",
                      "use [noanonymous]", "outbound-plaintext")


# --- parameters, maps, listeners -------------------------------------------------------

# name -> (replacement, removed from Postfix rather than only deprecated)
OBSOLETE = {
    "smtpd_sasl_application_name": ("smtpd_sasl_path (Postfix >= 2.3)", True),
    "virtual_maps": ("virtual_alias_maps", True),
    "smtpd_use_tls": ("listeners[].tls (smtpd_tls_security_level)", False),
    "smtpd_enforce_tls": ("listeners[].tls: starttls-required", False),
    "smtp_use_tls": ("outbound.tls_level (smtp_tls_security_level)", False),
    "smtp_enforce_tls": ("outbound.tls_level: encrypt", False),
    "disable_dns_lookups": ("smtp_dns_support_level", False),
    "smtpd_tls_dh512_param_file": ("nothing: export ciphers are gone", False),
}

# Parameters that change who may relay or how credentials travel, which relaykit could
# not check if they came through main_cf.
RESTRICTED = {
    "relay_domains": "it makes Postfix relay to the listed domains for anybody",
    "permit_mx_backup_networks": "it widens permit_mx_backup",
    "smtpd_restriction_classes": "a class can hide `permit` from the relay check",
    "mynetworks_style": "it trusts whole subnets; list postfix.mynetworks instead",
    "smtpd_authorized_xclient_hosts": "XCLIENT lets those hosts impersonate any client",
    "smtpd_authorized_xforward_hosts": "XFORWARD feeds client identity to Postfix",
    "smtp_tls_policy_maps": "it can turn off outbound.tls_level per destination",
    "smtpd_client_restrictions": "restrictions.client", "smtpd_helo_restrictions":
    "restrictions.helo", "smtpd_sender_restrictions": "restrictions.sender",
    "smtpd_tls_security_level": "listeners[].tls", "smtpd_tls_wrappermode": "listeners[].tls",
    "smtpd_sasl_type": "relaykit configures Cyrus SASL", "smtpd_sasl_path":
    "relaykit configures smtpd.conf", "smtp_sasl_mechanism_filter": "outbound.sasl",
    "smtpd_sasl_exceptions_networks": "it hides AUTH from networks relaykit cannot see",
}

# Parameters relaykit renders from fields; setting them twice would hide intent.
MANAGED = {
    "myhostname": "postfix.myhostname", "mydomain": "postfix.mydomain",
    "mydestination": "postfix.mydestination", "mynetworks": "postfix.mynetworks",
    "inet_interfaces": "postfix.inet_interfaces", "relayhost": "outbound.relayhost",
    "smtpd_sasl_auth_enable": "listeners[].auth",
    "smtpd_sasl_security_options": "sasl.security_options",
    "smtpd_sasl_tls_security_options": "sasl.tls_security_options",
    "smtpd_sasl_local_domain": "sasl.realm", "smtpd_tls_auth_only": "sasl.auth_only_over_tls",
    "smtpd_relay_restrictions": "restrictions.relay",
    "smtpd_recipient_restrictions": "restrictions.recipient",
    "smtpd_tls_cert_file": "tls.cert_file", "smtpd_tls_key_file": "tls.key_file",
    "smtp_sasl_auth_enable": "outbound.sasl", "smtp_sasl_password_maps": "outbound.sasl",
    "smtp_tls_security_level": "outbound.tls_level",
    "cyrus_sasl_config_path": "(always /etc/postfix/sasl)",
}


@check
def obsolete_and_managed_parameters(doc: Doc) -> Iterator[Finding]:
    for key in doc["postfix"]["main_cf"]:
        path = ("postfix", "main_cf", key)
        if key in OBSOLETE:
            replacement, removed = OBSOLETE[key]
            what = ("is obsolete: Postfix ignores it (\"unknown parameter\")" if removed
                    else "is deprecated")
            yield error(path, f"{key} {what}", f"use {replacement}", "obsolete-parameter")
        elif key in RESTRICTED:
            yield error(path, f"{key} cannot be set through main_cf: {RESTRICTED[key]}",
                        "use the profile's own field, or leave it at Postfix's default",
                        "restricted-parameter")
        elif key in MANAGED:
            yield error(path, f"{key} is managed by relaykit", f"set {MANAGED[key]} instead",
                        "managed-parameter")


def _restriction_items(doc: Doc) -> Iterator[tuple[PathKey, str]]:
    r = doc["restrictions"]
    for key in ("client", "helo", "sender", "relay", "recipient"):
        for j, item in enumerate(r.get(key) or ()):
            yield ("restrictions", key, j), item
    for i, lis in enumerate(doc["listeners"]):
        for key in ("client_restrictions", "relay_restrictions"):
            for j, item in enumerate(lis.get(key) or ()):
                yield ("listeners", i, key, j), item


def _map_references(doc: Doc) -> Iterator[tuple[PathKey, str]]:
    for path, item in _restriction_items(doc):
        for part in item.split()[1:]:
            if ":/etc/postfix/" in part:
                yield path, part.rsplit("/", 1)[-1]


@check
def maps_declared(doc: Doc) -> Iterator[Finding]:
    declared = doc["restrictions"]["maps"]
    used = set()
    for path, name in _map_references(doc):
        used.add(name)
        if name not in declared:
            yield error(path, f"map /etc/postfix/{name} is not declared, so it is not "
                        "rendered: Postfix would tempfail every lookup",
                        f"declare it under restrictions.maps.{name}", "map-missing")
    for name in declared:
        if name not in used:
            yield warning(("restrictions", "maps", name), f"map {name!r} is never used",
                          f"reference it as hash:/etc/postfix/{name}, or remove it",
                          "map-unused")


@check
def policy_service_reachable(doc: Doc) -> Iterator[Finding]:
    r = doc["restrictions"]
    for key in ("client", "helo", "sender", "relay", "recipient"):
        for j, item in enumerate(r.get(key) or ()):
            if _word(item) == "check_policy_service":
                yield warning(("restrictions", key, j), f"{item}: relaykit does not run this "
                              "policy server; while it is down Postfix answers 451",
                              "run the service beside the relay, or remove it",
                              "policy-service")


@check
def listeners_unique(doc: Doc) -> Iterator[Finding]:
    seen: dict[tuple[str, object], int] = {}
    for i, lis in enumerate(doc["listeners"]):
        for key, value in (("name", lis["name"]), ("port", (lis["address"], lis["port"]))):
            if (key, value) in seen:
                yield error(("listeners", i, key), f"listener {key} {lis[key]!r} is also "
                            f"used by listeners[{seen[(key, value)]}]",
                            f"give each listener its own {key}", "listener-duplicate")
            seen[(key, value)] = i


@check
def tls_pair(doc: Doc) -> Iterator[Finding]:
    tls = doc["tls"]
    if (tls["cert_file"] is None) != (tls["key_file"] is None):
        missing = "key_file" if tls["key_file"] is None else "cert_file"
        yield error(("tls", missing), f"tls.{missing} missing: certificate and key come as "
                    "a pair", "set both, or neither (relaykit then manages the pair)",
                    "tls-pair")


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


@check
def no_control_characters(doc: Doc) -> Iterator[Finding]:
    """A newline in any value would start a new main.cf/master.cf/map line: injection."""
    for path, text in _strings(doc, ()):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            yield error(path, f"control character in {text!r}: it would end the line in "
                        "the rendered Postfix file", "write the value on one line, without "
                        "\\n, \\r or \\t", "control-character")


# --- restriction names and map references ----------------------------------------------

KNOWN_RESTRICTIONS = frozenset("""
permit reject defer defer_if_permit defer_if_reject warn_if_reject sleep
reject_unauth_pipelining reject_plaintext_session reject_multi_recipient_bounce
check_policy_service check_client_access check_client_a_access check_client_mx_access
check_client_ns_access check_reverse_client_hostname_access
check_reverse_client_hostname_a_access check_reverse_client_hostname_mx_access
check_reverse_client_hostname_ns_access check_ccert_access check_sasl_access
check_helo_access check_helo_a_access check_helo_mx_access check_helo_ns_access
check_sender_access check_sender_a_access check_sender_mx_access check_sender_ns_access
check_recipient_access check_recipient_a_access check_recipient_mx_access
check_recipient_ns_access permit_inet_interfaces permit_mynetworks permit_sasl_authenticated
permit_tls_clientcerts permit_tls_all_clientcerts permit_auth_destination permit_mx_backup
permit_naked_ip_address permit_dnswl_client permit_rhswl_client reject_unauth_destination
defer_unauth_destination reject_unknown_client_hostname reject_unknown_reverse_client_hostname
reject_unknown_forward_client_hostname reject_rbl_client reject_rhsbl_client
reject_rhsbl_reverse_client reject_rhsbl_helo reject_rhsbl_sender reject_rhsbl_recipient
reject_invalid_helo_hostname reject_non_fqdn_helo_hostname reject_unknown_helo_hostname
reject_non_fqdn_sender reject_unknown_sender_domain reject_unlisted_sender
reject_unauthenticated_sender_login_mismatch reject_authenticated_sender_login_mismatch
reject_known_sender_login_mismatch reject_sender_login_mismatch reject_unverified_sender
reject_non_fqdn_recipient reject_unknown_recipient_domain reject_unlisted_recipient
reject_unverified_recipient
""".split())

# Map types whose answers relaykit can see (declared maps, static:, inline:) or that are
# plain local files (the admin's business, and checked by map-missing under /etc/postfix).
ANALYSABLE_MAPS = frozenset({"hash", "texthash", "static", "inline", "cidr", "pcre",
                             "regexp"})


@check
def restrictions_known(doc: Doc) -> Iterator[Finding]:
    """A misspelt restriction makes Postfix answer 451 to every message."""
    for path, item in _restriction_items(doc):
        word = _word(item)
        if word not in KNOWN_RESTRICTIONS:
            close = difflib.get_close_matches(word, sorted(KNOWN_RESTRICTIONS), n=1)
            yield error(path, f"{word!r} is not a Postfix restriction: Postfix would answer "
                        "451 \"Server configuration error\" to all mail",
                        f"did you mean {close[0]!r}?" if close else "see postconf(5)",
                        "unknown-restriction")


@check
def map_references_checkable(doc: Doc) -> Iterator[Finding]:
    declared = doc["restrictions"]["maps"]
    for path, item in _restriction_items(doc):
        for ref in item.split()[1:]:
            kind, sep, rest = ref.partition(":")
            if not sep or _word(item) in ("check_policy_service", "reject_rbl_client",
                                          "reject_rhsbl_client", "sleep"):
                continue
            if kind not in ANALYSABLE_MAPS:
                yield error(path, f"map type {kind!r}: relaykit cannot tell what it answers, "
                            "so it cannot rule out an open relay", "use a declared hash or "
                            "texthash map (restrictions.maps), static: or inline:",
                            "map-type")
            name = rest.rsplit("/", 1)[-1]
            if rest.startswith("/etc/postfix/") and name in declared and \
                    declared[name].get("type", "hash") != kind:
                yield error(path, f"map {name!r} is declared as "
                            f"{declared[name].get('type', 'hash')} but used as {kind}",
                            f"use {declared[name].get('type', 'hash')}:{rest}", "map-type")
