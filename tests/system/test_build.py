# test_build.py: the build promises of the README, checked on every CI run: clang
# builds everything warning-free with -Werror, the unit tests pass under
# AddressSanitizer and UBSan, and `make deps` is silent when nothing is missing.

import os
import re
import subprocess

import harness


def make(*args, timeout=900):
    return subprocess.run(["make", "--no-print-directory", "-C", str(harness.REPO)]
                          + list(args),
                          capture_output=True, text=True, timeout=timeout)


def test_clang_builds_everything_with_werror(workdir):
    r = make("-j2", "CC=clang", f"BUILD={workdir}/clang", "all", "unit")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in harness.DAEMONS:
        assert os.access(f"{workdir}/clang/{name}", os.X_OK)


def test_unit_tests_pass_under_asan_and_ubsan():
    r = make("-j2", "asan", timeout=1500)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert re.search(r"^[1-9][0-9]* passed, 0 failed$", out, re.M), out[-2000:]


def test_make_deps_is_silent_when_everything_is_installed():
    r = make("-s", "deps")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == "", r.stdout + r.stderr
