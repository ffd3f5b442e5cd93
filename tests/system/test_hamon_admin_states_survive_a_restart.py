# test_hamon_admin_states_survive_a_restart.py: `hamon drain|maint|ready NAME`
# override health, say so in `hamon status`, and are still in force after hamon
# restarts; a damaged admin file stops hamon from starting rather than losing them.

import os

from hamon_helpers import backend, hamon_config, restart, status, wait_states


def test_drain_and_maint_survive_a_restart_and_ready_undoes_them(prosody_factory,
                                                                 daemon_factory, workdir):
    pa, pb = prosody_factory(), prosody_factory()
    hamon = daemon_factory("hamon", hamon_config(
        workdir, [backend("a", pa), backend("b", pb)]))
    wait_states(hamon, {"a": "up", "b": "up"})

    r = hamon.cli("drain", "a")
    assert r.returncode == 0, r.stderr
    assert "a: drain (was ready); now draining" in r.stdout, r.stdout
    r = hamon.cli("maint", "b")
    assert r.returncode == 0, r.stderr
    code, v = status(hamon, "--json")
    assert code == 2    # nothing eligible: one drained, one in maintenance
    assert {b["name"]: (b["state"], b["admin"]) for b in v["backends"]} == \
        {"a": ("draining", "drain"), "b": ("maint", "maint")}

    admin_file = os.path.join(workdir, "hamon.view.admin.json")
    assert os.path.exists(admin_file)
    restart(hamon)
    wait_states(hamon, {"a": "draining", "b": "maint"})
    code, text = status(hamon)
    assert code == 2, text
    assert "draining" in text and "maint" in text

    r = hamon.cli("ready", "a")
    assert r.returncode == 0, r.stderr
    wait_states(hamon, {"a": "up", "b": "maint"})
    code, _ = status(hamon, "--json")
    assert code == 1
    restart(hamon)
    wait_states(hamon, {"a": "up", "b": "maint"})
    r = hamon.cli("ready", "b")
    assert r.returncode == 0, r.stderr
    wait_states(hamon, {"a": "up", "b": "up"})
    assert status(hamon)[0] == 0


def test_unknown_backend_and_bad_usage_are_refused(prosody, daemon_factory, workdir):
    hamon = daemon_factory("hamon", hamon_config(workdir, [backend("a", prosody)]))
    r = hamon.cli("drain", "nosuch")
    assert r.returncode == 1
    assert "no backend 'nosuch'" in r.stderr
    r = hamon.cli("maint")
    assert r.returncode == 2
    assert "usage" in r.stderr
    wait_states(hamon, {"a": "up"})


def test_a_damaged_admin_file_is_refused_at_start(daemon_factory, workdir):
    with open(os.path.join(workdir, "hamon.view.admin.json"), "w") as f:
        f.write('{"version":1,"backends":{"a":"drian"}}')
    hamon = daemon_factory("hamon", hamon_config(workdir, []), start=False)
    hamon.start(wait_ready=False)
    assert hamon.proc.wait(5) != 0
    log = hamon.log_text()
    assert "hamon.view.admin.json" in log and "fix or remove it" in log, log
