# test_hamon_on_change_hook_and_state_file.py: every change of the view runs the
# on_change hook with the transition in its environment, and leaves state_file
# as valid JSON holding that same view.

import json
import os
import stat
import time

import harness
from hamon_helpers import Subscriber, backend, hamon_config, states, wait_states

HOOK = """#!/bin/sh
printf '%s %s %s %s %s\\n' "$HAMON_NODE" "$HAMON_GENERATION" "$HAMON_BACKEND" \\
    "$HAMON_OLD_STATE" "$HAMON_NEW_STATE" >> {log}
"""


def read_hook_log(path):
    try:
        with open(path) as f:
            return [l.split() for l in f.read().splitlines()]
    except FileNotFoundError:
        return []


def test_hook_gets_each_transition_and_state_file_follows(prosody_factory, daemon_factory,
                                                          workdir):
    log = os.path.join(workdir, "hook.log")
    hook = os.path.join(workdir, "notify")
    with open(hook, "w") as f:
        f.write(HOOK.format(log=log))
    os.chmod(hook, 0o755)
    state_file = os.path.join(workdir, "hamon.view.json")
    pa, pb = prosody_factory(), prosody_factory()
    hamon = daemon_factory("hamon", hamon_config(
        workdir, [backend("a", pa), backend("b", pb)], on_change=hook))
    wait_states(hamon, {"a": "up", "b": "up"})
    sub = Subscriber(hamon.control)
    try:
        _, v0 = sub.wait(lambda v: True)
        harness.wait_until(lambda: len(read_hook_log(log)) >= 2, 5, "the first hooks")
        rows = read_hook_log(log)
        assert sorted(r[2:] for r in rows) == [["a", "none", "up"], ["b", "none", "up"]]
        assert all(r[0] == "p1" and int(r[1]) == v0["generation"] for r in rows), rows
        with open(state_file) as f:
            assert json.load(f)["generation"] == v0["generation"]

        t0 = time.monotonic()
        pa.kill9()
        _, v1 = sub.wait(lambda v: states(v)["a"] == "down", since=t0)
        harness.wait_until(lambda: len(read_hook_log(log)) >= 3, 5, "the hook for a")
        assert read_hook_log(log)[2] == ["p1", str(v1["generation"]), "a", "up", "down"]
        with open(state_file) as f:
            on_disk = json.load(f)
        assert on_disk["generation"] >= v1["generation"]
        assert states(on_disk)["a"] == "down"

        r = hamon.cli("maint", "b")
        assert r.returncode == 0, r.stderr
        _, v2 = sub.wait(lambda v: states(v)["b"] == "maint")
        harness.wait_until(lambda: len(read_hook_log(log)) >= 4, 5, "the hook for b")
        assert read_hook_log(log)[3] == ["p1", str(v2["generation"]), "b", "up", "maint"]
        with open(state_file) as f:
            on_disk = json.load(f)
        assert on_disk["generation"] == v2["generation"]
        assert on_disk["backends"][1]["eligible"] is False
        # Written through a temp file and renamed: nothing else left beside it.
        assert sorted(os.listdir(workdir)) == sorted(
            ["hamon.view.json", "hamon.view.admin.json", "hook.log", "notify"])
        assert not stat.S_IMODE(os.stat(state_file).st_mode) & 0o002
    finally:
        sub.close()
