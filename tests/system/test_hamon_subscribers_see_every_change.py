# test_hamon_subscribers_see_every_change.py: a raw control-socket subscriber and
# `hamon watch` get the full view at once, then every change in order with
# growing generations; after a hamon restart both get the full view again, and
# generations keep growing (they continue from state_file).

import json
import re
import time

from hamon_helpers import (CliWatch, Subscriber, backend, hamon_config, restart, states,
                           wait_states)


def test_every_change_in_order_and_the_full_view_after_a_restart(prosody_factory,
                                                                 daemon_factory, workdir):
    pa, pb = prosody_factory(), prosody_factory()
    hamon = daemon_factory("hamon", hamon_config(
        workdir, [backend("a", pa), backend("b", pb)]))
    wait_states(hamon, {"a": "up", "b": "up"})
    sub = Subscriber(hamon.control)
    cli = CliWatch(hamon)
    try:
        _, first = sub.wait(lambda v: True, what="the full view at once")
        assert states(first) == {"a": "up", "b": "up"}
        assert first["node"] == "p1"
        cli.wait(lambda l: re.search(r"generation \d+: a up, b up$", l), what="both up")

        # Four changes, each its own generation, seen in this order.
        steps = [("drain", "a", {"a": "draining", "b": "up"}),
                 ("maint", "b", {"a": "draining", "b": "maint"}),
                 ("ready", "a", {"a": "up", "b": "maint"}),
                 ("ready", "b", {"a": "up", "b": "up"})]
        for cmd, name, want in steps:
            r = hamon.cli(cmd, name)
            assert r.returncode == 0, r.stderr
            sub.wait(lambda v, w=want: states(v) == w, what=f"{want}")
        seen = [(v["generation"], states(v)) for _, v in sub.views]
        gens = [g for g, _ in seen]
        assert gens == sorted(gens) and len(set(gens)) == len(gens), seen
        assert [s for _, s in seen] == [{"a": "up", "b": "up"}] + [w for _, _, w in steps], seen
        cli.wait(lambda l: l.endswith("a up, b maint"), what="a up, b maint")
        last_gen = gens[-1]

        # Restart: the old connection ends, a new one gets the whole view again.
        t_restart = time.monotonic()
        restart(hamon)
        assert sub.wait_closed(5)
        sub2 = Subscriber(hamon.control)
        try:
            _, v = sub2.wait(lambda v: states(v) == {"a": "up", "b": "up"},
                             what="the full view after the restart")
            assert v["generation"] > last_gen, (v["generation"], last_gen)
        finally:
            sub2.close()
        # `hamon watch` reconnected by itself and printed the full view again.
        cli.wait(lambda l: l.endswith("a up, b up")
                 and int(re.search(r"generation (\d+)", l).group(1)) > last_gen,
                 timeout=10, what="the full view after the restart")
        assert time.monotonic() - t_restart < 10
    finally:
        cli.stop()
        sub.close()


def test_watch_json_prints_one_view_per_line(prosody, daemon_factory, workdir):
    hamon = daemon_factory("hamon", hamon_config(workdir, [backend("a", prosody)]))
    wait_states(hamon, {"a": "up"})
    cli = CliWatch(hamon, "--json")
    try:
        line = cli.wait(lambda l: '"a"' in l and '"up"' in l, what="a JSON view")
        v = json.loads(line)
        assert v["backends"][0]["eligible"] is True
        assert isinstance(v["backends"][0]["since_ms"], int)
    finally:
        cli.stop()
