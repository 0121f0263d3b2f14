"""sandbox.py: real child processes; each limit is exercised by code that would break the host without it."""

import socket
import time

from distill.sandbox import run_code


def test_passes_a_correct_solution_and_fails_a_wrong_one():
    ok = run_code("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('done')")
    assert ok.status == "passed" and ok.passed and ok.stdout == "done\n"
    bad = run_code("def add(a, b):\n    return a - b\nassert add(2, 3) == 5")
    assert bad.status == "failed" and not bad.passed and "AssertionError" in bad.stderr


def test_kills_an_infinite_loop_and_its_children():
    t0 = time.monotonic()
    r = run_code("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
                 "while True:\n    pass", timeout_s=1.5)
    assert r.status == "timeout" and not r.passed
    assert time.monotonic() - t0 < 10


def test_memory_bomb_is_stopped():
    r = run_code("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))", memory_mb=256)
    assert r.status == "memory" and not r.passed


def test_network_is_blocked_even_to_loopback():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        mods = ["socket"]
        # The raw C module bypasses the in-interpreter guard; only a network namespace stops it, which needs
        # root or unprivileged user namespaces on the host.
        if run_code("import os; print(os.environ['DISTILL_SANDBOX_NET'])").stdout.strip() == "netns":
            mods.append("_socket")
        for mod in mods:
            r = run_code(f"import {mod}\ns = {mod}.socket()\ns.settimeout(3)\ns.connect(('127.0.0.1', {port}))\n"
                         "print('connected')")
            assert not r.passed and "connected" not in r.stdout, (mod, r)
        try:
            srv.accept()
            raise AssertionError("the sandboxed code reached the host's loopback server")
        except socket.timeout:
            pass
    finally:
        srv.close()


def test_runs_in_a_fresh_temp_dir_that_is_removed():
    r = run_code("import os\nopen('out.txt', 'w').write('x')\nprint(os.getcwd())")
    assert r.passed
    cwd = r.stdout.strip()
    assert "distill-sandbox-" in cwd
    import os

    assert not os.path.exists(cwd)


def test_syntax_error_is_an_error():
    r = run_code("def broken(:\n")
    assert r.status == "error" and "SyntaxError" in r.stderr
