# test_hamon_login_and_exec_checks.py: a backend is up only when every liveness
# check passes: a real login with a probe account (its ping's latency shown) and
# a Nagios plugin; a wrong password or a failing plugin takes it down with a
# last_error that says which check and why.

import os

from hamon_helpers import backend, hamon_config, status, wait_states


def password_file(workdir, name, password, mode=0o600):
    path = os.path.join(workdir, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
        f.write(password + "\n")
    os.chmod(path, mode)
    return path


def test_login_and_exec_make_up_and_their_failures_take_it_down(prosody, daemon_factory,
                                                               workdir):
    prosody.register("probe", "probe-pw")
    good = password_file(workdir, "probe.pass", "probe-pw")
    flag = os.path.join(workdir, "plugin-ok")
    open(flag, "w").close()
    b = backend("a", prosody, checks=["xmpp", "login", "exec"],
                login={"user": "probe", "password_file": good},
                exec=f"test -e {flag} || {{ echo 'CRITICAL - flag gone'; exit 2; }}")
    hamon = daemon_factory("hamon", hamon_config(workdir, [b]))
    v = wait_states(hamon, {"a": "up"})
    a = v["backends"][0]
    assert a["latency_ms"] is not None and a["latency_ms"] > 0
    assert a["last_error"] is None

    os.unlink(flag)
    v = wait_states(hamon, {"a": "down"}, timeout=5)
    err = v["backends"][0]["last_error"]
    assert err.startswith("exec: ") and "flag gone" in err, err
    assert status(hamon)[0] == 2
    open(flag, "w").close()
    wait_states(hamon, {"a": "up"}, timeout=5)

    # A wrong password, read again on reload.
    password_file(workdir, "probe.pass", "not-the-password")
    mark = hamon.log_mark()
    hamon.reload()
    hamon.wait_log(r"reload: configuration reloaded", 5, since=mark)
    v = wait_states(hamon, {"a": "down"}, timeout=5)
    err = v["backends"][0]["last_error"]
    assert err.startswith("login: "), err


def test_a_world_readable_password_file_is_refused(prosody, daemon_factory, workdir):
    loose = password_file(workdir, "loose.pass", "pw", mode=0o644)
    b = backend("a", prosody, checks=["login"],
                login={"user": "probe", "password_file": loose})
    hamon = daemon_factory("hamon", hamon_config(workdir, [b]), start=False)
    r = hamon.check_config()
    assert r.returncode == 1
    assert "password_file: " in r.stderr and "open to other users" in r.stderr, r.stderr
    assert f"{hamon.conf_path}:" in r.stderr
