"""The response cache on its own: what a commit makes durable, lookups, keys, and writers in other processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from distill.llm.cache import ResponseCache, request_key, sample_key


def _rec(i: int, text: str = "") -> dict:
    return {"completion": text or f"answer {i}", "sample_index": i, "note": "ünïcode ✓"}


def test_put_get_lookup_and_replace(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c" / "llm.sqlite")  # the parent dir is created
    assert cache.get("nope") is None and cache.get_many(["nope"]) == {} and cache.has_many(["nope"]) == set()
    cache.put_many([(f"k{i}", "ep", i, _rec(i)) for i in range(3)])
    assert len(cache) == 3 and cache.get("k1") == _rec(1)
    assert cache.has_many(["k0", "k2", "zz"]) == {"k0", "k2"}
    assert cache.get_many(["k2", "k0", "zz"]) == {"k2": _rec(2), "k0": _rec(0)}
    cache.put_many([("k1", "ep", 1, _rec(1, "better"))])  # the same key again replaces, never duplicates
    assert len(cache) == 3 and cache.get("k1")["completion"] == "better"
    assert [r["sample_index"] for r in cache.iter_records()] == [0, 2, 1]  # insertion order, the replaced one last
    cache.close()


def test_lookups_past_sqlites_parameter_limit(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "llm.sqlite")
    cache.put_many([(f"k{i}", "ep", 0, {"i": i}) for i in range(1_234)])
    keys = [f"k{i}" for i in range(0, 2_000)]
    assert len(cache.has_many(keys)) == 1_234 and cache.get_many(keys)["k1233"] == {"i": 1233}
    cache.close()


def test_keys_name_what_decides_the_answer() -> None:
    msgs = [{"role": "user", "content": "2+2?"}]
    k = request_key("http://x/v1", "m", {"temperature": 0}, msgs)
    assert k == request_key("http://x/v1/", "m", {"temperature": 0}, msgs)  # a trailing slash is the same endpoint
    assert len({k, request_key("http://y/v1", "m", {"temperature": 0}, msgs),
                request_key("http://x/v1", "m2", {"temperature": 0}, msgs),
                request_key("http://x/v1", "m", {"temperature": 1}, msgs),
                request_key("http://x/v1", "m", {"temperature": 0}, [{"role": "user", "content": "2+3?"}])}) == 5
    assert sample_key(k, 0) != sample_key(k, 1) and sample_key(k, 3).endswith("-3")


def test_a_committed_row_survives_kill_9_of_the_writer(tmp_path: Path) -> None:
    """put_many returns only after COMMIT: rows the writer reported are there after SIGKILL, none torn."""
    db = tmp_path / "llm.sqlite"
    code = textwrap.dedent(f"""
        import sys, time
        from distill.llm.cache import ResponseCache
        c = ResponseCache({str(db)!r})
        i = 0
        while True:
            c.put_many([(f"k{{i}}-{{j}}", "ep", j, {{"i": i, "pad": "x" * 2000}}) for j in range(20)])
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported = -1
    for line in proc.stdout:
        reported = int(line)
        if reported >= 30:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    cache = ResponseCache(db)
    present = {r["i"] for r in cache.iter_records()}
    assert set(range(reported + 1)) <= present  # every reported batch is durable
    assert len(cache) == 20 * len(present)  # a batch is all or nothing
    cache.close()


def test_concurrent_writers_in_two_processes_lose_nothing(tmp_path: Path) -> None:
    """Collect and eval (or two evals) share one cache file: WAL + busy_timeout serialise their commits."""
    db = tmp_path / "llm.sqlite"
    code = textwrap.dedent(f"""
        import sys
        from distill.llm.cache import ResponseCache
        c = ResponseCache({str(db)!r})
        w = sys.argv[1]
        for i in range(150):
            c.put_many([(f"{{w}}-{{i}}-{{j}}", w, j, {{"w": w, "i": i}}) for j in range(4)])
        c.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, w]) for w in ("a", "b", "c")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    cache = ResponseCache(db)
    assert len(cache) == 3 * 150 * 4
    assert cache.get("b-149-3") == {"w": "b", "i": 149}
    rows = list(cache.iter_records())
    assert {(r["w"], r["i"]) for r in rows} == {(w, i) for w in "abc" for i in range(150)}
    cache.close()
