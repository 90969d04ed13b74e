"""The real base: mmdebstrap root for trixie, cleaned, reproducible, cached; the image
archive accepted by skopeo, umoci and (if an engine runs) docker load.

Set RELAYKIT_TEST_CACHE to a directory to keep the base between sessions.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaykit.oci import (
    REQUIRED_PACKAGES,
    BaseLayer,
    BaseSpec,
    ImageRecord,
    ImageSpec,
    build_base,
    overlay_layer,
    write_image,
)
from relaykit.render.tree import Tree

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap root mode needs root"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap not installed"),
]

EPOCH = 1_700_000_000
SPEC = BaseSpec("trixie", "amd64", REQUIRED_PACKAGES, None, EPOCH)
SMALL = 1 << 16  # read the data of small files only


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("RELAYKIT_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("relaykit-cache")


@pytest.fixture(scope="module")
def base(cache_dir: Path) -> BaseLayer:
    return build_base(SPEC, cache_dir, log=lambda _: None)


@pytest.fixture(scope="module")
def rootfs(base: BaseLayer) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Every member of the base layer, with the data of small regular files."""
    found: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    with tarfile.open(base.blob.path, "r|gz") as tar:
        for info in tar:
            data = b""
            if info.isreg() and info.size <= SMALL:
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
            found[info.name] = (info, data)
    return found


def test_host_traces_removed(rootfs: dict[str, tuple[tarfile.TarInfo, bytes]]) -> None:
    for gone in ("etc/hostname", "etc/mailname", "etc/resolv.conf", "etc/aliases.db",
                 "etc/sasldb2", "etc/apt/sources.list", "etc/postfix/main.cf",
                 "etc/ssl/private/ssl-cert-snakeoil.key", "etc/ssl/certs/ssl-cert-snakeoil.pem",
                 "var/cache/ldconfig/aux-cache"):
        assert gone not in rootfs
    assert not [n for n, (i, _) in rootfs.items() if "snakeoil" in n or "snakeoil" in i.linkname]
    for tree in ("var/lib/apt/lists/", "var/cache/apt/", "var/log/", "etc/apt/sources.list.d/"):
        assert not [n for n, (i, _) in rootfs.items() if n.startswith(tree) and not i.isdir()]
    assert not [n for n, (i, _) in rootfs.items() if i.ischr() or i.isblk()]


def test_no_mirror_or_host_name(rootfs: dict[str, tuple[tarfile.TarInfo, bytes]]) -> None:
    for name, (_, data) in rootfs.items():
        if name.startswith("etc/apt/"):
            assert b"http://" not in data and b"https://" not in data and b"URIs:" not in data
        if name.startswith("etc/"):
            assert f"myhostname = {socket.gethostname()}".encode() not in data, name


def test_packages_and_numeric_owners(base: BaseLayer,
                                     rootfs: dict[str, tuple[tarfile.TarInfo, bytes]]) -> None:
    for path in ("usr/sbin/postfix", "usr/sbin/saslauthd", "usr/sbin/saslpasswd2",
                 "usr/bin/openssl", "etc/postfix/master.cf"):
        assert path in rootfs, path
    assert [n for n in rootfs if n.startswith("usr/lib/x86_64-linux-gnu/sasl2/libplain")]
    assert [n for n in rootfs if n.startswith("etc/ssl/certs/") and n.endswith(".pem")]
    postdrop, _ = rootfs["usr/sbin/postdrop"]
    assert postdrop.gid == base.groups["postdrop"] != 0
    assert postdrop.mode & 0o2000  # setgid survives
    assert rootfs["usr/sbin/postqueue"][0].gid == base.groups["postdrop"]
    state, _ = rootfs["var/lib/postfix"]
    assert (state.uid, state.gid) == (base.users["postfix"], base.groups["postfix"]) != (0, 0)
    passwd = rootfs["etc/passwd"][1].decode()
    assert f"postfix:x:{base.users['postfix']}:" in passwd
    assert base.groups["sasl"] > 0
    for info, _ in rootfs.values():
        assert info.mtime <= EPOCH and info.uname == info.gname == ""


def test_docs_excluded_copyright_kept(rootfs: dict[str, tuple[tarfile.TarInfo, bytes]]) -> None:
    docs = [n for n, (i, _) in rootfs.items()
            if n.startswith("usr/share/doc/") and i.isreg()]
    assert docs and all(n.endswith("/copyright") for n in docs), docs[:5]
    assert "usr/share/doc/postfix/copyright" in rootfs
    assert not [n for n, (i, _) in rootfs.items()
                if n.startswith(("usr/share/man/", "usr/share/info/")) and i.isreg()
                and n != "usr/share/info/dir"]  # install-info's generated index


def test_meta_and_cache_hit(base: BaseLayer, cache_dir: Path) -> None:
    entry = cache_dir / "base" / base.key
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["digest"] == base.blob.digest and meta["size"] == base.blob.size
    assert meta["users"]["postfix"] == base.users["postfix"]
    start = time.monotonic()
    again = build_base(SPEC, cache_dir, log=lambda _: None)
    assert time.monotonic() - start < 2
    assert again.cached and again.blob.digest == base.blob.digest
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(f".tmp-{base.key[:12]}")]


def test_refresh_is_reproducible(base: BaseLayer, cache_dir: Path) -> None:
    rebuilt = build_base(SPEC, cache_dir, refresh=True, log=lambda _: None)
    assert not rebuilt.cached
    assert (rebuilt.blob.digest, rebuilt.blob.diff_id) == (base.blob.digest, base.blob.diff_id)


@pytest.fixture(scope="module")
def image(base: BaseLayer, tmp_path_factory: pytest.TempPathFactory) -> ImageRecord:
    work = tmp_path_factory.mktemp("image")
    tree = Tree()
    tree.file("/etc/postfix/main.cf", "compatibility_level = 3.6\n")
    tree.file("/etc/relaykit/marker", "ok\n", 0o640, "root", "postfix")
    layer = overlay_layer(tree, base.users, base.groups, EPOCH, work / "overlay.tar.gz")
    spec = ImageSpec(name="relaykit-test/oci", tags=("it", "it2"), epoch=EPOCH,
                     entrypoint=("/bin/sh", "-c"), cmd=("sleep 1",), exposed_ports=(587,),
                     healthcheck=("/bin/true",), stop_signal="SIGTERM",
                     history=("relaykit base trixie", "relaykit overlay test"))
    return write_image(spec, [base.blob, layer], work / "image.tar")


def test_skopeo_inspect(image: ImageRecord) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    out = subprocess.run(["skopeo", "inspect", f"oci-archive:{image.path}"], check=True,
                         capture_output=True, text=True).stdout
    doc = json.loads(out)
    assert doc["Digest"] == image.digest
    assert doc["Layers"] == [layer.digest for layer in image.layers]
    assert doc["Architecture"] == "amd64" and doc["Created"].startswith("2023-11-14T22:13:20")


def test_umoci_reads_layout(image: ImageRecord, tmp_path: Path) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(image.path) as tar:
        tar.extractall(layout, filter="data")
    tags = subprocess.run(["umoci", "ls", "--layout", str(layout)], check=True,
                          capture_output=True, text=True).stdout.split()
    assert tags == ["it"]
    stat = subprocess.run(["umoci", "stat", "--json", "--image", f"{layout}:it"], check=True,
                          capture_output=True, text=True).stdout
    assert len(json.loads(stat)["history"]) == 2


def _docker() -> str | None:
    for exe in ("/usr/bin/docker", "/usr/local/bin/docker", shutil.which("docker")):
        if exe and os.path.exists(exe) and subprocess.run(
                [exe, "info"], capture_output=True).returncode == 0:
            return exe
    return None


@pytest.fixture()
def docker(docker_engine: None) -> Iterator[str]:
    exe = _docker()
    if exe is None:
        pytest.skip("no docker engine reachable (docker info failed)")
    yield exe
    subprocess.run([exe, "rmi", "-f", "relaykit-test/oci:it", "relaykit-test/oci:it2"],
                   capture_output=True)


def test_docker_load(image: ImageRecord, docker: str) -> None:
    subprocess.run([docker, "load", "-i", str(image.path)], check=True, capture_output=True)
    inspect = json.loads(subprocess.run([docker, "image", "inspect", "relaykit-test/oci:it2"],
                                        check=True, capture_output=True, text=True).stdout)
    assert inspect[0]["Id"] == image.config_digest
    assert inspect[0]["Config"]["ExposedPorts"] == {"587/tcp": {}}
    run = subprocess.run(
        [docker, "run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/stat",
         "relaykit-test/oci:it", "-c", "%g %a", "/usr/sbin/postdrop", "/etc/relaykit/marker"],
        check=True, capture_output=True, text=True)
    postdrop, marker = run.stdout.splitlines()
    assert postdrop.split()[1] == "2555"
    assert marker.split()[1] == "640" and marker.split()[0] != "0"
