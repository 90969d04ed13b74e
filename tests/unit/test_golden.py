"""Every shipped profile renders byte for byte to the files kept in tests/golden/.

A change to main.cf, master.cf, the SASL files, maps, the runtime settings or a file
mode shows up here as a diff; `invoke golden` records it once it is intended.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import snapshot
from tests.golden.snapshot import GOLDEN_DIR, REGENERATE, shipped_names


@pytest.mark.parametrize("name", shipped_names())
def test_rendered_files_match_golden(name: str) -> None:
    expected = snapshot.stored(name)
    actual = snapshot.snapshot(name)
    assert expected, f"no golden files for profile {name!r}: run `{REGENERATE}`"
    difference = snapshot.diff(expected, actual)
    assert not difference, (f"rendering of {name!r} changed; if intended, run "
                            f"`{REGENERATE}` and commit tests/golden/\n{difference}")


def test_golden_dirs_are_exactly_the_shipped_profiles() -> None:
    kept = sorted(p.name for p in GOLDEN_DIR.iterdir()
                  if p.is_dir() and p.name not in ("__pycache__", snapshot.POLICY))
    assert kept == sorted(shipped_names()), f"stale or missing golden dirs: run `{REGENERATE}`"


def test_golden_covers_the_files_that_carry_relay_policy() -> None:
    for name in shipped_names():
        kept = snapshot.stored(name)
        for required in ("files/etc/postfix/main.cf", "files/etc/postfix/master.cf",
                         "files/etc/relaykit/relaykit.conf", "manifest.txt",
                         "postconf/main.cf.edits", "postconf/master.cf.edits"):
            assert required in kept, f"{name}: {required} missing from tests/golden"


def test_manifest_records_modes_and_owners() -> None:
    # The saslauthd socket dir is the one entry whose owner and mode the relay relies on.
    lines = snapshot.stored("roaming")["manifest.txt"].decode().splitlines()
    assert "0710 root:sasl dir /var/spool/postfix/var/run/saslauthd" in lines
    assert all(line.split()[0].isdigit() and len(line.split()[0]) == 4 for line in lines)


def test_diff_names_the_file_and_the_changed_line(tmp_path: Path) -> None:
    expected = {"files/etc/postfix/main.cf": b"mynetworks = 127.0.0.0/8\n",
                "gone.txt": b"x\n"}
    actual = {"files/etc/postfix/main.cf": b"mynetworks = 0.0.0.0/0\n",
              "new.txt": b"y\n"}
    text = snapshot.diff(expected, actual)
    assert "-mynetworks = 127.0.0.0/8" in text and "+mynetworks = 0.0.0.0/0" in text
    assert "no longer rendered: gone.txt" in text and "new file new.txt" in text
    assert snapshot.diff(expected, dict(expected)) == ""


def test_write_regenerates_and_drops_removed_profiles(tmp_path: Path) -> None:
    (tmp_path / "removed-profile").mkdir()
    (tmp_path / "removed-profile" / "manifest.txt").write_text("old\n")
    names = snapshot.write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    for name in names:
        expected = (snapshot.policy_answers() if name == snapshot.POLICY
                    else snapshot.snapshot(name))
        assert snapshot.stored(name, tmp_path) == expected


def test_policy_answers_match_golden() -> None:
    """Every name of the policy's tables (main.cf parameters, restrictions) with what
    validation answers for it, tried for real: the golden file lists the names, so a
    dropped or added table entry, or a changed verdict or wording, is a diff."""
    expected = snapshot.stored(snapshot.POLICY)
    assert set(expected) == {"main_cf.txt", "restrictions.txt"}, \
        f"golden policy answers missing: run `{REGENERATE}`"
    difference = snapshot.diff(expected, snapshot.policy_answers())
    assert not difference, ("the policy's answers changed; if intended, run "
                            f"`{REGENERATE}` and commit tests/golden/\n{difference}")


def test_policy_answers_cover_the_tables_and_the_unknown() -> None:
    text = snapshot.stored(snapshot.POLICY)["restrictions.txt"].decode()
    blocks = {line.split(" (map answers")[0].split()[0] for line in text.splitlines()
              if not line.startswith(" ")}
    assert {"check_sasl_access", "reject_unauth_destination", "permit",
            *snapshot.UNKNOWN_RESTRICTIONS} <= blocks
    main_cf = snapshot.stored(snapshot.POLICY)["main_cf.txt"].decode()
    for unknown in snapshot.UNKNOWN_PARAMETERS:
        assert f"{unknown}\n  .postfix.main_cf.{unknown}: " in main_cf
