"""The signed apt repository writer, checked with gpgv and the hashes apt checks."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaykit.deb import contents, pack
from relaykit.deb.aptrepo import KEYRING_NAME, write_repo
from relaykit.errors import RelaykitError
from relaykit.paths import static_rootfs_dir
from relaykit.profile.load import load_profile
from relaykit.render.postfix import render
from tests.gpgkeys import signing_key, stop_agent
from tests.unit.test_deb_package import INPUTS


def setup_module() -> None:
    # bootstrap installs them: missing is a failure, not a skip.
    missing = [t for t in ("gpg", "gpgv", "dpkg-deb") if shutil.which(t) is None]
    assert not missing, f"not installed: {missing} (run ./bootstrap)"


_HOMES: list[Path] = []


@pytest.fixture(autouse=True)
def _stop_gpg_agents() -> Iterator[None]:
    """gpg starts an agent per home directory: stop each one the test started."""
    yield
    while _HOMES:
        stop_agent(_HOMES.pop())


def _key(home: Path, uid: str) -> str:
    _HOMES.append(home)
    return signing_key(home, uid)


def _deb(tmp: Path, name: str) -> Path:
    p = load_profile(name).profile
    return pack(contents(p, render(p), INPUTS, static_rootfs_dir()),
                tmp / "debs" / f"relaykit-{name}_1.0.0-1_all.deb", INPUTS.epoch)


def _gpgv(keyring: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["gpgv", "--keyring", str(keyring), *args], capture_output=True)


def test_repository_is_signed_and_lists_every_package(tmp_path: Path) -> None:
    key = _key(tmp_path / "gpg", "relaykit test <apt@example.org>")
    debs = [_deb(tmp_path, "roaming"), _deb(tmp_path, "gazette-2007")]
    repo = tmp_path / "repo"
    write_repo(debs, repo, key=key, gnupghome=tmp_path / "gpg", epoch=INPUTS.epoch,
               log=lambda _m: None)
    keyring = repo / KEYRING_NAME
    assert _gpgv(keyring, str(repo / "InRelease")).returncode == 0
    assert _gpgv(keyring, str(repo / "Release.gpg"), str(repo / "Release")).returncode == 0
    release = (repo / "Release").read_text()
    packages = (repo / "Packages").read_bytes()
    assert f" {hashlib.sha256(packages).hexdigest()} {len(packages):>8} Packages\n" in release
    assert gzip.decompress((repo / "Packages.gz").read_bytes()) == packages
    text = packages.decode()
    for deb in debs:
        assert f"Filename: ./{deb.name}\n" in text
        assert f"SHA256: {hashlib.sha256(deb.read_bytes()).hexdigest()}\n" in text
        assert (repo / deb.name).read_bytes() == deb.read_bytes()
    assert "Package: relaykit-roaming\n" in text and "Package: relaykit-gazette-2007\n" in text


def test_signature_of_another_key_does_not_verify(tmp_path: Path) -> None:
    """What an attacker who swaps the repository's indexes would face: gpgv (as apt) with
    the published keyring refuses a Release signed by any other key."""
    good = _key(tmp_path / "good", "good <good@example.org>")
    evil = _key(tmp_path / "evil", "evil <evil@example.org>")
    deb = _deb(tmp_path, "roaming")
    write_repo([deb], tmp_path / "repo", key=good, gnupghome=tmp_path / "good",
               log=lambda _m: None)
    write_repo([deb], tmp_path / "forged", key=evil, gnupghome=tmp_path / "evil",
               log=lambda _m: None)
    trusted = tmp_path / "repo" / KEYRING_NAME
    assert _gpgv(trusted, str(tmp_path / "forged" / "InRelease")).returncode != 0
    tampered = tmp_path / "repo" / "InRelease"
    tampered.write_text(tampered.read_text().replace("Label: relaykit", "Label: evil"))
    assert _gpgv(trusted, str(tampered)).returncode != 0


def test_same_version_with_other_bytes_is_refused(tmp_path: Path) -> None:
    key = _key(tmp_path / "gpg", "t <t@example.org>")
    deb = _deb(tmp_path, "roaming")
    repo = tmp_path / "repo"
    write_repo([deb], repo, key=key, gnupghome=tmp_path / "gpg", log=lambda _m: None)
    other = tmp_path / "other" / deb.name
    other.parent.mkdir()
    other.write_bytes(_deb(tmp_path, "satellite").read_bytes())
    with pytest.raises(RelaykitError, match="exists with other content"):
        write_repo([other], repo, key=key, gnupghome=tmp_path / "gpg", log=lambda _m: None)


def test_unknown_key_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "gpg").mkdir(mode=0o700)
    _HOMES.append(tmp_path / "gpg")
    with pytest.raises(RelaykitError, match="gpg signing with key 'nobody'"):
        write_repo([_deb(tmp_path, "roaming")], tmp_path / "repo", key="nobody",
                   gnupghome=tmp_path / "gpg", log=lambda _m: None)
    assert not (tmp_path / "repo").exists()
