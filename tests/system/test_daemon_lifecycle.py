# test_daemon_lifecycle.py: each daemon's life as an admin sees it: it starts and says
# ready, answers on its control socket and HTTP, validates its config with
# file:line:col, reloads on SIGHUP (keeping the old config when the new is bad),
# and stops cleanly on SIGTERM.

import os
import re
import signal

import pytest

import harness


# The smallest valid config of each daemon, beyond the common keys (control,
# http, log_level) the harness fills in.  Later issues add required keys here.
def proxyd_minimal(workdir):
    return {}


def spoolsync_minimal(workdir):
    spool = os.path.join(workdir, "spool")
    os.makedirs(spool, exist_ok=True)
    key = os.path.join(workdir, "cluster.key")
    if not os.path.exists(key):
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(32))
    return {"node": "a", "root": spool,
            # A peer nobody serves: the daemon dials it in the background.
            "peers": [{"name": "b", "address": f"127.0.0.1:{harness.free_port()}"}],
            "cluster_key": key,
            "state_dir": os.path.join(workdir, "state"),
            "conflict_dir": os.path.join(workdir, "conflicts")}


def hamon_minimal(workdir):
    return {}


MINIMAL = {"proxyd": proxyd_minimal, "spoolsync": spoolsync_minimal,
           "hamon": hamon_minimal}

pytestmark = pytest.mark.parametrize("name", harness.DAEMONS)


def _require_binary(name):
    path = harness.build_dir() / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: run make first")


@pytest.fixture
def make(daemon_factory, workdir):
    """make(name, start=True, **extra keys) -> a Daemon with its minimal config."""
    def make_daemon(name, start=True, **extra):
        _require_binary(name)
        config = dict(MINIMAL[name](workdir))
        config.update(extra)
        return daemon_factory(name, config, start=start)
    return make_daemon


def bad_config(d):
    """D's config with an unknown key and an out-of-range port: (text, errors
    expected as 'file:line:col: key: ' prefixes)."""
    config = dict(d.config, http="127.0.0.1:70000", bogus_key=1)
    text = harness.to_yaml(config)
    http_line, _, http_col = harness.yaml_position(text, "http")
    bogus_line, bogus_col, _ = harness.yaml_position(text, "bogus_key")
    return text, [f"{d.conf_path}:{bogus_line}:{bogus_col}: bogus_key: ",
                  f"{d.conf_path}:{http_line}:{http_col}: http: "]


def find_key(obj, key):
    """The value of KEY anywhere in a JSON object (status layouts may nest)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find_key(v, key)
            if r is not None:
                return r
    return None


PROM_LINE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfNa]+$")


def test_starts_and_logs_ready(make, name):
    d = make(name)
    assert re.search(rf"^\S+ {name}\[{d.pid}\]: info: ready: ", d.log_text(), re.M), \
        d.log_text()
    assert os.path.exists(d.control)


def test_status_answers_json_over_the_control_socket(make, name):
    d = make(name)
    st = d.status()
    assert isinstance(st, dict)
    assert find_key(st, "pid") == d.pid
    assert find_key(st, "reloads") == 0


def test_http_serves_metrics_and_status(make, name):
    d = make(name)
    m = d.http_get("/metrics")
    assert m.status == 200 and m.headers["content-type"].startswith("text/plain")
    samples = [l for l in m.body.splitlines() if l and not l.startswith("#")]
    assert samples, m.body
    for line in samples:
        assert PROM_LINE.match(line), f"not Prometheus text: {line!r}"
    s = d.http_get("/status")
    assert s.status == 200 and s.headers["content-type"].startswith("application/json")
    assert find_key(s.json(), "pid") == d.pid


def test_check_config_accepts_the_good_file(make, name):
    d = make(name, start=False)
    r = d.check_config()
    assert r.returncode == 0, r.stderr


def test_check_config_rejects_unknown_key_and_bad_port_with_positions(make, name):
    d = make(name, start=False)
    text, expected = bad_config(d)
    d.write_config(text=text)
    r = d.check_config()
    assert r.returncode == 1
    for prefix in expected:
        assert any(l.startswith(prefix) for l in r.stderr.splitlines()), \
            f"no line starting {prefix!r} in:\n{r.stderr}"


def test_bad_config_at_start_is_refused(make, name):
    d = make(name, start=False)
    text, expected = bad_config(d)
    d.write_config(text=text)
    d.start(wait_ready=False)
    rc = d.proc.wait(5)
    log = d.log_text()
    assert rc != 0
    for prefix in expected:
        assert prefix in log, f"{prefix!r} not in:\n{log}"
    assert ": ready: " not in log
    assert not os.path.exists(d.control)


def test_sighup_with_a_good_changed_config_reloads(make, name):
    d = make(name)
    assert d.status()["log_level"] == "debug"
    d.config["log_level"] = "info"
    d.write_config()
    mark = d.log_mark()
    d.reload()
    d.wait_log(r"reload: configuration reloaded", 5, since=mark)
    st = d.status()
    assert find_key(st, "reloads") == 1
    assert find_key(st, "log_level") == "info"


def test_sighup_with_a_bad_config_keeps_running_and_says_so(make, name):
    d = make(name)
    good_http = d.config["http"]
    text, expected = bad_config(d)
    d.write_config(text=text)
    mark = d.log_mark()
    d.reload()
    d.wait_log(r"reload: keeping the running configuration", 5, since=mark)
    log = d.log_text()[mark:]
    for prefix in expected:
        assert prefix in log, f"{prefix!r} not in:\n{log}"
    assert d.proc.alive()
    st = d.status()
    assert find_key(st, "reloads") == 0
    # Still serving on the old address.
    assert good_http.endswith(f":{d.http_port}")
    assert d.http_get("/status").status == 200


def test_sigterm_exits_zero_and_removes_the_socket(make, name):
    d = make(name)
    assert os.path.exists(d.control)
    d.proc.signal(signal.SIGTERM)
    assert d.proc.wait(3) == 0
    assert not os.path.exists(d.control)
    assert harness.port_is_free(d.http_port)
