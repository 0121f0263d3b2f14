"""Run untrusted, model-written code in its own process: wall/CPU time limit, memory limit, no network, temp dir.

Used by curate (keep a code answer only if its tests pass) and evaluate (HumanEval pass@1), so both judge code
the same way. The child is a fresh `python -I` whose small launcher applies the limits to itself before running
the code (no `preexec_fn`, so calling this from threads is safe):

- time: the parent kills the whole process group at `timeout_s` (wall); RLIMIT_CPU backs it up;
- memory: RLIMIT_AS = `memory_mb` (an allocation past it raises MemoryError -> status "memory");
- network: a fresh network namespace with no interfaces up (unshare; needs root or unprivileged user
  namespaces), plus a socket guard in the interpreter for hosts where namespaces are unavailable;
- files: cwd is a fresh temp dir, removed afterwards; output files are capped (RLIMIT_FSIZE);
- when started as root the child drops to uid/gid 65534 (nobody) so the code cannot touch the host's files
  (only where nobody can read the Python install; e.g. a pyenv under /root keeps root).

This is isolation for honest-but-buggy code (infinite loops, memory blow-ups, stray requests), not a security
boundary against a determined attacker: run untrusted inputs on a throwaway machine or container.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "memory", "error"]

_OUTPUT_CAP = 64 * 1024  # bytes of stdout/stderr kept in the result
_FILE_CAP = 16 * 1024 * 1024  # largest file (incl. captured output) the code may write

_LAUNCHER = r"""
import ctypes, json, os, resource, runpy, socket, sys
cfg = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_s"], cfg["cpu_s"] + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["fsize"], cfg["fsize"]))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
isolated = "none"
try:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = 0x40000000  # CLONE_NEWNET
    if os.geteuid() != 0:
        flags |= 0x10000000  # CLONE_NEWUSER: lets an unprivileged user own a network namespace
    if libc.unshare(flags) == 0:
        isolated = "netns"
except Exception:
    pass
def _others_can_read(path):
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o005 == 0o005:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent
if os.geteuid() == 0 and _others_can_read(os.__file__) and _others_can_read(cfg["path"]):
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
def _blocked(*a, **k):
    raise OSError(101, "network is disabled in the distill sandbox")
for _name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
    setattr(socket.socket, _name, _blocked)
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
del _name, _blocked
os.environ["DISTILL_SANDBOX_NET"] = isolated
resource.setrlimit(resource.RLIMIT_AS, (cfg["mem"], cfg["mem"]))
sys.argv = [cfg["path"]]
runpy.run_path(cfg["path"], run_name="__main__")
"""


@dataclass
class SandboxResult:
    status: Status
    passed: bool
    stdout: str
    stderr: str
    duration_s: float
    returncode: int | None = None


def _read_capped(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(_OUTPUT_CAP + 1)
    except OSError:
        return ""
    text = data[:_OUTPUT_CAP].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > _OUTPUT_CAP else "")


def _classify(rc: int | None, stderr: str, timed_out: bool) -> Status:
    if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if rc == 0:
        return "passed"
    tail = stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        return "memory"
    if "AssertionError" in tail:
        return "failed"
    return "error"


def run_code(code: str, *, timeout_s: float = 10, memory_mb: int = 512) -> SandboxResult:
    """Run `code` as a Python script under limits; status is one of:

    passed (exit 0) | failed (an assertion failed: the tests ran and said no) | timeout | memory |
    error (any other non-zero exit: an exception, a syntax error, a signal).
    """
    work = Path(tempfile.mkdtemp(prefix="distill-sandbox-"))
    try:
        script = work / "main.py"
        script.write_text(code, encoding="utf-8")
        script.chmod(0o644)
        work.chmod(0o777)  # the child may run as nobody and still needs to write its own files here
        out_path, err_path = work / ".stdout", work / ".stderr"
        cfg = {"cpu_s": max(1, int(timeout_s) + 1), "fsize": _FILE_CAP, "mem": int(memory_mb) * 1024 * 1024,
               "path": str(script)}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TMPDIR": str(work)}
        t0 = time.monotonic()
        timed_out = False
        with out_path.open("wb") as fo, err_path.open("wb") as fe:
            try:
                proc = subprocess.Popen([sys.executable, "-I", "-c", _LAUNCHER, json.dumps(cfg)], cwd=work,
                                        stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env,
                                        start_new_session=True)
            except OSError as err:
                return SandboxResult("error", False, "", f"could not start the sandbox: {err}", 0.0)
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rc = proc.wait()
            # the code may have left children in its group (fork, subprocess): never let them outlive the call
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        duration = time.monotonic() - t0
        stdout, stderr = _read_capped(out_path), _read_capped(err_path)
        status = _classify(rc, stderr, timed_out)
        return SandboxResult(status, status == "passed", stdout, stderr, round(duration, 4), rc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
