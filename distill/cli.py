"""The `distill` command: one subcommand per stage. Parses, calls, prints — no logic here.

A `DistillError` (a user mistake) prints as one `error:` line and exits 2; Ctrl-C exits 130 with the cache intact.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import DistillError, redact

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (help, args, fn)
        return fn
    return wrap


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="pipelines/demo.yaml", help="pipeline YAML (default: pipelines/demo.yaml)")
    p.add_argument("--force", action="store_true", help="re-run even if the stage is up to date")


def _load(args: argparse.Namespace) -> Any:
    from distill.config import load_config

    return load_config(args.config)


def _need(cfg: Any, section: str) -> Any:
    value = getattr(cfg, section, None)
    if value is None:
        raise DistillError(f"{cfg.name}: the config has no `{section}:` section")
    return value


def _collect_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--dry-run", action="store_true",
                   help="estimate requests, tokens and $ (online and batch) from a small pilot; send nothing else")
    p.add_argument("--cancel-batches", action="store_true",
                   help="cancel this pipeline's submitted, unfinished batches (recorded; a re-run keeps what finished "
                        "and submits the rest again)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="collect only shard I of N (prompts by a stable hash of their id; own cache, lock and "
                        "budget/rate-limit share under runs/<name>/collect-shards/); the last shard merges")
    p.add_argument("--merge", type=int, default=None, metavar="N",
                   help="merge the N shards' outputs into runs/<name>/collect (checks each prompt x teacher x "
                        "sample is present exactly once)")


@command("collect", "query the teacher(s) for every prompt (cached, resumable)", _collect_args)
def _collect(args: argparse.Namespace) -> int:
    from distill.collect import run_collect, run_estimate

    cfg = _load(args)
    if args.cancel_batches:
        from distill.collect.cancel import run_cancel_batches

        rows = run_cancel_batches(_need(cfg, "collect"), cfg.layout)
        for r in rows:
            batch = r["batch_id"] or "(never created)"
            print(f"cancel: {r['teacher']} chunk {r['chunk']} batch {batch}: {r['status']}")
        print(f"cancelled {len(rows)} batch(es); `distill collect` keeps what finished and submits the rest again"
              if rows else "no unfinished batches to cancel")
        return 0
    if args.dry_run:
        run_estimate(_need(cfg, "collect"), cfg.layout)
        print(f"estimate written to {cfg.layout.estimate}")
        return 0
    if args.shard is not None or args.merge is not None:
        from distill.collect.shard import merge_shards, parse_shard, run_collect_shard

        if args.merge is not None:
            merged = merge_shards(_need(cfg, "collect"), cfg.layout, args.merge)
            if merged is None:
                return 1
            summary = merged
        else:
            i, n = parse_shard(args.shard)
            summary = run_collect_shard(_need(cfg, "collect"), cfg.layout, i, n, force=args.force)
    else:
        summary = run_collect(_need(cfg, "collect"), cfg.layout, force=args.force)
    where = cfg.layout.collect if not summary.get("shard") else f"shard {summary['shard']}"
    print(f"collect: {summary['records']} records in {where} "
          f"(new {summary['completed']}, cached {summary['from_cache']}, failed {summary['failed']}, "
          + (f"parser rejected {summary['parser_failed']}, " if summary.get("parser_failed") else "")
          + f"${summary['cost_usd']:.4f})")
    return 0 if summary.get("complete") else 1


@command("curate", "filter, verify, dedup and decontaminate the collect records -> an SFT dataset", _config_args)
def _curate(args: argparse.Namespace) -> int:
    from distill.curate import run_curate

    cfg = _load(args)
    ccfg = _need(cfg, "curate")
    s = run_curate(ccfg, cfg.layout, force=args.force, pipeline=cfg.name)
    removed = ", ".join(f"{k} {v['removed']}" for k, v in s["filters"].items() if v.get("removed"))
    print(f"curate: {s['records_out']} records ({s['splits']['train']['records']} train, "
          f"{s['splits']['validation']['records']} validation) of {s['records_in']} in {cfg.root / 'curate'}"
          + (f"; removed: {removed}" if removed else ""))
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in runs/<name>/train-work")
    p.add_argument("--check", action="store_true", help="only run the chat-template check on the first N examples")


@command("train", "fine-tune the student on the curated dataset (TRL + PEFT); --check: template check only", _train_args)
def _train(args: argparse.Namespace) -> int:
    from distill.train import dataset_path, run_check, run_train

    cfg = _load(args)
    tcfg = _need(cfg, "train")
    if args.check:
        chk = run_check(tcfg, dataset_path(tcfg, cfg.layout))
        print(f"train --check: {chk.examples} examples rendered, no template problems")
        return 0
    s = run_train(tcfg, cfg.layout, force=args.force, resume=args.resume)
    if s.get("not_main_process"):
        return 0
    if s.get("skipped"):
        print(f"train: up to date in {cfg.layout.train} (use --force to re-run)")
        return 0
    print(f"train: {s['method']} {s['global_step']} steps, {s['tokens_seen']} tokens ({s['tokens_per_s']} tok/s), "
          f"train loss {s['train_loss_final']}, eval loss {s['eval_loss_initial']} -> {s['eval_loss_final']}, "
          f"out {cfg.layout.train}")
    return 0


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="pipelines/demo.yaml", help="pipeline YAML (default: pipelines/demo.yaml)")
    p.add_argument("--port", type=int, default=None, help="override serve.port")
    p.add_argument("--host", default=None, help="override serve.host (0.0.0.0 inside a container)")


@command("serve", "serve the trained student with vLLM (OpenAI-compatible) until Ctrl-C", _serve_args)
def _serve(args: argparse.Namespace) -> int:
    from distill.serve import serve_foreground
    from distill.serve_config import ServeConfig

    cfg = _load(args)
    return serve_foreground(cfg.serve or ServeConfig(), cfg.layout, port=args.port, host=args.host)


def _eval_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--limit", type=int, default=None, help="first N items of every benchmark (quick runs)")
    p.add_argument("--model", action="append", default=None,
                   help="only this eval model (repeatable); with --base-url: the model id to send")
    p.add_argument("--dry-run", action="store_true",
                   help="per model x benchmark: items, requests, prompt/completion tokens and $ low/expected/high "
                        "from a small pilot (eval.estimate); send nothing else")
    r = p.add_argument_group("replay (re-ask a manifest's exact prompts of any endpoint)")
    r.add_argument("--replay", metavar="MANIFEST", default=None, help="an eval manifest.json to re-ask")
    r.add_argument("--base-url", default=None, help="the endpoint to ask instead of the config's eval models")
    r.add_argument("--api-key-env", default=None, help="environment variable holding that endpoint's API key")
    r.add_argument("--name", default=None, help="label of that endpoint; whose recorded sampling it uses "
                   "(default: the manifest's teacher)")
    r.add_argument("--out", default=None, help="replay output dir (default: <run_dir>/eval-replay, or "
                   "runs/replay-<pipeline> with --base-url)")


def _replay(args: argparse.Namespace) -> int:
    from distill.replay import adhoc_endpoint, replay_lines, run_replay

    manifest = Path(args.replay)
    if args.base_url:
        if not args.model or len(args.model) != 1:
            raise DistillError("--replay with --base-url needs exactly one --model ID (the model id to send)")
        m, pipeline = adhoc_endpoint(manifest, args.base_url, args.model[0], args.api_key_env, args.name)
        models, out, root = [m], Path(args.out or f"runs/replay-{pipeline}"), None
    else:
        cfg = _load(args)
        ecfg = _need(cfg, "eval")
        models = [m for m in ecfg.models if not args.model or m.name in args.model]
        if not models:
            raise DistillError(f"--model: no eval model named {', '.join(args.model)}")
        out, root = Path(args.out) if args.out else cfg.layout.eval_replay, cfg.root
    result = run_replay(manifest, models, out, run_root=root)
    for line in replay_lines(result):
        print(line)
    print(f"replay: results in {out} (replay.json)")
    return 1 if result["prompts_differ"] or not all(v["complete"] for v in result["models"].values()) else 0


EXIT_INCOMPLETE = 3  # eval finished, but some requests failed or were held by the budget cap


@command("eval", "score every eval model on every benchmark (cached; starts vLLM for served models)", _eval_args)
def _eval(args: argparse.Namespace) -> int:
    from distill.evaluate import run_eval

    if args.replay and args.dry_run:  # a replay sends every recorded prompt for real: no dry run of it exists
        raise DistillError("--replay and --dry-run together: a replay has no dry run (it would send every request); "
                           "run `distill eval --dry-run` without --replay for an estimate")
    if args.replay:
        return _replay(args)
    cfg = _load(args)
    if args.limit is not None and args.limit < 1:
        raise DistillError("--limit: expected a positive number of items")
    if args.dry_run:
        from distill.eval_estimate import run_eval_estimate

        run_eval_estimate(_need(cfg, "eval"), cfg.layout, models=args.model, limit=args.limit)
        print(f"estimate written to {cfg.layout.eval_estimate}")
        return 0
    top = run_eval(_need(cfg, "eval"), cfg.layout, pipeline=cfg.name, force=args.force, models=args.model,
                   limit=args.limit)
    for name, m in top["models"].items():
        scores = " ".join(f"{b}={'—' if v is None else f'{100 * v:.1f}%'}" for b, v in m["scores"].items())
        usd = m.get("usd_per_1m_tokens")  # prompt + completion (older summaries: output only)
        usd = m.get("usd_per_1m_output_tokens") if usd is None else usd
        print(f"eval {name} ({m['role']}): {scores} $/1M={'—' if usd is None else f'{usd:.4f}'}")
    print(f"eval: results in {cfg.layout.eval}")
    # its own status (not 1, which a crash also exits with): `make compare` renders the report after an incomplete
    # eval (the report marks those cells) but stops after anything else
    return 0 if top.get("complete") else EXIT_INCOMPLETE


@command("report", "render the teacher-vs-student table (Markdown, JSON) and chart from eval results", _config_args)
def _report(args: argparse.Namespace) -> int:
    from distill.report import run_report

    cfg = _load(args)
    run_report(cfg.report, cfg.layout, pipeline=cfg.name, eval_models=cfg.eval.model_names if cfg.eval else None,
               force=args.force)
    out = cfg.layout.report
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"report: {out / 'report.md'}, {out / 'report.json'}, {out / 'chart.png'}")
    return 0


def _push_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="pipelines/demo.yaml", help="pipeline YAML (default: pipelines/demo.yaml)")
    p.add_argument("--card-only", action="store_true", help="write runs/<name>/push/README.md, upload nothing")


@command("push", "upload the trained student (merged, or the adapter) to the hub with a model card from the run",
         _push_args)
def _push(args: argparse.Namespace) -> int:
    from distill.push import run_push

    cfg = _load(args)
    s = run_push(_need(cfg, "push"), cfg.layout, cfg.name, card_only=args.card_only)
    if not s["uploaded"]:
        print(f"push: card written to {s['card']} ({len(s['files'])} files, {s['bytes']} bytes would be uploaded)")
        return 0
    print(f"push: {len(s['files'])} files to {s['url']} (commit {s['commit']}); card {s['card']}")
    return 0


def _doctor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="pipelines/demo.yaml", help="pipeline YAML (default: pipelines/demo.yaml)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")


@command("doctor", "check this box against the config: GPU, bf16, flash-attn, vLLM, disk, teacher keys, template",
         _doctor_args)
def _doctor(args: argparse.Namespace) -> int:
    from distill.doctor import doctor_summary, print_rows, run_doctor
    from distill.rundir import write_json

    cfg = _load(args)
    rows = run_doctor(cfg)
    print_rows(rows, f"distill doctor: {args.config}")
    summary = doctor_summary(rows)
    if args.json is not None:
        write_json(args.json, summary)
    print("doctor: ok" if summary["ok"] else f"doctor: missing what the config needs: {', '.join(summary['failed'])}")
    return 0 if summary["ok"] else 1


@command("demo", "the whole pipeline offline: serve the tiny teacher, collect, curate, train, serve, eval, report",
         _config_args)
def _demo(args: argparse.Namespace) -> int:
    from distill.demo.run import run_demo

    run_demo(_load(args), force=args.force)
    return 0


@command("rounds", "gap-driven collection: each round the teacher answers only what the student does not know yet "
         "(select -> collect -> curate -> train -> eval, per round dir)", _config_args)
def _rounds(args: argparse.Namespace) -> int:
    from distill.rounds import run_rounds

    cfg = _load(args)
    s = run_rounds(cfg, force=args.force)
    print(f"rounds: {len(s['rounds'])} rounds, {s['teacher_requests']} teacher requests, ${s['cost_usd']:.4f}; "
          f"summary {cfg.root / 'rounds' / 'summary.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="black-box LLM distillation, stage by stage")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, fn) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    from distill.progress import log_friendly_bars

    log_friendly_bars()  # before any stage imports tqdm
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DistillError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything answered so far is in the cache; re-run to resume", file=sys.stderr)
        return 130
    except Exception:  # a bug, not a user mistake: keep the traceback, but never with a key in it
        import traceback

        print(redact(traceback.format_exc()), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
