# test_fuzz.py: every libFuzzer target (tests/fuzz/fuzz_*.c) builds against the
# instrumented libraries and runs for a bounded time from its committed seeds
# without a crash, a leak or a sanitizer report.  New inputs go to a temp dir,
# never into the seeds.

import glob
import os
import subprocess

import pytest

import harness

FUZZ_SECONDS = int(os.environ.get("JHA_FUZZ_SECONDS", "20"))
TARGETS = sorted(os.path.basename(p)[len("fuzz_"):-2]
                 for p in glob.glob(str(harness.REPO / "tests" / "fuzz" / "fuzz_*.c")))


@pytest.fixture(scope="module")
def fuzz_build():
    r = subprocess.run(["make", "--no-print-directory", "-C", str(harness.REPO), "-j2",
                        "fuzz"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return harness.REPO / "build-fuzz"


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_survives_a_bounded_run(fuzz_build, workdir, target):
    seeds = harness.REPO / "tests" / "fuzz" / "seeds" / target
    assert seeds.is_dir() and any(seeds.iterdir()), f"no seeds in {seeds}"
    argv = [str(fuzz_build / f"fuzz_{target}"), workdir, str(seeds),
            f"-max_total_time={FUZZ_SECONDS}", "-max_len=65536", "-timeout=10",
            "-rss_limit_mb=1024", f"-artifact_prefix={workdir}/"]
    d = harness.REPO / "tests" / "fuzz" / f"{target}.dict"
    if d.exists():
        argv.append(f"-dict={d}")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
    tail = r.stderr[-4000:]
    assert r.returncode == 0, tail
    assert "Done " in r.stderr, tail
