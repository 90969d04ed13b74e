"""`--format helm`: the chart lints strictly (values.schema.json included), and every object
it renders validates strictly against the Kubernetes API schemas of several versions.
No cluster runs here: Helm is a library (helm-python-sdk), the schemas come with
kubernetes-validate.  The image's side of the pod's settings (dropped capabilities, a
Kubernetes-style secret directory) is tested for real in
tests/integration/test_k8s_secrets.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm  # helm-python-sdk, in the test extra: missing = failing
import kubernetes_validate as kv  # type: ignore[import-untyped]
import pytest
import yaml

from relaykit import commands
from relaykit.chart.render import chart_version, port_name
from relaykit.errors import RelaykitError
from relaykit.oci.from_profile import HEALTHCHECK
from relaykit.profile.model import Listener, TlsMode
from relaykit.stack.deployment import CAPABILITIES

from ..conftest import ROOT

KUBE_VERSIONS = ("1.25.0", "1.31.0", "1.37.0")
BASE_VALUES = {"secrets": {"existingSecret": "relay-users", "revision": "1"}}
def _quiet(_message: str) -> None:
    """Swallow build progress lines."""




@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("build")
    mp = pytest.MonkeyPatch()
    mp.setenv("RELAYKIT_BUILD_DIR", str(build))
    commands.build("roaming", fmt="helm", log=_quiet)
    mp.undo()
    return build / "roaming" / "chart"


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def render(chart: Path, values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """kind -> object (the headless Service as 'Service/headless')."""
    manifests = helm.Chart.load(str(chart)).render(
        merged(BASE_VALUES, values or {}), name="mail", namespace="mail", is_install=True)
    objects: dict[str, dict[str, Any]] = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                key = doc["kind"]
                if key == "Service" and doc["spec"].get("clusterIP") == "None":
                    key = "Service/headless"
                assert key not in objects, f"two {key}"
                objects[key] = doc
    return objects


def test_chart_lints_strictly_on_every_version(chart: Path) -> None:
    for version in KUBE_VERSIONS:
        report = helm.lint(str(chart), BASE_VALUES, strict=True, kube_version=f"v{version}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], (version, report)


@pytest.mark.parametrize("service_type", ["ClusterIP", "LoadBalancer", "NodePort"])
def test_rendered_objects_validate_strictly(chart: Path, service_type: str) -> None:
    objects = render(chart, {"service": {"type": service_type},
                             "relay": {"relayhost": "[smarthost.example]:587"},
                             "writablePaths": ["/tmp"],
                             "securityContext": {"readOnlyRootFilesystem": True}})
    assert set(objects) == {"StatefulSet", "Service", "Service/headless",
                            "PodDisruptionBudget", "NetworkPolicy"}
    for version in KUBE_VERSIONS:
        for key, obj in objects.items():
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{key} on {version}: {exc.message} at {list(exc.path)}")


def pod_spec(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["StatefulSet"]["spec"]["template"]["spec"]
    return spec


def test_queue_is_a_claim_per_replica_kept_on_scale_down(chart: Path) -> None:
    sts = render(chart)["StatefulSet"]["spec"]
    assert sts["replicas"] == 2
    [claim] = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "queue"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                           "whenScaled": "Retain"}
    [relay] = sts["template"]["spec"]["containers"]
    assert {"name": "queue", "mountPath": "/var/spool/postfix"} in relay["volumeMounts"]
    assert sts["updateStrategy"] == {"type": "RollingUpdate"}


def test_least_privilege(chart: Path) -> None:
    pod = pod_spec(render(chart))
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [relay] = pod["containers"]
    ctx = relay["securityContext"]
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert set(ctx["capabilities"]["add"]) == set(CAPABILITIES)
    assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False


def test_users_and_tls_from_existing_secrets_read_only(chart: Path) -> None:
    pod = pod_spec(render(chart, {"secrets": {"tlsSecret": "relay-tls"}}))
    [relay] = pod["containers"]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in \
        relay["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "secrets"]
    sources = volume["projected"]["sources"]
    assert sources[0]["secret"] == {"name": "relay-users",
                                    "items": [{"key": "sasl-users", "path": "sasl-users"}]}
    assert sources[1]["secret"]["name"] == "relay-tls"
    assert [i["key"] for i in sources[1]["secret"]["items"]] == ["tls.crt", "tls.key"]
    assert volume["projected"]["defaultMode"] == 0o400


def test_missing_secret_name_fails_the_render_with_a_hint(chart: Path) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"set secrets\.existingSecret"):
        helm.Chart.load(str(chart)).render({}, name="mail", namespace="mail",
                                           is_install=True)


def test_secret_changes_roll_the_pods(chart: Path) -> None:
    a = render(chart)["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]
    b = render(chart, {"secrets": {"revision": "2"}})["StatefulSet"]["spec"]["template"][
        "metadata"]["annotations"]
    assert a["relaykit.io/secret-revision"] == "1" and b["relaykit.io/secret-revision"] == "2"
    assert len(a["relaykit.io/secret-checksum"]) == 64  # of the Secrets, read at upgrade


def test_probes_are_the_images_healthcheck(chart: Path) -> None:
    [relay] = pod_spec(render(chart))["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert relay[probe]["exec"]["command"] == [HEALTHCHECK]
    assert relay["startupProbe"]["failureThreshold"] * relay["startupProbe"][
        "periodSeconds"] >= 60
    assert pod_spec(render(chart))["terminationGracePeriodSeconds"] == 60


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_published_service_keeps_client_addresses(chart: Path, service_type: str) -> None:
    service = render(chart, {"service": {"type": service_type}})["Service"]["spec"]
    assert service["externalTrafficPolicy"] == "Local"
    assert [(p["name"], p["port"]) for p in service["ports"]] == [("submission", 587),
                                                                  ("submissions", 465)]


def test_cluster_only_service_and_headless_service(chart: Path) -> None:
    objects = render(chart)
    assert objects["Service"]["spec"]["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in objects["Service"]["spec"]
    headless = objects["Service/headless"]
    assert objects["StatefulSet"]["spec"]["serviceName"] == headless["metadata"]["name"]


def test_disruption_budget_and_network_policy(chart: Path) -> None:
    objects = render(chart)
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    policy = objects["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 587},
                                {"protocol": "TCP", "port": 465}]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 25, 465, 587}
    assert "NetworkPolicy" not in render(chart, {"networkPolicy": {"enabled": False}})


@pytest.mark.parametrize("bad", [
    {"replicas": 0}, {"replicas": 65}, {"securityContext": {"privileged": True}},
    {"securityContext": {"allowPrivilegeEscalation": True}},
    {"securityContext": {"capabilities": {"drop": [], "add": []}}},
    {"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}},
    {"service": {"type": "ExternalName"}}, {"persistence": {"sizeGi": 0}},
    {"image": {"tag": "bad tag"}}, {"writablePaths": ["/usr/sbin"]},
    {"terminationGracePeriodSeconds": 5}, {"surprise": 1},
])
def test_values_schema_refuses_unsafe_or_unknown_values(chart: Path, bad: dict[str, Any]
                                                        ) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(chart, bad)


def test_values_default_from_the_profile(tmp_path: Path, build_dir: Path) -> None:
    profile = tmp_path / "edge.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'roaming.yaml'}\nname: edge\n"
                       "version: '2.1'\noutputs:\n  helm: {replicas: 4, queue_storage_gib: 20,"
                       " storage_class: fast-ssd, termination_grace_s: 120}\n")
    commands.build(str(profile), fmt="helm", log=_quiet)
    chart = build_dir / "edge" / "chart"
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert (meta["name"], meta["version"], meta["appVersion"]) == ("edge", "2.1.0", "2.1")
    sts = render(chart)["StatefulSet"]["spec"]
    assert sts["replicas"] == 4
    claim = sts["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast-ssd"
    assert claim["resources"]["requests"]["storage"] == "20Gi"
    assert sts["template"]["spec"]["terminationGracePeriodSeconds"] == 120


def test_chart_versions_are_semver() -> None:
    assert chart_version("1.0.0") == "1.0.0"
    assert chart_version("1.2") == "1.2.0"
    assert chart_version("3") == "3.0.0"
    with pytest.raises(RelaykitError, match="SemVer"):
        chart_version("1.0~rc1")


def test_port_names_fit_kubernetes() -> None:
    long = Listener("submission-internal", 10587, None, TlsMode("starttls"), True, None, None)
    assert port_name(long) == "smtp-10587"


def test_no_service_mesh_sidecar_is_injected(chart: Path) -> None:
    """A mesh sidecar proxies every client to the relay from loopback, which mynetworks
    trusts: an open relay.  The pod opts out of Istio's and Linkerd's injection, whether
    the namespace enables it by label or by annotation."""
    pod = render(chart)["StatefulSet"]["spec"]["template"]["metadata"]
    assert pod["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["annotations"]["linkerd.io/inject"] == "disabled"
