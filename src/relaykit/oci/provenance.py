"""Signed provenance: an in-toto statement (SLSA provenance v1) in a DSSE envelope.

The statement names the image by its manifest digest and records what it was built
from (git revision, profile, package lock, base layer).  It is signed with the user's
ed25519 key (RELAYKIT_SIGNING_KEY: a PEM private key file; the key never enters the
image, only the signature does) and stored in the archive as a referrer of the image.
Ed25519 signatures are deterministic: identical builds give identical envelopes.

verify_archive checks, with the user's public key, that every blob of the image is
intact (its bytes hash to its name), that the signature is good and that the statement
names this very image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaykit.errors import RelaykitError

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:relaykit:build-type:oci-image:v1"
KEY_ENV = "RELAYKIT_SIGNING_KEY"


@dataclass(frozen=True)
class Material:
    name: str  # what it is, e.g. "locks/trixie-amd64.lock"
    digest: dict[str, str]  # algorithm -> hex, e.g. {"sha256": ...} or {"gitCommit": ...}
    uri: str = ""

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"name": self.name, "digest": dict(self.digest)}
        if self.uri:
            doc["uri"] = self.uri
        return doc


def statement(*, name: str, digest: str, builder: str, parameters: dict[str, object],
              internal: dict[str, object], materials: list[Material]) -> dict[str, object]:
    """An in-toto v1 statement with a SLSA provenance v1 predicate about one image."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE, "externalParameters": parameters,
                "internalParameters": internal,
                "resolvedDependencies": [m.to_json() for m in materials],
            },
            "runDetails": {"builder": {"id": builder}},
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _key_id(public: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise RelaykitError(f"{path}: cannot read the signing key ({exc.strerror})",
                            hint=f"set {KEY_ENV} to a readable PEM file") from None
    except (ValueError, TypeError):
        # The message of a parse error could quote key material: say only what is wrong.
        raise RelaykitError(f"{path}: not an unencrypted PEM private key",
                            hint="make one: openssl genpkey -algorithm ed25519 -out KEY") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RelaykitError(f"{path}: the signing key is not ed25519",
                            hint="make one: openssl genpkey -algorithm ed25519 -out KEY")
    return key


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise RelaykitError(f"{path}: cannot read the public key ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise RelaykitError(f"{path}: not a PEM public key",
                            hint="derive it: openssl pkey -in KEY -pubout -out KEY.pub") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RelaykitError(f"{path}: the public key is not ed25519")
    return key


def signing_key_from_env() -> Path | None:
    value = os.environ.get(KEY_ENV)
    return Path(value) if value else None


def sign(doc: dict[str, object], key: Any) -> bytes:
    """The DSSE envelope of a statement, as canonical JSON bytes."""
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": _key_id(key.public_key()),
                        "sig": base64.b64encode(signature).decode()}],
    }
    return (json.dumps(envelope, sort_keys=True, indent=1) + "\n").encode()


def open_envelope(data: bytes, public: Any) -> dict[str, Any]:
    """The statement inside a DSSE envelope, if one of its signatures is public's."""
    from cryptography.exceptions import InvalidSignature

    try:
        envelope = json.loads(data)
        payload = base64.b64decode(envelope["payload"], validate=True)
        kind = envelope["payloadType"]
        signatures = [base64.b64decode(s["sig"], validate=True)
                      for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError):
        raise RelaykitError("the provenance envelope is malformed") from None
    if kind != PAYLOAD_TYPE:
        raise RelaykitError(f"the provenance envelope carries {kind!r}, not an in-toto statement")
    for sig in signatures:
        try:
            public.verify(sig, pae(kind, payload))
        except InvalidSignature:
            continue
        doc: dict[str, Any] = json.loads(payload)
        return doc
    raise RelaykitError("the provenance signature does not verify with this public key",
                        hint="the image was signed with another key, or the provenance "
                        "was altered")


# --- checking an archive ---------------------------------------------------------------

@dataclass(frozen=True)
class Verified:
    image: str  # manifest digest of the verified image
    name: str  # subject name in the statement
    builder: str
    materials: tuple[str, ...]
    blobs: int  # blobs whose digests were checked


def _blobs(archive: Path) -> tuple[dict[str, bytes], dict[str, str], bytes]:
    """Small blobs by digest (manifests, configs, envelopes), digest of every blob as
    computed from its bytes, and index.json."""
    small: dict[str, bytes] = {}
    computed: dict[str, str] = {}
    index = b""
    try:
        with tarfile.open(archive, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                stream = tar.extractfile(info)
                assert stream is not None
                if info.name == "index.json":
                    index = stream.read()
                    continue
                if not info.name.startswith("blobs/sha256/"):
                    continue
                name = "sha256:" + info.name.removeprefix("blobs/sha256/")
                digest = hashlib.sha256()
                keep = info.size <= 1 << 20
                chunks = []
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    if keep:
                        chunks.append(chunk)
                computed[name] = "sha256:" + digest.hexdigest()
                if keep:
                    small[name] = b"".join(chunks)
    except (OSError, tarfile.TarError) as exc:
        raise RelaykitError(f"{archive}: not a readable image archive ({exc})") from None
    if not index:
        raise RelaykitError(f"{archive}: no index.json: not an OCI image archive")
    return small, computed, index


def _small(small: dict[str, bytes], digest: str) -> bytes:
    try:
        return small[digest]
    except KeyError:
        raise RelaykitError(f"document {digest[:19]} is missing or too large") from None


def _tampered(computed: dict[str, str]) -> list[str]:
    return sorted(name for name, actual in computed.items() if name != actual)


def _manifest_blobs(small: dict[str, bytes], digest: str) -> list[str]:
    doc = json.loads(_small(small, digest))
    if doc.get("mediaType") == "application/vnd.oci.image.index.v1+json":
        return [digest, *(b for m in doc["manifests"] for b in _manifest_blobs(small, m["digest"]))]
    return [digest, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def verify_archive(archive: Path, public_key: Path) -> list[Verified]:
    """Check every image in the archive against its signed provenance."""
    public = load_public_key(public_key)
    small, computed, index_raw = _blobs(archive)
    if bad := _tampered(computed):
        raise RelaykitError(f"{archive}: blob(s) do not match their digest: "
                            + ", ".join(b[:19] for b in bad),
                            hint="the archive was modified after the build")
    index = json.loads(index_raw)
    referrers = [m for m in index["manifests"] if m.get("artifactType") == DSSE_MEDIA_TYPE]
    images = [m for m in index["manifests"] if "artifactType" not in m]
    subjects = []
    for top in images:
        for digest in _manifest_blobs(small, top["digest"]):
            if digest not in computed:
                raise RelaykitError(f"{archive}: blob {digest[:19]} is missing")
        doc = json.loads(_small(small, top["digest"]))
        if doc.get("mediaType") == "application/vnd.oci.image.index.v1+json":
            subjects += [m["digest"] for m in doc["manifests"]]
        else:
            subjects.append(top["digest"])
    if not referrers:
        raise RelaykitError(f"{archive}: no signed provenance attached",
                            hint=f"build with {KEY_ENV}=/path/to/ed25519-key.pem")
    results = []
    for subject in subjects:
        results.append(_verify_subject(archive, small, referrers, subject, public,
                                       len(computed)))
    return results


def _verify_subject(archive: Path, small: dict[str, bytes], referrers: list[dict[str, Any]],
                    subject: str, public: Any, blobs: int) -> Verified:
    for ref in referrers:
        manifest = json.loads(_small(small, ref["digest"]))
        if manifest.get("subject", {}).get("digest") != subject:
            continue
        doc = open_envelope(_small(small, manifest["layers"][0]["digest"]), public)
        if doc.get("_type") != STATEMENT_TYPE or doc.get("predicateType") != PREDICATE_TYPE:
            raise RelaykitError("the signed statement is not SLSA provenance")
        named = [s for s in doc.get("subject", [])
                 if "sha256:" + s.get("digest", {}).get("sha256", "") == subject]
        if not named:
            raise RelaykitError(f"the signed provenance does not name image {subject[:19]}",
                                hint="the image was rebuilt or altered after signing")
        build = doc["predicate"]["buildDefinition"]
        return Verified(subject, named[0]["name"], doc["predicate"]["runDetails"]["builder"]["id"],
                        tuple(m["name"] for m in build["resolvedDependencies"]), blobs)
    raise RelaykitError(f"{archive}: image {subject[:19]} has no signed provenance",
                        hint="the image was altered after the build, or built unsigned")
