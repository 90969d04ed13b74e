"""SBOMs: dpkg status and copyright parsing, SPDX 2.3 and CycloneDX 1.6 documents that
validate with the formats' own tools and are identical for identical inputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from relaykit.oci.sbom import (
    DpkgPackage,
    OverlayFile,
    PackageFacts,
    Subject,
    copyright_licenses,
    cyclonedx,
    parse_status,
    spdx,
)

STATUS = b"""\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.41-12
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 .
 Package: not-a-package

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.41-5)
Version: 1:2.41-5

Package: postfix
Status: install ok installed
Architecture: amd64
Version: 3.10.5-1~deb13u1
Conffiles:
 /etc/postfix/master.cf 0123
"""

DEP5 = b"""\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: glibc

Files: *
Copyright: 1991-2025 Free Software Foundation
License: LGPL-2.1+

Files: debian/*
License: GPL-2+ or Artistic
 The text of the licence follows.
 License: not-a-field

License: LGPL-2.1+
 full text
"""


def test_status_keeps_installed_packages_with_sources() -> None:
    assert parse_status(STATUS) == [
        ("bsdutils", "1:2.41-5", "amd64", "util-linux", "2.41-5"),
        ("libc6", "2.41-12", "amd64", "glibc", "2.41-12"),
        ("postfix", "3.10.5-1~deb13u1", "amd64", "postfix", "3.10.5-1~deb13u1"),
    ]


def test_copyright_licences_machine_readable_only() -> None:
    assert copyright_licenses(DEP5) == ("LGPL-2.1+", "GPL-2+", "Artistic")
    assert copyright_licenses(b"This is Debian's prepackaged version.\nLicense: GPL\n") == ()


def test_facts_join_copyright_by_package_then_source() -> None:
    facts = PackageFacts()
    for name, data in (("var/lib/dpkg/status", STATUS), ("usr/share/doc/glibc/copyright", DEP5),
                       ("usr/share/doc/postfix/copyright", b"free text")):
        assert facts.wants(name)
        facts.take(name, data)
    assert not facts.wants("usr/share/doc/postfix/changelog.gz")
    libc = {p.name: p for p in facts.packages()}["libc6"]
    assert libc.licenses == ("LGPL-2.1+", "GPL-2+", "Artistic")
    assert libc.spdx_licenses() == ("LGPL-2.1-or-later", "GPL-2.0-or-later", "Artistic-1.0-Perl")
    assert {p.name: p for p in facts.packages()}["postfix"].spdx_licenses() is None


PACKAGES = [
    DpkgPackage("postfix", "3.10.5-1~deb13u1", "amd64", "postfix", "3.10.5-1~deb13u1",
                ("IPL-1.0", "EPL-2.0")),
    DpkgPackage("bsdutils", "1:2.41-5", "amd64", "util-linux", "2.41-5", ("GPL-2+", "odd")),
    DpkgPackage("libc6", "2.41-12", "amd64", "glibc", "2.41-12"),
]
FILES = [OverlayFile.of("/etc/postfix/main.cf", b"myhostname = a\n"),
         OverlayFile.of("/usr/lib/relaykit/entrypoint", b"#!/bin/bash\n")]
SUBJECT = Subject("container", "relaykit/roaming", "1.0.0", "sha256:" + "ab" * 32,
                  "2026-01-01T00:00:00Z", "trixie")


def test_purl_encodes_epoch_and_plus() -> None:
    assert PACKAGES[1].purl("debian-13") == \
        "pkg:deb/debian/bsdutils@1%3A2.41-5?arch=amd64&distro=debian-13"


def test_spdx_document_validates_and_lists_everything(tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    raw = spdx(SUBJECT, PACKAGES, FILES, "0.1.0")
    doc = json.loads(raw)
    by_name = {p["name"]: p for p in doc["packages"]}
    assert by_name["postfix"]["licenseDeclared"] == "IPL-1.0 AND EPL-2.0"
    assert by_name["bsdutils"]["licenseDeclared"] == "NOASSERTION"  # one name unknown
    assert by_name["bsdutils"]["versionInfo"] == "1:2.41-5"
    assert doc["creationInfo"]["created"] == "2026-01-01T00:00:00Z"
    assert {f["fileName"] for f in doc["files"]} == {
        "./etc/postfix/main.cf", "./usr/lib/relaykit/entrypoint"}
    assert FILES[0].sha256 in raw.decode()
    path = tmp_path / "sbom.spdx.json"
    try:
        path.write_bytes(raw)
        logging.disable(logging.CRITICAL)
        problems = validate_full_spdx_document(parse_file(str(path)))
    finally:
        logging.disable(logging.NOTSET)
    assert problems == []


def test_cyclonedx_document_validates_and_lists_everything() -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    raw = cyclonedx(SUBJECT, PACKAGES, FILES, "0.1.0")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw.decode()) is None
    doc = json.loads(raw)
    assert doc["metadata"]["component"]["hashes"][0]["content"] == "ab" * 32
    libs = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    assert libs["postfix"]["licenses"] == [{"license": {"id": "IPL-1.0"}},
                                           {"license": {"id": "EPL-2.0"}}]
    assert {"license": {"name": "odd"}} in libs["bsdutils"]["licenses"]
    assert "licenses" not in libs["libc6"]
    files = [c for c in doc["components"] if c["type"] == "file"]
    assert [f["name"] for f in files] == ["/etc/postfix/main.cf", "/usr/lib/relaykit/entrypoint"]


@pytest.mark.parametrize("make", [spdx, cyclonedx])
def test_identical_inputs_identical_bytes_any_order(make: object) -> None:
    a = make(SUBJECT, PACKAGES, FILES, "0.1.0")  # type: ignore[operator]
    b = make(SUBJECT, list(reversed(PACKAGES)), list(reversed(FILES)), "0.1.0")  # type: ignore[operator]
    assert a == b
    other = Subject(**{**SUBJECT.__dict__, "digest": "sha256:" + "cd" * 32})
    c = make(other, PACKAGES, FILES, "0.1.0")  # type: ignore[operator]
    assert c != a  # the identifiers derive from the image digest


def test_deb_sbom_names_the_package_and_every_file(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    from relaykit.oci.sbom import deb_documents

    from .test_oci_lock import make_deb

    deb = make_deb(tmp_path, "relaykit-demo", "1.0.0-1")
    spdx_raw, cdx_raw = deb_documents(deb, "trixie", "2026-01-01T00:00:00Z", "0.1.0", ("MIT",))
    assert deb_documents(deb, "trixie", "2026-01-01T00:00:00Z", "0.1.0", ("MIT",)) == (
        spdx_raw, cdx_raw)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx_raw.decode()) is None
    cdx = json.loads(cdx_raw)
    (pkg,) = [c for c in cdx["components"] if c["type"] == "library"]
    assert (pkg["name"], pkg["version"], pkg["licenses"]) == (
        "relaykit-demo", "1.0.0-1", [{"license": {"id": "MIT"}}])
    assert pkg["purl"] == "pkg:deb/debian/relaykit-demo@1.0.0-1?arch=all&distro=debian-13"
    assert [c["name"] for c in cdx["components"] if c["type"] == "file"] == ["/usr/share/marker"]
    doc = json.loads(spdx_raw)
    root = doc["packages"][0]
    import hashlib
    assert root["checksums"][0]["checksumValue"] == hashlib.sha256(deb.read_bytes()).hexdigest()
    assert [f["fileName"] for f in doc["files"]] == ["./usr/share/marker"]
