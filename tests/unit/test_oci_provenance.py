"""Signed provenance: DSSE envelope, in-toto statement, and the checks an attacker must
get past (another key, a modified layer, a re-pointed manifest, a stripped signature)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaykit.errors import RelaykitError
from relaykit.oci import Attachment, ImagePlan, write_image
from relaykit.oci.provenance import (
    DSSE_MEDIA_TYPE,
    Material,
    load_private_key,
    open_envelope,
    pae,
    sign,
    statement,
    verify_archive,
)

from .test_oci_image import fake_base, overlay, spec


def write_key(path: Path, key: object, public: bool = False) -> Path:
    if public:
        data = key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        data = key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    path.write_bytes(data)
    return path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    mine, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    return {"private": write_key(tmp_path / "key.pem", mine),
            "public": write_key(tmp_path / "key.pub", mine, public=True),
            "other": write_key(tmp_path / "other.pub", other, public=True)}


def signer(key_path: Path) -> Callable[[ImagePlan], list[Attachment]]:
    key = load_private_key(key_path)

    def attach(plan: ImagePlan) -> list[Attachment]:
        doc = statement(name="relaykit/relay", digest=plan.digest, builder="urn:test",
                        parameters={"profile": "demo"}, internal={"SOURCE_DATE_EPOCH": 1},
                        materials=[Material("locks/trixie-amd64.lock", {"sha256": "0" * 64})])
        return [Attachment(DSSE_MEDIA_TYPE, sign(doc, key), "demo.provenance.dsse.json")]
    return attach


@pytest.fixture
def signed(tmp_path: Path, keys: dict[str, Path]) -> Path:
    out = tmp_path / "img.tar"
    write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], out, signer(keys["private"]))
    return out


def test_good_signature_verifies(signed: Path, keys: dict[str, Path]) -> None:
    (result,) = verify_archive(signed, keys["public"])
    with tarfile.open(signed) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert result.image == index["manifests"][0]["digest"]
    assert result.name == "relaykit/relay" and result.materials == ("locks/trixie-amd64.lock",)


def test_signatures_are_deterministic(tmp_path: Path, keys: dict[str, Path]) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    for out in (a, b):
        write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], out,
                    signer(keys["private"]))
    assert a.read_bytes() == b.read_bytes()


def test_another_key_fails(signed: Path, keys: dict[str, Path]) -> None:
    with pytest.raises(RelaykitError, match="does not verify with this public key"):
        verify_archive(signed, keys["other"])


def rewrite(archive: Path, change: Callable[[str, bytes], tuple[str, bytes]]) -> None:
    """Rewrite the archive member by member, as an attacker with write access would."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                   for m in tar.getmembers()]
    with tarfile.open(archive, "w") as tar:
        for info, data in members:
            name, data = change(info.name, data) if info.isfile() else (info.name, data)
            info.name, info.size = name, len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def blob_name(data: bytes) -> str:
    return "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def test_modified_layer_fails(signed: Path, keys: dict[str, Path]) -> None:
    def flip(name: str, data: bytes) -> tuple[str, bytes]:
        if name.startswith("blobs/") and data[:2] == b"\x1f\x8b":  # a gzip layer
            return name, data[:-1] + bytes([data[-1] ^ 1])
        return name, data
    rewrite(signed, flip)
    with pytest.raises(RelaykitError, match="do not match their digest"):
        verify_archive(signed, keys["public"])


def test_consistently_rewritten_image_fails(signed: Path, keys: dict[str, Path]) -> None:
    """New layer, new manifest, new index entry, referrer re-pointed: all digests add up,
    but the signed statement still names the original image."""
    with tarfile.open(signed) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    old = index["manifests"][0]["digest"]
    manifest = json.loads(files["blobs/sha256/" + old.removeprefix("sha256:")])
    evil_layer = b"\x1f\x8b evil"
    manifest["layers"][1] = {**manifest["layers"][1], "digest": "sha256:" + hashlib.sha256(
        evil_layer).hexdigest(), "size": len(evil_layer)}
    new_manifest = json.dumps(manifest).encode()
    new = "sha256:" + hashlib.sha256(new_manifest).hexdigest()
    renamed: dict[str, bytes] = {blob_name(evil_layer): evil_layer,
                                 blob_name(new_manifest): new_manifest}
    index["manifests"][0]["digest"], index["manifests"][0]["size"] = new, len(new_manifest)
    for entry in index["manifests"][1:]:
        ref = json.loads(files["blobs/sha256/" + entry["digest"].removeprefix("sha256:")])
        ref["subject"] = {**ref["subject"], "digest": new, "size": len(new_manifest)}
        raw = json.dumps(ref).encode()
        renamed[blob_name(raw)] = raw
        entry["digest"], entry["size"] = "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)
    files["index.json"] = json.dumps(index).encode()
    files.update(renamed)
    with tarfile.open(signed, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(RelaykitError, match="does not name image"):
        verify_archive(signed, keys["public"])


def test_unsigned_archive_fails(tmp_path: Path, keys: dict[str, Path]) -> None:
    out = tmp_path / "plain.tar"
    write_image(spec(), [fake_base(tmp_path), overlay(tmp_path)], out)
    with pytest.raises(RelaykitError, match="no signed provenance") as info:
        verify_archive(out, keys["public"])
    assert "RELAYKIT_SIGNING_KEY" in info.value.hint


def test_envelope_follows_dsse(keys: dict[str, Path]) -> None:
    key = load_private_key(keys["private"])
    envelope = json.loads(sign({"_type": "x"}, key))
    payload = base64.b64decode(envelope["payload"])
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    key.public_key().verify(base64.b64decode(envelope["signatures"][0]["sig"]),
                            pae(envelope["payloadType"], payload))
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    envelope["payload"] = base64.b64encode(payload.replace(b"x", b"y")).decode()
    from relaykit.oci.provenance import load_public_key
    with pytest.raises(RelaykitError, match="does not verify"):
        open_envelope(json.dumps(envelope).encode(), load_public_key(keys["public"]))


def test_bad_keys_are_named_without_their_content(tmp_path: Path) -> None:
    ecdsa = write_key(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(RelaykitError, match="not ed25519"):
        load_private_key(ecdsa)
    garbage = tmp_path / "bad.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n"
                       "-----END PRIVATE KEY-----\n")
    with pytest.raises(RelaykitError) as info:
        load_private_key(garbage)
    assert "c2VjcmV0" not in info.value.render() and "not an unencrypted PEM" in info.value.message
    with pytest.raises(RelaykitError, match="cannot read"):
        load_private_key(tmp_path / "missing.pem")


def test_every_platform_of_an_index_verifies(tmp_path: Path, keys: dict[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from relaykit.oci.index import build_index

    from .test_oci_index import fake_bases, overlay_tree

    specs = fake_bases(tmp_path, monkeypatch)
    sign_plan = signer(keys["private"])
    record = build_index(bases=specs, overlay=overlay_tree(),
                         images=[spec(architecture=b.architecture, history=()) for b in specs],
                         out=tmp_path / "i.tar", cache_dir=tmp_path, host="amd64",
                         log=lambda _m: None, attach=lambda _layer, plan: sign_plan(plan))
    results = verify_archive(tmp_path / "i.tar", keys["public"])
    assert [r.image for r in results] == [p.digest for p in record.platforms]
    with pytest.raises(RelaykitError, match="does not verify"):
        verify_archive(tmp_path / "i.tar", keys["other"])

