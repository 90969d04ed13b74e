"""Publishing to a real registry: Debian's docker-registry on 127.0.0.1, pushed with
skopeo, pulled back by digest."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaykit import commands

from ..conftest import is_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not is_root(), reason="needs root"),
    pytest.mark.skipif(shutil.which("docker-registry") is None or shutil.which("skopeo") is None,
                       reason="docker-registry and skopeo needed"),
]

CONFIG = """\
version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root}}}
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(CONFIG.format(root=tmp_path / "storage", port=port))
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_publish_pushes_every_tag_with_the_built_digest(registry: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp_path / "build"))
    commands.build("roaming", fmt="oci", log=lambda _m: None)
    built = json.loads((tmp_path / "build/roaming/roaming.oci.json").read_text())["digest"]
    pushed = commands.publish("roaming", registry=registry, tls_verify=False,
                              log=lambda _m: None)
    assert pushed == [f"docker://{registry}/relaykit/roaming:{t}" for t in ("latest", "1.0.0")]
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                          f"docker://{registry}/relaykit/roaming@{built}"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["Digest"] == built
    pulled = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    f"docker://{registry}/relaykit/roaming:1.0.0", f"oci:{pulled}:x"],
                   check=True)
    assert json.loads((pulled / "index.json").read_text())["manifests"][0]["digest"] == built


def test_publish_without_a_build_says_what_to_run(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp_path / "empty"))
    from relaykit.errors import RelaykitError

    with pytest.raises(RelaykitError) as info:
        commands.publish("roaming", registry="127.0.0.1:1", log=lambda _m: None)
    assert "invoke build --profile roaming" in info.value.hint
