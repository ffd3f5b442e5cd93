# conftest.py: pytest fixtures for the system tests: every component a test starts
# is stopped by its pid when the test ends, passed or failed, and its temp dir removed.
#
# Run with Debian's interpreter (it has slixmpp):  /usr/bin/python3 -m pytest tests/system
# JHA_BUILD=build-asan picks another build dir; JHA_KEEP_TMP=1 keeps the temp dirs.

import importlib.util
import os
import signal
import sys

import pytest

if importlib.util.find_spec("slixmpp") is None:
    sys.exit(f"tests/system needs slixmpp: run them with /usr/bin/python3 "
             f"(this is {sys.executable})")

import harness
import xmpp


def _sigterm(signum, frame):
    # Turn SIGTERM into an interrupt, so that pytest runs every finalizer.
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _sigterm)


def pytest_sessionfinish(session, exitstatus):
    xmpp.close_all()
    harness.cleanup_all()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (Prosody and MariaDB run as their own users)")


class _Stack:
    """Things a fixture started; torn down in reverse order, logs shown on failure."""

    def __init__(self, request):
        self.request = request
        self.items = []

    def add(self, obj):
        self.items.append(obj)
        return obj

    def teardown(self):
        failed = _failed(self.request)
        for obj in reversed(self.items):
            if failed:
                tail = getattr(obj, "log_tail", None)
                text = tail() if tail else harness.tail(obj.log_text())
                print(f"\n===== {type(obj).__name__} pid {obj.pid} ({obj.dir})\n{text}")
            try:
                obj.stop()
            finally:
                if not failed:
                    harness.remove_dir(obj.dir)


@pytest.fixture
def workdir():
    """A temp dir readable by every user (pytest's tmp_path is 0700)."""
    d = harness.make_dir("work")
    yield d
    harness.remove_dir(d)


@pytest.fixture
def prosody_factory(request):
    """prosody_factory(**Prosody kwargs) -> a started Prosody.  Call it twice for
    two servers; data_dir=other.data_dir starts one on another's spool."""
    _need_root()
    stack = _Stack(request)

    def make(start=True, **kw):
        p = stack.add(harness.Prosody(**kw))
        return p.start() if start else p
    yield make
    xmpp.close_all()
    stack.teardown()


@pytest.fixture
def prosody(prosody_factory):
    return prosody_factory()


@pytest.fixture
def mariadb(request):
    _need_root()
    stack = _Stack(request)
    db = stack.add(harness.MariaDB())
    try:
        yield db.start()
    finally:
        stack.teardown()


@pytest.fixture
def haproxy_factory(request):
    """haproxy_factory(backends=[(name, port)], xmpp_check=..., ...) -> started."""
    stack = _Stack(request)

    def make(backends, start=True, **kw):
        h = stack.add(harness.HAProxy(backends, **kw))
        return h.start() if start else h
    yield make
    xmpp.close_all()
    stack.teardown()


@pytest.fixture
def daemon_factory(request):
    """daemon_factory(name, config={...}, start=True) -> harness.Daemon."""
    stack = _Stack(request)

    def make(name, config=None, start=True, **kw):
        d = stack.add(harness.Daemon(name, config, **kw))
        return d.start() if start else d
    yield make
    stack.teardown()


@pytest.fixture
def cluster(request, workdir):
    """The whole chain (chain.Cluster), started; its logs printed on failure."""
    from chain import Cluster

    if os.geteuid() != 0:
        pytest.skip("needs root (Prosody runs as prosody, spoolsync keeps owners)")
    c = Cluster(workdir)
    try:
        yield c.start()
    finally:
        xmpp.close_all()
        if _failed(request):
            print(c.logs())
        c.stop()
