"""Throwaway gpg signing keys for the tests of the signed apt repository (unit and
integration): one home directory per key, and the agent gpg starts there stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path


def signing_key(home: Path, uid: str) -> str:
    """A new ed25519 signing key (no passphrase, expires in a day) in `home`: its
    fingerprint."""
    home.mkdir(mode=0o700, parents=True)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--passphrase", "",
                    "--quick-gen-key", uid, "ed25519", "sign", "1d"],
                   check=True, capture_output=True)
    out = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--with-colons",
                          "--list-secret-keys"], check=True, capture_output=True, text=True)
    return next(line.split(":")[9] for line in out.stdout.splitlines()
                if line.startswith("fpr:"))


def stop_agent(home: Path) -> None:
    """gpg starts an agent per home directory; it would outlive the test."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                   capture_output=True, check=False)
