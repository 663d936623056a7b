"""The Kubernetes base (deploy/k8s/base), validated offline: every resource the kustomization
lists against the API schemas of a released Kubernetes (kubernetes-validate, strict: unknown
fields are errors), and the wiring between them — selectors that select something, probes on
/health, secrets only by reference, budgets and autoscalers that point at real workloads."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base"
KUBERNETES = "1.33.0"


def kustomization() -> dict:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


def resources() -> list[dict]:
    docs: list[dict] = []
    for name in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for d in resources() if d["kind"] == kind]


def workloads() -> list[dict]:
    return by_kind("Deployment") + by_kind("StatefulSet")


def pod_labels(workload: dict) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_listed_file_exists_and_nothing_is_left_out() -> None:
    listed = set(kustomization()["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("doc", resources(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_resource_is_valid_kubernetes(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_names_are_unique_per_kind() -> None:
    keys = [(d["kind"], d["metadata"]["name"]) for d in resources()]
    assert len(keys) == len(set(keys))


def test_selectors_match_their_pods() -> None:
    for w in workloads():
        assert selects(w["spec"]["selector"]["matchLabels"], pod_labels(w)), w["metadata"]["name"]
    for s in by_kind("Service"):
        assert any(selects(s["spec"]["selector"], pod_labels(w)) for w in workloads()), s


def test_every_sipum_service_is_a_stateless_deployment_ready_on_health() -> None:
    sipum = [
        d
        for d in by_kind("Deployment")
        if d["spec"]["template"]["spec"]["containers"][0]["image"] == "sipum"
    ]
    commands = {d["spec"]["template"]["spec"]["containers"][0]["command"][0] for d in sipum}
    assert commands == {
        "sipum-web-api",
        "sipum-notifier",
        "sipum-rtsp-gateway",
        "sipum-media-recorder",
        "sipum-registrar-agent",
        "sipum-transcriber",
    }
    for d in sipum:
        pod = d["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 9100}
        assert "volumeMounts" not in container and "volumes" not in pod  # no local state
        refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
        assert refs == ["sipum-config", "sipum-secrets"]
        # SIGTERM drains calls within 20 s: the pod must be given longer than that.
        assert pod["terminationGracePeriodSeconds"] > 20


def test_no_secret_value_is_written_down() -> None:
    assert by_kind("Secret") == []
    config = by_kind("ConfigMap")[0]["data"]
    for key in config:
        assert not any(word in key for word in ("PASSWORD", "SECRET", "KEY")), key
    assert "SIPUM_DATABASE_URL" not in config


def test_registrar_agents_cover_every_shard_once() -> None:
    agents = [
        d for d in by_kind("Deployment") if d["metadata"]["name"].startswith("registrar-agent")
    ]
    shards = set()
    for d in agents:
        env = {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        shards.add((int(env["SIPUM_SHARD_INDEX"]), int(env["SIPUM_SHARD_COUNT"])))
    count = {c for _, c in shards}
    assert len(count) == 1 and {i for i, _ in shards} == set(range(count.pop()))


def test_budgets_and_autoscalers_point_at_workloads() -> None:
    for pdb in by_kind("PodDisruptionBudget"):
        assert any(
            selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(w)) for w in workloads()
        ), pdb
    names = {w["metadata"]["name"] for w in by_kind("Deployment")}
    for hpa in by_kind("HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in names
    [recorder] = [
        h for h in by_kind("HorizontalPodAutoscaler") if h["metadata"]["name"] == "media-recorder"
    ]
    metric = recorder["spec"]["metrics"][0]["pods"]["metric"]["name"]
    metrics = (
        Path(__file__).resolve().parents[2]
        / "services/media-recorder/src/sipum_media_recorder/metrics.py"
    ).read_text()
    assert f'"{metric}"' in metrics  # the metric the autoscaler reads is one we export


def test_nats_is_a_three_node_jetstream_cluster() -> None:
    [nats] = by_kind("StatefulSet")
    assert nats["spec"]["replicas"] == 3
    conf = by_kind("ConfigMap")[1]["data"]["nats.conf"]
    assert "jetstream" in conf and conf.count("nats://nats-") == 3
    urls = by_kind("ConfigMap")[0]["data"]["SIPUM_NATS_URL"].split(",")
    assert len(urls) == 3


def test_the_validator_catches_a_wrong_manifest() -> None:
    [web] = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "web-api"]
    wrong = yaml.safe_load(yaml.safe_dump(web))
    wrong["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES, strict=True)
    wrong = yaml.safe_load(yaml.safe_dump(web))
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES, strict=True)


def test_the_stream_is_replicated_across_the_nats_nodes() -> None:
    config = by_kind("ConfigMap")[0]["data"]
    assert int(config["SIPUM_STREAM_REPLICAS"]) == by_kind("StatefulSet")[0]["spec"]["replicas"]
