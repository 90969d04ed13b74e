"""Software bills of materials: SPDX 2.3 JSON and CycloneDX 1.6 JSON, written offline.

The package list comes from the image's own dpkg status (what scanners read), licences
from each package's machine-readable copyright file, and relaykit's overlay files are
listed with their digests.  Nothing depends on the clock or on randomness: the time
stamp is the build epoch and every identifier derives from the image digest, so two
identical builds give identical SBOM bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from relaykit import debian
from relaykit.errors import RelaykitError

SPDX_MEDIA_TYPE = "application/spdx+json"
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
TOOL = "relaykit"

# Debian copyright-format short names -> SPDX identifiers (the ones the relay base uses;
# an unknown name stays a plain name in CycloneDX and NOASSERTION in SPDX).
_SPDX_IDS = {
    "gpl-1+": "GPL-1.0-or-later", "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "lgpl-2": "LGPL-2.0-only",
    "lgpl-2+": "LGPL-2.0-or-later", "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later",
    "gfdl-1.3+": "GFDL-1.3-or-later", "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause", "expat": "MIT",
    "mit": "MIT", "isc": "ISC", "apache-2.0": "Apache-2.0", "zlib": "Zlib",
    "mpl-2.0": "MPL-2.0", "artistic": "Artistic-1.0-Perl", "ipl-1.0": "IPL-1.0",
    "epl-2.0": "EPL-2.0", "openssl": "OpenSSL", "ssleay": "SSLeay", "bsl-1.0": "BSL-1.0",
    "cc0-1.0": "CC0-1.0", "x11": "X11", "mpl-1.1": "MPL-1.1", "sleepycat": "Sleepycat",
    "gpl-2.0+": "GPL-2.0-or-later", "gpl-3.0+": "GPL-3.0-or-later", "curl": "curl",
    "rsa-md": "RSA-MD", "unicode-dfs-2016": "Unicode-DFS-2016",
}
_LICENSE_LINE = re.compile(r"^License:[ \t]*(\S.*?)\s*$", re.MULTILINE)
_SPLIT = re.compile(r"\s+(?:or|and)\s+|\s*,\s*|\s*\|\s*", re.IGNORECASE)
_DEP5 = b"copyright-format/1.0"


@dataclass(frozen=True, order=True)
class DpkgPackage:
    name: str
    version: str
    architecture: str
    source: str  # source package name (the package's own when dpkg records none)
    source_version: str
    licenses: tuple[str, ...] = ()  # short names from the copyright file, in file order

    def purl(self, distro: str) -> str:
        return (f"pkg:deb/debian/{quote(self.name, safe='')}@{quote(self.version, safe='')}"
                f"?arch={self.architecture}&distro={distro}")

    def spdx_licenses(self) -> tuple[str, ...] | None:
        """The licences as SPDX ids, or None when any is unknown (or none is given)."""
        ids = [_SPDX_IDS.get(name.lower()) for name in self.licenses]
        if not ids or None in ids:
            return None
        return tuple(dict.fromkeys(i for i in ids if i))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "architecture": self.architecture,
                "source": self.source, "source_version": self.source_version,
                "licenses": list(self.licenses)}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> DpkgPackage:
        licenses = doc.get("licenses", [])
        assert isinstance(licenses, list)
        return cls(str(doc["name"]), str(doc["version"]), str(doc["architecture"]),
                   str(doc["source"]), str(doc["source_version"]), tuple(map(str, licenses)))


@dataclass(frozen=True)
class OverlayFile:
    path: str  # absolute path in the image
    sha256: str
    sha1: str  # SPDX 2.3 requires a SHA1 for every file

    @classmethod
    def of(cls, path: str, data: bytes) -> OverlayFile:
        return cls(path, hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest())


@dataclass(frozen=True)
class Subject:
    """What the SBOM describes: an image (by manifest digest) or a package file."""

    kind: str  # "container" (image) or "deb"
    name: str
    version: str
    digest: str  # "sha256:..." of the image manifest or of the .deb file
    created: str  # RFC 3339, from the build epoch
    suite: str


def parse_status(data: bytes) -> list[tuple[str, str, str, str, str]]:
    """(name, version, architecture, source, source_version) of each installed package."""
    found = []
    for para in data.decode("utf-8", "replace").split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation lines (descriptions, conffiles)
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if not fields.get("Package") or not fields.get("Status", "").endswith(" installed"):
            continue
        name, version = fields["Package"], fields.get("Version", "")
        source, source_version = name, version
        if src := fields.get("Source"):  # "name" or "name (version)"
            source, _, rest = src.partition(" ")
            source_version = rest.strip("() ") or version
        found.append((name, version, fields.get("Architecture", ""), source, source_version))
    return sorted(found)


def copyright_licenses(data: bytes) -> tuple[str, ...]:
    """Licence short names of a machine-readable (DEP-5) copyright file; () otherwise."""
    if _DEP5 not in data[:400]:
        return ()
    names: dict[str, None] = {}
    for expression in _LICENSE_LINE.findall(data.decode("utf-8", "replace")):
        for name in _SPLIT.split(expression):
            name = name.strip(" ()")
            if name and " " not in name:
                names[name] = None
    return tuple(names)


class PackageFacts:
    """Collects the dpkg status and copyright files while the base streams past."""

    COPYRIGHT = re.compile(r"^usr/share/doc/([^/]+)/copyright$")

    def __init__(self) -> None:
        self.status = b""
        self.copyright: dict[str, bytes] = {}

    def wants(self, name: str) -> bool:
        return name == "var/lib/dpkg/status" or bool(self.COPYRIGHT.match(name))

    def take(self, name: str, data: bytes) -> None:
        if name == "var/lib/dpkg/status":
            self.status = data
        elif m := self.COPYRIGHT.match(name):
            self.copyright[m.group(1)] = data

    def packages(self) -> tuple[DpkgPackage, ...]:
        out = []
        for name, version, arch, source, source_version in parse_status(self.status):
            # Multi-arch: same packages share doc dirs with the plain name.
            text = self.copyright.get(name) or self.copyright.get(source, b"")
            out.append(DpkgPackage(name, version, arch, source, source_version,
                                   copyright_licenses(text)))
        return tuple(out)


# --- documents -----------------------------------------------------------------------

def _distro(suite: str) -> str:
    return f"debian-{debian.suite(suite).version}"


def _spdx_id(kind: str, text: str) -> str:
    return f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.-]", "-", text)


def _canonical(doc: object) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def spdx(subject: Subject, packages: Iterable[DpkgPackage], files: Iterable[OverlayFile],
         tool_version: str) -> bytes:
    """An SPDX 2.3 JSON document describing subject, its packages and overlay files."""
    distro = _distro(subject.suite)
    hex_digest = subject.digest.removeprefix("sha256:")
    root_id = _spdx_id("Subject", subject.name)
    root: dict[str, object] = {
        "SPDXID": root_id, "name": subject.name, "versionInfo": subject.version,
        "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION", "supplier": "Organization: relaykit",
        "primaryPackagePurpose": "CONTAINER" if subject.kind == "container" else "INSTALL",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex_digest}],
    }
    doc_packages = [root]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": root_id}]
    for p in sorted(packages):
        pid = _spdx_id("Package-deb", f"{p.name}-{p.architecture}")
        ids = p.spdx_licenses()
        doc_packages.append({
            "SPDXID": pid, "name": p.name, "versionInfo": p.version,
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": " AND ".join(ids) if ids else "NOASSERTION",
            "copyrightText": "NOASSERTION", "supplier": "Organization: Debian",
            "sourceInfo": f"built from Debian source package {p.source} {p.source_version}",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": p.purl(distro)}],
        })
        relationships.append({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": pid})
    doc_files = []
    overlay = sorted(files, key=lambda f: f.path)
    if overlay:
        # relaykit's own files: a package of their own, analysed file by file (SPDX lets
        # only a package with filesAnalyzed contain files).
        overlay_id = _spdx_id("Package-overlay", subject.name)
        file_ids = [_spdx_id("File", f.path.strip("/")) for f in overlay]
        doc_packages.append({
            "SPDXID": overlay_id, "name": f"{subject.name}-overlay",
            "versionInfo": subject.version, "downloadLocation": "NOASSERTION",
            "filesAnalyzed": True, "hasFiles": file_ids,
            "packageVerificationCode": {"packageVerificationCodeValue": _verification(overlay)},
            "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
            "licenseInfoFromFiles": ["NOASSERTION"], "copyrightText": "NOASSERTION",
            "supplier": "Organization: relaykit",
            "comment": "configuration and scripts relaykit adds on top of the Debian base",
        })
        relationships.append({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": overlay_id})
        for f, fid in zip(overlay, file_ids, strict=True):
            doc_files.append({
                "SPDXID": fid, "fileName": "." + f.path,
                "checksums": [{"algorithm": "SHA1", "checksumValue": f.sha1},
                              {"algorithm": "SHA256", "checksumValue": f.sha256}],
                "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION",
            })
            relationships.append({"spdxElementId": overlay_id, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": fid})
    doc = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{subject.name}-{subject.version}",
        # Unique per subject and stable across identical builds.
        "documentNamespace": f"urn:uuid:{_uuid(subject, 'spdx')}",
        "creationInfo": {"created": subject.created,
                         "creators": [f"Tool: {TOOL}-{tool_version}"]},
        "packages": doc_packages, "files": doc_files, "relationships": relationships,
    }
    return _canonical(doc)


def _verification(files: list[OverlayFile]) -> str:
    """SPDX package verification code: SHA1 over the sorted SHA1s of its files."""
    return hashlib.sha1("".join(sorted(f.sha1 for f in files)).encode()).hexdigest()


def _uuid(subject: Subject, what: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"relaykit:{what}:{subject.name}:{subject.digest}")


def _cdx_licenses(p: DpkgPackage) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in p.licenses:
        spdx_id = _SPDX_IDS.get(name.lower())
        out.append({"license": {"id": spdx_id} if spdx_id else {"name": name}})
    return out


def cyclonedx(subject: Subject, packages: Iterable[DpkgPackage], files: Iterable[OverlayFile],
              tool_version: str) -> bytes:
    """A CycloneDX 1.6 JSON BOM describing subject, its packages and overlay files."""
    distro = _distro(subject.suite)
    root_ref = f"{subject.kind}:{subject.name}@{subject.digest}"
    components: list[dict[str, object]] = []
    for p in sorted(packages):
        component: dict[str, object] = {
            "type": "library", "bom-ref": p.purl(distro), "name": p.name,
            "version": p.version, "purl": p.purl(distro),
            "supplier": {"name": "Debian"},
            "properties": [{"name": "relaykit:deb:source",
                            "value": f"{p.source} {p.source_version}"},
                           {"name": "relaykit:deb:architecture", "value": p.architecture}],
        }
        if licenses := _cdx_licenses(p):
            component["licenses"] = licenses
        components.append(component)
    for f in sorted(files, key=lambda f: f.path):
        components.append({
            "type": "file", "bom-ref": f"file:{f.path}", "name": f.path,
            "hashes": [{"alg": "SHA-1", "content": f.sha1},
                       {"alg": "SHA-256", "content": f.sha256}],
        })
    doc = {
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{_uuid(subject, 'cyclonedx')}", "version": 1,
        "metadata": {
            "timestamp": subject.created,
            "tools": {"components": [{"type": "application", "name": TOOL,
                                      "version": tool_version}]},
            "component": {
                "type": "container" if subject.kind == "container" else "application",
                "bom-ref": root_ref, "name": subject.name, "version": subject.version,
                "hashes": [{"alg": "SHA-256",
                            "content": subject.digest.removeprefix("sha256:")}],
            },
        },
        "components": components,
        "dependencies": [{"ref": root_ref,
                          "dependsOn": [str(c["bom-ref"]) for c in components]}],
    }
    return _canonical(doc)


# --- a .deb ---------------------------------------------------------------------------

def _deb_control(deb: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True,
                         check=True).stdout
    fields: dict[str, str] = {}
    for line in out.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _deb_files(deb: Path) -> list[OverlayFile]:
    """Every regular file of the package's data, with its digests."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    files = []
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for info in tar:
            if info.isreg():
                data = tar.extractfile(info)
                assert data is not None
                files.append(OverlayFile.of("/" + info.name.removeprefix("./"), data.read()))
    if proc.wait() != 0:
        raise RelaykitError(f"{deb}: dpkg-deb could not read the package")
    return files


def deb_documents(deb: Path, suite: str, created: str, tool_version: str,
                  licenses: tuple[str, ...]) -> tuple[bytes, bytes]:
    """SPDX and CycloneDX documents of a built .deb: the package itself (name, version,
    purl, licence) and every file it installs, with digests; its Depends stay in the
    package's own control data."""
    fields = _deb_control(deb)
    name, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
    package = DpkgPackage(name, version, arch, fields.get("Source", name), version, licenses)
    digest = "sha256:" + hashlib.sha256(deb.read_bytes()).hexdigest()
    subject = Subject("deb", deb.name, version, digest, created, suite)
    files = _deb_files(deb)
    return (spdx(subject, [package], files, tool_version),
            cyclonedx(subject, [package], files, tool_version))
