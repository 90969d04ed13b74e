"""What is in the image, provably, on the real roaming image built from the committed lock:
an offline --refresh rebuild gives the same digest; the SBOMs list every package dpkg
knows in the image, validate, match syft and are identical across builds; the signed
provenance verifies, and fails for another key or a modified layer."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaykit import commands
from relaykit.errors import RelaykitError

from ..conftest import ROOT, is_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not is_root(), reason="mmdebstrap root mode needs root"),
]
PROFILE = "roaming"


def need(tool: str) -> str:
    found = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{tool} is missing: ./bootstrap installs it")
    return found


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("signer", "other"):
        key = Ed25519PrivateKey.generate()
        private = work / f"{name}.pem"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        private.chmod(0o600)
        public = work / f"{name}.pub"
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        out[name], out[f"{name}.pub"] = private, public
    return out


def build_into(out: Path, key: Path, *extra: str) -> Path:
    """invoke build in a child process, so `unshare -n` can wrap it."""
    env = {**os.environ, "RELAYKIT_BUILD_DIR": str(out), "RELAYKIT_SIGNING_KEY": str(key),
           "PYTHONPATH": str(ROOT / "src")}
    code = ("import sys; from relaykit import commands; "
            f"commands.build({PROFILE!r}, fmt='oci', refresh={'--refresh' in extra}, "
            "log=lambda m: print(m, file=sys.stderr))")
    prefix = ["unshare", "-n"] if "--offline" in extra else []
    proc = subprocess.run([*prefix, sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / PROFILE


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Path:
    return build_into(tmp_path_factory.mktemp("first"), keys["signer"])


def record(build: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((build / f"{PROFILE}.oci.json").read_text())
    return data


def test_offline_refresh_rebuild_gives_the_same_digest(
        built: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    need("unshare")
    again = build_into(tmp_path, keys["signer"], "--refresh", "--offline")
    assert record(again)["digest"] == record(built)["digest"]
    assert record(again)["layers"] == record(built)["layers"]
    # Identical builds, identical SBOM and provenance bytes.
    for name in (f"{PROFILE}.spdx.json", f"{PROFILE}.cdx.json",
                 f"{PROFILE}.provenance.dsse.json", f"{PROFILE}.oci.tar"):
        assert (again / name).read_bytes() == (built / name).read_bytes(), name


@pytest.fixture(scope="module")
def dpkg_listed(built: Path, tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """What dpkg-query lists in the image: its status file read by the host's dpkg-query."""
    layer = record(built)["layers"][0]["digest"].removeprefix("sha256:")
    admin = tmp_path_factory.mktemp("dpkg")
    with tarfile.open(built / f"{PROFILE}.oci.tar") as outer:
        blob = outer.extractfile(f"blobs/sha256/{layer}")
        assert blob is not None
        with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob), mode="r|") as tar:
            for info in tar:
                if info.name == "var/lib/dpkg/status":
                    (admin / "status").write_bytes(tar.extractfile(info).read())  # type: ignore[union-attr]
                    break
    out = subprocess.run([need("dpkg-query"), f"--admindir={admin}", "-W",
                          "-f=${Package} ${Version} ${db:Status-Abbrev}\n"],
                         capture_output=True, text=True, check=True).stdout
    found = {tuple(line.split()[:2]) for line in out.splitlines() if line.split()[2] == "ii"}
    assert len(found) > 80
    return found  # type: ignore[return-value]


def test_both_sboms_list_every_dpkg_package_with_its_version(
        built: Path, dpkg_listed: set[tuple[str, str]]) -> None:
    spdx = json.loads((built / f"{PROFILE}.spdx.json").read_text())
    in_spdx = {(p["name"], p["versionInfo"]) for p in spdx["packages"]
               if p["SPDXID"].startswith("SPDXRef-Package-deb-")}
    cdx = json.loads((built / f"{PROFILE}.cdx.json").read_text())
    in_cdx = {(c["name"], c["version"]) for c in cdx["components"] if c["type"] == "library"}
    assert in_spdx == dpkg_listed == in_cdx
    assert record(built)["digest"].removeprefix("sha256:") == \
        cdx["metadata"]["component"]["hashes"][0]["content"]
    overlay = {c["name"] for c in cdx["components"] if c["type"] == "file"}
    assert {"/usr/lib/relaykit/entrypoint", "/etc/postfix/main.cf"} <= overlay
    postfix = next(p for p in spdx["packages"] if p["name"] == "postfix")
    assert postfix["externalRefs"][0]["referenceLocator"].startswith("pkg:deb/debian/postfix@")


def test_sboms_validate(built: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    cdx = (built / f"{PROFILE}.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
    assert validate_full_spdx_document(parse_file(str(built / f"{PROFILE}.spdx.json"))) == []


def test_syft_finds_the_same_packages(built: Path, dpkg_listed: set[tuple[str, str]],
                                      tmp_path: Path) -> None:
    syft = need("syft")
    out = tmp_path / "syft.json"
    # syft reads the docker-archive view (manifest.json): its oci-archive reader wants an
    # index.json with one entry, and the referrers are entries too.
    subprocess.run([syft, "scan", f"docker-archive:{built / f'{PROFILE}.oci.tar'}", "-q",
                    "-o", f"syft-json={out}"], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})
    found = {(a["name"], a["version"]) for a in json.loads(out.read_text())["artifacts"]
             if a["type"] == "deb"}
    assert found == dpkg_listed


def test_referrers_are_in_the_archive_and_skopeo_reads_it(built: Path) -> None:
    archive = built / f"{PROFILE}.oci.tar"
    inspected = json.loads(subprocess.run(
        [need("skopeo"), "inspect", f"oci-archive:{archive}:latest"], check=True,
        capture_output=True, text=True).stdout)
    assert inspected["Digest"] == record(built)["digest"]
    assert inspected["Labels"]["io.relaykit.base.layer.digest"] == \
        record(built)["layers"][0]["digest"]
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        types = set()
        for entry in index["manifests"][1:]:
            manifest = json.loads(tar.extractfile(  # type: ignore[union-attr]
                "blobs/sha256/" + entry["digest"].removeprefix("sha256:")).read())
            assert manifest["subject"]["digest"] == record(built)["digest"]
            types.add(manifest["artifactType"])
    assert types == {"application/spdx+json", "application/vnd.cyclonedx+json",
                     "application/vnd.dsse.envelope.v1+json"}


def test_provenance_verifies_and_names_its_inputs(built: Path, keys: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(built.parent))
    (line,) = commands.verify_provenance(PROFILE, public_key=keys["signer.pub"])
    assert record(built)["digest"] in line
    assert "locks/trixie-amd64.lock" in line and "base layer trixie/amd64" in line
    key_bytes = keys["signer"].read_bytes()
    secret = key_bytes.split(b"-----")[2].strip()
    assert secret not in (built / f"{PROFILE}.oci.tar").read_bytes()


def test_provenance_fails_for_another_key(built: Path, keys: dict[str, Path]) -> None:
    with pytest.raises(RelaykitError, match="does not verify with this public key"):
        commands.verify_provenance(PROFILE, public_key=keys["other.pub"],
                                   archive=built / f"{PROFILE}.oci.tar")


@pytest.fixture
def tampered(built: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the archive whose overlay layer has one byte changed, in place."""
    copy = tmp_path / "tampered.tar"
    shutil.copyfile(built / f"{PROFILE}.oci.tar", copy)
    layer = "blobs/sha256/" + record(built)["layers"][1]["digest"].removeprefix("sha256:")
    with tarfile.open(copy) as tar:
        info = tar.getmember(layer)
    with copy.open("r+b") as f:
        f.seek(info.offset_data + info.size - 9)  # inside the gzip trailer's CRC
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    yield copy


def test_provenance_fails_for_a_modified_layer(tampered: Path, keys: dict[str, Path]) -> None:
    with pytest.raises(RelaykitError, match="do not match their digest"):
        commands.verify_provenance(PROFILE, public_key=keys["signer.pub"], archive=tampered)


def test_runtime_has_no_package_manager_but_keeps_its_records(
        built: Path, dpkg_listed: set[tuple[str, str]]) -> None:
    layer = record(built)["layers"][0]["digest"].removeprefix("sha256:")
    with tarfile.open(built / f"{PROFILE}.oci.tar") as outer:
        blob = outer.extractfile(f"blobs/sha256/{layer}")
        assert blob is not None
        with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob), mode="r|") as tar:
            names = {info.name for info in tar}
    for gone in ("usr/bin/apt", "usr/bin/apt-get", "usr/bin/dpkg", "usr/bin/dpkg-query",
                 "usr/sbin/start-stop-daemon", "usr/bin/sqv"):
        assert gone not in names, gone
    assert not [n for n in names if "libapt-pkg" in n
                and not n.startswith(("var/lib/dpkg/", "usr/share/doc/"))]
    for kept in ("var/lib/dpkg/status", "var/lib/dpkg/info/apt.list",
                 "usr/share/doc/apt/copyright", "usr/share/doc/dpkg/copyright",
                 "usr/bin/perl", "usr/lib/postfix/syncfiles.pl", "usr/bin/openssl",
                 "usr/sbin/saslauthd", "usr/bin/setsid", "usr/bin/getent"):
        assert kept in names, kept
    assert {"apt", "dpkg"} <= {name for name, _ in dpkg_listed}  # still declared for scanners


def test_without_kept_debs_and_network_the_build_says_why(tmp_path: Path) -> None:
    """No kept .debs, no network: a clear error and exit 1, no traceback, nothing built."""
    env = {**os.environ, "RELAYKIT_BUILD_DIR": str(tmp_path / "build"),
           "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([need("unshare"), "-n", sys.executable, "-m", "invoke", "build",
                           "--profile", PROFILE, "--format", "oci",
                           "--cache-dir", str(tmp_path / "empty-cache")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "error: fetching packages failed" in proc.stderr
    assert "invoke lock" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "build" / PROFILE / f"{PROFILE}.oci.tar").exists()


def test_invoke_lock_rewrites_the_lock_and_reports_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock whose postfix is an old version: refreshing it from the mirror moves postfix
    to the mirror's version, says so, and writes a lock covering the image's packages."""
    import dataclasses

    from relaykit.oci.lock import diff_locks, lock_path, read_lock, write_lock

    committed = read_lock(lock_path("trixie", "amd64"))
    stale = dataclasses.replace(committed, packages=tuple(
        dataclasses.replace(d, version="0.1-1") if d.name == "postfix" else d
        for d in committed.packages))
    locks = tmp_path / "locks"
    write_lock(stale, locks / "trixie-amd64.lock")
    monkeypatch.setenv("RELAYKIT_LOCKS_DIR", str(locks))
    changes = commands.lock(suite="trixie", architecture="amd64", log=lambda _m: None)
    new = read_lock(locks / "trixie-amd64.lock")
    assert new.covers(committed.requested) == []
    postfix = next(d for d in new.packages if d.name == "postfix")
    assert f"~ postfix 0.1-1 -> {postfix.version}" in changes
    assert changes == diff_locks(stale, new)
