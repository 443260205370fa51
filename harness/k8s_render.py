"""`harness render k8s`: the study as a kustomize directory for a Kubernetes cluster (`kubectl apply -k DIR`).

What it writes (one file per resource kind group, all listed in kustomization.yaml):
- storage: claims for the models (filled once by the fetch Job, mounted read-only by the servers;
  ReadWriteMany, since replicas land on several nodes), the datasets, the results and the sandbox's
  job spool;
- fetch: a Job running `harness fetch` into those claims;
- per model without `endpoints`: a StatefulSet of llama-server pods (N replicas, each requesting
  `nvidia.com/gpu`) and a headless Service, so the proxy reaches every replica by its own DNS name
  (llm-<key>-<i>.llm-<key>) and does the least-loaded routing and failover itself; a ClusterIP
  Service would spread requests blindly;
- the proxy: Deployment + Service, logging to the results claim;
- study: a Job running eval, analyze and report into the results claim;
- the sandbox: a pod of its own (Deployment) sharing only the spool claim, with a NetworkPolicy that
  denies it all ingress and egress.
The study config travels as a ConfigMap (configMapGenerator); flags come from the same functions as
`harness serve` and compose (llama_server_args, proxy_args). Never applied to a real cluster here:
tests build it with `kubectl kustomize` and validate each manifest against the Kubernetes 1.30 schemas.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import yaml

from harness.config import ConfigError, StudyConfig, load_config

CONTAINER_PORT = 8080
PROXY_PORT = 8700
HARNESS_IMAGE = "distill-eval/harness:local"
LLAMA_CUDA_IMAGE = "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
CONFIG_MOUNT = "/app/study"  # the ConfigMap with the study config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("render", help="render deployment files (k8s: a kustomize directory)")
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    k = sub.add_parser("k8s", help="a kustomize directory for `kubectl apply -k DIR`")
    k.add_argument("--config", required=True, help="study YAML")
    k.add_argument("--out", required=True, type=Path, help="directory to write (created; files replaced)")
    k.add_argument("--replicas", type=int, metavar="N",
                   help="llama-server replicas per model (default: each model's `replicas` in the config)")
    k.add_argument("--gpus-per-replica", type=int, default=1, metavar="N", help="nvidia.com/gpu per server pod")
    k.add_argument("--run", help="run name under the results claim (default: the config's study name)")
    k.add_argument("--namespace", default="distill-eval")
    k.add_argument("--harness-image", default=HARNESS_IMAGE, help="the image built from docker/harness.Dockerfile")
    k.add_argument("--llama-image", default=LLAMA_CUDA_IMAGE)
    k.add_argument("--storage-class", help="storageClassName of the claims (default: the cluster's default)")
    k.set_defaults(func=cmd_render_k8s)


def _name(model: str) -> str:
    """A DNS-1123 name for a model key ('_' is not allowed there)."""
    return "llm-" + model.lower().replace("_", "-")


def _labels(component: str, **extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "distill-eval", "app.kubernetes.io/component": component, **extra}


def _claim(name: str, size: str, mode: str, storage_class: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def _harness_container(name: str, image: str, command: list[str], mounts: list[dict[str, Any]],
                       env: dict[str, str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
                         "workingDir": "/app", "volumeMounts": mounts}
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return c


def _vol(name: str, claim: str, read_only: bool = False) -> dict[str, Any]:
    v: dict[str, Any] = {"name": name, "persistentVolumeClaim": {"claimName": claim}}
    if read_only:
        v["persistentVolumeClaim"]["readOnly"] = True
    return v


CONFIG_VOLUME = {"name": "study-config", "configMap": {"name": "study-config"}}


def _config_mount() -> dict[str, Any]:
    return {"name": "study-config", "mountPath": CONFIG_MOUNT, "readOnly": True}


def replica_counts(cfg: StudyConfig, replicas: int | None) -> dict[str, int]:
    """Server pods per model; 0 for models served by `endpoints`."""
    return {m: 0 if s.endpoints else (replicas or s.replicas) for m, s in cfg.models.items()}


def upstreams(cfg: StudyConfig, counts: dict[str, int]) -> dict[str, list[str]]:
    """Each replica by its stable StatefulSet DNS name; `endpoints` as given."""
    return {m: list(cfg.models[m].endpoints or []) or
            [f"http://{_name(m)}-{i}.{_name(m)}:{CONTAINER_PORT}" for i in range(counts[m])] for m in cfg.models}


def server_resources(cfg: StudyConfig, model: str, count: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    from harness.compose_render import container_model_path
    from harness.serve import llama_server_args

    name = _name(model)
    gguf = container_model_path(cfg, model)
    labels = _labels("llm", **{"distill-eval/model": name})
    argv = llama_server_args(cfg, model, model_path=gguf, host="0.0.0.0", port=CONTAINER_PORT)  # noqa: S104  # in its pod
    probe = {"httpGet": {"path": "/health", "port": CONTAINER_PORT}, "periodSeconds": 10, "timeoutSeconds": 5}
    server = {
        "name": "llama-server", "image": args.llama_image, "imagePullPolicy": "IfNotPresent", "args": argv,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
        "resources": {"limits": {"nvidia.com/gpu": str(args.gpus_per_replica)}},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
        # /health is 503 while the GGUF loads: a large model from network storage can take many minutes
        "startupProbe": {**probe, "failureThreshold": max(1, cfg.server.startup_timeout_s // 10)},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
    }
    wait = {  # the servers start with the fetch Job; wait for its GGUF rather than crash-loop
        "name": "wait-for-model", "image": args.harness_image, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", f"until [ -s {gguf} ]; do echo waiting for {gguf}; sleep 10; done"],
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    }
    sts = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name, "replicas": count, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "initContainers": [wait], "containers": [server],
                "volumes": [_vol("models", "models", read_only=True)]}},
        },
    }
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
           "spec": {"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True,
                    "ports": [{"name": "http", "port": CONTAINER_PORT, "targetPort": CONTAINER_PORT}]}}
    return [sts, svc]


def render_k8s(cfg: StudyConfig, config_path: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """Write the kustomize directory; returns the files written."""
    from harness.serve import proxy_args

    if args.replicas is not None and args.replicas < 1:
        raise ConfigError("--replicas must be 1 or more")
    if args.gpus_per_replica < 0:
        raise ConfigError("--gpus-per-replica must be 0 or more")
    run = args.run or cfg.study
    cfg_file = f"{CONFIG_MOUNT}/{config_path.name}"
    counts = replica_counts(cfg, args.replicas)
    img = args.harness_image
    data_mounts = [{"name": "data", "mountPath": "/app/data"}, {"name": "models", "mountPath": "/app/data/models"},
                   _config_mount()]
    docs: dict[str, list[dict[str, Any]]] = {}
    docs["namespace.yaml"] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace}}]
    sc = args.storage_class
    docs["storage.yaml"] = [_claim("models", "200Gi", "ReadWriteMany", sc), _claim("data", "20Gi", "ReadWriteMany", sc),
                            _claim("results", "50Gi", "ReadWriteMany", sc), _claim("spool", "5Gi", "ReadWriteMany", sc)]
    docs["fetch-job.yaml"] = [{
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fetch", "labels": _labels("fetch")},
        "spec": {"backoffLimit": 3, "template": {"metadata": {"labels": _labels("fetch")}, "spec": {
            "restartPolicy": "OnFailure",
            "containers": [_harness_container("fetch", img, ["harness", "fetch", "--config", cfg_file], data_mounts,
                                              {"HF_HOME": "/app/data/hf-cache"})],
            "volumes": [_vol("data", "data"), _vol("models", "models"), CONFIG_VOLUME]}}},
    }]
    servers: list[dict[str, Any]] = []
    for model, n in counts.items():
        if n:
            servers += server_resources(cfg, model, n, args)
    docs["servers.yaml"] = servers
    plabels = _labels("proxy")
    pargv = ["harness", "proxy", *proxy_args(cfg, listen=f"0.0.0.0:{PROXY_PORT}", log_dir=f"/app/results/{run}/proxy",
                                             upstreams=upstreams(cfg, counts))]
    health = {"httpGet": {"path": "/_proxy/health", "port": PROXY_PORT}, "periodSeconds": 5}
    proxy_c = _harness_container("proxy", img, pargv, [{"name": "results", "mountPath": "/app/results"}])
    proxy_c.update({"ports": [{"name": "http", "containerPort": PROXY_PORT}], "readinessProbe": health,
                    "livenessProbe": {**health, "failureThreshold": 6}})
    docs["proxy.yaml"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "proxy", "labels": plabels},
         # one proxy: it owns the results/<run>/proxy logs (two writers would interleave them)
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": plabels},
                  "template": {"metadata": {"labels": plabels}, "spec": {
                      "containers": [proxy_c], "volumes": [_vol("results", "results")]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "proxy", "labels": plabels},
         "spec": {"selector": plabels, "ports": [{"name": "http", "port": PROXY_PORT, "targetPort": PROXY_PORT}]}},
    ]
    rdir = f"results/{run}"
    study_cmd = ["sh", "-c", f"harness eval --config {cfg_file} --run {rdir} && harness analyze --run {rdir} "
                             f"&& harness report --run {rdir}"]
    study_mounts = [*data_mounts, {"name": "results", "mountPath": "/app/results"}, {"name": "spool", "mountPath": "/spool"}]
    docs["study-job.yaml"] = [{
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "study", "labels": _labels("study")},
        "spec": {"backoffLimit": 2, "template": {"metadata": {"labels": _labels("study")}, "spec": {
            "restartPolicy": "OnFailure",
            "initContainers": [{"name": "wait-for-proxy", "image": img, "imagePullPolicy": "IfNotPresent",
                                "command": ["python", "-c", "import time, urllib.request as u\nwhile True:\n try:\n"
                                            f"  u.urlopen('http://proxy:{PROXY_PORT}/_proxy/health', timeout=4); break\n"
                                            " except OSError:\n  time.sleep(10)"]}],
            "containers": [_harness_container("study", img, study_cmd, study_mounts, {
                "HARNESS_PROXY_URL": f"http://proxy:{PROXY_PORT}", "HARNESS_SANDBOX_SPOOL": "/spool",
                "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})],
            "volumes": [_vol("data", "data"), _vol("models", "models", read_only=True), _vol("results", "results"),
                        _vol("spool", "spool"), CONFIG_VOLUME]}}},
    }]
    slabels = _labels("sandbox")
    caps = {"drop": ["ALL"], "add": ["CHOWN", "SETUID", "SETGID", "KILL"]}
    docs["sandbox.yaml"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sandbox", "labels": slabels},
         "spec": {"replicas": 1, "selector": {"matchLabels": slabels}, "template": {
             "metadata": {"labels": slabels}, "spec": {
                 "automountServiceAccountToken": False, "enableServiceLinks": False,
                 # the spool is root-only: the worker (root) reads it, the jobs (uid 10001) cannot
                 "initContainers": [{"name": "spool-init", "image": img, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", "mkdir -p /spool/jobs && chown -R 0:0 /spool && "
                                                 "chmod 0700 /spool /spool/jobs"],
                                     "volumeMounts": [{"name": "spool", "mountPath": "/spool"}]}],
                 "containers": [{
                     "name": "sandbox", "image": img, "imagePullPolicy": "IfNotPresent",
                     "command": ["python", "-m", "harness.sandbox_spool", "worker", "--spool", "/spool"],
                     "env": [{"name": "HOME", "value": "/tmp"}],  # noqa: S108  # its own tmpfs
                     "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": True,
                                         "allowPrivilegeEscalation": False, "capabilities": caps},
                     "resources": {"limits": {"memory": "8Gi"}},
                     "volumeMounts": [{"name": "spool", "mountPath": "/spool"},
                                      {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108  # a memory emptyDir
                 }],
                 "volumes": [_vol("spool", "spool"), {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}],
             }}}},
        # no ingress or egress rule at all: generated code cannot reach anything, not even DNS
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "sandbox-deny-all"},
         "spec": {"podSelector": {"matchLabels": slabels}, "policyTypes": ["Ingress", "Egress"]}},
    ]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, items in docs.items():
        if items:
            (out / fname).write_text(yaml.safe_dump_all(items, sort_keys=False, width=120), encoding="utf-8")
            written.append(fname)
    shutil.copyfile(config_path, out / config_path.name)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": args.namespace,
        "labels": [{"pairs": {"distill-eval/study": cfg.study.lower().replace("_", "-")[:63]}}],
        "resources": written,
        "configMapGenerator": [{"name": "study-config", "files": [config_path.name]}],
    }
    header = (f"# Generated by `harness render k8s --config {config_path}`; apply with `kubectl apply -k {out}`.\n"
              "# Order on the cluster: the fetch Job fills the claims; servers wait for their GGUF; the study Job\n"
              "# waits for the proxy, then runs eval, analyze and report into the results claim.\n")
    (out / "kustomization.yaml").write_text(header + yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    return ["kustomization.yaml", *written, config_path.name]


def cmd_render_k8s(args: argparse.Namespace) -> int:
    from harness.cli import UsageError

    cfg = load_config(args.config)  # ConfigError -> exit 2 with the field named (cli)
    try:
        files = render_k8s(cfg, Path(args.config), args.out, args)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {len(files)} files to {args.out}: {', '.join(files)}; apply with `kubectl apply -k {args.out}`")
    return 0
