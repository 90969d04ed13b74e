"""Every entry of every policy table is a test case (issue 14): adding or dropping an
entry changes a test.  Tables: restrictions (argument kind, relay semantics), map
answers, managed / allowed / not offered / obsolete parameters, TLS modes, outbound
TLS levels, mechanisms; and every policy code and warning, triggered and silent."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from relaykit.errors import Level, ProfileError
from relaykit.profile import parameters, policy
from relaykit.profile.load import load_profile
from relaykit.profile.model import PLAINTEXT_MECHANISMS, OutboundTls, TlsMode
from relaykit.profile.restrictions import (
    RESTRICTIONS,
    ArgKind,
    Relay,
    RestrictionError,
    Verdict,
    parse,
    parse_answer,
)
from relaykit.render.postfix import render, render_main_cf

from ..conftest import ROOT
from .test_hostile_profiles import BASE, LEGITIMATE, diagnostics

SHIPPED = ["roaming", "satellite", "gazette-2007"]
EXAMPLE_ARG = {ArgKind.NONE: "", ArgKind.MAP: " hash:/etc/postfix/m",
               ArgKind.DNSLIST: " list.example.org", ArgKind.POLICY: " inet:127.0.0.1:10023",
               ArgKind.SECONDS: " 1"}


def codes(tmp_path: Path, text: str, level: Level = Level.ERROR) -> set[str]:
    return {d.code for d in diagnostics(tmp_path, text) if d.level is level}


def with_relay(item: str, answer: str = "OK") -> str:
    """A roaming relay whose relay list puts `item` first, then the relay decision."""
    return BASE + (f"restrictions:\n  relay: ['{item}', permit_sasl_authenticated,"
                   " reject_unauth_destination]\n"
                   f"  maps:\n    m: {{entries: {{x.example: '{answer}'}}}}\n")


# --- the restriction table ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RESTRICTIONS))
def test_every_restriction_parses_and_renders_from_its_parsed_form(name: str) -> None:
    spec = RESTRICTIONS[name]
    item = name + EXAMPLE_ARG[spec.arg]
    assert parse(item).render() == item
    if spec.arg is not ArgKind.NONE:
        with pytest.raises(RestrictionError):
            parse(name)  # its argument is required
        with pytest.raises(RestrictionError):
            parse(item + "}")  # and has a grammar
    else:
        with pytest.raises(RestrictionError):
            parse(name + " x")


@pytest.mark.parametrize("name", sorted(RESTRICTIONS))
def test_every_restriction_is_judged_by_its_relay_semantics(tmp_path: Path, name: str) -> None:
    """First in the relay list, before permit_sasl_authenticated and the decision: an
    open relay exactly when it can permit the attacker."""
    spec = RESTRICTIONS[name]
    found = codes(tmp_path, with_relay(name + EXAMPLE_ARG[spec.arg]))
    opens = spec.relay in (Relay.PERMIT, Relay.LOOKUP)
    assert ("open-relay" in found) is opens, found
    # Refusing everybody first also refuses authenticated users.
    assert ("sasl-order" in found) is (spec.relay in (Relay.REJECT, Relay.DEFER,
                                                      Relay.REJECT_FOREIGN,
                                                      Relay.DEFER_FOREIGN)), found


@pytest.mark.parametrize("name", sorted(n for n, s in RESTRICTIONS.items()
                                        if s.arg is ArgKind.MAP))
def test_every_map_lookup_may_permit_through_its_answers(tmp_path: Path, name: str) -> None:
    assert "open-relay" in codes(tmp_path, with_relay(f"{name} hash:/etc/postfix/m", "OK"))
    assert "open-relay" not in codes(tmp_path, with_relay(f"{name} hash:/etc/postfix/m",
                                                          "REJECT"))
    assert "open-relay" in codes(tmp_path, with_relay(f"{name} static:OK"))


@pytest.mark.parametrize("relay", list(Relay))
def test_every_relay_semantics_is_used(relay: Relay) -> None:
    assert any(s.relay is relay for s in RESTRICTIONS.values())


@pytest.mark.parametrize("name", [
    "check_relay_domains", "reject_sender_login_mismatch", "permit_sasl_authenticated_x",
    "reject_maps_rbl", "check_address_map", "openrelay", "PERMIT", "Permit"])
def test_restrictions_outside_the_table_are_refused(tmp_path: Path, name: str) -> None:
    found = [d for d in diagnostics(tmp_path, with_relay(name)) if d.level is Level.ERROR]
    # Upper case never reaches policy: the schema's item grammar refuses it first.
    code = "unknown-restriction" if name.islower() else "pattern"
    assert any(d.code == code and d.path == ".restrictions.relay[0]" for d in found), found


# --- access(5) answers -----------------------------------------------------------

OK_LIKE = ["OK", "ok", "Ok fine", "RELAY", "relay", "1", "2025", "450", "250", "permit",
           "permit_mx_backup", "permit_naked_ip_address", "permit_tls_all_clientcerts",
           "reject_non_fqdn_sender permit", "reject_unknown_helo_hostname permit"]
NOT_OK = {"REJECT": Verdict.STOP, "reject go away": Verdict.STOP, "DISCARD": Verdict.STOP,
          "550 5.7.1 no": Verdict.STOP, "DEFER": Verdict.DEFER, "450 later": Verdict.DEFER,
          "HOLD": Verdict.CONTINUE, "DUNNO": Verdict.CONTINUE,
          "PREPEND X-A: b": Verdict.CONTINUE, "WARN odd": Verdict.CONTINUE,
          "INFO seen": Verdict.CONTINUE, "DEFER_IF_REJECT x": Verdict.CONTINUE,
          "DEFER_IF_PERMIT x": Verdict.CONTINUE,
          # An action, case-insensitive as in smtpd_check.c, with "permit" as its text.
          "defer_if_permit permit": Verdict.CONTINUE,
          "reject_unauth_destination": Verdict.STOP,
          "permit_sasl_authenticated": Verdict.CONTINUE,
          "permit_mynetworks": Verdict.CONTINUE,
          "permit_auth_destination": Verdict.CONTINUE,
          "permit_sasl_authenticated reject": Verdict.STOP}
INVALID = ["200 ok", "FILTER smtp:x", "REDIRECT a@b", "BCC a@b", "PREPEND",
           "WARN", "check_client_access", "sleep", "bogus", "OK_LATER", "5.7.1 no"]


@pytest.mark.parametrize("answer", OK_LIKE)
def test_ok_like_answers_permit(tmp_path: Path, answer: str) -> None:
    assert parse_answer(answer).verdict is Verdict.PERMIT
    assert "open-relay" in codes(tmp_path, with_relay("check_client_access "
                                                      "hash:/etc/postfix/m", answer))


@pytest.mark.parametrize("answer", sorted(NOT_OK))
def test_other_answers_do_not_permit(tmp_path: Path, answer: str) -> None:
    assert parse_answer(answer).verdict is NOT_OK[answer]
    assert "open-relay" not in codes(tmp_path, with_relay("check_client_access "
                                                          "hash:/etc/postfix/m", answer))


@pytest.mark.parametrize("answer", INVALID)
def test_answers_outside_access5_are_refused(answer: str) -> None:
    with pytest.raises(RestrictionError):
        parse_answer(answer)


def test_multi_entry_maps_and_multi_listener_profiles(tmp_path: Path) -> None:
    text = BASE + (
        "listeners:\n"
        "  - {name: submission, port: 587, tls: starttls-required, auth: true}\n"
        "  - {name: mx, port: 25, tls: starttls, auth: false, relay_restrictions:"
        " [check_client_access hash:/etc/postfix/m, reject_unauth_destination]}\n"
        "  - {name: lan, port: 2525, tls: starttls, auth: false, relay_restrictions:"
        " [permit_mynetworks, reject_unauth_destination]}\n"
        "restrictions:\n  maps:\n    m:\n      entries: {a: REJECT, b: DISCARD, c: HOLD,"
        " d: '550 no', e: permit_auth_destination, f: RELAY}\n")
    found = diagnostics(tmp_path, text)
    relay = [d for d in found if d.code == "open-relay"]
    assert [d.path for d in relay] == [".listeners[1].relay_restrictions[0]"], found
    assert "'mx'" in relay[0].message


# --- parameters --------------------------------------------------------------------

def _main_cf(key: str, value: Any) -> str:
    return BASE + f"postfix:\n  main_cf:\n    {key}: {value!r}\n"


def good_and_bad(grammar: Any) -> tuple[list[tuple[Any, str]], list[Any]]:
    """Good values with the main.cf text they must render as (boundaries included),
    and bad values."""
    if isinstance(grammar, parameters.Integer):
        return ([(grammar.lo, str(grammar.lo)), (grammar.hi, str(grammar.hi)),
                 (str(grammar.hi), str(grammar.hi))],
                [grammar.hi + 1, grammar.lo - 1, "1e3", True, "10 ", "0x10"])
    if isinstance(grammar, parameters.Duration):
        lo, hi = grammar.lo, grammar.hi
        return ([(f"{lo}s", f"{lo}s"), (f"{hi}s", f"{hi}s"), (f"0{max(lo, 1)}s", f"{max(lo, 1)}s")],
                [f"{hi + 1}s", "10", "1x", "-1s", 5, f"{lo - 1}s" if lo else "1y", "1 s"])
    if isinstance(grammar, parameters.YesNo):
        return [(True, "yes"), (False, "no"), ("yes", "yes"), ("no", "no")], \
            ["maybe", 1, "Yes", "true"]
    if isinstance(grammar, parameters.Choices):
        first, last = grammar.words[0], grammar.words[-1]
        return [(first, first), (f"{first},{last}", f"{first}, {last}")], \
            ["bogus", f"{first}, {first}", "", f"{first} {last}"]
    if isinstance(grammar, parameters.Hostname):
        return [("mail.example.org", "mail.example.org"), ("$myhostname", "$myhostname")], \
            ["bad host", "$mydomain", "-x.example", "a..b", True]
    if isinstance(grammar, parameters.Banner):
        return [("$myhostname ESMTP", "$myhostname ESMTP"), ("$myhostname", "$myhostname")], \
            ["hello", "$myhostname $mail_version", "$myhostname\t", "x $myhostname"]
    raise AssertionError(f"no test values for {grammar!r}")


@pytest.mark.parametrize("key", sorted(parameters.ALLOWED))
def test_every_allowed_parameter_takes_a_good_value_once(tmp_path: Path, key: str) -> None:
    good, _ = good_and_bad(parameters.ALLOWED[key])
    for value, text in good:
        path = tmp_path / "p.yaml"
        path.write_text(_main_cf(key, value))
        p = load_profile(str(path)).profile
        main = render_main_cf(p)
        lines = [line for line in main.splitlines() if line.startswith(f"{key} = ")]
        assert lines == [f"{key} = {text}"], (value, lines)


@pytest.mark.parametrize("key", sorted(parameters.ALLOWED))
def test_every_allowed_parameter_refuses_bad_values(tmp_path: Path, key: str) -> None:
    _, bad = good_and_bad(parameters.ALLOWED[key])
    for value in bad:
        found = [d for d in diagnostics(tmp_path, _main_cf(key, value))
                 if d.code == "parameter-value"]
        assert found, (key, value)
        assert found[0].hint.startswith("write ") and len(found[0].hint) > 12


@pytest.mark.parametrize("key", sorted(parameters.MANAGED))
def test_every_managed_parameter_names_its_field(tmp_path: Path, key: str) -> None:
    if not key.islower():  # smtp_tls_CAfile: the schema's name grammar refuses it first
        assert "pattern" in codes(tmp_path, _main_cf(key, "x"))
        return
    found = [d for d in diagnostics(tmp_path, _main_cf(key, "x"))
             if d.code == "managed-parameter"]
    assert [d.path for d in found] == [f".postfix.main_cf.{key}"]
    field = parameters.MANAGED[key]
    if field.startswith(parameters.FIXED):  # nothing to set instead: remove it
        assert found[0].hint == "remove it: relaykit always sets it" + \
            field.removeprefix(parameters.FIXED)
    else:
        assert found[0].hint == f"set {field} instead"


@pytest.mark.parametrize("key", sorted(parameters.NOT_OFFERED))
def test_every_trust_changing_parameter_is_refused(tmp_path: Path, key: str) -> None:
    found = [d for d in diagnostics(tmp_path, _main_cf(key, "x"))
             if d.code == "parameter-not-allowed"]
    assert found and parameters.NOT_OFFERED[key] in found[0].message


@pytest.mark.parametrize("key", sorted(parameters.OBSOLETE))
def test_every_obsolete_parameter_names_its_replacement(tmp_path: Path, key: str) -> None:
    found = [d for d in diagnostics(tmp_path, _main_cf(key, "x"))
             if d.code == "obsolete-parameter"]
    assert found and parameters.OBSOLETE[key][0] in found[0].hint


def _rendered_profiles(tmp_path: Path) -> list[Any]:
    out = [load_profile(name).profile for name in SHIPPED]
    for name, text in LEGITIMATE.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        out.append(load_profile(str(path)).profile)
    return out


def test_every_parameter_relaykit_writes_is_managed_and_written_once(tmp_path: Path) -> None:
    for p in _rendered_profiles(tmp_path):
        r = render(p)
        main = r.tree.text("/etc/postfix/main.cf")
        keys = [line.split(" = ", 1)[0] for line in main.splitlines()
                if line and not line.startswith("#")]
        assert len(keys) == len(set(keys)), p.name
        own = [k for k in keys if k not in dict(p.postfix.main_cf)]
        assert set(own) <= set(parameters.MANAGED), set(own) - set(parameters.MANAGED)
        for entry in r.listeners:
            assert {k for k, _ in entry.options} <= set(parameters.MANAGED)


# --- TLS, outbound, mechanisms --------------------------------------------------------

@pytest.mark.parametrize("mode", list(TlsMode))
def test_every_listener_tls_mode_reaches_master_cf(tmp_path: Path, mode: TlsMode) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE + f"listeners:\n  - {{name: x, port: 2525, tls: {mode.value},"
                    " auth: false}\n")
    entry = render(load_profile(str(path)).profile).listeners[0]
    options = dict(entry.options)
    assert options["smtpd_tls_security_level"] == mode.security_level
    assert options.get("smtpd_tls_wrappermode", "no") == ("yes" if mode.wrappermode else "no")
    assert (mode.security_level == "encrypt") is mode.always_encrypted


@pytest.mark.parametrize("level", list(OutboundTls))
def test_outbound_credentials_need_mandatory_tls(tmp_path: Path, level: OutboundTls) -> None:
    text = ("extends: satellite\nname: t\noutbound:\n  relayhost: '[smtp.example.net]:587'\n"
            f"  sasl: true\n  tls_level: {level.value}\n")
    assert ("outbound-tls" in codes(tmp_path, text)) is (not level.encrypts)
    text465 = text.replace(":587", ":465").replace("sasl: true", "sasl: false")
    assert ("outbound-wrapper" in codes(tmp_path, text465)) is (not level.encrypts)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"])
def test_plaintext_mechanisms_never_outside_tls(tmp_path: Path, mech: str) -> None:
    text = BASE + ("listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: true}\n"
                   f"sasl:\n  backend: auxprop\n  mechanisms: [{mech}]\n"
                   "  security_options: [noanonymous]\n  auth_only_over_tls: false\n")
    assert ("plaintext-auth" in codes(tmp_path, text)) is (mech in PLAINTEXT_MECHANISMS)


@pytest.mark.parametrize("protocols", [">=TLSv1", ">=TLSv1.1", "TLSv1", "!SSLv2", "",
                                       ">=SSLv3", "TLSv1.2"])
def test_tls_protocols_floor_is_tls12(tmp_path: Path, protocols: str) -> None:
    assert "enum" in codes(tmp_path, BASE + f"tls:\n  protocols: '{protocols}'\n")


def test_anonymous_and_null_suites_are_excluded_everywhere() -> None:
    for name in SHIPPED:
        main = dict(render(load_profile(name).profile).main_settings)
        for key in ("smtpd_tls_exclude_ciphers", "smtpd_tls_mandatory_exclude_ciphers",
                    "smtp_tls_exclude_ciphers", "smtp_tls_mandatory_exclude_ciphers"):
            assert {"aNULL", "eNULL"} <= set(main[key].split(", ")), (name, key)


# --- every policy code: a trigger, and silence on the shipped profiles ---------------

TRIGGERS: dict[str, str] = {
    "open-relay": "restrictions:\n  relay: [permit]\n",
    "relay-defer": "restrictions:\n  relay: [permit_sasl_authenticated,"
                   " defer_unauth_destination]\n",
    "sasl-order": "restrictions:\n  relay: [reject_unauth_destination,"
                  " permit_sasl_authenticated]\n",
    "bad-network": "postfix:\n  mynetworks: [10.0.0.0/33]\n",
    "bad-address": "postfix:\n  inet_interfaces: [999.1.1.1]\n",
    "wide-mynetworks": "postfix:\n  mynetworks: [8.8.0.0/16]\n",
    "submission-no-auth": "listeners:\n  - {name: submission, port: 587,"
                          " tls: starttls-required, auth: false}\n",
    "listener-duplicate": "listeners:\n  - {name: a, port: 587, tls: implicit, auth: true}\n"
                          "  - {name: a, port: 465, tls: implicit, auth: true}\n",
    "sasl-missing": "extends: satellite\nname: t\nlisteners:\n  - {name: smtp, port: 25,"
                    " tls: starttls, auth: true}\n",
    "sasl-unused": "listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: false}\n",
    "noanonymous": "sasl:\n  security_options: [noplaintext]\n",
    "saslauthd-mech": "sasl:\n  mechanisms: [PLAIN, CRAM-MD5]\n",
    "weak-mechanism": "sasl:\n  backend: auxprop\n  mechanisms: [CRAM-MD5]\n",
    "plaintext-auth": "listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: true}\n"
                      "sasl:\n  security_options: [noanonymous]\n  auth_only_over_tls: false\n",
    "auth-never": "listeners:\n  - {name: smtp, port: 25, tls: none, auth: true}\n",
    "dead-mechanism": "sasl:\n  tls_security_options: [noanonymous, noplaintext]\n",
    "relayhost-missing": "outbound:\n  sasl: true\n  tls_level: encrypt\n",
    "credentials-key": "outbound:\n  relayhost: '[a.example]:587'\n  sasl: true\n"
                       "  tls_level: encrypt\n  credentials_key: b.example\n",
    "outbound-tls": "outbound:\n  relayhost: '[a.example]:587'\n  sasl: true\n",
    "outbound-plaintext": "outbound:\n  relayhost: '[a.example]:587'\n  sasl: true\n"
                          "  tls_level: encrypt\n  tls_security_options: [noanonymous,"
                          " noplaintext]\n",
    "outbound-wrapper": "outbound:\n  relayhost: '[a.example]:465'\n",
    "relayhost-port": "outbound:\n  relayhost: '[a.example]:99999'\n",
    "parameter-value": "postfix:\n  main_cf: {smtpd_timeout: 30}\n",
    "managed-parameter": "postfix:\n  main_cf: {mynetworks: 0.0.0.0/0}\n",
    "obsolete-parameter": "postfix:\n  main_cf: {smtpd_use_tls: true}\n",
    "parameter-not-allowed": "postfix:\n  main_cf: {relay_domains: example.net}\n",
    "map-missing": "restrictions:\n  recipient: [check_helo_access hash:/etc/postfix/h]\n",
    "map-type": "restrictions:\n  recipient: [check_helo_access texthash:/etc/postfix/h]\n"
                "  maps:\n    h: {entries: {a: REJECT}}\n",
    "map-name": "restrictions:\n  recipient: [check_helo_access hash:/etc/postfix/sasl_passwd]\n"
                "  maps:\n    sasl_passwd: {entries: {'[smtp.example.net]:587': 'a:b'}}\n",
    "map-unused": "restrictions:\n  maps:\n    h: {entries: {a: REJECT}}\n",
    "map-answer": "restrictions:\n  recipient: [check_helo_access hash:/etc/postfix/h]\n"
                  "  maps:\n    h: {entries: {a: '200 ok'}}\n",
    "policy-service": "restrictions:\n  recipient: [permit_sasl_authenticated,"
                      " reject_unauth_destination, check_policy_service"
                      " inet:127.0.0.1:10023]\n",
    "tls-pair": "tls:\n  cert_file: /run/secrets/c\n",
    "secret-file": "sasl:\n  users_file: /run/secrets/sasl-passwd\n",
    "control-character": "restrictions:\n  recipient: [check_helo_access hash:/etc/postfix/h]\n"
                         "  maps:\n    h: {entries: {a: \"REJECT a\\tb\"}}\n",
    "unknown-restriction": "restrictions:\n  sender: [reject_unknown_sendre_domain]\n",
    "restriction-argument": "restrictions:\n  sender: [reject_non_fqdn_sender x]\n",
}


def _codes_in_source() -> set[str]:
    """The codes the policy modules can emit: last string argument of error(),
    warning() and RestrictionError()."""
    found: set[str] = set()
    for module in ("policy.py", "restrictions.py"):
        tree = ast.parse((ROOT / "src/relaykit/profile" / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("error", "warning", "RestrictionError") and \
                    isinstance(node.args[-1], ast.Constant):
                found.add(str(node.args[-1].value))
    return found


def test_every_code_has_a_trigger() -> None:
    assert set(TRIGGERS) == _codes_in_source()


@pytest.mark.parametrize("name", sorted(policy.RESERVED_MAP_NAMES))
def test_every_reserved_map_name_is_refused(tmp_path: Path, name: str) -> None:
    text = BASE + (f"restrictions:\n  recipient: [check_helo_access hash:/etc/postfix/{name}]\n"
                   f"  maps:\n    {name}: {{entries: {{a: REJECT}}}}\n")
    assert "map-name" in codes(tmp_path, text)


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_code_is_triggered(tmp_path: Path, code: str) -> None:
    text = TRIGGERS[code]
    found = diagnostics(tmp_path, text if text.startswith("extends:") else BASE + text)
    if not found:  # warnings only: the profile loads
        path = tmp_path / "p.yaml"
        found = list(load_profile(str(path)).warnings)
    assert code in {d.code for d in found}, [d.format() for d in found]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_are_silent_but_for_known_warnings(name: str) -> None:
    loaded = load_profile(name)
    expected = {"gazette-2007": {"weak-mechanism"}}.get(name, set())
    assert {w.code for w in loaded.warnings} == expected


def test_a_failing_check_crashes_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: policy.Ctx) -> Any:
        raise KeyError("bug in a check")
        yield  # pragma: no cover

    monkeypatch.setattr(policy, "CHECKS", [*policy.CHECKS, broken])
    with pytest.raises(KeyError):
        load_profile("roaming")


def test_schema_errors_stop_before_policy(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[bool] = []

    def spy(doc: dict[str, Any]) -> list[policy.Finding]:
        ran.append(True)
        return []

    monkeypatch.setattr(policy, "run", spy)
    path = tmp_path / "p.yaml"
    path.write_text(BASE + "listeners: 3\n")
    with pytest.raises(ProfileError):
        load_profile(str(path))
    assert ran == []
    load_profile("roaming")
    assert ran == [True]


@pytest.mark.parametrize("where", ["list", "key", "value", "nested"])
def test_control_characters_are_found_anywhere(where: str) -> None:
    """Checked on the document itself (defence in depth behind the schema's grammars)."""
    from relaykit.paths import profiles_dir
    from relaykit.profile.load import apply_defaults, load_schema, resolve_extends

    doc = resolve_extends(profiles_dir() / "roaming.yaml", ()).data
    apply_defaults(load_schema(), doc)
    bad = "a\u0085b"
    if where == "list":
        doc["postfix"]["mydestination"].append(bad)
    elif where == "key":
        doc["restrictions"]["maps"] = {"m": {"type": "hash", "entries": {bad: "OK"}}}
    elif where == "value":
        doc["description"] = bad
    else:
        doc["listeners"][0]["client_restrictions"].append(bad)
    found = [f for f in policy.run(doc) if f.code == "control-character"]
    assert found, where


def test_obsolete_and_deprecated_are_told_apart(tmp_path: Path) -> None:
    removed = diagnostics(tmp_path, _main_cf("smtpd_sasl_application_name", "smtpd"))
    assert any("obsolete" in d.message for d in removed)
    deprecated = diagnostics(tmp_path, _main_cf("smtpd_use_tls", "yes"))
    assert any("deprecated" in d.message for d in deprecated)


@pytest.mark.parametrize("port,ok", [(0, False), (1, True), (65535, True), (65536, False)])
def test_relayhost_port_bounds(tmp_path: Path, port: int, ok: bool) -> None:
    head = "extends: satellite\nname: t\noutbound:\n"
    relayhost = head + f"  relayhost: '[a.example]:{port}'\n"
    assert ("relayhost-port" not in codes(tmp_path, relayhost)) is ok
    keyed = head + f"  relayhost: '[a.example]:587'\n  credentials_key: '[a.example]:{port}'\n"
    assert ("relayhost-port" not in codes(tmp_path, keyed)) is ok


def test_other_modules_register_checks_on_the_document(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """policy.check takes a function of the schema-valid document (deployment checks of
    outputs.stack/helm register this way); its findings are pinned like policy's own."""
    seen: list[Any] = []

    def external(doc: dict[str, Any]) -> Any:
        seen.append(doc)
        yield policy.error(("postfix", "myhostname"), "external says no", "hint", "external")

    monkeypatch.setattr(policy, "CHECKS", [*policy.CHECKS])
    policy.check(external)
    found = diagnostics(tmp_path, BASE)
    assert isinstance(seen[0], dict) and seen[0]["name"] == "t"
    assert [(d.code, d.path) for d in found] == [("external", ".postfix.myhostname")]
