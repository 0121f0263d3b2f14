"""Start the fake provider servers (`distill.devtools.fake_openai` / `fake_anthropic`) with any of their flags."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FakeServer


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    """Factory: `fake_api("anthropic", "--api-key", K, "--fault", "overloaded=0.2")` -> a live server."""
    started: list[FakeServer] = []

    def start(kind: str, *flags: str) -> FakeServer:
        log = tmp_path / f"served-{kind}-{len(started)}.jsonl"
        cmd = [sys.executable, "-m", f"distill.devtools.fake_{kind}", "--port", "0", "--log", str(log), *flags]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"fake {kind} server did not start: {line!r}"
        srv = FakeServer(proc, int(line.split()[1]), log)
        started.append(srv)
        return srv

    yield start
    for s in started:
        s.stop()
