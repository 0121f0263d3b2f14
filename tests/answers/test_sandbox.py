"""sandbox.py: real bubblewrap sandboxes running hostile programs; each test fails if its containment broke."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from distill import sandbox
from distill.errors import DistillError
from distill.sandbox import Limits, bwrap_path, run_code

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")


_SLEEP = "import os, time; open(f'up-{os.getpid()}', 'w').close(); time.sleep(60)"  # says it is up, lingers


def _survivors(marker: str) -> list[int]:
    """Host PIDs whose command line carries `marker` (a process the sandboxed code started)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_passes_a_correct_solution_and_fails_a_wrong_one():
    ok = run_code("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('done')")
    assert ok.status == "passed" and ok.passed and ok.stdout == "done\n"
    bad = run_code("def add(a, b):\n    return a - b\nassert add(2, 3) == 5")
    assert bad.status == "failed" and not bad.passed and "AssertionError" in bad.stderr


def test_runs_unprivileged_read_only_and_with_a_clean_environment():
    r = run_code("import os, sys\n"
                 "print(os.getuid(), os.geteuid(), os.getpid(), sys.prefix)\n"
                 "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
                 "print(sorted(os.environ))\n"
                 "for path in ('/usr/evil', '/etc/evil', '/evil', '/sandbox/main.py'):\n"
                 "    try:\n        open(path, 'w').write('x'); print('WROTE', path)\n"
                 "    except OSError as e:\n        print('refused', path, e.errno)\n"
                 "open('/tmp/mine.txt', 'w').write('ok'); print(open('/tmp/mine.txt').read())")
    assert r.passed, r
    ids, caps, env, *rest = r.stdout.splitlines()
    uid, euid, pid, prefix = ids.split()
    assert prefix == sys.prefix  # the caller's own interpreter and packages, bound read-only
    uid, euid, pid = int(uid), int(euid), int(pid)
    assert uid != 0 and euid != 0 and int(caps, 16) == 0
    assert pid < 10  # its own PID namespace: it is one of the first processes there
    assert eval(env) == ["HOME", "LANG", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PATH",
                         "PWD",
                         "TMPDIR"]
    assert not any(line.startswith("WROTE") for line in rest) and rest[-1] == "ok"


def test_kills_an_infinite_loop_and_its_children():
    marker = f"loop-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    r = run_code("import subprocess, sys\n"
                 f"subprocess.Popen([sys.executable, '-c', 'while True: pass', '{marker}'])\n"
                 "while True:\n    pass", Limits(timeout_s=1.5))
    assert r.status == "timeout" and not r.passed
    assert time.monotonic() - t0 < 8
    assert _survivors(marker) == []


def test_memory_bomb_is_stopped():
    r = run_code("chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))",
                 Limits(memory_mb=128, timeout_s=20))
    assert r.status == "memory" and not r.passed


def test_fork_storm_is_bounded_by_the_process_limit():
    marker = f"storm-{uuid.uuid4().hex}"
    r = run_code("import os, sys\n"
                 "made = 0\n"
                 "for _ in range(200):\n"
                 "    try:\n        pid = os.fork()\n"
                 "    except OSError:\n        print('refused'); break\n"
                 "    if pid == 0:\n"
                 f"        os.execv(sys.executable, ['python', '-c', 'import time; time.sleep(30)', '{marker}'])\n"
                 "    made += 1\n"
                 "print(made, len([p for p in os.listdir('/proc') if p.isdigit()]))\n",
                 Limits(max_procs=8, timeout_s=10))
    assert r.passed, r
    refused, counts = r.stdout.splitlines()
    made, visible = map(int, counts.split())
    assert refused == "refused" and made < 8 and visible <= 8 + 1  # + the namespace's init (root's, not counted)
    assert _survivors(marker) == []


@pytest.mark.parametrize("module", ["socket", "_socket"])
def test_no_network_even_to_the_hosts_loopback(module: str):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        r = run_code(f"import {module}\ns = {module}.socket({module}.AF_INET, {module}.SOCK_STREAM)\n"
                     f"s.settimeout(3)\ns.connect(('127.0.0.1', {port}))\nprint('connected')")
        assert not r.passed and "connected" not in r.stdout and "ConnectionRefusedError" in r.stderr, r
        with pytest.raises(socket.timeout):
            srv.accept()  # nothing reached the host's listener
    finally:
        srv.close()


def test_parents_api_key_is_unreadable(tmp_path: Path):
    """The key is in the parent's environment from its start (what /proc/<pid>/environ shows)."""
    secret = "sk-secret-" + uuid.uuid4().hex
    program = ("import os\nseen = [repr(dict(os.environ))]\n"
               "for pid in os.listdir('/proc'):\n"
               "    for name in ('environ', 'cmdline'):\n"
               "        try:\n            seen.append(open(f'/proc/{pid}/{name}', 'rb').read().decode('latin-1'))\n"
               "        except OSError as e:\n            seen.append(f'{pid}/{name}: {e.errno}')\n"
               "print('\\n'.join(seen))\n")
    driver = ("import json, sys\nfrom distill.sandbox import run_code\n"
              "r = run_code(sys.stdin.read())\nprint(json.dumps(r.__dict__))\n")
    env = {**os.environ, "OPENAI_API_KEY": secret, "DISTILL_TEST_TOKEN": secret}
    proc = subprocess.run([sys.executable, "-c", driver], input=program, capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    result = json.loads(proc.stdout)
    assert result["passed"] and "self/environ" not in result["stdout"]
    assert "HOME" in result["stdout"]  # it did read its own environment and /proc
    assert secret not in proc.stdout + proc.stderr


def test_cannot_write_or_delete_outside_its_temp_dir(tmp_path: Path):
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    evil = site / f"distill-evil-{uuid.uuid4().hex}.pth"
    r = run_code("import os\n"
                 f"for path in ({str(canary)!r}, {str(evil)!r}):\n"
                 "    for act in (lambda: open(path, 'w').write('owned'), lambda: os.remove(path)):\n"
                 "        try:\n            act(); print('DID', path)\n"
                 "        except OSError as e:\n            print('refused', e.errno)\n")
    assert r.passed and "DID" not in r.stdout and r.stdout.count("refused") == 4, r
    assert canary.read_text() == "intact" and not evil.exists()


def test_cannot_read_another_runs_files(tmp_path: Path):
    other = tmp_path / "runs" / "other-run" / "cache"
    other.mkdir(parents=True)
    secret_row = "teacher answer " + uuid.uuid4().hex
    (other / "responses.jsonl").write_text(secret_row)
    r = run_code("import os\n"
                 f"for path in ({str(other / 'responses.jsonl')!r}, {str(Path.home() / '.bashrc')!r}):\n"
                 "    try:\n        print(open(path).read())\n"
                 "    except OSError as e:\n        print('unreadable', e.errno)\n"
                 f"print(os.path.exists({str(tmp_path)!r}), os.path.exists({os.getcwd()!r}))\n")
    assert r.passed and secret_row not in r.stdout and r.stdout.count("unreadable") == 2, r
    assert r.stdout.splitlines()[-1] == "False False"  # the run dir and the caller's cwd do not exist in there


def test_setsid_and_double_forked_children_die_with_the_run():
    marker = f"daemon-{uuid.uuid4().hex}"
    r = run_code("import os, subprocess, sys\n"
                 f"subprocess.Popen([sys.executable, '-c', {_SLEEP!r}, '{marker}'], start_new_session=True)\n"
                 "if os.fork() == 0:\n"
                 "    os.setsid()\n"
                 "    if os.fork() == 0:\n"
                 f"        os.execv(sys.executable, ['python', '-c', {_SLEEP!r}, '{marker}'])\n"
                 "    os._exit(0)\n"
                 "os.wait()\n"
                 "while len([f for f in os.listdir() if f.startswith('up-')]) < 2:\n    pass\n"
                 "print('parent done')\n")
    assert r.passed and r.stdout == "parent done\n", r
    assert _survivors(marker) == []  # both daemons were up when the program ended


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit"])
def test_exiting_before_the_end_is_not_a_pass(exit_call: str):
    guess = "0123456789abcdef" * 2  # a forged sentinel, sent to every descriptor it might go to
    r = run_code("import os\n"
                 "for fd in range(1, 64):\n"
                 f"    try:\n        os.write(fd, b'{guess}')\n"
                 "    except OSError:\n        pass\n"
                 f"{exit_call}\n"
                 "assert False, 'the tests would have run here'\n")
    assert r.status == "exited" and not r.passed and r.returncode == 0, r


@pytest.mark.parametrize("stream", [1, 2])
def test_printing_gigabytes_is_cut_off(stream: int):
    t0 = time.monotonic()
    r = run_code(f"import os\nwhile True:\n    os.write({stream}, b'x' * (1 << 20))\n",
                 Limits(output_kb=512, timeout_s=30))
    assert r.status == "output" and not r.passed
    assert len(r.stdout) + len(r.stderr) < 100_000 and time.monotonic() - t0 < 10


def test_closing_its_output_does_not_end_the_run():
    r = run_code("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(0.5)\n"
                 "open('/tmp/x', 'w').write('still here')\n")
    assert r.passed, r


def test_each_run_gets_a_fresh_temp_dir():
    assert run_code("open('/tmp/left.txt', 'w').write('x')").passed
    r = run_code("import os\nprint(os.getcwd(), os.listdir('/tmp'))")
    assert r.passed and r.stdout.strip() == "/tmp []"


def test_syntax_error_is_an_error():
    r = run_code("def broken(:\n")
    assert r.status == "error" and "SyntaxError" in r.stderr


def test_missing_bwrap_is_one_line_unless_unconfined(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without bwrap, as on a machine that lacks it
    monkeypatch.setattr(sandbox, "_warned", threading.Event())  # warned once per process: earlier tests may have
    with pytest.raises(DistillError) as err:
        run_code("print(1)")
    assert "\n" not in str(err.value) and "apt-get install bubblewrap" in str(err.value)
    assert "sandbox: unconfined" in str(err.value)
    r = run_code("import sys; print(2); sys.exit(0) if False else None", Limits(sandbox="unconfined"))
    assert r.passed and r.stdout == "2\n"
    assert "WARNING: sandbox: unconfined" in capfd.readouterr().err
    assert run_code("import os; os._exit(0)", Limits(sandbox="unconfined")).status == "exited"
    with pytest.raises(DistillError, match="sandbox: expected"):
        Limits(sandbox="docker")  # type: ignore[arg-type]


def test_a_sandbox_bwrap_cannot_build_is_one_clear_error(monkeypatch: pytest.MonkeyPatch):
    import distill.sandbox as sandbox

    monkeypatch.setattr(sandbox, "_python_roots", lambda: ["/nonexistent-python-prefix"])  # a bind that must fail
    with pytest.raises(DistillError, match=r"bubblewrap could not create the sandbox \(bwrap: .*nonexistent"):
        run_code("print(1)")
