"""`distill eval --replay MANIFEST`: re-ask exactly a manifest's prompts of any endpoint and say what differs.

Who uses it: a third party checking a published table, or the same team a month later. The replay sends the
manifest's recorded messages (never prompts rebuilt by today's code) with the recorded sampling params, through
the same client and grader as `eval`, into a fresh cache (a replay really asks; re-running it resumes). It reports
three kinds of difference: items whose recorded messages no longer match their recorded hash (the manifest was
edited), items whose prompt, rebuilt from the recorded source with this distill, hashes differently (a changed
benchmark file or prompt code), and a system prompt that changes every message sent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from distill.benchmarks import Item, get_benchmark
from distill.errors import DistillError, InputError
from distill.eval_config import EvalBenchmark, EvalConfig, EvalModel
from distill.evaluate import LoadedBenchmark, eval_model, load_benchmark
from distill.llm import ResponseCache
from distill.llm.endpoint import SamplingParams
from distill.llm.budget import Budget
from distill.manifest import prompt_sha256, read_manifest
from distill.rundir import fingerprint, write_json


def check_prompts(man: dict[str, Any], run_root: Path) -> dict[str, dict[str, Any]]:
    """Per benchmark: items whose messages fail their recorded hash, and items whose rebuilt prompt differs."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in man["benchmarks"].items():
        tampered = [it["id"] for it in entry["items"] if prompt_sha256(it["messages"]) != it["prompt_sha256"]]
        res: dict[str, Any] = {"items": len(entry["items"]), "tampered": tampered}
        try:
            lb = load_benchmark(EvalBenchmark(**{**entry["config"], "limit": None}), run_root)
        except (DistillError, ValueError) as e:
            res.update(rebuilt=False, rebuild_note=f"could not rebuild the prompts here: {e}")
            out[name] = res
            continue
        rebuilt = {it.id: prompt_sha256(m) for it, m in zip(lb.items, lb.messages, strict=True)}
        res.update(rebuilt=True,
                   rebuilt_differs=[it["id"] for it in entry["items"]
                                    if it["id"] in rebuilt and rebuilt[it["id"]] != it["prompt_sha256"]],
                   missing_in_source=[it["id"] for it in entry["items"] if it["id"] not in rebuilt])
        recorded_sha = (entry.get("source") or {}).get("sha256")
        if recorded_sha and lb.source_info.get("sha256") and recorded_sha != lb.source_info["sha256"]:
            res["source_changed"] = {"recorded_sha256": recorded_sha, "now_sha256": lb.source_info["sha256"]}
        out[name] = res
    return out


def _recorded_model(man: dict[str, Any], m: EvalModel) -> str:
    """Whose recorded sampling a replayed endpoint uses: same name, else same role, else the teacher, else first."""
    models = man["models"]
    if not models:
        raise InputError("manifest: `models` is empty (nothing was evaluated, so no sampling params to replay)")
    for pick in ([n for n in models if n == m.name], [n for n, v in models.items() if v.get("role") == m.role],
                 [n for n, v in models.items() if v.get("role") == "teacher"], list(models)):
        if pick:
            return pick[0]
    raise AssertionError("unreachable")


def adhoc_endpoint(manifest_path: Path, base_url: str, model: str, api_key_env: str | None,
                   name: str | None) -> tuple[EvalModel, str]:
    """An endpoint given on the command line, named after the manifest model whose sampling it replays (default:
    the teacher); the key is read from an environment variable, never from the command line."""
    import os

    man = read_manifest(manifest_path)
    models = man["models"]
    name = name or next((n for n, v in models.items() if v.get("role") == "teacher"), next(iter(models), "replay"))
    key = os.environ.get(api_key_env, "") if api_key_env else "EMPTY"
    if api_key_env and not key:
        raise InputError(f"--api-key-env: the environment variable {api_key_env} is not set")
    role = (models.get(name) or {}).get("role") or "other"
    try:
        m = EvalModel(name=name, role=role, base_url=base_url, model=model, api_key=key)
    except ValueError as e:
        raise InputError(f"--base-url/--model: {e}") from None
    return m, str(man.get("pipeline") or "manifest")


def _replay_loaded(man: dict[str, Any], recorded: str) -> list[LoadedBenchmark]:
    """The manifest's benchmarks as eval runs them: recorded items, recorded messages, recorded sampling."""
    out = []
    rec_model = man["models"][recorded]
    for name, entry in man["benchmarks"].items():
        sampling = ((rec_model.get("benchmarks") or {}).get(name) or {}).get("sampling")
        if sampling is None:
            continue  # this model was not evaluated on this benchmark
        cfg = EvalBenchmark(**entry["config"])
        try:
            bench = get_benchmark(cfg.name, kind=cfg.kind, **cfg.options)
            items = [Item(**it["item"]) for it in entry["items"]]
            params = SamplingParams(**sampling)
        except (TypeError, ValueError) as e:
            raise InputError(f"manifest: benchmarks.{name}: {e}") from None
        out.append(LoadedBenchmark(cfg, bench, items, [it["messages"] for it in entry["items"]],
                                   source_fp="manifest", params=params))
    return out


def run_replay(manifest_path: Path, models: list[EvalModel], out_dir: Path, *, run_root: Path | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Re-ask every model the manifest's prompts; write out_dir/<model>/ (rows, summary) and out_dir/replay.json."""
    man = read_manifest(manifest_path)
    out_dir = Path(out_dir)
    root = Path(run_root) if run_root else out_dir
    prompts = check_prompts(man, root)
    man_sha = hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()
    result: dict[str, Any] = {"manifest": str(manifest_path), "manifest_sha256": man_sha, "prompts": prompts,
                              "models": {}}
    cache = ResponseCache(out_dir / "cache.sqlite")
    try:
        for m in models:
            recorded = _recorded_model(man, m)
            loaded = _replay_loaded(man, recorded)
            ecfg = EvalConfig(models=[m], benchmarks=[lb.cfg for lb in loaded], progress=progress)
            fp = fingerprint(man_sha, m.model_dump(mode="json", exclude={"api_key"}))
            summary = eval_model(m, loaded, ecfg, root, cache, Budget(None), out_dir / m.name, fp, None)
            rec = man["models"][recorded]
            system_differs = (m.system_prompt or None) != (rec.get("system_prompt") or None)
            result["models"][m.name] = {
                "sampling_from": recorded, "returned_models_recorded": rec.get("returned_models"),
                "system_prompt_differs": system_differs, "complete": summary.get("complete"),
                "benchmarks": {b: {"recorded": (rec["benchmarks"].get(b) or {}).get("score"), "replayed": v["score"],
                                   "stderr": v["stderr"], "items": v["items"], "failed": v["failed"]}
                               for b, v in summary["benchmarks"].items()},
            }
    finally:
        cache.close()
    result["prompts_differ"] = any(p["tampered"] or p.get("rebuilt_differs") or p.get("missing_in_source")
                                   for p in prompts.values()) or any(
        v["system_prompt_differs"] for v in result["models"].values())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "replay.json", result)
    return result


def replay_lines(result: dict[str, Any]) -> list[str]:
    """The replay's findings as plain lines: prompt differences first, then recorded vs replayed scores."""
    lines: list[str] = []
    for b, p in result["prompts"].items():
        if p["tampered"]:
            lines.append(f"replay {b}: {len(p['tampered'])} item(s) whose manifest messages do not match their "
                          f"recorded prompt_sha256 (edited?): {', '.join(p['tampered'][:10])}")
        if not p["rebuilt"]:
            lines.append(f"replay {b}: {p['rebuild_note']}")
        else:
            if p["rebuilt_differs"]:
                lines.append(f"replay {b}: {len(p['rebuilt_differs'])} item(s) whose prompt rebuilt here differs "
                              f"from the manifest's: {', '.join(p['rebuilt_differs'][:10])}")
            if p["missing_in_source"]:
                lines.append(f"replay {b}: {len(p['missing_in_source'])} item(s) not in the source here: "
                              f"{', '.join(p['missing_in_source'][:10])}")
            if "source_changed" in p:
                lines.append(f"replay {b}: the source file changed (sha256 {p['source_changed']['now_sha256'][:12]}"
                              f" here, {p['source_changed']['recorded_sha256'][:12]} recorded)")
            if not (p["rebuilt_differs"] or p["missing_in_source"] or p["tampered"]):
                lines.append(f"replay {b}: all {p['items']} prompts match the manifest")
    for name, v in result["models"].items():
        if v["system_prompt_differs"]:
            lines.append(f"replay {name}: its system prompt differs from the recorded one, so every prompt sent "
                         "differs")
        for b, s in v["benchmarks"].items():
            rec = "—" if s["recorded"] is None else f"{100 * s['recorded']:.1f}%"
            new = "—" if s["replayed"] is None else f"{100 * s['replayed']:.1f}%"
            lines.append(f"replay {name} {b}: {new} (recorded {rec}, sampling of {v['sampling_from']}, "
                          f"{s['items']} items, {s['failed']} failed)")
    return lines
