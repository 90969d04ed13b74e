"""Multi-arch for real: roaming for [amd64, arm64] from the committed locks, one OCI image
index that skopeo lists, reproducible, and the arm64 image booted under qemu-user-static
passes the conformance suite (healthy, SMTP AUTH, relays into the sink).

The arm64 base is the slow part (about 5 to 10 minutes under qemu when not cached);
with the base in the cache the module takes about two minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaykit import commands
from relaykit.paths import profiles_dir
from relaykit.profile.load import load_profile

from ..conftest import is_root
from .test_publish import registry  # noqa: F401  (the local registry fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not is_root(), reason="mmdebstrap, binfmt_misc and dockerd need root"),
]
BINFMT = Path("/proc/sys/fs/binfmt_misc")
PREFIX = "rk-sup-multiarch"


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is missing: ./bootstrap installs qemu-user-static, "
                    "binfmt-support and arch-test")
    return found


@pytest.fixture(scope="module")
def arm64_emulation() -> None:
    """binfmt_misc mounted and qemu-aarch64 registered, as ./bootstrap does."""
    need("qemu-aarch64-static")
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    subprocess.run([need("update-binfmts"), "--enable", "qemu-aarch64"], capture_output=True)
    check = subprocess.run([need("arch-test"), "arm64"], capture_output=True, text=True)
    assert check.stdout.strip() == "arm64: ok", check.stdout + check.stderr


def two_arch_profile(where: Path) -> Path:
    text = (profiles_dir() / "roaming.yaml").read_text()
    assert "base:\n  suite: trixie\n" in text
    path = where / "roaming.yaml"
    path.write_text(text.replace("base:\n  suite: trixie\n",
                                 "base:\n  suite: trixie\n  architectures: [amd64, arm64]\n"))
    return path


def build(profile: Path, out: Path) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("RELAYKIT_BUILD_DIR", str(out))
    mp.delenv("RELAYKIT_SIGNING_KEY", raising=False)
    try:
        commands.build(str(profile), fmt="oci", log=lambda _m: None)
    finally:
        mp.undo()
    record: dict[str, Any] = json.loads((out / "roaming/roaming.oci.json").read_text())
    return record


@pytest.fixture(scope="module")
def built(arm64_emulation: None, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Path, dict[str, Any]]:
    profile = two_arch_profile(tmp_path_factory.mktemp("profile"))
    out = tmp_path_factory.mktemp("build")
    return profile, build(profile, out) | {"archive": str(out / "roaming/roaming.oci.tar")}


def test_skopeo_lists_both_platforms(built: tuple[Path, dict[str, Any]]) -> None:
    _, record = built
    raw = subprocess.run([need("skopeo"), "inspect", "--raw",
                          f"oci-archive:{record['archive']}:latest"],
                         check=True, capture_output=True, text=True).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert [m["digest"] for m in index["manifests"]] == [p["digest"] for p in record["platforms"]]
    for arch in ("amd64", "arm64"):
        inspected = json.loads(subprocess.run(
            [need("skopeo"), "inspect", "--override-arch", arch,
             f"oci-archive:{record['archive']}:latest"],
            check=True, capture_output=True, text=True).stdout)
        assert inspected["Architecture"] == arch


def test_each_platform_is_reproducible(built: tuple[Path, dict[str, Any]],
                                       tmp_path: Path) -> None:
    profile, record = built
    again = build(profile, tmp_path)
    assert again["digest"] == record["digest"]
    assert [p["digest"] for p in again["platforms"]] == [p["digest"] for p in record["platforms"]]
    arm = record["platforms"][1]
    assert arm["layers"][0]["digest"] != record["platforms"][0]["layers"][0]["digest"]
    out = Path(record["archive"]).parent
    for arch in ("amd64", "arm64"):
        assert (out / f"roaming.{arch}.spdx.json").is_file()
        assert (out / f"roaming.{arch}.cdx.json").is_file()


@pytest.fixture
def arm64_archive(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> Iterator[Path]:
    """The arm64 image alone, as a docker-archive: Docker 20.10 loads one platform."""
    _, record = built
    out = tmp_path / "arm64.tar"
    subprocess.run([need("skopeo"), "copy", "--quiet", "--override-arch", "arm64",
                    f"oci-archive:{record['archive']}:latest",
                    f"docker-archive:{out}:{PREFIX}/roaming:arm64"], check=True)
    yield out
    docker = shutil.which("docker")
    if docker:
        subprocess.run([docker, "rmi", "-f", f"{PREFIX}/roaming:arm64"], capture_output=True)


def test_arm64_image_is_healthy_and_authenticates_under_qemu(
        built: tuple[Path, dict[str, Any]], arm64_archive: Path) -> None:
    from relaykit.verify.harness.engine import ensure_dockerd
    from relaykit.verify.image import verify_image

    ensure_dockerd()
    profile, _ = built
    p = load_profile(str(profile)).profile
    ok, table = verify_image(p, arm64_archive, log=lambda _m: None)
    assert ok, table
    assert "healthy" in table.lower() and "auth" in table.lower()
    inspect = subprocess.run([need("docker"), "image", "inspect", "-f", "{{.Architecture}}",
                              f"{PREFIX}/roaming:arm64"], capture_output=True, text=True)
    assert inspect.stdout.strip() == "arm64"


def test_publish_pushes_the_index_and_both_platforms(
        built: tuple[Path, dict[str, Any]], registry: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    profile, record = built
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(Path(record["archive"]).parents[1]))
    pushed = commands.publish(str(profile), registry=registry, tls_verify=False,
                              log=lambda _m: None)
    assert pushed[0] == f"docker://{registry}/relaykit/roaming:latest"
    raw = subprocess.run([need("skopeo"), "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry}/relaykit/roaming:latest"],
                         check=True, capture_output=True, text=True).stdout
    served = json.loads(raw)
    assert [m["platform"]["architecture"] for m in served["manifests"]] == ["amd64", "arm64"]
    for platform in record["platforms"]:  # every platform's manifest is there by digest
        subprocess.run([need("skopeo"), "inspect", "--raw", "--tls-verify=false",
                        f"docker://{registry}/relaykit/roaming@{platform['digest']}"],
                       check=True, capture_output=True)
