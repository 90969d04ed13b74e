"""Benchmark: relaykit's daemonless image build against what users do today.

Baseline: a Dockerfile FROM a Debian slim base made locally (mmdebstrap minbase,
`docker import`), `apt-get install postfix sasl2-bin libsasl2-modules ...`, COPY of the
same rendered files, `docker build` (cold and warm), then `docker save` for an archive.

Reported, not asserted: medians of several runs and ratios, written to
bench/results/<date>.md and .json.  Needs root, mmdebstrap, dockerd and Debian package
downloads (apt inside `docker build --network host`).  The benchmark starts its own
Docker engine (own data root and socket, stopped at the end): it removes images and
prunes, which must never touch the shared engine.

    ./bootstrap python bench/bench_image.py [--runs 5] [--cold-runs 2] [--suite trixie]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import contextlib  # noqa: E402
from collections.abc import Iterator  # noqa: E402

PROFILE = "roaming"
PACKAGES = "postfix sasl2-bin libsasl2-modules ca-certificates openssl"
SLIM_TAG = "relaykit-bench/debian-slim:{suite}"
DOCKERFILE_TAG = "relaykit-bench/dockerfile-roaming:latest"
DOCKERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/*
COPY rootfs/ /
ENTRYPOINT ["/usr/lib/relaykit/entrypoint"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/usr/lib/relaykit/healthcheck"]
"""


@dataclass
class Timed:
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT,
        stdin: int | None = None, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float]:
    """Run, return (wall seconds, peak RSS MB of the child tree's largest process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=stdin,
                            stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{stderr[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024


def invoke_build(profile: str, build: Path, cache: Path,
                 refresh: bool = False) -> tuple[float, float]:
    argv = [sys.executable, "-m", "invoke", "build", "--profile", profile, "--format", "oci",
            "--cache-dir", str(cache)]
    return run(argv + (["--refresh"] if refresh else []), env={"RELAYKIT_BUILD_DIR": str(build)})


def variant(work: Path, i: int) -> Path:
    """A config-only change: same base, a host name never built before (so nothing,
    not even the schema-validation cache, has seen this document)."""
    path = work / f"variant-{i}.yaml"
    path.write_text(f"extends: {PROFILE}\nname: {PROFILE}\npostfix:\n"
                    f"  myhostname: relay{i}-{secrets.token_hex(4)}.example.org\n")
    return path


def layer_sizes(archive: Path) -> tuple[int, int]:
    """(compressed, uncompressed) bytes of the image's layers, read from the archive."""
    import tarfile

    compressed = raw = 0
    with tarfile.open(archive) as outer:
        for member in outer:
            if not member.name.startswith("blobs/sha256/") or member.size < 4096:
                continue
            f = outer.extractfile(member)
            assert f is not None
            head = f.read(2)
            if head != b"\x1f\x8b":
                continue
            compressed += member.size
            f = outer.extractfile(member)
            assert f is not None
            with gzip.GzipFile(fileobj=f) as gz:
                while chunk := gz.read(1 << 20):
                    raw += len(chunk)
    return compressed, raw


def docker(*args: str) -> list[str]:
    return ["docker", *args]


def forget_relaykit_images() -> None:
    """docker load must unpack every layer: drop all relaykit images (they share the
    base layer) and the stopped containers that pin them."""
    ids = subprocess.run(docker("ps", "-aq", "--filter", "ancestor=relaykit/roaming:latest"),
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(docker("rm", "-f", *ids), capture_output=True)
    refs = subprocess.run(docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                                 "relaykit/*"), capture_output=True, text=True).stdout.split()
    if refs:
        subprocess.run(docker("rmi", "-f", *refs), capture_output=True)
    # Untagged leftovers of earlier loads share the base layer too.
    subprocess.run(docker("image", "prune", "-f"), capture_output=True)


def in_process_rebuilds(work: Path, build: Path, cache: Path, runs: int) -> Timed:
    """The same config-only rebuild, called as a library from a warm Python process
    (what a CI job scripting relaykit pays): no interpreter, invoke or import start-up."""
    os.environ["RELAYKIT_BUILD_DIR"] = str(build)
    from relaykit import commands

    commands.build(str(variant(work, 100)), fmt="oci", cache_dir=cache, log=lambda _m: None)
    timed = Timed()
    for i in range(runs):
        start = time.perf_counter()
        commands.build(str(variant(work, 200 + i)), fmt="oci", cache_dir=cache,
                       log=lambda _m: None)
        timed.seconds.append(time.perf_counter() - start)
    return timed


@contextlib.contextmanager
def private_engine(work: Path) -> Iterator[None]:
    """A Docker engine of our own (loopback-only flags), DOCKER_HOST pointing at it."""
    root = work / "engine"
    root.mkdir()
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge=none",
         "--iptables=false", "--ip-masq=false", "--ip6tables=false"],
        stdout=log, stderr=log, start_new_session=True)
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"unix://{sock}"
    try:
        for _ in range(120):
            if subprocess.run(docker("info"), capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"private dockerd did not start, see {root / 'dockerd.log'}")
        yield
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        # dockerd leaves its network namespace mounted under the exec root.
        with open("/proc/self/mounts") as mounts:
            ours = [line.split()[1] for line in mounts if line.split()[1].startswith(str(root))]
        for mount in reversed(ours):
            subprocess.run(["umount", "-l", mount], capture_output=True)


def start_times(image: str, work: Path, runs: int) -> tuple[Timed, Timed]:
    """docker run -> port 587 answers, and -> healthcheck healthy (the image's own test,
    polled every 2 s as verify does), with the users and TLS pair verify mounts."""
    from relaykit.profile.load import load_profile
    from relaykit.verify.image import _relay_secrets, docker_client, run_container, wait_ready

    p = load_profile(PROFILE).profile
    client = docker_client()
    ports = [lis.port for lis in p.listeners]
    to_port, to_healthy = Timed(), Timed()
    for i in range(runs):
        box = work / f"start-{secrets.token_hex(3)}-{i}"
        _relay_secrets(p, box / "secrets", secrets.token_urlsafe(12))
        start = time.perf_counter()
        with run_container(client, image, box, {}) as r:
            wait_ready(r, ports, timeout=120)
            to_port.seconds.append(time.perf_counter() - start)
            while r.container.attrs["State"].get("Health", {}).get("Status") != "healthy":
                if time.perf_counter() - start > 120:
                    raise SystemExit(f"{image} not healthy in 120 s:\n{r.logs()[-2000:]}")
                time.sleep(0.1)
                r.container.reload()
            to_healthy.seconds.append(time.perf_counter() - start)
    return to_port, to_healthy


def previous_result(today: str) -> dict[str, object] | None:
    """The latest earlier run in bench/results, for the before/after line."""
    runs = sorted(p for p in (ROOT / "bench" / "results").glob("image-*.json")
                  if p.stem != f"image-{today}")
    if not runs:
        return None
    doc: dict[str, object] = json.loads(runs[-1].read_text())
    return doc


def make_slim_base(suite: str, work: Path) -> float:
    tar = work / "slim.tar"
    t1, _ = run(["mmdebstrap", "--variant=minbase", "--quiet",
                 "--dpkgopt=path-exclude=/usr/share/doc/*",
                 "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                 "--dpkgopt=path-exclude=/usr/share/man/*",
                 "--dpkgopt=path-exclude=/usr/share/locale/*", suite, str(tar)])
    with tar.open("rb") as f:
        t2, _ = run(docker("import", "-", SLIM_TAG.format(suite=suite)), stdin=f.fileno())
    tar.unlink()
    return t1 + t2


def dockerfile_context(work: Path, build: Path, suite: str) -> Path:
    ctx = work / "ctx"
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir()
    shutil.copytree(build / PROFILE / "rootfs", ctx / "rootfs", symlinks=True)
    shutil.copytree(ROOT / "rootfs", ctx / "rootfs", symlinks=True, dirs_exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=SLIM_TAG.format(suite=suite),
                                                      packages=PACKAGES))
    return ctx


def docker_build_and_save(ctx: Path, out: Path, no_cache: bool) -> tuple[float, float]:
    argv = docker("build", "--network", "host", "-q", "-t", DOCKERFILE_TAG, str(ctx))
    if no_cache:
        argv.insert(2, "--no-cache")
    t_build, _ = run(argv, env={"DOCKER_BUILDKIT": "0"})
    t_save, _ = run(docker("save", "-o", str(out), DOCKERFILE_TAG))
    return t_build, t_save


def gzip_size(path: Path) -> int:
    with tempfile.TemporaryFile() as tmp:
        with path.open("rb") as src, gzip.GzipFile(fileobj=tmp, mode="wb", mtime=0) as gz:
            shutil.copyfileobj(src, gz, 1 << 20)
        return tmp.tell()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="warm runs per measurement")
    ap.add_argument("--cold-runs", type=int, default=2, help="cold runs (each ~30-60 s)")
    ap.add_argument("--suite", default="trixie")
    args = ap.parse_args()
    results: dict[str, object] = {"suite": args.suite, "profile": PROFILE,
                                  "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                                  "machine": f"{os.cpu_count()} cores"}
    with tempfile.TemporaryDirectory(prefix="rk-bench-", dir="/tmp") as tmp, \
            private_engine(Path(tmp)):
        work = Path(tmp)
        build, cache = work / "build", work / "cache"
        rk_cold, rk_warm, loads = Timed(), Timed(), Timed()
        for _ in range(args.cold_runs):
            shutil.rmtree(cache, ignore_errors=True)
            t, rss = invoke_build(PROFILE, build, cache)
            rk_cold.seconds.append(t)
            rk_cold.peak_rss_mb.append(rss)
        for i in range(args.runs):
            t, rss = invoke_build(str(variant(work, i)), build, cache)
            rk_warm.seconds.append(t)
            rk_warm.peak_rss_mb.append(rss)
        rk_lib = in_process_rebuilds(work, build, cache, args.runs)
        archive = build / PROFILE / f"{PROFILE}.oci.tar"
        rk_compressed, rk_raw = layer_sizes(archive)
        for _ in range(args.runs):
            forget_relaykit_images()
            t, _ = run(docker("load", "-i", str(archive)))
            loads.seconds.append(t)
        rk_port, rk_healthy = start_times(f"relaykit/{PROFILE}:latest", work, args.runs)

        slim = make_slim_base(args.suite, work)
        ctx = dockerfile_context(work, build, args.suite)
        df_cold, df_warm = Timed(), Timed()
        saved = work / "dockerfile.tar"
        for _ in range(args.cold_runs):
            tb, ts = docker_build_and_save(ctx, saved, no_cache=True)
            df_cold.seconds.append(tb + ts)
        for i in range(args.runs):
            (ctx / "rootfs/etc/postfix/main.cf").open("a").write(f"# change {i}\n")
            tb, ts = docker_build_and_save(ctx, saved, no_cache=False)
            df_warm.seconds.append(tb + ts)
        df_raw = saved.stat().st_size
        df_compressed = gzip_size(saved)
        df_loads = Timed()
        for _ in range(args.runs):
            subprocess.run(docker("rmi", "-f", DOCKERFILE_TAG, SLIM_TAG.format(suite=args.suite)),
                           capture_output=True)
            subprocess.run(docker("image", "prune", "-f"), capture_output=True)
            t, _ = run(docker("load", "-i", str(saved)))
            df_loads.seconds.append(t)
        df_port, df_healthy = start_times(DOCKERFILE_TAG, work, args.runs)

    results["relaykit"] = {
        "cold_build_s": rk_cold.median, "cold_runs": rk_cold.seconds,
        "config_only_rebuild_s": rk_warm.median, "config_only_runs": rk_warm.seconds,
        "config_only_rebuild_in_process_s": rk_lib.median, "in_process_runs": rk_lib.seconds,
        "peak_rss_mb_cold": max(rk_cold.peak_rss_mb),
        "peak_rss_mb_rebuild": max(rk_warm.peak_rss_mb),
        "image_compressed_bytes": rk_compressed, "image_uncompressed_bytes": rk_raw,
        "docker_load_s": loads.median,
        "start_to_port_s": rk_port.median, "start_to_healthy_s": rk_healthy.median,
        "start_runs": rk_port.seconds, "healthy_runs": rk_healthy.seconds,
    }
    results["dockerfile"] = {
        "slim_base_s": slim, "cold_build_save_s": df_cold.median, "cold_runs": df_cold.seconds,
        "warm_build_save_s": df_warm.median, "warm_runs": df_warm.seconds,
        "save_tar_bytes": df_raw, "save_tar_gzip6_bytes": df_compressed,
        "docker_load_s": df_loads.median,
        "start_to_port_s": df_port.median, "start_to_healthy_s": df_healthy.median,
    }
    before = previous_result(str(results["date"]))
    if before is not None:
        old = before["relaykit"]
        assert isinstance(old, dict)
        results["previous"] = {"date": before["date"],
                               "image_compressed_bytes": old["image_compressed_bytes"],
                               "image_uncompressed_bytes": old["image_uncompressed_bytes"]}
    results["ratios"] = {
        "rebuild_speedup_vs_warm_docker": df_warm.median / rk_warm.median,
        "rebuild_speedup_in_process": df_warm.median / rk_lib.median,
        "compressed_size_ratio": rk_compressed / df_compressed,
        "cold_vs_base_plus_docker_build": rk_cold.median / (slim + df_cold.median),
    }
    report(results)


def mb(n: object) -> str:
    return f"{int(str(n)) / 1e6:.1f} MB"


def previous_line(r: dict[str, object]) -> list[str]:
    prev = r.get("previous")
    rk = r["relaykit"]
    if not isinstance(prev, dict) or not isinstance(rk, dict):
        return []
    return [f"Before (run of {prev['date']}): compressed image "
            f"{mb(prev['image_compressed_bytes'])}, uncompressed "
            f"{mb(prev['image_uncompressed_bytes'])}; now {mb(rk['image_compressed_bytes'])} "
            f"and {mb(rk['image_uncompressed_bytes'])}.", ""]


def report(r: dict[str, object]) -> None:
    rk = r["relaykit"]
    df = r["dockerfile"]
    ra = r["ratios"]
    assert isinstance(rk, dict) and isinstance(df, dict) and isinstance(ra, dict)
    lines = [
        f"# relaykit image benchmark, {r['date']} ({r['machine']}, {r['suite']}, "
        f"profile {r['profile']})",
        "",
        "| measurement | relaykit | Dockerfile + docker build/save | ratio |",
        "|---|---|---|---|",
        f"| cold build to a loadable archive | {rk['cold_build_s']:.1f} s | "
        f"{df['slim_base_s']:.1f} s slim base + {df['cold_build_save_s']:.1f} s build+save | "
        f"{ra['cold_vs_base_plus_docker_build']:.2f}x the time |",
        f"| config-only rebuild to a loadable archive | {rk['config_only_rebuild_s']:.2f} s | "
        f"{df['warm_build_save_s']:.2f} s (warm cache) | "
        f"{ra['rebuild_speedup_vs_warm_docker']:.1f}x faster |",
        f"| the same, relaykit called in-process (library) | "
        f"{rk['config_only_rebuild_in_process_s']:.3f} s | | "
        f"{ra['rebuild_speedup_in_process']:.1f}x faster |",
        f"| compressed image | {mb(rk['image_compressed_bytes'])} | "
        f"{mb(df['save_tar_gzip6_bytes'])} (docker save, gzip -6) | "
        f"{ra['compressed_size_ratio']:.2f}x the size |",
        f"| uncompressed image | {mb(rk['image_uncompressed_bytes'])} | "
        f"{mb(df['save_tar_bytes'])} (docker save tar) | |",
        f"| start: docker run to port 587 answering | {rk['start_to_port_s']:.2f} s | "
        f"{df['start_to_port_s']:.2f} s | |",
        f"| start: docker run to healthy (checked every 2 s) | "
        f"{rk['start_to_healthy_s']:.2f} s | {df['start_to_healthy_s']:.2f} s | |",
        f"| docker load (engine without any of its layers) | {rk['docker_load_s']:.2f} s | "
        f"{df['docker_load_s']:.2f} s | |",
        f"| peak RSS of the build process | {rk['peak_rss_mb_cold']:.0f} MB cold, "
        f"{rk['peak_rss_mb_rebuild']:.0f} MB rebuild | (in dockerd) | |",
        "",
        *previous_line(r),
        "Medians; raw runs in the JSON beside this file.",
        "Reproduce: `./bootstrap python bench/bench_image.py`",
    ]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stem = out / f"image-{r['date']}"
    stem.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
