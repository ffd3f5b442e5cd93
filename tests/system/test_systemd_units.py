# test_systemd_units.py: the units `make install` ships are ones systemd accepts
# without a warning, point at the installed binaries and configs, and keep the
# hardening they promise.  (No systemd as PID 1 here: checked, not started.)

import os
import re
import shutil
import subprocess

import pytest

import harness

UNITS = {d: f"jabber-ha-{d}.service" for d in harness.DAEMONS}

# Directives every unit must carry, with these exact values.
COMMON = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "WatchdogSec": "30s",
    "RuntimeDirectory": "jabber-ha",
    "RuntimeDirectoryPreserve": "yes",
    "StateDirectory": "jabber-ha",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
}
PER_DAEMON = {
    "hamon": {"User": "jabber-ha", "CapabilityBoundingSet": "",
              "AmbientCapabilities": ""},
    "proxyd": {"User": "jabber-ha", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
               "AmbientCapabilities": "CAP_NET_BIND_SERVICE"},
    "spoolsync": {"User": "root", "AmbientCapabilities": "",
                  "CapabilityBoundingSet":
                  "CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH",
                  "ReadWritePaths": "-/var/lib/prosody /var/lib/jabber-ha"},
}


def parse_unit(path):
    """{key: [values in order]} of a unit file (all sections)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


@pytest.fixture(scope="module")
def installed():
    """make install into a temp tree: {"root", "sbin", "etc", "units", "sysusers"}."""
    root = harness.make_dir("install")
    tree = {"root": root, "sbin": f"{root}/usr/sbin", "etc": f"{root}/etc",
            "units": f"{root}/units", "sysusers": f"{root}/sysusers"}
    argv = ["make", "-s", "-C", str(harness.REPO), "install", f"PREFIX={root}/usr",
            f"SYSCONFDIR={tree['etc']}", f"UNITDIR={tree['units']}",
            f"SYSUSERSDIR={tree['sysusers']}", "DESTDIR="]
    if os.environ.get("JHA_BUILD"):
        argv.append(f"BUILD={os.environ['JHA_BUILD']}")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"make install failed:\n{r.stdout}{r.stderr}"
    yield tree
    harness.remove_dir(root)


@pytest.mark.parametrize("name", harness.DAEMONS)
def test_install_points_the_unit_at_the_installed_binary_and_config(installed, name):
    path = os.path.join(installed["units"], UNITS[name])
    text = open(path).read()
    assert not re.search(r"@[A-Z]+@", text), "a placeholder is left"
    unit = parse_unit(path)
    binary = f"{installed['sbin']}/{name}"
    conf = f"{installed['etc']}/{name}.yaml"
    assert unit["ExecStart"] == [f"{binary} run -c {conf}"]
    assert os.access(binary, os.X_OK) and os.path.isfile(conf)
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("name", harness.DAEMONS)
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(installed, name):
    path = os.path.join(installed["units"], UNITS[name])
    r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                       text=True, timeout=60, cwd=installed["units"])
    ours = [l for l in (r.stdout + r.stderr).splitlines() if UNITS[name] in l]
    assert r.returncode == 0 and not ours, f"exit {r.returncode}:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("name", harness.DAEMONS)
def test_unit_keeps_its_hardening(installed, name):
    unit = parse_unit(os.path.join(installed["units"], UNITS[name]))
    want = dict(COMMON, **PER_DAEMON[name])
    for key, value in want.items():
        assert unit.get(key, [None])[-1] == value, f"{key}={unit.get(key)}, want {value!r}"
    assert "@system-service" in unit["SystemCallFilter"]
    if name != "spoolsync":
        # spoolsync needs @chown, which @privileged holds.
        assert "~@privileged" in unit["SystemCallFilter"]
    assert unit["WantedBy"] == ["multi-user.target"]


def test_sysusers_creates_the_unprivileged_user(installed):
    conf = os.path.join(installed["sysusers"], "jabber-ha.conf")
    if not os.path.exists(conf):
        # Until `make install` ships it, check the file in the tree.
        conf = str(harness.REPO / "systemd" / "jabber-ha.sysusers.conf")
    root = harness.make_dir("sysroot")
    os.mkdir(os.path.join(root, "etc"))
    try:
        r = subprocess.run(["systemd-sysusers", f"--root={root}", conf],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        passwd = open(os.path.join(root, "etc", "passwd")).read()
        m = re.search(r"^jabber-ha:x:(\d+):(\d+):[^:]*:/var/lib/jabber-ha:(\S+)$",
                      passwd, re.M)
        assert m, passwd
        assert 0 < int(m.group(1)) < 1000 and m.group(3) == "/usr/sbin/nologin"
        assert re.search(r"^jabber-ha:x:\d+:", open(os.path.join(root, "etc", "group")).read(),
                         re.M)
    finally:
        shutil.rmtree(root, ignore_errors=True)
