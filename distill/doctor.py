"""`distill doctor`: what a new box has and what the pipeline config needs from it, as one table.

Each row says what was found and whether the CONFIG needs it: a missing thing the config needs (a teacher that
rejects its key, flash-attn for `attn_implementation: flash_attention_2`, a GPU for QLoRA, vLLM for a served
model) is FAIL and makes the exit code 1; what only helps (bf16, disk headroom) is a warning. Keys are sent to
`GET /v1/models` only (no tokens billed) and never printed.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError, redact

GiB = 1024**3
LOW_DISK_GIB = 20.0


@dataclass
class Row:
    check: str
    value: str
    status: str  # ok | warn | FAIL | info
    needed: bool = False


def _status(good: bool, needed: bool) -> str:
    return "ok" if good else ("FAIL" if needed else "warn")


def system_rows(cfg: Any) -> list[Row]:
    """Python, torch, CUDA, every GPU with its memory, bf16 and flash-attention support."""
    from distill.train.choices import BF16_MIN_CAPABILITY, choose_precision, flash_attn_available

    train = cfg.train
    rows = [Row("python", f"{platform.python_version()} ({sys.executable})", "info")]
    try:
        import torch
    except ImportError:
        return rows + [Row("torch", "not installed (pip install -e '.[train]')", _status(False, train is not None),
                           train is not None)]
    cuda = torch.cuda.is_available()
    needs_gpu = train is not None and (train.method == "qlora" or train.precision in ("fp16",))
    rows.append(Row("torch", torch.__version__, "ok"))
    found = (f"{torch.version.cuda} ({torch.cuda.device_count()} GPU)" if cuda
             else f"not available (torch CUDA build: {torch.version.cuda})")
    rows.append(Row("CUDA", found, _status(cuda, needs_gpu), needs_gpu))
    caps = []
    for i in range(torch.cuda.device_count() if cuda else 0):
        p = torch.cuda.get_device_properties(i)
        caps.append((p.major, p.minor))
        rows.append(Row(f"GPU {i}", f"{p.name}, {p.total_memory / GiB:.1f} GiB, compute {p.major}.{p.minor}", "info"))
    cap = min(caps) if caps else None
    auto = choose_precision("auto", cuda=cuda, capability=cap)
    native_bf16 = cap is not None and cap >= BF16_MIN_CAPABILITY
    rows.append(Row("bf16 (native)", f"{'yes' if native_bf16 else 'no'}; precision: auto -> {auto}",
                    "ok" if native_bf16 else ("warn" if cuda else "info")))
    fa_needed = train is not None and train.attn_implementation == "flash_attention_2"
    fa_ok = flash_attn_available() and native_bf16
    fa_value = ("flash-attn importable" if flash_attn_available() else "flash-attn not installed") + (
        "" if native_bf16 else "; needs an Ampere+ GPU")
    rows.append(Row("flash-attention 2", fa_value, _status(fa_ok, fa_needed) if fa_needed or fa_ok else "info",
                    fa_needed))
    return rows


def needs_vllm(cfg: Any) -> bool:
    served = cfg.eval is not None and any(m.serve is not None for m in cfg.eval.models)
    return served or cfg.serve is not None or cfg.demo is not None


def vllm_row(cfg: Any, timeout_s: float = 300.0) -> Row:
    """Import vLLM in a child process (a broken CUDA/driver pairing can crash the importer, not this table)."""
    needed = needs_vllm(cfg)
    try:
        proc = subprocess.run([sys.executable, "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Row("vLLM", f"import did not finish in {timeout_s:.0f} s", _status(False, needed), needed)
    if proc.returncode == 0:
        return Row("vLLM", f"importable, {proc.stdout.strip().splitlines()[-1]}", "ok", needed)
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return Row("vLLM", f"not importable: {last[:160]}", _status(False, needed), needed)


def _existing(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_rows(cfg: Any) -> list[Row]:
    from huggingface_hub import constants

    rows = []
    for label, path in (("disk free: runs", Path(cfg.root)), ("disk free: HF cache", Path(constants.HF_HUB_CACHE))):
        free = shutil.disk_usage(_existing(path)).free / GiB
        rows.append(Row(label, f"{free:.1f} GiB at {path}", "ok" if free >= LOW_DISK_GIB else "warn"))
    return rows


def _endpoints(cfg: Any) -> list[Any]:
    """Every API endpoint the config calls: collect's teachers and eval's non-served models (once each)."""
    eps = list(cfg.collect.teachers) if cfg.collect is not None else []
    if cfg.eval is not None:
        eps += [m for m in cfg.eval.models if m.serve is None and m.base_url]
    seen, out = set(), []
    for ep in eps:
        key = (ep.base_url, ep.api_key.get_secret_value(), ep.model)
        if key not in seen:
            seen.add(key)
            out.append(ep)
    return out


def probe_endpoint(ep: Any, timeout_s: float = 10.0) -> tuple[bool, str]:
    """(reachable and key accepted, what was seen) from one `GET {base_url}/models` (Anthropic: `/v1/models`
    with its `x-api-key` and `anthropic-version` headers)."""
    key = ep.api_key.get_secret_value()
    if getattr(ep, "provider", "openai") == "anthropic":
        url, auth = f"{ep.base_url}/v1/models", {"x-api-key": key, "anthropic-version": ep.anthropic_version}
    else:
        url, auth = f"{ep.base_url.rstrip('/')}/models", {"Authorization": f"Bearer {key}"}
    req = urllib.request.Request(url, headers={**auth, **ep.headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            ids = [m.get("id") for m in json.loads(r.read()).get("data", []) if isinstance(m, dict)]
    except urllib.error.HTTPError as err:
        why = "key rejected" if err.code in (401, 403) else "error"
        return False, f"HTTP {err.code} ({why})"
    except (urllib.error.URLError, OSError, ValueError) as err:
        return False, f"unreachable ({getattr(err, 'reason', err)})"
    listed = "model listed" if ep.model in ids else f"model not in its /models list of {len(ids)}"
    return True, f"HTTP 200, key accepted, {listed}"


def endpoint_rows(cfg: Any) -> list[Row]:
    rows = []
    for ep in _endpoints(cfg):
        ok, seen = probe_endpoint(ep)
        demo_started = not ok and cfg.demo is not None and "unreachable" in seen
        value = redact(f"{ep.base_url} model {ep.model}: {seen}", ep.secrets)
        if demo_started:  # `distill demo` serves its own teacher at this URL
            value += "; `distill demo` starts it"
        rows.append(Row(f"endpoint {ep.name}", value, "warn" if demo_started else _status(ok, True), not demo_started))
    return rows


PROBE = [
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2+3=5. The answer is 5."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"},
     {"role": "assistant", "content": "Red."}],
]


def template_row(cfg: Any) -> Row | None:
    """`train --check` on the curated dataset when it exists, else on a few probe conversations."""
    if cfg.train is None:
        return None
    from datasets import Dataset

    from distill.train.data import load_splits
    from distill.train.template import check_template, load_tokenizer

    tcfg = cfg.train
    data = tcfg.dataset or cfg.layout.dataset
    try:
        tok = load_tokenizer(tcfg)
        if Path(data).exists():
            rows, source = load_splits(Path(data), eval_fraction=0.0, seed=0, max_eval=None)[0], str(data)
        else:
            rows, source = Dataset.from_list([{"messages": m} for m in PROBE]), "probe conversations"
        chk = check_template(tok, rows, tcfg, source)
    except DistillError as err:
        return Row("chat template (train --check)", str(err)[:200], "FAIL", True)
    if chk.problems:
        return Row("chat template (train --check)", f"{source}: {chk.problems[0][:200]}", "FAIL", True)
    return Row("chat template (train --check)",
               f"{chk.examples} {source} rendered; end tokens in loss: {', '.join(chk.end_tokens)}", "ok", True)


def sandbox_modes(cfg: Any) -> set[str]:
    """The sandbox modes the config's code checks surely run in: HumanEval, and curate's `verify.kind: code`."""
    modes = set()
    if cfg.eval is not None:
        modes |= {str(b.options.get("sandbox", "bwrap")) for b in cfg.eval.benchmarks
                  if (b.kind or b.name) == "humaneval"}
    if cfg.curate is not None and cfg.curate.verify.enabled and cfg.curate.verify.kind == "code":
        modes.add(cfg.curate.verify.sandbox)  # kind auto runs code only for records that carry tests: a warning
    return modes


def sandbox_row(cfg: Any) -> Row:
    """bubblewrap present AND able to build the sandbox here (a container may forbid its namespaces): one run."""
    from distill.sandbox import bwrap_path, run_code

    needed = "bwrap" in sandbox_modes(cfg)
    path = bwrap_path()
    if path is None:
        return Row("sandbox (bwrap)", "bwrap not installed (apt-get install bubblewrap)", _status(False, needed),
                   needed)
    try:
        res = run_code("print('ok')")
    except DistillError as err:
        return Row("sandbox (bwrap)", f"{path}: cannot build the sandbox: {str(err)[:160]}", _status(False, needed),
                   needed)
    return Row("sandbox (bwrap)", f"{path}: a confined run {res.status}", _status(res.passed, needed), needed)


def run_doctor(cfg: Any) -> list[Row]:
    rows = system_rows(cfg)
    rows.append(vllm_row(cfg))
    rows += disk_rows(cfg)
    rows += endpoint_rows(cfg)
    tpl = template_row(cfg)
    if tpl is not None:
        rows.append(tpl)
    rows.append(sandbox_row(cfg))
    return rows


def print_rows(rows: list[Row], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("check", "found", "status", "config needs it"):
        table.add_column(col)
    colors = {"ok": "green", "FAIL": "red", "warn": "yellow", "info": "white"}
    for r in rows:
        table.add_row(r.check, r.value, f"[{colors[r.status]}]{r.status}[/{colors[r.status]}]",
                      "yes" if r.needed else "")
    Console(width=max(Console().width, 140)).print(table)  # the table is the command's output: stdout


def doctor_summary(rows: list[Row]) -> dict[str, Any]:
    failed = [r.check for r in rows if r.status == "FAIL"]
    return {"ok": not failed, "failed": failed, "rows": [asdict(r) for r in rows]}
