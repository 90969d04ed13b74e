"""write_image: one archive that is an OCI layout and a `docker load` archive."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from relaykit.errors import RelaykitError
from relaykit.oci import ImageSpec, LayerBlob, overlay_layer, write_image
from relaykit.render.tree import Tree

EPOCH = 1_700_000_000
IDS = {"root": 0, "postfix": 102}


def fake_base(tmp_path: Path) -> LayerBlob:
    tree = Tree()
    tree.file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    tree.file("/usr/sbin/postfix", b"\x7fELF fake", 0o755)
    return overlay_layer(tree, IDS, IDS, EPOCH, tmp_path / "base.tar.gz")


def overlay(tmp_path: Path, text: str = "myhostname = a\n", name: str = "ov") -> LayerBlob:
    tree = Tree()
    tree.file("/etc/postfix/main.cf", text)
    return overlay_layer(tree, IDS, IDS, EPOCH, tmp_path / f"{name}.tar.gz")


def spec(**changes: object) -> ImageSpec:
    base = ImageSpec(
        name="relaykit/relay", tags=("1.0", "latest"), epoch=EPOCH,
        entrypoint=("/usr/local/bin/relaykit-entrypoint",), cmd=("postfix", "start-fg"),
        env=(("RELAY_MODE", "submission"),), exposed_ports=(587, 25),
        healthcheck=("/usr/local/bin/relaykit-health",), healthcheck_interval=30,
        healthcheck_timeout=5, healthcheck_start_period=20, healthcheck_retries=4,
        stop_signal="SIGTERM",
        annotations=(("org.opencontainers.image.title", "relay"),
                     ("org.opencontainers.image.version", "1.0")),
        labels=(("org.opencontainers.image.title", "relay"),),
        history=("relaykit base trixie", "relaykit overlay demo"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def read_archive(path: Path) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    with tarfile.open(path, "r:") as tar:
        infos = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in infos if m.isfile()}  # type: ignore[union-attr]
    return infos, files


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(files: dict[str, bytes], digest: str) -> bytes:
    return files["blobs/sha256/" + digest.removeprefix("sha256:")]


def test_layout_and_digests(tmp_path: Path) -> None:
    base, ov = fake_base(tmp_path), overlay(tmp_path)
    out = tmp_path / "img.tar"
    record = write_image(spec(), [base, ov], out)
    _, files = read_archive(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():  # every blob is named by its own digest
        if name.startswith("blobs/sha256/"):
            assert name.removeprefix("blobs/sha256/") == hashlib.sha256(data).hexdigest()
    index = json.loads(files["index.json"])
    (desc,) = index["manifests"]
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest_raw = blob(files, desc["digest"])
    assert desc["size"] == len(manifest_raw) and record.digest == desc["digest"]
    manifest = json.loads(manifest_raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"]["org.opencontainers.image.version"] == "1.0"
    config_raw = blob(files, manifest["config"]["digest"])
    assert manifest["config"]["size"] == len(config_raw)
    assert record.config_digest == sha(config_raw)
    config = json.loads(config_raw)
    for layer, src, diff_id in zip(manifest["layers"], [base, ov], config["rootfs"]["diff_ids"],
                                   strict=True):
        data = blob(files, layer["digest"])
        assert layer["size"] == len(data) == src.size
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert sha(gzip.decompress(data)) == diff_id == src.diff_id
    assert record.size == base.size + ov.size + len(config_raw) + len(manifest_raw)


def test_docker_manifest(tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], out)
    _, files = read_archive(out)
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["relaykit/relay:1.0", "relaykit/relay:latest"]
    assert entry["Config"] in files and all(p in files for p in entry["Layers"])
    manifest = json.loads(blob(files, json.loads(files["index.json"])["manifests"][0]["digest"]))
    assert entry["Config"].endswith(manifest["config"]["digest"].removeprefix("sha256:"))
    assert [p.rsplit("/", 1)[1] for p in entry["Layers"]] == [
        layer["digest"].removeprefix("sha256:") for layer in manifest["layers"]]


def test_config_fields(tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    record = write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], out)
    _, files = read_archive(out)
    config = json.loads(blob(files, record.config_digest))
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    c = config["config"]
    assert c["ExposedPorts"] == {"25/tcp": {}, "587/tcp": {}}
    assert c["Healthcheck"] == {"Test": ["CMD", "/usr/local/bin/relaykit-health"],
                                "Interval": 30_000_000_000, "Timeout": 5_000_000_000,
                                "StartPeriod": 20_000_000_000, "Retries": 4}
    assert c["StopSignal"] == "SIGTERM"
    assert c["Entrypoint"] == ["/usr/local/bin/relaykit-entrypoint"]
    assert c["Cmd"] == ["postfix", "start-fg"]
    assert "RELAY_MODE=submission" in c["Env"] and any(e.startswith("PATH=") for e in c["Env"])
    assert c["Labels"] == {"org.opencontainers.image.title": "relay"}
    assert [h["created_by"] for h in config["history"]] == [
        "relaykit base trixie", "relaykit overlay demo"]
    assert all(h["created"] == config["created"] for h in config["history"])
    assert "submission" not in json.dumps(config["history"])  # no env values in history


def test_no_healthcheck_no_cmd(tmp_path: Path) -> None:
    one = spec(healthcheck=(), cmd=(), history=())
    record = write_image(one, [fake_base(tmp_path)], tmp_path / "i.tar")
    _, files = read_archive(tmp_path / "i.tar")
    c = json.loads(blob(files, record.config_digest))["config"]
    assert "Healthcheck" not in c and "Cmd" not in c


def test_outer_tar_is_deterministic(tmp_path: Path) -> None:
    base = fake_base(tmp_path)
    a = write_image(spec(), [base, overlay(tmp_path)], tmp_path / "a.tar")
    b = write_image(spec(), [base, overlay(tmp_path, name="ov2")], tmp_path / "b.tar")
    assert a.digest == b.digest
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    infos, _ = read_archive(tmp_path / "a.tar")
    names = [m.name for m in infos]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert names[:2] == ["blobs", "blobs/sha256"]
    for m in infos:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (EPOCH, 0, 0, "", "")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_different_overlay_same_base(tmp_path: Path) -> None:
    base = fake_base(tmp_path)
    a = write_image(spec(), [base, overlay(tmp_path)], tmp_path / "a.tar")
    b = write_image(spec(), [base, overlay(tmp_path, "myhostname = b\n", "o2")],
                    tmp_path / "b.tar")
    assert a.digest != b.digest
    assert a.layers[0].digest == b.layers[0].digest
    assert a.layers[1].digest != b.layers[1].digest
    one = spec(history=())
    assert write_image(dataclasses.replace(one, epoch=EPOCH + 1), [base], tmp_path / "c.tar")\
        .digest != write_image(one, [base], tmp_path / "d.tar").digest


def test_record_json(tmp_path: Path) -> None:
    record = write_image(spec(history=()), [fake_base(tmp_path)], tmp_path / "a.tar")
    doc = json.loads(json.dumps(record.to_json()))
    assert doc["digest"] == record.digest and doc["refs"][1] == "relaykit/relay:latest"
    assert doc["layers"][0]["diff_id"].startswith("sha256:")


def test_arm64_platform(tmp_path: Path) -> None:
    arm = spec(architecture="arm64", history=())
    record = write_image(arm, [fake_base(tmp_path)], tmp_path / "a.tar")
    _, files = read_archive(tmp_path / "a.tar")
    config = json.loads(blob(files, record.config_digest))
    assert (config["architecture"], config["variant"]) == ("arm64", "v8")


@pytest.mark.parametrize("changes", [
    {"tags": ()}, {"tags": ("bad tag",)}, {"name": "Upper/Case"}, {"exposed_ports": (0,)},
    {"architecture": "vax"}, {"entrypoint": ()},
])
def test_bad_specs(changes: dict[str, object]) -> None:
    with pytest.raises(RelaykitError):
        spec(**changes)


def test_history_must_match_layers(tmp_path: Path) -> None:
    with pytest.raises(RelaykitError, match="history"):
        write_image(spec(), [fake_base(tmp_path)], tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()


def test_attachments_are_referrers_of_the_image(tmp_path: Path) -> None:
    from relaykit.oci import Attachment

    seen: list[str] = []

    def attach(plan: object) -> list[Attachment]:
        seen.append(plan.digest)  # type: ignore[attr-defined]
        return [Attachment("application/spdx+json", b'{"spdx": 1}', "x.spdx.json"),
                Attachment("application/vnd.cyclonedx+json", b'{"cdx": 1}', "x.cdx.json")]

    plain = write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], tmp_path / "p.tar")
    record = write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], tmp_path / "a.tar",
                         attach)
    assert record.digest == plain.digest == seen[0]  # attaching never changes the image
    _, files = read_archive(tmp_path / "a.tar")
    index = json.loads(files["index.json"])
    top, *refs = index["manifests"]
    assert top["digest"] == record.digest and top["annotations"]
    assert sorted(r["artifactType"] for r in refs) == [
        "application/spdx+json", "application/vnd.cyclonedx+json"]
    assert all("annotations" not in r for r in refs)  # no ref name: tags name the image only
    for ref in refs:
        manifest = json.loads(blob(files, ref["digest"]))
        assert manifest["subject"] == {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": record.digest,
                                       "size": len(blob(files, record.digest))}
        assert manifest["artifactType"] == ref["artifactType"]
        assert blob(files, manifest["config"]["digest"]) == b"{}"
        (layer,) = manifest["layers"]
        data = blob(files, layer["digest"])
        assert data in (b'{"spdx": 1}', b'{"cdx": 1}') and layer["size"] == len(data)
    assert set(record.referrers) == {(r["artifactType"], r["digest"]) for r in refs}
    assert [a.title for a in record.attachments] == ["x.spdx.json", "x.cdx.json"]
    (docker,) = json.loads(files["manifest.json"])  # docker load still sees one image
    assert docker["Layers"] == [f"blobs/sha256/{b.digest.removeprefix('sha256:')}"
                                for b in record.layers]
