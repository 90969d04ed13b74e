"""Issue 13 for real: a Postfix test interrupted with Ctrl-C in the middle leaves no
process, namespace, veth or temp dir; a test that leaks a namespace fails its session.

Each case runs a child pytest session (this suite's conftest, its own marks) and
looks for what carries the child's marks after it ended (tests/leftovers.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..child import ROOT, Child, child, run
from ..leftovers import Marks, find

pytestmark = pytest.mark.integration

POSTFIX_TESTS = ROOT / "tests" / "integration" / "test_verify_postfix.py"


def _why_not() -> str | None:  # a skip, which fails the run under CI=true
    if os.geteuid() != 0:
        return "needs root (network namespaces, Postfix instance)"
    for tool in ("postfix", "saslauthd", "ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def _master_up(marks: Marks) -> bool:
    """A Postfix master whose cwd (its queue directory) is in the child's temp root."""
    return any(p.cmdline.endswith("master -s") for p in find(marks).processes)


def _interrupt_when(c: Child, ready: object, delay: float) -> str:
    # Own session, SIGINT to the whole group: what a terminal's Ctrl-C does.
    proc = subprocess.Popen(c.argv, env=c.env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (callable(ready) and ready()):
            assert proc.poll() is None, "child ended before Postfix was up"
            assert time.monotonic() < deadline, "Postfix master did not come up"
            time.sleep(0.2)
        alive = find(c.marks)
        assert alive.netns and alive.processes, "the check must see the running test"
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return out


@pytest.mark.parametrize("delay", [0.0, 2.0], ids=["in-setup", "in-a-test"])
def test_ctrl_c_during_the_postfix_tests_leaves_nothing(delay: float) -> None:
    if (why := _why_not()) is not None:
        pytest.skip(why)
    c = child([POSTFIX_TESTS], ci=False)
    out = _interrupt_when(c, lambda: _master_up(c.marks), delay)
    assert "KeyboardInterrupt" in out, out
    # The fixtures cleaned up, not the session's safety net:
    assert "LEFT BEHIND" not in out, out
    found = find(c.marks)
    assert not found, found.report()
    assert not c.marks.root.exists()


LEAKS_NETNS = """\
import os, subprocess

def test_leaks_a_namespace_and_a_veth():
    p = os.environ["RELAYKIT_NET_PREFIX"]
    subprocess.run(["ip", "netns", "add", p + "leak"], check=True)
    subprocess.run(["ip", "link", "add", p + "va", "type", "veth", "peer", "name", p + "vb"],
                   check=True)
"""


def test_a_leaked_namespace_and_veth_fail_the_session_and_are_removed(tmp_path: Path) -> None:
    if (why := _why_not()) is not None:
        pytest.skip(why)
    test_file = tmp_path / "test_leaks_netns.py"
    test_file.write_text(LEAKS_NETNS)
    c = child([test_file], ci=False)
    proc = run(c)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"network namespace {c.marks.prefix}leak" in proc.stdout, proc.stdout
    assert f"network link {c.marks.prefix}va" in proc.stdout, proc.stdout
    found = find(c.marks)
    assert not found, found.report()


LEAKS_CONTAINERS = """\
import os, subprocess, tempfile

def test_leaks_two_containers():
    image, p = os.environ["RK_TEST_IMAGE"], os.environ["RELAYKIT_NET_PREFIX"]
    # One found by its name, one by its bind mount from the session's temp root.
    subprocess.run(["docker", "create", "--network", "none", "--name", p + "-named", image,
                    "/none"], check=True, capture_output=True)
    subprocess.run(["docker", "create", "--network", "none", "-v",
                    tempfile.mkdtemp() + ":/mnt:ro", image, "/none"], check=True,
                   capture_output=True)
"""


@pytest.fixture
def tiny_image(docker_engine: None, tmp_path: Path) -> Iterator[str]:
    """A one-file image made here (no registry), removed afterwards."""
    tag = f"rk-ti-leaktest:{os.getpid()}"
    (tmp_path / "empty").write_text("")
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(tar), "empty"], check=True)
    subprocess.run(["docker", "import", str(tar), tag], check=True, capture_output=True)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_leaked_containers_fail_the_session_and_are_removed(tiny_image: str,
                                                            tmp_path: Path) -> None:
    test_file = tmp_path / "test_leaks_containers.py"
    test_file.write_text(LEAKS_CONTAINERS)
    c = child([test_file], ci=False)
    proc = subprocess.run(c.argv, env={**c.env, "RK_TEST_IMAGE": tiny_image}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    listed = [line for line in proc.stdout.splitlines() if line.startswith("container ")]
    assert len(listed) == 2 and f"container {c.marks.prefix}-named" in listed, proc.stdout
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"ancestor={tiny_image}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert left == []
