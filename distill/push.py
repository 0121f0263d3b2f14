"""push: the trained student to the Hugging Face hub, with a model card written from the run's own records.

The card says what a reader needs to trust and reuse the student: the base model at its resolved commit, the
teachers by the model ids their APIs returned (not the ids requested), the dataset (the pushed dataset's link, or
its card shipped alongside), the training config, the eval table with its protocol, what collection and training
cost, and the license. It is written to `<run_dir>/push/README.md` before anything is sent, so an offline box (or a
failed upload) still leaves it on disk; the upload itself is one commit of the files `upload_plan` lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from distill.errors import DistillError, InputError
from distill.hub import is_hub_id, offline
from distill.rundir import RunLayout, base_summary, fingerprint, read_summary, require_stage, write_json
from distill.push_config import PushConfig


CARD = "README.md"
DATASET_CARD = "DATASET_CARD.md"


# -- reading the run ----------------------------------------------------------------------------------------------
def _summary(stage_dir: Path) -> dict[str, Any]:
    return read_summary(stage_dir) or {}


def teachers(run_root: Path) -> list[dict[str, Any]]:
    """Each teacher with the model ids its API returned (curate counted them per record), else what collect asked."""
    cur = _summary(RunLayout(run_root).curate).get("teachers") or {}
    if cur:
        return [{"name": t, "models": v.get("models") or [], "records": v.get("in"), "kept": v.get("kept"),
                 "returned": True} for t, v in cur.items()]
    col = _summary(RunLayout(run_root).collect)
    out = []
    for t in (col.get("config") or {}).get("teachers") or []:
        per = (col.get("per_teacher") or {}).get(t.get("name"), {})
        out.append({"name": t.get("name"), "models": [t.get("model")], "records": per.get("completed"), "kept": None,
                    "returned": False})
    return out


def dataset_link(run_root: Path, pcfg: PushConfig) -> str | None:
    """The hub dataset id the student was trained on, when it was pushed."""
    if pcfg.dataset:
        return pcfg.dataset
    hub = ((_summary(RunLayout(run_root).curate).get("config") or {}).get("push_to_hub") or {})
    return hub.get("repo_id")


def costs(run_root: Path, train: dict[str, Any], pcfg: PushConfig) -> dict[str, Any]:
    """$ of collection (priced per token by collect) and of training (device hours x the configured GPU rate)."""
    col = _summary(RunLayout(run_root).collect)
    hours = float(train["wall_s"]) / 3600 * int(train.get("world_size") or 1) if train.get("wall_s") is not None else None
    rate = pcfg.train_gpu_usd_per_hour if train.get("device") == "cuda" else None
    return {"collect_usd": col.get("cost_usd"), "collect_prompt_tokens": col.get("prompt_tokens"),
            "collect_completion_tokens": col.get("completion_tokens"), "train_device": train.get("device"),
            "train_processes": train.get("world_size"), "train_device_hours": round(hours, 4) if hours else hours,
            "train_usd": round(hours * rate, 4) if hours is not None and rate is not None else None}


def _base(train: dict[str, Any]) -> dict[str, Any]:
    """The base model as train resolved it (hub id + commit, or a local dir's hash)."""
    res = train.get("student_resolved") or {}
    name = train.get("student") or (train.get("config") or {}).get("student")
    local = res.get("local", not (isinstance(name, str) and is_hub_id(name)))
    return {"name": name, "revision": res.get("revision"), "identity": res.get("identity"), "local": local}


# -- the card -----------------------------------------------------------------------------------------------------
def _front_matter(pcfg: PushConfig, base: dict[str, Any], dataset: str | None, method: str | None) -> str:
    meta: dict[str, Any] = {"license": pcfg.license}
    if pcfg.license_name:
        meta["license_name"] = pcfg.license_name
    if pcfg.license_link:
        meta["license_link"] = pcfg.license_link
    if not base["local"] and base["name"]:
        meta["base_model"] = base["name"]
        meta["base_model_relation"] = "adapter" if pcfg.what == "adapter" else "finetune"
    if dataset:
        meta["datasets"] = [dataset]
    meta["library_name"] = "peft" if pcfg.what == "adapter" else "transformers"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = list(dict.fromkeys(["distill", "distillation", "sft", *([method] if method else []), *pcfg.tags]))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---\n"


def _teacher_lines(ts: list[dict[str, Any]]) -> list[str]:
    if not ts:
        return ["No collect/curate records were found in the run dir; the teachers are not known to this card."]
    lines = ["| teacher | model id(s) | records collected | records kept |", "|---|---|---|---|"]
    for t in ts:
        ids = ", ".join(f"`{m}`" for m in t["models"] if m) or "?"
        lines.append(f"| {t['name']} | {ids} | {t['records'] if t['records'] is not None else '—'} | "
                     f"{t['kept'] if t['kept'] is not None else '—'} |")
    how = ("the model ids the teachers' APIs returned in their responses" if all(t["returned"] for t in ts)
           else "the model ids requested (no curate summary with the ids the APIs returned)")
    return [*lines, "", f"Model ids: {how}."]


def _eval_lines(run_root: Path) -> list[str]:
    """report.md's table (with its intervals and protocol notes) plus each benchmark's protocol from eval."""
    report_md = RunLayout(run_root).report / "report.md"
    if not report_md.is_file():
        return ["Not evaluated in this run (no `report/report.md`: run `distill eval` and `distill report`)."]
    body = [ln for ln in report_md.read_text(encoding="utf-8").splitlines() if not ln.startswith("# ")]
    body = ["#" + ln if ln.startswith("##") else ln for ln in body]  # the report's sections nest under this one
    while body and not body[0].strip():
        body.pop(0)
    rep = _summary(RunLayout(run_root).report)
    extra = {k: rep[k] for k in ("protocol", "intervals", "paired", "confidence") if k in rep}
    if extra:
        body += ["", "Report protocol (from `report/summary.json`):", "", "```json",
                 json.dumps(extra, indent=2, default=str), "```"]
    student = (rep.get("roles") or {}).get("student")
    ev = _summary(RunLayout(run_root).eval_model(student)) if student else {}
    if ev.get("benchmarks"):
        body += ["", f"Protocol per benchmark (eval of `{student}`):", "",
                 "| benchmark | items | k-shot | temperature | max tokens | samples per item |", "|---|---|---|---|---|---|"]
        for name, b in ev["benchmarks"].items():
            body.append(f"| {name} | {b.get('items')} | {b.get('k_shot')} | {b.get('temperature')} | "
                        f"{b.get('max_tokens')} | {b.get('n')} |")
    return body


def _train_lines(train: dict[str, Any]) -> list[str]:
    cfg = train.get("config") or {}
    facts = [("method", train.get("method")), ("precision", train.get("precision")),
             ("processes", train.get("world_size")), ("steps", train.get("global_step")),
             ("epochs", train.get("epochs")), ("tokens seen", train.get("tokens_seen")),
             ("trainable / total parameters", f"{train.get('trainable_params')} / {train.get('total_params')}"),
             ("eval loss (start -> end)", f"{train.get('eval_loss_initial')} -> {train.get('eval_loss_final')}")]
    lines = [f"- {k}: {v}" for k, v in facts if v is not None]
    return [*lines, "", "<details><summary>train config</summary>", "", "```yaml",
            yaml.safe_dump(cfg, sort_keys=False).strip(), "```", "", "</details>"]


def _cost_lines(c: dict[str, Any]) -> list[str]:
    usd = c.get("collect_usd")
    lines = [f"- collection: {'unknown' if usd is None else f'${usd:.4f}'} ({c.get('collect_prompt_tokens')} prompt + "
             f"{c.get('collect_completion_tokens')} completion tokens at the configured prices)"]
    hours, device, train_usd = c.get("train_device_hours"), c.get("train_device") or "device", c.get("train_usd")
    gpu = device == "cuda"
    lines.append(f"- training: {hours} {'GPU' if gpu else device}-hours over {c.get('train_processes')} process(es)"
                 + (f", ${train_usd:.4f}" if train_usd is not None
                    else " (set push.train_gpu_usd_per_hour for $)" if gpu else ""))
    return lines


def model_card(run_root: Path, pcfg: PushConfig, name: str) -> str:
    """The model card (README.md) for the run in `run_root`; reads only stage summaries and report files."""
    run_root = Path(run_root)
    train = require_stage(RunLayout(run_root).train, "train")
    base, ts, dataset = _base(train), teachers(run_root), dataset_link(run_root, pcfg)
    c = costs(run_root, train, pcfg)
    pinned = (f" at commit `{base['revision']}`" if base["revision"] else
              f" (a local model, files hash `{base['identity']}`)" if base["identity"] else "")
    ship = ("a LoRA adapter: load it on the base model with PEFT" if pcfg.what == "adapter"
            else "the merged model (base + adapter folded in): loads with transformers and serves with vLLM")
    data_line = (f"[{dataset}](https://huggingface.co/datasets/{dataset})" if dataset
                 else f"not on the hub; its card is [{DATASET_CARD}]({DATASET_CARD}) in this repo")
    lic = pcfg.license + (f" ({pcfg.license_name}" + (f", {pcfg.license_link}" if pcfg.license_link else "") + ")"
                          if pcfg.license_name or pcfg.license_link else "")
    parts = [
        _front_matter(pcfg, base, dataset, train.get("method")),
        f"# {pcfg.repo_id}", "",
        f"A student distilled with `distill` (pipeline `{name}`): supervised fine-tuning on a teacher's answers "
        f"collected through its API (black-box, text only). This repo holds {ship}.", "",
        "## Base model", "", f"`{base['name']}`{pinned}.", "",
        "## Teachers", "", *_teacher_lines(ts), "",
        "## Dataset", "", f"Training data: {data_line}.", "",
        "## Training", "", *_train_lines(train), "",
        "## Evaluation", "", *_eval_lines(run_root), "",
        "## Cost", "", *_cost_lines(c), "",
        "## License", "",
        f"{lic}. The student also inherits the base model's license and the terms of use of each teacher's API "
        "(some forbid using outputs to train competing models): check them before you publish.", "",
        f"Made with distill {train.get('distill_version', '')} (train fingerprint `{train.get('fingerprint')}`).",
    ]
    return "\n".join(parts) + "\n"


# -- what to upload -----------------------------------------------------------------------------------------------
def upload_plan(run_root: Path, pcfg: PushConfig, push_dir: Path) -> list[tuple[str, Path]]:
    """(path in repo, local file) for every file of the upload: the weights dir, the card, the dataset card."""
    lay = RunLayout(run_root)
    src = lay.train / pcfg.what
    if not src.is_dir():
        hint = " (train.merge: false? push.what: adapter ships the adapter)" if pcfg.what == "merged" else \
            " (train.method: full has no adapter; push.what: merged)"
        raise InputError(f"push.what: {src} does not exist{hint}")
    plan = [(p.relative_to(src).as_posix(), p) for p in sorted(src.rglob("*")) if p.is_file()]
    if pcfg.what == "adapter":  # name the base by its hub id, not the local cache path training loaded it from
        plan = [(r, push_dir / "adapter_config.json" if r == "adapter_config.json" else p) for r, p in plan]
    plan = [(r, p) for r, p in plan if r != CARD] + [(CARD, push_dir / CARD)]
    if not dataset_link(run_root, pcfg) and (lay.curate / "README.md").is_file():
        plan.append((DATASET_CARD, lay.curate / "README.md"))
    return plan


def _adapter_config(run_root: Path, base: dict[str, Any], push_dir: Path) -> None:
    conf = json.loads((RunLayout(run_root).adapter / "adapter_config.json").read_text())
    if not base["local"]:
        conf["base_model_name_or_path"] = base["name"]
        conf["revision"] = base["revision"]
    write_json(push_dir / "adapter_config.json", conf)


def _upload(pcfg: PushConfig, plan: list[tuple[str, Path]]) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=pcfg.token.get_secret_value() if pcfg.token else None)
    api.create_repo(pcfg.repo_id, private=pcfg.private, exist_ok=True)
    info = api.create_commit(pcfg.repo_id, [CommitOperationAdd(path_in_repo=r, path_or_fileobj=str(p)) for r, p in plan],
                             commit_message=pcfg.commit_message)
    return str(getattr(info, "oid", "") or "")


def run_push(pcfg: PushConfig, layout: RunLayout, name: str, *, card_only: bool = False) -> dict[str, Any]:
    """Write the card (always), then upload; offline or a failed upload is one error that names the card on disk."""
    run_root = layout.root
    push_dir = layout.push
    push_dir.mkdir(parents=True, exist_ok=True)
    card = model_card(run_root, pcfg, name)
    (push_dir / CARD).write_text(card, encoding="utf-8")
    train = require_stage(layout.train, "train")
    if pcfg.what == "adapter" and (layout.adapter / "adapter_config.json").is_file():
        _adapter_config(run_root, _base(train), push_dir)
    plan = upload_plan(run_root, pcfg, push_dir)
    config = pcfg.model_dump(mode="json", exclude={"token"})
    summary = base_summary("push", fingerprint(config, train.get("fingerprint")), config) | {
        "repo_id": pcfg.repo_id, "card": str(push_dir / CARD), "files": [r for r, _ in plan],
        "bytes": sum(p.stat().st_size for _, p in plan), "uploaded": False, "commit": None}
    if card_only:
        write_json(push_dir / "summary.json", summary)
        return summary
    if offline():
        write_json(push_dir / "summary.json", summary)
        raise DistillError(f"push: HF_HUB_OFFLINE is set, nothing uploaded to {pcfg.repo_id}; the model card is at "
                           f"{push_dir / CARD}")
    try:
        commit = _upload(pcfg, plan)
    except Exception as err:  # noqa: BLE001 — network, auth, quota: the user's to fix, in one line
        write_json(push_dir / "summary.json", summary)
        raise DistillError(f"push: could not upload to {pcfg.repo_id} ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}); the model card is at "
                           f"{push_dir / CARD}") from None
    summary.update(uploaded=True, commit=commit, url=f"https://huggingface.co/{pcfg.repo_id}")
    write_json(push_dir / "summary.json", summary)
    return summary
