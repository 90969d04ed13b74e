"""The image index layout: one image per platform, referrers per platform, docker's pick.

Bases are small layers made here (build_base is replaced by a lookup): the real
mmdebstrap bases are in tests/integration/test_oci_multiarch.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from relaykit import debian
from relaykit.errors import RelaykitError
from relaykit.oci import Attachment, BaseLayer, BaseSpec, ImagePlan
from relaykit.oci import index as index_module
from relaykit.oci.index import build_index
from relaykit.render.tree import Tree

from .test_oci_image import EPOCH, IDS, blob, fake_base, read_archive, spec


def fake_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[BaseSpec]:
    """amd64 and arm64 base specs whose 'built' layers are small fakes."""
    specs = [BaseSpec("trixie", arch, debian.IMAGE_PACKAGES, None, EPOCH)
             for arch in ("amd64", "arm64")]
    layers = {}
    for s in specs:
        work = tmp_path / s.architecture
        work.mkdir()
        layers[s.architecture] = BaseLayer(fake_base(work), "k", s, IDS, IDS, cached=True)
    monkeypatch.setattr(index_module, "build_base",
                        lambda s, *_a, **_k: layers[s.architecture])
    return specs


@pytest.fixture
def bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[BaseSpec]:
    return fake_bases(tmp_path, monkeypatch)


def overlay_tree() -> Tree:
    tree = Tree()
    tree.file("/etc/postfix/main.cf", "myhostname = a\n")
    return tree


def sbom(layer: BaseLayer, plan: ImagePlan) -> list[Attachment]:
    arch = layer.spec.architecture
    return [Attachment("application/spdx+json", f'{{"arch": "{arch}"}}'.encode(),
                       f"x.{arch}.spdx.json")]


def test_index_lists_each_platform_with_its_referrers(bases: list[BaseSpec],
                                                      tmp_path: Path) -> None:
    images = [spec(architecture=b.architecture, history=()) for b in bases]
    record = build_index(bases=bases, overlay=overlay_tree(), images=images,
                         out=tmp_path / "i.tar", cache_dir=tmp_path, host="arm64",
                         log=lambda _m: None, attach=sbom)
    _, files = read_archive(tmp_path / "i.tar")
    top, *refs = json.loads(files["index.json"])["manifests"]
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert top["digest"] == record.digest
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "1.0"
    platforms = json.loads(blob(files, record.digest))["manifests"]
    assert [(m["platform"]["architecture"], m["digest"]) for m in platforms] == [
        ("amd64", record.platforms[0].digest), ("arm64", record.platforms[1].digest)]
    assert platforms[1]["platform"].get("variant") == "v8"
    subjects = {json.loads(blob(files, r["digest"]))["subject"]["digest"] for r in refs}
    assert subjects == {p.digest for p in record.platforms}
    for p in record.platforms:  # each platform's record holds only its own referrers
        (ref,) = p.referrers
        assert json.loads(blob(files, ref[1]))["subject"]["digest"] == p.digest
    (docker,) = json.loads(files["manifest.json"])  # the host's platform for docker load
    assert docker["Config"].endswith(record.platforms[1].config_digest.removeprefix("sha256:"))
    assert [a.title for a in record.attachments] == ["x.amd64.spdx.json", "x.arm64.spdx.json"]
    assert record.to_json()["platforms"][1]["architecture"] == "arm64"  # type: ignore[index]


def test_each_platform_is_the_single_arch_image(bases: list[BaseSpec], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import relaykit.oci as oci_pkg

    images = [spec(architecture=b.architecture, history=()) for b in bases]
    record = build_index(bases=bases, overlay=overlay_tree(), images=images,
                         out=tmp_path / "i.tar", cache_dir=tmp_path, host="amd64",
                         log=lambda _m: None)
    monkeypatch.setattr(oci_pkg, "build_base", vars(index_module)["build_base"])  # same fakes
    single = [oci_pkg.build_image(base=b, overlay=overlay_tree(), image=image,
                                  out=tmp_path / f"{b.architecture}.tar", cache_dir=tmp_path,
                                  log=lambda _m: None).digest
              for b, image in zip(bases, images, strict=True)]
    assert [p.digest for p in record.platforms] == single
    again = build_index(bases=bases, overlay=overlay_tree(), images=images,
                        out=tmp_path / "j.tar", cache_dir=tmp_path, host="amd64",
                        log=lambda _m: None)
    assert (tmp_path / "i.tar").read_bytes() == (tmp_path / "j.tar").read_bytes()
    assert again.digest == record.digest


def test_index_refuses_mismatched_platforms(bases: list[BaseSpec], tmp_path: Path) -> None:
    amd = spec(architecture="amd64", history=())
    with pytest.raises(RelaykitError, match="repeated"):
        build_index(bases=bases, overlay=overlay_tree(), images=[amd, amd],
                    out=tmp_path / "i.tar", cache_dir=tmp_path, host="amd64")
    with pytest.raises(RelaykitError, match="same name, tags and epoch"):
        build_index(bases=bases, overlay=overlay_tree(),
                    images=[amd, dataclasses.replace(amd, architecture="arm64", tags=("x",))],
                    out=tmp_path / "i.tar", cache_dir=tmp_path, host="amd64")
    assert not (tmp_path / "i.tar").exists()
