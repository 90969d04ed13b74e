"""Restriction items and access-map answers, read as Postfix reads them, tried as an
attacker would write them: argument grammars at their bounds, answers that look like
refusals but say OK.

Written to kill the mutants of profile/restrictions.py that survived the other unit
tests (`invoke mutation`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relaykit.errors import Level
from relaykit.profile import restrictions
from relaykit.profile.load import load_profile
from relaykit.profile.restrictions import RestrictionError, Verdict, parse, parse_answer
from relaykit.render.postfix import render

from ..diagnostics import profile_diagnostics as diagnostics

ROAMING = "extends: roaming\nname: t\n"




def refused(item: str, code: str = "restriction-argument") -> RestrictionError:
    with pytest.raises(RestrictionError) as info:
        parse(item)
    assert info.value.code == code, info.value.message
    return info.value


@pytest.mark.parametrize("item", [
    "check_client_access", "check_client_access ", "reject_rbl_client",
    "check_client_access hash:/etc/postfix/a hash:/etc/postfix/b",
    "sleep", "sleep 1 2", "check_policy_service",
])
def test_argument_count(item: str) -> None:
    refused(item)


@pytest.mark.parametrize("item", ["permit_mynetworks x", "reject_unauth_destination permit"])
def test_no_argument_restrictions_take_none(item: str) -> None:
    refused(item)


@pytest.mark.parametrize(("item", "ok"), [
    ("check_policy_service inet:127.0.0.1:1", True),
    ("check_policy_service inet:127.0.0.1:65535", True),
    ("check_policy_service inet:127.0.0.1:0", False),
    ("check_policy_service inet:127.0.0.1:65536", False),
    ("check_policy_service inet:[::1]:10023", True),
    ("check_policy_service inet:policy.example.org:10023", True),
    ("check_policy_service unix:private/policyd", True),
    ("check_policy_service unix:/tmp/evil", False),
    ("check_policy_service tcp:127.0.0.1:10023", False),
    ("reject_rbl_client zen.spamhaus.org", True),
    ("reject_rbl_client zen.spamhaus.org=127.0.0.[2;3]", True),
    ("reject_rbl_client zen_spamhaus!", False),
    ("reject_rhsbl_sender dbl.example=", False),
    ("sleep 60", True), ("sleep 61", False), ("sleep 0", True), ("sleep x", False),
])
def test_argument_grammars(item: str, ok: bool) -> None:
    if ok:
        assert parse(item).render() == item
    else:
        refused(item)


@pytest.mark.parametrize("arg", ["btree:/etc/postfix/x", "cidr:/etc/postfix/x",
                                 "lmdb:/etc/postfix/x", "regexp:/etc/postfix/x"])
def test_unsupported_map_types_are_refused(arg: str) -> None:
    refused(f"check_client_access {arg}", code="map-type")


@pytest.mark.parametrize("arg", ["hash:/etc/shadow", "hash:/etc/postfix/../shadow",
                                 "inline:{x=OK}", "static:{OK}", "hash:/etc/postfix/A"])
def test_maps_outside_the_grammar_are_refused(arg: str) -> None:
    refused(f"check_client_access {arg}", code="map-type")


def test_map_references_render_canonically() -> None:
    assert parse("check_client_access static:REJECT").render() == \
        "check_client_access static:REJECT"
    r = parse("check_client_access texthash:/etc/postfix/clients")
    assert r.map is not None and (r.map.type, r.map.name) == ("texthash", "clients")
    assert r.render() == "check_client_access texthash:/etc/postfix/clients"


def test_static_map_renders_into_main_cf(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ROAMING + "restrictions:\n  recipient: [check_recipient_access "
                    "static:DUNNO]\n")
    main = render(load_profile(str(path)).profile).tree.text("/etc/postfix/main.cf")
    assert "smtpd_recipient_restrictions = check_recipient_access static:DUNNO" in main


def test_unknown_restriction_suggests_the_close_one() -> None:
    err = refused("permit_sasl_authentcated", code="unknown-restriction")
    assert "'permit_sasl_authenticated'" in err.hint
    far = refused("zzzzzz", code="unknown-restriction")
    assert "docs/profile-reference.md" in far.hint


# --- access(5) answers -----------------------------------------------------------------

@pytest.mark.parametrize(("answer", "verdict"), [
    ("OK", Verdict.PERMIT), ("ok", Verdict.PERMIT), ("RELAY", Verdict.PERMIT),
    ("550", Verdict.PERMIT),  # all-numerical without text: OK, not a refusal
    ("450", Verdict.PERMIT), ("12345", Verdict.PERMIT),
    ("550 go away", Verdict.STOP), ("554 5.7.1 no", Verdict.STOP),
    ("450 later", Verdict.DEFER), ("421 busy", Verdict.DEFER),
    ("REJECT", Verdict.STOP), ("REJECT spam", Verdict.STOP), ("DISCARD", Verdict.STOP),
    ("DEFER", Verdict.DEFER), ("DEFER later", Verdict.DEFER),
    ("DUNNO", Verdict.CONTINUE), ("HOLD", Verdict.CONTINUE), ("INFO x", Verdict.CONTINUE),
    ("PREPEND X-Note: x", Verdict.CONTINUE), ("WARN x", Verdict.CONTINUE),
    ("DEFER_IF_REJECT", Verdict.CONTINUE), ("DEFER_IF_PERMIT", Verdict.CONTINUE),
    ("reject_non_fqdn_sender permit", Verdict.PERMIT),  # a restriction list that permits
    ("reject_unauth_destination permit", Verdict.STOP),
    ("permit_mynetworks", Verdict.CONTINUE),  # the attacker is not in mynetworks
])
def test_answer_verdicts(answer: str, verdict: Verdict) -> None:
    assert parse_answer(answer).verdict is verdict


@pytest.mark.parametrize("answer", ["", "   ", "PREPEND", "WARN", "\u0663",
                                    "check_client_access hash:/etc/postfix/x",
                                    "FILTER smtp:[127.0.0.1]:10025", "no_such_action"])
def test_answers_outside_the_grammar_are_refused(answer: str) -> None:
    with pytest.raises(RestrictionError) as info:
        parse_answer(answer)
    assert info.value.code == "map-answer"


@pytest.mark.parametrize(("answer", "open_relay"), [
    ("OK", True), ("550", True), ("reject_non_fqdn_sender permit", True),
    ("550 go away", False), ("REJECT", False), ("DUNNO", False), ("450 later", False),
])
def test_map_answers_decide_open_relay(tmp_path: Path, answer: str, open_relay: bool) -> None:
    found = diagnostics(tmp_path, ROAMING + f"""\
restrictions:
  relay: [check_client_access hash:/etc/postfix/clients, permit_sasl_authenticated,
          reject_unauth_destination]
  maps:
    clients: {{entries: {{192.0.2.66: REJECT, 192.0.2.67: '{answer}'}}}}
""")
    hits = [d for d in found if d.code == "open-relay" and d.level is Level.ERROR]
    assert bool(hits) is open_relay, [d.format() for d in found]
    if open_relay:
        assert hits[0].path == ".restrictions.relay[0]"


def test_warn_if_reject_only_softens_the_next_item() -> None:
    items = [parse("warn_if_reject"), parse("reject"), parse("reject")]
    assert restrictions.walk(items, lambda _r: ()) == (Verdict.STOP, 2)
    items = [parse("warn_if_reject"), parse("reject_unauth_destination")]
    assert restrictions.walk(items, lambda _r: ()) == (Verdict.CONTINUE, 2)


def test_trusted_restrictions_permit_only_the_trusted() -> None:
    items = [parse("permit_sasl_authenticated"), parse("reject_unauth_destination")]
    assert restrictions.walk(items, lambda _r: ()) == (Verdict.STOP, 1)
    assert restrictions.walk(items, lambda _r: (), frozenset({"permit_sasl_authenticated"})) \
        == (Verdict.PERMIT, 0)
    assert restrictions.walk([], lambda _r: ()) == (Verdict.CONTINUE, 0)


@pytest.mark.parametrize(("answer", "refuses"), [("REJECT", True), ("DUNNO", False)])
def test_static_answer_applies_to_everybody(tmp_path: Path, answer: str, refuses: bool) -> None:
    found = diagnostics(tmp_path, "extends: satellite\nname: t\n" + f"""\
restrictions:
  relay: [permit_mynetworks, check_client_access static:{answer}]
""")
    relay = [d for d in found if d.code == "open-relay"]
    assert (not relay) is refuses, [d.format() for d in found]


@pytest.mark.parametrize(("answer", "says"), [
    ("   ", "empty map answer"),
    ("check_client_access", "'check_client_access' takes an argument"),
    ("bogus_word", "'bogus_word' is neither an access(5) action nor a restriction"),
])
def test_refused_answers_say_why(answer: str, says: str) -> None:
    with pytest.raises(RestrictionError) as info:
        parse_answer(answer)
    assert says in info.value.message
    assert info.value.hint.startswith(("write an action", "use OK, REJECT"))


# Every lookup a client steers (its name, address, HELO, sender, recipient, through A, MX
# or NS records): an OK answer before reject_unauth_destination relays (issue 14's
# "open relay by HELO name"); the same lookup answering REJECT is a legitimate profile.
LOOKUPS = [f"check_{s}_{k}" for s in ("client", "reverse_client_hostname", "helo", "sender",
                                      "recipient")
           for k in ("access", "a_access", "mx_access", "ns_access")]


@pytest.mark.parametrize("name", LOOKUPS)
@pytest.mark.parametrize(("answer", "open_relay"), [("OK", True), ("REJECT", False)])
def test_every_client_steered_lookup_is_judged(tmp_path: Path, name: str, answer: str,
                                               open_relay: bool) -> None:
    found = diagnostics(tmp_path, ROAMING + f"""\
restrictions:
  relay: ['{name} hash:/etc/postfix/m', permit_sasl_authenticated, reject_unauth_destination]
  maps:
    m: {{entries: {{example.net: {answer}}}}}
""")
    errors = [d for d in found if d.level is Level.ERROR]
    assert [d.code for d in errors] == (["open-relay"] if open_relay else []), \
        [d.format() for d in found]


# The restrictions relaykit supports (README, docs/profile-reference.md), written out here
# so that dropping one from the table shows: a legitimate profile would stop validating.
SUPPORTED = [
    "permit", "permit_naked_ip_address", "permit_mx_backup", "permit_tls_all_clientcerts",
    "permit_mynetworks", "permit_sasl_authenticated", "permit_tls_clientcerts",
    "permit_inet_interfaces", *[f"{n} hash:/etc/postfix/m" for n in LOOKUPS],
    "check_ccert_access hash:/etc/postfix/m", "check_sasl_access hash:/etc/postfix/m",
    "permit_dnswl_client list.dnswl.org", "permit_rhswl_client dbl.example.org",
    "check_policy_service inet:127.0.0.1:10023", "reject_unauth_destination",
    "defer_unauth_destination", "reject", "defer", "warn_if_reject", "sleep 1",
    *[f"{n} zen.example.org" for n in (
        "reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_reverse_client",
        "reject_rhsbl_helo", "reject_rhsbl_sender", "reject_rhsbl_recipient")],
    "permit_auth_destination", "defer_if_permit", "defer_if_reject",
    "reject_unauth_pipelining", "reject_plaintext_session", "reject_multi_recipient_bounce",
    "reject_unknown_client_hostname", "reject_unknown_reverse_client_hostname",
    "reject_unknown_forward_client_hostname", "reject_invalid_helo_hostname",
    "reject_non_fqdn_helo_hostname", "reject_unknown_helo_hostname", "reject_non_fqdn_sender",
    "reject_unknown_sender_domain", "reject_unlisted_sender", "reject_unverified_sender",
    "reject_non_fqdn_recipient", "reject_unknown_recipient_domain", "reject_unlisted_recipient",
    "reject_unverified_recipient",
]


@pytest.mark.parametrize("item", SUPPORTED)
def test_every_supported_restriction_parses(item: str) -> None:
    assert parse(item).render() == item


def test_the_table_holds_nothing_else() -> None:
    assert sorted(restrictions.RESTRICTIONS) == sorted(i.split()[0] for i in SUPPORTED)


# A refused argument's message says what the argument must be, and its hint shows an
# example: the example must itself be accepted (a user copies it), and the message must
# name the forms relaykit takes (written out here, from docs/profile-reference.md).
ARGUMENT_HELP = {
    "check_client_access": ("hash:/etc/postfix/NAME", "static:ANSWER"),
    "reject_rbl_client": ("a DNS list domain", "=127.0.0.N"),
    "permit_dnswl_client": ("a DNS list domain", "=127.0.0.N"),
    "check_policy_service": ("inet:127.0.0.1:PORT", "inet:HOST:PORT", "unix:private/NAME"),
    "sleep": ("a number of seconds up to 60",),
}


@pytest.mark.parametrize("name", sorted(ARGUMENT_HELP))
@pytest.mark.parametrize("args", ["", " a b"])
def test_missing_argument_says_what_to_write(name: str, args: str) -> None:
    err = refused(name + args)
    assert f"{name} takes exactly one argument (" in err.message
    for form in ARGUMENT_HELP[name]:
        assert form in err.message, err.message
    assert err.hint.startswith(f"e.g. {name} ")
    example = err.hint.removeprefix("e.g. ")
    assert parse(example).render() == example  # the example is accepted as written


@pytest.mark.parametrize(("item", "bad"), [
    ("reject_rbl_client zen_spamhaus!", "'zen_spamhaus!'"),
    ("permit_dnswl_client list.dnswl.org=x", "'list.dnswl.org=x'"),
    ("check_policy_service inet:127.0.0.1:0", "'inet:127.0.0.1:0'"),
    ("check_policy_service unix:/tmp/evil", "'unix:/tmp/evil'"),
    ("sleep 61", "'61'"),
])
def test_bad_argument_says_what_to_write(item: str, bad: str) -> None:
    name = item.split()[0]
    err = refused(item)
    assert err.message.startswith(f"{name}: {bad} is not ")
    for form in ARGUMENT_HELP[name]:
        assert form in err.message, err.message
    assert err.hint.startswith(f"e.g. {name} ")
    example = err.hint.removeprefix("e.g. ")
    assert parse(example).render() == example


def test_no_restriction_is_listed_twice() -> None:
    names = [spec.name for spec in restrictions._TABLE]
    assert len(set(names)) == len(names) == len(restrictions.RESTRICTIONS)


def test_a_restriction_error_reads_as_its_message() -> None:
    """What --debug's traceback and any caller printing the exception show."""
    with pytest.raises(RestrictionError) as info:
        parse("permit_everybody")
    assert str(info.value) == info.value.message == \
        "'permit_everybody' is not a restriction relaykit knows"
