"""Abuse limits and sender binding for AUTH listeners (profile section `abuse`).

Rate limits are Postfix's anvil(8) counters, per client address and per listener
(anvil keys them by service), so they are set on each AUTH listener with -o and never
touch a listener without AUTH.  Clients in mynetworks are exempt
(smtpd_client_event_limit_exceptions defaults to $mynetworks).

Sender binding needs no file: a regexp table says that login `user@realm` owns the
address `user@realm` (and, in the SASL realm, the bare login `user` owns it too).  The
image prepends a hash table built at start from /run/secrets/sender-logins for extra
addresses and domains (rootfs/usr/lib/relaykit/common.sh, build_sender_logins).
"""

from __future__ import annotations

import re

from relaykit.profile.model import Listener, Profile

Setting = tuple[str, str]

# A restriction class: the sender rules of AUTH listeners, kept in main.cf so that the
# master.cf -o value stays one word (no nested braces there).
SENDER_CLASS = "relaykit_auth_sender"
NULL_SENDER_TEXT = "a null sender is not accepted after AUTH"
# The Received: header smtpd writes after AUTH says "with ESMTPSA" (ESMTPA without TLS);
# it names the client's host and address.  cleanup applies header_checks to all mail,
# so the pattern matches only authenticated submissions.
HIDE_CLIENT_CHECKS = "regexp:{{/^Received:.* with E?SMTPS?A / IGNORE}}"


def _escape_cf(text: str) -> str:
    """main.cf expands $name: a literal $ (regexp anchors and $1) is written $$."""
    return text.replace("$", "$$")


def login_map(realm: str) -> str:
    """regexp: table, inline: the address is owned by the login of the same name, and an
    address in the SASL realm also by the bare user name (users log in either way)."""
    realm_re = re.escape(realm).replace("\\-", "-")
    rules = (f"/^([^@]+)@{realm_re}$/ ${{1}}@{realm}, ${{1}}", "/^(.+)$/ ${1}")
    return "regexp:{" + ", ".join("{" + _escape_cf(r) + "}" for r in rules) + "}"


def _sender_rules(p: Profile) -> list[str]:
    a = p.abuse
    rules: list[str] = []
    if a.sender_binding == "reject":
        rules.append("reject_authenticated_sender_login_mismatch")
    elif a.sender_binding == "warn":
        rules.append("warn_if_reject reject_authenticated_sender_login_mismatch")
    if a.null_sender == "reject":
        rules.append(f"check_sender_access inline:{{{{<> = REJECT {NULL_SENDER_TEXT}}}}}")
    # The profile's own sender restrictions still apply after ours.
    rules += [str(r) for r in (p.restrictions.sender or ())]
    return rules


def main_settings(p: Profile) -> list[Setting]:
    """main.cf lines; nothing for a profile without AUTH listeners."""
    if p.sasl is None or not p.auth_listeners:
        return []
    out: list[Setting] = [("anvil_rate_time_unit", f"{p.abuse.rate_time_unit}s")]
    if p.abuse.sender_binding != "any":
        out.append(("smtpd_sender_login_maps", login_map(p.sasl.realm)))
    if p.abuse.hide_client_ip:
        out.append(("header_checks", HIDE_CLIENT_CHECKS))
    rules = _sender_rules(p)
    if rules:
        out += [("smtpd_restriction_classes", SENDER_CLASS), (SENDER_CLASS, ", ".join(rules))]
    return out


def listener_options(p: Profile, lis: Listener) -> list[Setting]:
    """master.cf -o overrides for one listener; nothing unless it offers AUTH."""
    if p.sasl is None or not lis.auth:
        return []
    a = p.abuse
    out: list[Setting] = [
        ("smtpd_client_auth_rate_limit", str(a.auth_rate)),
        ("smtpd_client_connection_rate_limit", str(a.connection_rate)),
        ("smtpd_client_connection_count_limit", str(a.connection_count)),
        ("smtpd_client_message_rate_limit", str(a.message_rate)),
        ("smtpd_client_recipient_rate_limit", str(a.recipient_rate)),
        ("smtpd_hard_error_limit", str(a.error_limit)),
    ]
    if a.authenticated_header:
        out.append(("smtpd_sasl_authenticated_header", "yes"))
    if _sender_rules(p):
        out.append(("smtpd_sender_restrictions", SENDER_CLASS))
    return out
