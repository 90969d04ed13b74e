"""The image, for real: built by relaykit, run by a Docker engine, spoken to over SMTP.

Every container runs with --network none; clients reach it through its namespace
(nsenter) or a TEST-NET-2 veth pair.  The base layer is cached across tests (and CI
runs) in RELAYKIT_CACHE_DIR.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaykit import commands
from relaykit.profile.load import load_profile
from relaykit.verify import image as oci_verify
from relaykit.verify.harness import netns, testbed

from ..conftest import is_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not is_root(), reason="needs root (network namespaces, dockerd)"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap not installed"),
]

SHIPPED = ["roaming", "satellite", "gazette-2007"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One build dir holding the image of every shipped profile."""
    out = tmp_path_factory.mktemp("build")
    mp = pytest.MonkeyPatch()
    mp.setenv("RELAYKIT_BUILD_DIR", str(out))
    for name in SHIPPED:
        commands.build(name, fmt="oci", log=lambda _msg: None)
    yield out
    mp.undo()


@pytest.fixture(scope="module")
def docker_client(docker_engine: None) -> Any:
    return oci_verify.docker_client()


def record(build: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((build / name / f"{name}.oci.json").read_text())
    return data


def test_build_twice_gives_the_same_digest(built: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp_path))
    commands.build("roaming", fmt="oci", log=lambda _msg: None)
    first, second = record(built, "roaming"), record(tmp_path, "roaming")
    assert first["digest"] == second["digest"]
    assert first["digest"].startswith("sha256:") and len(first["layers"]) == 2


def test_config_change_rebuilds_only_the_overlay(built: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "branch.yaml"
    changed.write_text("extends: roaming\nname: roaming\npostfix:\n"
                       "  myhostname: mail.branch.example\n")
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp_path / "b"))
    commands.build(str(changed), fmt="oci", log=lambda _msg: None)
    a, b = record(built, "roaming"), record(tmp_path / "b", "roaming")
    assert a["layers"][0]["digest"] == b["layers"][0]["digest"]  # base reused
    assert a["layers"][1]["digest"] != b["layers"][1]["digest"]
    assert a["digest"] != b["digest"]


def test_oci_tools_and_docker_accept_the_archive(built: Path, docker_client: Any) -> None:
    archive = built / "roaming" / "roaming.oci.tar"
    out = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}:latest"], check=True,
                         capture_output=True, text=True).stdout
    inspected = json.loads(out)
    assert inspected["Labels"]["org.opencontainers.image.title"] == "roaming"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-xf", str(archive), "-C", tmp], check=True)
        subprocess.run(["umoci", "stat", "--image", f"{tmp}:latest"], check=True,
                       capture_output=True)
    image = oci_verify.load_image(docker_client, archive)
    config = docker_client.images.get(image).attrs["Config"]
    assert set(config["ExposedPorts"]) == {"587/tcp", "465/tcp"}
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/lib/relaykit/healthcheck"]
    assert config["StopSignal"] == "SIGTERM"


def test_no_secret_or_build_host_trace_in_history_or_labels(built: Path,
                                                            docker_client: Any) -> None:
    image = oci_verify.load_image(docker_client, built / "roaming" / "roaming.oci.tar")
    history = json.dumps(docker_client.api.history(image))
    attrs = json.dumps(docker_client.images.get(image).attrs["Config"])
    hostname = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    for text in (history, attrs):
        assert "PRIVATE KEY" not in text and "password" not in text.lower()
        assert hostname not in text.split('"')


@pytest.mark.parametrize("name", SHIPPED)
def test_verify_passes(built: Path, docker_client: Any, name: str,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(built))
    ok, table = commands.verify(name, fmt="oci", log=lambda _msg: None)
    print(table)
    assert ok, table
    assert " 0 failed" in table.splitlines()[-1]


def _start(client: Any, built: Path, name: str, work: Path, env: dict[str, str]) -> Any:
    image = oci_verify.load_image(client, built / name / f"{name}.oci.tar")
    return oci_verify.run_container(client, image, work, env)


def test_satellite_relays_through_roaming_to_the_sink(built: Path, docker_client: Any,
                                                      tmp_path: Path) -> None:
    """The article end to end: laptop Postfix -> SMTP AUTH relay -> destination."""
    roaming = load_profile("roaming").profile
    realm = roaming.sasl.realm if roaming.sasl else ""
    password = testbed.new_password()
    rw, sw = tmp_path / "relay", tmp_path / "satellite"
    (rw / "secrets").mkdir(parents=True)
    (sw / "secrets").mkdir(parents=True)
    (rw / "secrets" / "sasl-users").write_text(f"laptop@{realm}:{password}\n")
    relayhost = f"[{netns.TEST_NET}.1]:587"
    (sw / "secrets" / "sasl-passwd").write_text(f"{relayhost} laptop@{realm}:{password}\n")
    relay_env = {"RELAYKIT_RELAYHOST": f"[127.0.0.1]:{oci_verify.SINK_PORT}"}
    with _start(docker_client, built, "roaming", rw, relay_env) as relay, \
            _start(docker_client, built, "satellite", sw,
                   {"RELAYKIT_RELAYHOST": relayhost}) as sat:
        oci_verify.wait_ready(relay, [587, 465])
        oci_verify.wait_ready(sat, [25])
        with netns.joined(relay.pid, sat.pid), \
                testbed.sink(relay.nsenter, rw / "sink",
                             f"127.0.0.1:{oci_verify.SINK_PORT}") as maildir:
            result = oci_verify.submit_and_expect(sat.nsenter, 25, maildir,
                                                  load_profile("satellite").profile)
        relay_logs = relay.logs()
    assert result.ok, result.detail + "\n" + relay_logs[-2000:]
    assert f"sasl_username=laptop@{realm}" in relay_logs
    assert password not in relay_logs


def test_users_file_is_the_truth_at_every_start(built: Path, docker_client: Any,
                                                tmp_path: Path) -> None:
    """A user removed from the secret cannot log in after a restart."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    users = secrets_dir / "sasl-users"
    users.write_text("# two users\nkeep@example.org:pw-keep-1\n\ngone@example.org:pw-gone-1\n")
    login = ("import smtplib,ssl,sys\nc=ssl._create_unverified_context()\n"
             "s=smtplib.SMTP_SSL('127.0.0.1',465,context=c,timeout=20)\n"
             "try:\n print(s.login(sys.argv[1],sys.argv[2])[0])\n"
             "except smtplib.SMTPAuthenticationError as e:\n print(e.smtp_code)\n")
    with _start(docker_client, built, "roaming", tmp_path, {}) as r:
        oci_verify.wait_ready(r, [465])

        def code(user: str, pw: str) -> str:
            return subprocess.run([*r.nsenter, "python3", "-c", login, user, pw],
                                  capture_output=True, text=True).stdout.strip()

        assert code("gone", "pw-gone-1") == "235"
        users.write_text("keep@example.org:pw-keep-1\n")
        r.container.restart(timeout=20)
        r.container.reload()
        r.pid = int(r.container.attrs["State"]["Pid"])
        oci_verify.wait_ready(r, [465])
        assert code("keep", "pw-keep-1") == "235"
        assert code("gone", "pw-gone-1") == "535"


@pytest.mark.parametrize("users,env,needle", [
    ("ok@example.org:pw\nno-colon-here\n", {}, "line 2: expected user[@realm]:password"),
    ("ok@example.org:pw\n", {"RELAYKIT_MYHOSTNAME": "bad_host!"}, "not a host name"),
    ("ok@example.org:pw\n", {"RELAYKIT_RELAYHOST": "[a b]:x"}, "is not a relayhost"),
])
def test_bad_runtime_input_stops_with_a_clear_error(built: Path, docker_client: Any,
                                                    tmp_path: Path, users: str,
                                                    env: dict[str, str], needle: str) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "sasl-users").write_text(users)
    with _start(docker_client, built, "roaming", tmp_path, env) as r:
        status = r.container.wait(timeout=60)
        logs = r.logs()
    assert status["StatusCode"] != 0
    assert needle in logs
    assert "pw" not in logs.replace("pw-", "").split("relaykit: error:")[-1]


@pytest.mark.parametrize("delay", [0.0, 1.5, 3.0])
def test_sigterm_is_prompt_at_any_moment(built: Path, docker_client: Any, tmp_path: Path,
                                         delay: float) -> None:
    """Also while the entrypoint is still configuring or Postfix is still starting."""
    import time

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "sasl-users").write_text("u@example.org:pw-1\n")
    with _start(docker_client, built, "roaming", tmp_path, {}) as r:
        time.sleep(delay)
        start = time.monotonic()
        r.container.stop(timeout=20)
        took = time.monotonic() - start
        r.container.reload()
        code = r.container.attrs["State"]["ExitCode"]
    assert took < 10, f"stop took {took:.1f} s (exit {code})"
    assert code in (0, 143)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_images_own_postfix_accepts_its_config(built: Path, docker_client: Any,
                                                   name: str) -> None:
    """The suite's Postfix (3.10 on trixie), not only the host's, reads the rendered
    main.cf/master.cf without a warning."""
    image = oci_verify.load_image(docker_client, built / name / f"{name}.oci.tar")
    for argv in (["postconf", "-n"], ["postconf", "-M"], ["postconf", "-P"]):
        out = docker_client.containers.run(image, argv[1:], entrypoint=argv[0],
                                           network_mode="none", remove=True,
                                           stdout=True, stderr=True)
        text = bytes(out).decode()
        assert "warning" not in text, text
        assert text.strip()
