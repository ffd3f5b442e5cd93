# test_hamon_reload_keeps_unchanged_backends.py: on SIGHUP, added backends are
# checked, removed ones leave the view, unchanged ones keep their state and its
# since; a bad file changes nothing.

import time

import harness
from hamon_helpers import (Subscriber, backend, hamon_config, states, status,
                           wait_states)


def test_reload_adds_removes_and_keeps(prosody_factory, daemon_factory, workdir):
    pa, pb, pc = prosody_factory(), prosody_factory(), prosody_factory()
    hamon = daemon_factory("hamon", hamon_config(
        workdir, [backend("a", pa), backend("b", pb)]))
    v = wait_states(hamon, {"a": "up", "b": "up"})
    since_a = v["backends"][0]["since_ms"]
    sub = Subscriber(hamon.control)
    try:
        _, v0 = sub.wait(lambda v: True)
        time.sleep(0.3)
        hamon.config["backends"] = [backend("a", pa), backend("c", pc)]
        hamon.config["interval"] = "200ms"
        hamon.write_config()
        mark = hamon.log_mark()
        t0 = time.monotonic()
        hamon.reload()
        hamon.wait_log(r"reload: configuration reloaded", 5, since=mark)
        _, v1 = sub.wait(lambda v: states(v) == {"a": "up", "c": "up"}, since=t0,
                         what="a and c up")
        assert v1["generation"] > v0["generation"]
        a = v1["backends"][0]
        assert a["name"] == "a" and a["since_ms"] == since_a
        assert status(hamon, "--json")[1]["interval_ms"] == 200

        # A broken file: refused, the running view stays.
        hamon.write_config(text=hamon.config_text.replace("interval: 200ms",
                                                          "interval: 1ms"))
        mark = hamon.log_mark()
        hamon.reload()
        hamon.wait_log(r"reload: keeping the running configuration", 5, since=mark)
        code, v2 = status(hamon, "--json")
        assert code == 0 and states(v2) == {"a": "up", "c": "up"}
    finally:
        sub.close()


def test_a_changed_backend_is_checked_afresh_without_a_blip(prosody_factory,
                                                            daemon_factory, workdir):
    pa, pb = prosody_factory(), prosody_factory()
    hamon = daemon_factory("hamon", hamon_config(workdir, [backend("a", pa)]))
    wait_states(hamon, {"a": "up"})
    sub = Subscriber(hamon.control)
    try:
        _, v0 = sub.wait(lambda v: True)
        # Same name, another live server: up all along, no down in between.
        hamon.config["backends"] = [backend("a", pb)]
        hamon.write_config()
        mark = hamon.log_mark()
        hamon.reload()
        hamon.wait_log(r"reload: configuration reloaded", 5, since=mark)
        time.sleep(1.0)
        # One new view: the new address (proxyd must move), the state still up.
        assert [states(v) for _, v in sub.views] == [{"a": "up"}, {"a": "up"}]
        old, new = sub.views[0][1]["backends"][0], sub.views[1][1]["backends"][0]
        assert old["address"] == f"127.0.0.1:{pa.port}"
        assert new["address"] == f"127.0.0.1:{pb.port}"
        assert sub.views[1][1]["generation"] == sub.views[0][1]["generation"] + 1
        assert "a: up -> down" not in hamon.log_text()[mark:]
        # ... and a dead one: down at its first verdict, without waiting for fall.
        dead = harness.free_port()
        hamon.config["backends"] = [dict(backend("a", pb),
                                         address=f"127.0.0.1:{dead}")]
        hamon.write_config()
        t0 = time.monotonic()
        hamon.reload()
        t, v = sub.wait(lambda v: states(v) == {"a": "down"}, since=t0)
        assert t - t0 < 0.25 + 0.5 + 0.3, t - t0
    finally:
        sub.close()
