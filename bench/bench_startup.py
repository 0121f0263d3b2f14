"""Start-up: seconds from launching `distill collect` to the first request the server sees (median of runs).

The loopback fake server logs each request with its wall-clock time; the launch time is taken just before the
process is spawned, so the figure covers interpreter start, imports, config and prompt loading, and the client.
Goal (issue 12 §4): under 1 s. Each run uses a fresh run dir (nothing cached) and a small prompt file.

    python bench/bench_startup.py [--runs 5] [--prompts 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def first_request_after(log: Path, since: float, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            times = [json.loads(ln)["t"] for ln in log.read_text().splitlines() if ln.strip()]
            later = [t for t in times if t >= since]
            if later:
                return min(later) - since
        time.sleep(0.01)
    raise RuntimeError("the server saw no request")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    log = tmp / "served.jsonl"
    srv = subprocess.Popen([sys.executable, "-m", "distill.devtools.fake_openai", "--port", "0", "--log", str(log)],
                           stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None
    url = f"http://127.0.0.1:{int(srv.stdout.readline().split()[1])}/v1"
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"q": f"what is {i} + {i}?"}) + "\n" for i in range(args.prompts)))
    firsts, totals = [], []
    try:
        for i in range(args.runs):
            cfg = tmp / f"p{i}.yaml"
            cfg.write_text(yaml.safe_dump({"name": f"s{i}", "run_dir": str(tmp / f"run{i}"), "collect": {
                "prompts": {"path": str(prompts), "field": "q"}, "progress": False,
                "teachers": [{"name": "t", "base_url": url, "model": "m", "params": {"max_tokens": 16}}]}}))
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)], env=os.environ,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            totals.append(time.time() - t0)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            firsts.append(first_request_after(log, t0))
    finally:
        srv.kill()
    print(f"`distill collect` start -> first request: median {statistics.median(firsts):.3f} s "
          f"(runs: {' '.join(f'{x:.3f}' for x in firsts)}); whole run of {args.prompts} prompts: median "
          f"{statistics.median(totals):.3f} s")


if __name__ == "__main__":
    main()
