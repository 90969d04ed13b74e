"""relaykit.debian is the one home of Debian facts: every consumer reads it.

Adding a suite is one entry in debian.SUITES (plus its lock): these tests enumerate the
suites from there and check that the schema, the image base, the package and the test
roots all accept each one, with no second list to update.
"""

from __future__ import annotations

import pytest

from relaykit import debian
from relaykit.oci.base import BaseSpec
from relaykit.profile.load import load_schema
from relaykit.verify.harness import debroot


def test_the_schema_offers_exactly_the_supported_suites() -> None:
    suite = load_schema()["properties"]["base"]["properties"]["suite"]
    assert suite["enum"] == list(debian.SUITES)
    assert suite["default"] == debian.DEFAULT_SUITE in debian.SUITES


@pytest.mark.parametrize("name", list(debian.SUITES))
def test_every_consumer_accepts_each_suite(name: str) -> None:
    spec = BaseSpec(suite=name, architecture="amd64", packages=debian.IMAGE_PACKAGES,
                    mirror=None, epoch=debian.BASE_EPOCH)
    assert spec.suite == name
    assert debian.suite(name).unit_dir.endswith("/systemd/system")
    assert debroot.root_key(name, debian.TEST_ROOT_PACKAGES, None)  # no suite list of its own


def test_an_unknown_suite_is_refused_by_the_image_base() -> None:
    from relaykit.errors import RelaykitError

    with pytest.raises(RelaykitError, match="unsupported Debian suite"):
        BaseSpec(suite="sid", architecture="amd64", packages=debian.IMAGE_PACKAGES,
                 mirror=None, epoch=debian.BASE_EPOCH)


def test_package_sets_build_on_each_other() -> None:
    assert set(debian.RELAY_PACKAGES) <= set(debian.IMAGE_PACKAGES)
    assert set(debian.RELAY_PACKAGES) <= set(debian.TEST_ROOT_PACKAGES)


def test_no_other_source_file_names_a_suite() -> None:
    """A second list of suites would need a second edit: only debian.py names them."""
    from ..conftest import ROOT

    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "src").rglob("*.py")
                 if path.name != "debian.py"
                 and any(f'"{name}"' in path.read_text() for name in debian.SUITES)]
    assert offenders == []
