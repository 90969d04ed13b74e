"""Network names carry one prefix, so whoever made them can find what is left; the
prefix is checked so that every name still fits Linux's 15-byte interface names."""

from __future__ import annotations

import pytest

from relaykit.verify.harness import netns


def test_default_prefix_is_relaykits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netns.PREFIX_ENV, raising=False)
    assert netns.name_prefix() == "rk"


def test_the_session_prefix_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netns.PREFIX_ENV, "rkt1a2")
    assert netns.name_prefix() == "rkt1a2"


# "rkt123456": 9 bytes + role letter + 6 hex digits = 16, one more than IFNAMSIZ allows.
@pytest.mark.parametrize("bad", ["", "rk-x", "RK", "1rk", "rkt123456", "rk x", "rk/x"])
def test_a_prefix_that_would_not_make_a_valid_name_is_refused(
        bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netns.PREFIX_ENV, bad)
    with pytest.raises(ValueError, match=netns.PREFIX_ENV):
        netns.name_prefix()

