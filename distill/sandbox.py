"""Run untrusted, model-written code confined by bubblewrap (`bwrap`), the sandbox Flatpak is built on.

Used by curate (keep a code answer only if its tests pass) and evaluate (HumanEval pass@1), so both judge code
the same way. Each run gets:

- its own PID, network, IPC and UTS namespaces: a fresh `/proc` that shows only the sandbox's processes (not the
  parent, whose environment holds API keys), no network at all (not even the host's loopback);
- a new root built from read-only binds of what the interpreter needs (`/usr`, the Python install, a few `/etc`
  files) plus one writable size-capped tmpfs at `/tmp`: the home directory, the run dirs and caches do not exist;
- an unprivileged user: a fresh uid no other process has (started as root) or uid 65534 in a user namespace
  (started as a normal user), no capabilities, `no_new_privs`, a clean environment;
- limits: wall time (the parent kills the namespace), CPU, memory (RLIMIT_AS), processes (RLIMIT_NPROC, counted
  for this sandbox's uid only), file size, and stdout/stderr (the run is stopped once `output_kb` is exceeded,
  and only a head and tail are kept in memory);
- an end: when `run_code` returns, the namespace's init is dead, and with it every process the code started
  (setsid and double-forked daemons included).

"Passed" means the program ran to its last line: a launcher runs the file and, only if it returns normally,
writes back a random nonce the parent sent it over a private socket; `sys.exit(0)`, `os._exit(0)` or printing a
guess before the tests ran is not a pass. (The nonce only lives in the launcher's memory; code written to dig it
out of its own interpreter is attacking its tests, which no in-process test harness can prevent.)

`sandbox: unconfined` in the config runs the same launcher and rlimits without bwrap, for machines that cannot
have it; that code can read your files and keys and use the network, and a loud warning says so.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distill.errors import ConfigError, DistillError

Status = Literal["passed", "failed", "exited", "timeout", "memory", "output", "error"]
Mode = Literal["bwrap", "unconfined"]

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`), "
                "or set `sandbox: unconfined` to run model code without isolation (not recommended)")
_NOT_INSTALLED = f"running model-written code needs bubblewrap (`bwrap`), which is not installed: {INSTALL_HINT}"
_KEEP_HEAD, _KEEP_TAIL = 64 * 1024, 8 * 1024  # bytes of each stream kept for the result
_FILE_CAP = 16 * 1024 * 1024  # largest file the code may write (RLIMIT_FSIZE)
_NONCE_LEN = 32
_UID_BASE = 0x7E000000  # root mode: a fresh uid per run in [base, base + 2**24), far above real accounts
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")
_TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Runs inside the sandbox before the model's code: limits, then the program, then the nonce (only on a normal end).
_LAUNCHER = r"""
import json, os, resource, runpy, sys
def _launch(cfg):
    fd = cfg["fd"]
    os.write(fd, b"+")  # started: what comes back without it is bwrap (or the interpreter) failing to start
    nonce = b""
    while len(nonce) < cfg["nonce_len"]:
        chunk = os.read(fd, cfg["nonce_len"] - len(nonce))
        if not chunk:
            break
        nonce += chunk
    os.set_inheritable(fd, False)
    os.closerange(3, fd)  # e.g. the program's source fd that bwrap read
    os.closerange(fd + 1, 65536)
    for name, value in (("CPU", cfg["cpu_s"]), ("AS", cfg["mem"]), ("NPROC", cfg["nproc"]),
                        ("FSIZE", cfg["fsize"]), ("CORE", 0)):
        resource.setrlimit(getattr(resource, "RLIMIT_" + name), (value, value))
    sys.argv = [cfg["path"]]
    runpy.run_path(cfg["path"], run_name="__main__")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os.write(fd, nonce)
    os._exit(0)
_launch(json.loads(sys.argv[1]))
"""


@dataclass(frozen=True)
class Limits:
    """What one run may use. `sandbox: unconfined` is the explicit opt-out of bwrap (see the module doc)."""

    timeout_s: float = 10.0  # wall clock; CPU time is capped at the same (+1 s) per process
    memory_mb: int = 512  # address space per process
    max_procs: int = 16  # processes + threads of the sandbox's user
    output_kb: int = 1024  # stdout + stderr before the run is stopped (status "output")
    tmp_mb: int = 64  # the writable /tmp (a tmpfs: it is memory)
    sandbox: Mode = "bwrap"

    def __post_init__(self) -> None:
        if self.sandbox not in ("bwrap", "unconfined"):
            raise ConfigError(f"sandbox: expected `bwrap` (the default) or `unconfined`, got {self.sandbox!r}")


@dataclass
class SandboxResult:
    status: Status
    passed: bool  # exit 0 AND the program ran to its end
    stdout: str
    stderr: str
    duration_s: float
    returncode: int | None = None


class _Capture:
    """One output stream: counts every byte, keeps only a head and a tail."""

    def __init__(self) -> None:
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = _KEEP_HEAD - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail = (self.tail + data)[-_KEEP_TAIL:]

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        mid = f"\n[... {cut} bytes of output cut ...]\n".encode() if cut > 0 else b""
        return (bytes(self.head) + mid + bytes(self.tail)).decode("utf-8", errors="replace")


_warned = threading.Event()


def _warn_unconfined() -> None:
    if not _warned.is_set():
        _warned.set()
        print("WARNING: sandbox: unconfined -- model-written code runs WITHOUT isolation: it can read your files "
              "and API keys, use the network and leave processes behind. Use bubblewrap unless this machine is "
              "itself a throwaway sandbox.", file=sys.stderr, flush=True)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def require(limits: Limits) -> None:
    """Fail with one line when model code cannot run confined and the config did not opt out."""
    if limits.sandbox == "unconfined":
        _warn_unconfined()
    elif bwrap_path() is None:
        raise DistillError(_NOT_INSTALLED)


def _python_roots() -> list[str]:
    """Directories the interpreter and its site-packages live in, outside /usr (bound whole)."""
    roots: set[str] = set()
    for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        for q in (p, os.path.realpath(p)):
            if q and q != "/" and not q.startswith("/usr/"):
                roots.add(q)
    return sorted(roots)


def _bwrap_args(bwrap: str, program_fd: int, info_fd: int, limits: Limits) -> list[str]:
    root = os.geteuid() == 0
    args = [bwrap, "--die-with-parent", "--new-session", "--clearenv"]
    if root:  # no user namespace (it would map the sandbox to uid 0); setpriv drops to a fresh uid below
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 "--cap-add", "CAP_SETUID,CAP_SETGID"]
    else:
        args += ["--unshare-all", "--uid", "65534", "--gid", "65534"]
    args += ["--tmpfs", "/", "--ro-bind", "/usr", "/usr"]
    for name in _TOP_LINKS:
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # /tmp before the Python binds, so an interpreter installed under /tmp (a CI venv) is bound on top of it
    args += ["--perms", "1777", "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    made: set[str] = set()
    for d in _python_roots():
        for parent in reversed(Path(d).parents[:-1]):  # bwrap would copy e.g. /root's 0700 and lock us out
            if str(parent) not in made and str(parent) != "/tmp" and not str(parent).startswith("/usr"):
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", os.path.realpath(d), d]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "0444", "--ro-bind-data", str(program_fd), "/sandbox/main.py",
             "--remount-ro", "/", "--chdir", "/tmp", "--info-fd", str(info_fd)]
    for k, v in _child_env("/tmp").items():
        args += ["--setenv", k, v]
    args.append("--")
    if root:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise DistillError("running model-written code as root needs `setpriv` (util-linux) to drop to an "
                               "unprivileged user: install util-linux")
        uid = str(_UID_BASE + secrets.randbelow(1 << 24))
        args += [setpriv, "--reuid", uid, "--regid", uid, "--clear-groups", "--no-new-privs", "--"]
    return args


def _child_env(tmp: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _classify(rc: int | None, completed: bool, stderr_tail: str, timed_out: bool, flooded: bool) -> Status:
    if flooded:
        return "output"
    if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if rc == 0:
        return "passed" if completed else "exited"
    if "MemoryError" in stderr_tail or "Cannot allocate memory" in stderr_tail or "std::bad_alloc" in stderr_tail:
        return "memory"
    if "AssertionError" in stderr_tail:
        return "failed"
    return "error"


@dataclass
class _Run:
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    confined: bool
    ns_init: int | None = None  # pidfd of the sandbox's PID-namespace init


def _start(code: str, limits: Limits, nonce: bytes, work: Path | None) -> _Run:
    """Spawn bwrap (or, unconfined, the bare launcher in `work`) with the program, the nonce socket and limits."""
    mine, theirs = socket.socketpair()
    mine.sendall(nonce)
    cfg = {"fd": theirs.fileno(), "nonce_len": len(nonce), "cpu_s": max(1, int(limits.timeout_s) + 1),
           "mem": limits.memory_mb * 1024 * 1024, "nproc": limits.max_procs, "fsize": _FILE_CAP,
           "path": "/sandbox/main.py"}
    try:
        if work is not None:  # unconfined
            cfg["path"] = str(work / "main.py")
            (work / "main.py").write_text(code, encoding="utf-8")
            cmd = [sys.executable, "-I", "-B", "-c", _LAUNCHER, json.dumps(cfg)]
            proc = subprocess.Popen(cmd, cwd=work, env=_child_env(str(work)), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(theirs.fileno(),),
                                    start_new_session=True)
            return _Run(proc, mine, False)
        bwrap = bwrap_path()
        if bwrap is None:
            raise DistillError(_NOT_INSTALLED)
        with tempfile.TemporaryFile() as src:
            src.write(code.encode("utf-8"))
            src.flush()
            src.seek(0)
            info_r, info_w = os.pipe()
            try:
                cmd = _bwrap_args(bwrap, src.fileno(), info_w, limits)
                cmd += [sys.executable, "-I", "-B", "-c", _LAUNCHER, json.dumps(cfg)]
                proc = subprocess.Popen(cmd, env={}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, pass_fds=(src.fileno(), info_w, theirs.fileno()),
                                        start_new_session=True)
            finally:
                os.close(info_w)
            child = _read_child_pid(info_r, time.monotonic() + 60)
        if child is None:
            proc.kill()
            _, err = proc.communicate()
            raise _setup_error(err.decode(errors="replace")) from None
        try:
            return _Run(proc, mine, True, os.pidfd_open(child))
        except ProcessLookupError:  # it already ended, and its namespace with it
            return _Run(proc, mine, True)
    except BaseException:
        mine.close()
        raise
    finally:
        theirs.close()


def _setup_error(stderr: str) -> DistillError:
    msg = next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "no message")
    return DistillError(f"bubblewrap could not create the sandbox ({msg}); {INSTALL_HINT}")


def _read_child_pid(fd: int, deadline: float) -> int | None:
    """The sandbox init's host PID from bwrap's --info-fd JSON (written just before the command starts);
    None when bwrap closed it without one (it failed to set up)."""
    buf = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if ready and not chunk:
                return None
            buf += chunk
            try:
                return int(json.loads(buf)["child-pid"])
            except (ValueError, KeyError, TypeError):
                continue
        return None
    finally:
        os.close(fd)


def _pump(run: _Run, limits: Limits, deadline: float) -> tuple[_Capture, _Capture, bytes, bool, bool]:
    """Read stdout, stderr and the nonce socket until the program ends, the deadline passes or output floods."""
    out, err, reply = _Capture(), _Capture(), bytearray()
    sel = selectors.DefaultSelector()
    assert run.proc.stdout is not None and run.proc.stderr is not None
    sel.register(run.proc.stdout, selectors.EVENT_READ, out)
    sel.register(run.proc.stderr, selectors.EVENT_READ, err)
    sel.register(run.sock, selectors.EVENT_READ, reply)
    exited = os.pidfd_open(run.proc.pid)
    sel.register(exited, selectors.EVENT_READ, None)
    timed_out = flooded = done = False
    open_streams = 2
    try:
        while open_streams or not done:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            events = sel.select(timeout=min(left, 0.05) if done else left)
            if not events and done:
                break  # the program is gone; a leftover holder of its pipes (unconfined only) is not waited for
            for key, _ in events:
                if key.data is None:
                    sel.unregister(exited)
                    done = True
                    continue
                data = os.read(key.fd, 65536) if key.data is not reply else _recv(run.sock, 0)
                if not data:
                    sel.unregister(key.fileobj)
                    open_streams -= key.data is not reply
                elif key.data is reply:
                    reply += data[: 4 * _NONCE_LEN]
                else:
                    key.data.add(data)
            if out.total + err.total > limits.output_kb * 1024:
                flooded = True
                break
        while not flooded and not timed_out:  # the nonce may still be in the socket after the pipes closed
            data = _recv(run.sock, socket.MSG_DONTWAIT)
            if not data:
                break
            reply += data[: 4 * _NONCE_LEN]
    finally:
        sel.close()
        os.close(exited)
    return out, err, bytes(reply), timed_out, flooded


def _recv(sock: socket.socket, flags: int) -> bytes:
    """What the launcher sent; b"" at its end (a peer that closed with our nonce unread resets the socket)."""
    try:
        return sock.recv(4096, flags)
    except (BlockingIOError, ConnectionResetError):
        return b""


def _teardown(run: _Run) -> int | None:
    """Kill whatever is left and wait until it is gone: the namespace's init (taking every process in it with
    it), or, unconfined, the process group."""
    if run.ns_init is not None:
        try:
            signal.pidfd_send_signal(run.ns_init, signal.SIGKILL)
        except ProcessLookupError:
            pass
        with selectors.DefaultSelector() as sel:
            sel.register(run.ns_init, selectors.EVENT_READ)
            sel.select(timeout=30)  # readable once init has exited, i.e. after every process in it was reaped
        os.close(run.ns_init)
    elif not run.confined:
        try:
            os.killpg(run.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if run.proc.poll() is None:
        run.proc.kill()
    rc = run.proc.wait()
    for f in (run.proc.stdout, run.proc.stderr):
        if f is not None:
            f.close()
    run.sock.close()
    if run.confined and rc > 128:
        rc = -(rc - 128)  # bwrap reports a command killed by signal N as 128 + N
    return rc


def run_code(code: str, limits: Limits | None = None) -> SandboxResult:
    """Run `code` as a Python script under `limits`; status is one of:

    passed (exit 0 after the program's last line) | exited (exit 0 before it: sys.exit / os._exit) |
    failed (an assertion failed: the tests ran and said no) | timeout | memory | output (printed past the cap) |
    error (any other non-zero exit: an exception, a syntax error, a signal).
    """
    limits = limits or Limits()
    require(limits)
    nonce = secrets.token_hex(_NONCE_LEN // 2).encode()
    work = Path(tempfile.mkdtemp(prefix="distill-sandbox-")) if limits.sandbox == "unconfined" else None
    try:
        t0 = time.monotonic()
        run = _start(code, limits, nonce, work)
        try:
            out, err, reply, timed_out, flooded = _pump(run, limits, t0 + limits.timeout_s)
        finally:
            rc = _teardown(run)
        stderr = err.text()
        if not reply.startswith(b"+") and not (timed_out or flooded) and rc != 0 and work is None:
            raise _setup_error(stderr)
        if flooded:
            stderr += f"\n[stopped: more than {limits.output_kb} KiB of output]"
        status = _classify(rc, secrets.compare_digest(reply, b"+" + nonce), stderr[-4000:], timed_out, flooded)
        return SandboxResult(status, status == "passed", out.text(), stderr, round(time.monotonic() - t0, 4), rc)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
