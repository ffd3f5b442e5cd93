# xmpp.py: XMPP clients for system tests: a real client (slixmpp, in its own thread
# and event loop, every call with a timeout) and a raw socket for hostile input.

import asyncio
import concurrent.futures
import logging
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET

from slixmpp import ClientXMPP

from harness import STREAM_NS, XMPP_DOMAIN, stream_header

_clients = []
logging.getLogger("slixmpp").setLevel(logging.WARNING)


class XMPPError(AssertionError):
    pass


class Message:
    def __init__(self, stanza):
        self.frm = str(stanza["from"])
        self.bare_from = stanza["from"].bare
        self.to = str(stanza["to"])
        self.type = stanza["type"]
        self.id = stanza["id"]
        self.body = stanza["body"]
        self.xml = str(stanza)

    def __repr__(self):
        return f"<Message from={self.frm} type={self.type} body={self.body!r}>"


class Presence:
    def __init__(self, stanza):
        self.frm = str(stanza["from"])
        self.bare_from = stanza["from"].bare
        self.type = stanza["type"]
        self.show = stanza["show"]
        self.status = stanza["status"]
        self.xml = str(stanza)

    def __repr__(self):
        return f"<Presence from={self.frm} type={self.type}>"


class Client:
    """A slixmpp client driven from the test's thread.

    TLS: "none" (plain, STARTTLS disabled), "starttls" (required) or "direct".
    CAFILE verifies the server's certificate; VERIFY=False accepts any.
    """

    def __init__(self, jid, password, port, host="127.0.0.1", tls="none", cafile=None,
                 verify=True, timeout=10.0, resource="test"):
        self.jid = jid if "/" in jid or not resource else f"{jid}/{resource}"
        self.password = password
        self.address = (host, port)
        self.tls, self.cafile, self.verify = tls, cafile, verify
        self.timeout = timeout
        self.events = []		# (time, name, detail): what happened, for failures
        self._cond = threading.Condition()
        self._messages = []
        self._presences = []
        self._login = None
        self.closed = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"xmpp-{jid}")
        self._thread.start()
        _clients.append(self)
        self.xmpp = self._call(self._make)

    # -- plumbing: everything slixmpp does happens on self.loop's thread

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, fn, *args, timeout=None):
        async def run():
            r = fn(*args)
            if asyncio.isfuture(r) or asyncio.iscoroutine(r):
                r = await r
            return r
        fut = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return fut.result(timeout if timeout is not None else self.timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise XMPPError(f"{self.jid}: timed out; events: {self._event_names()}") from None

    def _event_names(self):
        return [f"{n}{'(' + d + ')' if d else ''}" for _, n, d in self.events[-12:]]

    def _note(self, name, detail=""):
        self.events.append((time.monotonic(), name, str(detail)[:200]))

    def _make(self):
        x = ClientXMPP(self.jid, self.password)
        if not self.verify:
            x.ssl_context.check_hostname = False
            x.ssl_context.verify_mode = ssl.CERT_NONE
        if self.cafile:
            x.ca_certs = self.cafile
        x.add_event_handler("session_start", self._on_session_start)
        x.add_event_handler("failed_all_auth", lambda _: self._fail_login("authentication failed"))
        x.add_event_handler("connection_failed",
                            lambda e: self._fail_login(f"connection failed: {e}"))
        x.add_event_handler("stream_error", lambda e: self._fail_login(f"stream error: {e}"))
        x.add_event_handler("disconnected", lambda r: self._fail_login(f"disconnected: {r}"))
        x.add_event_handler("message", self._on_message)
        x.add_event_handler("presence", self._on_presence)
        for name in ("connected", "tls_success", "auth_success", "session_bind"):
            x.add_event_handler(name, lambda _e, n=name: self._note(n))
        return x

    def _fail_login(self, why):
        self._note(why.split(":")[0], why)
        if self._login is not None and not self._login.done():
            self._login.set_exception(XMPPError(f"{self.jid}: {why}"))
            # Do not let slixmpp retry behind the test's back.
            self.xmpp.cancel_connection_attempt()

    def _on_session_start(self, _):
        self._note("session_start")
        if self._login is None or self._login.done():
            return
        # slixmpp 1.8 logs in in the clear when a server offers no STARTTLS,
        # even with force_starttls: a test asking for TLS must not pass so.
        if self.tls != "none" and not self._tls_version():
            self._login.set_exception(XMPPError(f"{self.jid}: logged in without TLS "
                                                f"(tls={self.tls!r})"))
            self.xmpp.abort()
            return
        self._login.set_result(True)

    def _tls_version(self):
        t = self.xmpp.transport
        obj = t.get_extra_info("ssl_object") if t is not None else None
        return obj.version() if obj is not None else None

    def encrypted(self):
        """The TLS version of the connection (e.g. "TLSv1.3"), or None."""
        return self._call(self._tls_version)

    def _on_message(self, stanza):
        with self._cond:
            self._messages.append(Message(stanza))
            self._cond.notify_all()

    def _on_presence(self, stanza):
        with self._cond:
            self._presences.append(Presence(stanza))
            self._cond.notify_all()

    # -- the API

    def login(self, roster=True, presence=True, timeout=None):
        """Connect and authenticate; then fetch the roster and send initial
        presence (so messages to the bare JID are delivered to this client)."""
        timeout = timeout or self.timeout

        async def go():
            self._login = self.loop.create_future()
            self.xmpp.connect(address=self.address, use_ssl=self.tls == "direct",
                              force_starttls=self.tls == "starttls",
                              disable_starttls=self.tls == "none")
            await asyncio.wait_for(self._login, timeout)
            if roster:
                await self.xmpp.get_roster(timeout=timeout)
            if presence:
                self.xmpp.send_presence()
        try:
            self._call(go, timeout=timeout + 1)
        except asyncio.TimeoutError:
            raise XMPPError(f"{self.jid}: login timed out after {timeout}s; "
                            f"events: {self._event_names()}") from None
        return self

    def send_message(self, to, body, mtype="chat"):
        self._call(lambda: self.xmpp.send_message(mto=to, mbody=body, mtype=mtype))

    def send_presence(self, **kw):
        """slixmpp's send_presence: pto, ptype, pshow, pstatus, ppriority."""
        self._call(lambda: self.xmpp.send_presence(**kw))

    def send_raw(self, data):
        self._call(lambda: self.xmpp.send_raw(data))

    def _wait(self, items, pred, timeout, what):
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, m in enumerate(items):
                    if pred(m):
                        return items.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise XMPPError(f"{self.jid}: no {what} within {timeout}s; got "
                                    f"{items!r}; events: {self._event_names()}")
                self._cond.wait(left)

    def wait_message(self, frm=None, timeout=None, with_body=True):
        """The first unconsumed message (from bare JID FRM, if given)."""
        return self._wait(self._messages,
                          lambda m: (frm is None or m.bare_from == frm)
                          and (not with_body or m.body != ""),
                          timeout, f"message from {frm or 'anyone'}")

    def wait_presence(self, frm=None, ptype=None, timeout=None):
        return self._wait(self._presences,
                          lambda p: (frm is None or p.bare_from == frm)
                          and (ptype is None or p.type == ptype),
                          timeout, f"presence {ptype or ''} from {frm or 'anyone'}")

    def messages(self):
        with self._cond:
            return list(self._messages)

    def get_roster(self, timeout=None):
        """{bare jid: {"name", "subscription", "groups"}} fetched from the server."""
        timeout = timeout or self.timeout

        async def go():
            await self.xmpp.get_roster(timeout=timeout)
            r = self.xmpp.client_roster
            # slixmpp lists the client's own JID in its roster; the server did not.
            return {j: {"name": r[j]["name"], "subscription": r[j]["subscription"],
                        "groups": list(r[j]["groups"])}
                    for j in r if j != self.xmpp.boundjid.bare}
        return self._call(go, timeout=timeout + 1)

    def connected(self):
        return self._call(lambda: self.xmpp.transport is not None)

    def disconnect(self, timeout=3.0):
        """Close the stream politely (sending what is queued), then stop the loop."""
        if self.closed:
            return
        self.closed = True
        try:
            self._call(lambda: self.xmpp.disconnect(wait=timeout), timeout=timeout + 2)
        except Exception:
            pass
        try:
            self._call(self.xmpp.abort, timeout=2)
        except Exception:
            pass

        async def cancel_tasks():
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self._call(cancel_tasks, timeout=2)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    close = disconnect

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.disconnect()


def login(jid, password, port, **kw):
    """A logged-in Client (see Client and Client.login for the arguments)."""
    login_kw = {k: kw.pop(k) for k in ("roster", "presence") if k in kw}
    c = Client(jid, password, port, **kw)
    try:
        return c.login(**login_kw)
    except BaseException:
        c.disconnect()
        raise


def close_all():
    for c in list(_clients):
        try:
            c.disconnect(timeout=1.0)
        except Exception:
            pass
    _clients.clear()


# ---------------------------------------------------------------- raw socket

class StreamError(AssertionError):
    pass


def parse_stream_error(data):
    """The condition of a <stream:error> in DATA (bytes or str), or None."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    m = re.search(r"<stream:error\b.*?(?:</stream:error>|/>)", data, re.S)
    if not m:
        return None
    frag = m.group(0)
    try:
        el = ET.fromstring(f"<w xmlns:stream='{STREAM_NS}'>{frag}</w>")
        for child in el[0]:
            ns, _, tag = child.tag[1:].partition("}")
            if ns == "urn:ietf:params:xml:ns:xmpp-streams" and tag != "text":
                return tag
    except ET.ParseError:
        pass
    m = re.search(r"<([a-z-]+)\s+xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams['\"]", frag)
    return m.group(1) if m else ""


class RawStream:
    """A plain TCP connection that speaks bytes: for malformed and hostile input."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_until(self, pattern, timeout=None):
        """Read until PATTERN (bytes regex) matches what was received; returns and
        consumes everything up to the end of the match.  Fails on timeout/EOF."""
        rx = re.compile(pattern, re.S) if isinstance(pattern, bytes) else \
            re.compile(pattern.encode(), re.S)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            if self.eof or not self._recv(deadline):
                if self.eof or time.monotonic() >= deadline:
                    raise StreamError(f"no {rx.pattern!r} ({'EOF' if self.eof else 'timeout'}); "
                                      f"received {self.buf[-500:]!r}")

    def read_all(self, timeout=None):
        """Everything until the peer closes (or TIMEOUT); does not fail."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof and self._recv(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def open_stream(self, to=XMPP_DOMAIN, timeout=None):
        """Send a stream header; return the <stream:features> element (bytes)."""
        self.send(stream_header(to))
        data = self.read_until(rb"</stream:features>|<stream:features[^>]*/>|</stream:error>",
                               timeout)
        if b"<stream:error" in data:
            raise StreamError(f"stream error: {parse_stream_error(data)}: {data!r}")
        return data[data.index(b"<stream:features"):]

    def wait_closed(self, timeout=None):
        """Read until EOF; the stream error condition received, if any, and the bytes."""
        data = self.read_all(timeout)
        if not self.eof:
            raise StreamError(f"connection still open after {timeout or self.timeout}s")
        return parse_stream_error(data), data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
