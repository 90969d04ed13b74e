"""Secret files and smarthost credentials, every role against every other (attacks).

A file read for two roles hands one role's content to the other (smarthost credentials
read as logins, a key served as a certificate); a credentials key that does not match
the relayhost sends no AUTH at all.  Each pair is a case, so dropping a role from the
policy's table fails a test.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from relaykit.errors import Level, ProfileError
from relaykit.profile.load import load_profile

# The roles and how a profile sets them, on a relay that authenticates users and sends
# through an authenticated smarthost.
ROLES = {
    ".sasl.users_file": "sasl: {{users_file: {v}}}",
    ".outbound.credentials_file": "outbound: {{credentials_file: {v}}}",
    ".tls.cert_file": "tls: {{cert_file: {v}, key_file: /run/secrets/other.key}}",
    ".tls.key_file": "tls: {{cert_file: /run/secrets/other.crt, key_file: {v}}}",
}
BASE = """\
extends: roaming
name: t
outbound:
  relayhost: "[smtp.example.net]:587"
  sasl: true
  tls_level: encrypt
  security_options: [noanonymous]
"""


def errors(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    try:
        load_profile(str(path))
    except ProfileError as exc:
        return [(d.code, d.path) for d in exc.diagnostics if d.level is Level.ERROR]
    return []


def merged(*sections: str) -> str:
    """BASE plus the sections, each section's keys merged into one mapping per top key."""
    doc = yaml.safe_load(BASE)
    for section in sections:
        for key, value in yaml.safe_load(section).items():
            doc.setdefault(key, {}).update(value)
    return yaml.safe_dump(doc)


def test_base_is_valid(tmp_path: Path) -> None:
    assert errors(tmp_path, merged()) == []


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(ROLES, 2)))
def test_one_file_for_two_roles_is_refused(tmp_path: Path, first: str, second: str) -> None:
    shared = "/run/secrets/shared"
    text = merged(ROLES[first].format(v=shared), ROLES[second].format(v=shared))
    if {first, second} == {".tls.cert_file", ".tls.key_file"}:
        text = merged(f"tls: {{cert_file: {shared}, key_file: {shared}}}")
    assert ("secret-file", second) in errors(tmp_path, text)


@pytest.mark.parametrize("role", list(ROLES))
def test_a_file_relaykit_writes_is_no_secret(tmp_path: Path, role: str) -> None:
    assert ("secret-file", role) in errors(
        tmp_path, merged(ROLES[role].format(v="/etc/relaykit/relaykit.conf")))


def test_roles_after_an_unset_one_are_still_compared(tmp_path: Path) -> None:
    """No sasl section (users_file unset): the later roles are judged all the same."""
    doc = yaml.safe_load(merged("tls: {cert_file: /run/secrets/shared, "
                                "key_file: /run/secrets/k}",
                                "outbound: {credentials_file: /run/secrets/shared}"))
    doc["extends"] = "satellite"
    assert ("secret-file", ".tls.cert_file") in errors(tmp_path, yaml.safe_dump(doc))


@pytest.mark.parametrize(("relayhost", "key", "ok"), [
    ("smtp.example.net:587", "smtp.example.net:587", True),
    ("smtp.example.net:587", "smtp.example.net", True),  # the bare host name is looked up too
    ("[smtp.example.net]:587", "smtp.example.net", True),
    ("smtp.example.net:587", "smtp.example.net:25", False),
    ("smtp.example.net:587", "other.example.net", False),
])
def test_credentials_key_must_match_the_relayhost(tmp_path: Path, relayhost: str, key: str,
                                                  ok: bool) -> None:
    text = merged(f'outbound: {{relayhost: "{relayhost}", credentials_key: "{key}"}}')
    found = ("credentials-key", ".outbound.credentials_key") in errors(tmp_path, text)
    assert found is not ok
