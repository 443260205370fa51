"""Our lm-eval task definitions: pinned local data, both protocols, sampling from the config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.config import load_config
from harness.datasets import DatasetSchemaError, check_schema
from harness.runners.lm_eval_runner import lm_eval_command, task_yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


class _FunctionTagLoader(yaml.SafeLoader):
    pass


_FunctionTagLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


@pytest.mark.parametrize("bench", ["aime24", "aime25", "math500", "ifeval"])
def test_task_yaml_pins_local_data_and_both_protocols(bench: str) -> None:
    cfg = load_config(REPO / "configs" / "demo.yaml")
    task = yaml.load(task_yaml(cfg, bench), Loader=_FunctionTagLoader)  # noqa: S506 - our own text
    assert task["task"] == bench  # overrides the built-in, so results keep the benchmark's name
    data = task["dataset_kwargs"]["data_files"]["train"]
    assert Path(data).is_absolute() and Path(data).is_file()
    assert [f["name"] for f in task["filter_list"]] == ["as_recorded", "reasoning_stripped"]
    gen = task["generation_kwargs"]
    assert gen["until"] == []  # no stop string can cut a reasoning block
    assert gen["max_gen_toks"] == cfg.benchmarks[bench].max_tokens
    for key in ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "repeat_last_n"):
        assert gen[key] == getattr(cfg.sampling, key)


def test_study_config_sends_thinking_kwargs_and_seed() -> None:
    cfg = load_config(REPO / "configs" / "study.yaml")
    gen = yaml.load(task_yaml(cfg, "aime24").replace("train: ", "train: /x"), Loader=_FunctionTagLoader)  # noqa: S506
    assert gen["generation_kwargs"]["chat_template_kwargs"] == {"enable_thinking": True}
    argv = lm_eval_command(cfg, "base", "aime24", 1234, "http://proxy:8700", Path("/t"), Path("/o"))
    model_args = json.loads(argv[argv.index("--model_args") + 1])
    assert model_args["base_url"] == "http://proxy:8700/base/v1/chat/completions"
    assert model_args["seed"] == 1234 and model_args["num_concurrent"] == cfg.server.slots
    assert model_args["timeout"] == cfg.request.timeout_s and model_args["max_retries"] == cfg.request.max_retries
    assert "Authorization" not in model_args["header"]


def test_dataset_in_wrong_schema_is_rejected(tmp_path: Path) -> None:
    wrong = tmp_path / "aime24.jsonl"
    wrong.write_text(json.dumps({"id": "1", "problem": "p", "answer": "3"}) + "\n")  # aime25's schema
    with pytest.raises(DatasetSchemaError, match="not a aime24 dataset: rows lack Answer, ID, Problem"):
        check_schema("aime24", wrong)


def test_eval_refuses_wrong_schema_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    wrong = tmp_path / "ifeval.jsonl"
    wrong.write_text(json.dumps({"ID": "x", "Problem": "p", "Answer": 1}) + "\n")
    raw["benchmarks"]["ifeval"]["dataset"] = {"path": str(wrong)}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    rc = main(["eval", "--config", str(cfg), "--run", str(tmp_path / "run"), "--proxy-url", "http://127.0.0.1:1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not a ifeval dataset: rows lack" in err and "instruction_id_list" in err
    assert not (tmp_path / "run").exists()  # nothing was started
