# proxyd_hostile.py: what the hostile-input suite needs beside harness.py: a recording
# relay between proxyd and Prosody, a strict checker for the bytes that reached the
# backend, raw logins through proxyd, and a sender for payloads that never end.

import base64
import errno
import os
import re
import resource
import selectors
import socket
import threading
import time
import xml.parsers.expat
import xml.sax.saxutils

import harness
import xmpp

STREAM_NS = harness.STREAM_NS
STREAMS_ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"

# The stream header with and without the XML declaration (harness.stream_header).
HDR = harness.stream_header().encode()
BARE = HDR[len(b"<?xml version='1.0'?>"):]


def raise_fd_limit():
    """Soft RLIMIT_NOFILE up to the hard one (the machine's 20,000): the test holds
    2,000 client sockets and the relay two per proxied connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------- the relay

class RelayConn:
    """One proxied TCP connection: every byte toward the backend, in order."""

    def __init__(self, cid, peer):
        self.id = cid
        self.peer = peer
        self.opened = time.monotonic()
        self.closed = None
        self.c2b = bytearray()	# what the peer (proxyd, hamon) sent toward Prosody
        self.b2c = 0		# bytes Prosody sent back (only counted)

    def __repr__(self):
        return (f"<relay conn {self.id} from {self.peer[0]}:{self.peer[1]} "
                f"{len(self.c2b)} bytes up, {self.b2c} down>")


class Relay:
    """A TCP relay on 127.0.0.1 to BACKEND_PORT: forwards both ways and records.

    One thread with a selector, so 2,000 connections cost no threads.  Each side's
    EOF is passed on as a shutdown(SHUT_WR) of the other.
    """

    def __init__(self, backend_port, host="127.0.0.1"):
        self.backend = (host, backend_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, ("listen", None))
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.stopping = False
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True, name="relay")
        self.thread.start()

    # each side: [sock, peer side, pending bytes toward sock, eof read, conn, is client]
    def _accept(self):
        # Never block here: a burst of connects (2,000 idle clients) must not
        # stall the relay, or hamon's probes through it time out.
        while True:
            try:
                c, peer = self.lsock.accept()
            except BlockingIOError:
                return
            b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            b.setblocking(False)
            rc = b.connect_ex(self.backend)
            if rc not in (0, errno.EINPROGRESS):
                self.errors.append(f"relay: connect to the backend: {os.strerror(rc)}")
                b.close()
                c.close()
                continue
            c.setblocking(False)
            with self.lock:
                conn = RelayConn(len(self.conns), peer)
                self.conns.append(conn)
            cs = {"sock": c, "out": bytearray(), "eof": False, "conn": conn, "client": True,
                  "connecting": False, "reg": False}
            bs = {"sock": b, "out": bytearray(), "eof": False, "conn": conn, "client": False,
                  "connecting": rc != 0, "reg": False}
            cs["peer"], bs["peer"] = bs, cs
            self._update(cs)
            self._update(bs)

    def _update(self, side):
        """Watch SIDE for reading while it has not hit EOF and its peer's queue is
        short, for writing while its own queue is not empty; else not at all (a
        socket at EOF stays readable: watching it would spin)."""
        ev = 0
        if not side["eof"] and len(side["peer"]["out"]) < (1 << 20):
            ev |= selectors.EVENT_READ
        if side["out"] or side["connecting"]:
            ev |= selectors.EVENT_WRITE
        if side["sock"].fileno() < 0:
            return
        try:
            if ev and side.get("reg"):
                self.sel.modify(side["sock"], ev, ("side", side))
            elif ev:
                self.sel.register(side["sock"], ev, ("side", side))
            elif side.get("reg"):
                self.sel.unregister(side["sock"])
        except (KeyError, ValueError):
            pass
        side["reg"] = bool(ev)

    def _close_pair(self, side):
        conn = side["conn"]
        for s in (side, side["peer"]):
            if s.get("reg"):
                try:
                    self.sel.unregister(s["sock"])
                except (KeyError, ValueError):
                    pass
                s["reg"] = False
            s["sock"].close()
        if conn.closed is None:
            conn.closed = time.monotonic()

    def _read(self, side):
        try:
            data = side["sock"].recv(262144)
        except BlockingIOError:
            return
        except OSError:
            self._close_pair(side)
            return
        if not data:
            side["eof"] = True
            peer = side["peer"]
            if not peer["out"]:
                try:
                    peer["sock"].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if peer["eof"] and not side["out"] and not peer["out"]:
                self._close_pair(side)
                return
        else:
            if side["client"]:
                with self.lock:
                    side["conn"].c2b += data
            else:
                side["conn"].b2c += len(data)
            side["peer"]["out"] += data
        self._update(side)
        self._update(side["peer"])

    def _write(self, side):
        if side["connecting"]:
            err = side["sock"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.errors.append(f"relay: connect to the backend: {os.strerror(err)}")
                self._close_pair(side)
                return
            side["connecting"] = False
            if not side["out"]:
                self._update(side)
                return
        try:
            n = side["sock"].send(side["out"])
        except BlockingIOError:
            return
        except OSError:
            self._close_pair(side)
            return
        del side["out"][:n]
        if not side["out"] and side["peer"]["eof"]:
            try:
                side["sock"].shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if side["eof"] and not side["peer"]["out"]:
                self._close_pair(side)
                return
        self._update(side)
        self._update(side["peer"])

    def _run(self):
        while not self.stopping:
            for key, mask in self.sel.select(0.5):
                kind, side = key.data
                if kind == "listen":
                    self._accept()
                elif kind == "wake":
                    try:
                        self.wake_r.recv(64)
                    except OSError:
                        pass
                elif kind == "side":
                    if side["sock"].fileno() < 0:
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._write(side)
                    if side["sock"].fileno() >= 0 and mask & selectors.EVENT_READ:
                        self._read(side)

    def snapshot(self):
        """[(conn, bytes toward the backend so far)]."""
        with self.lock:
            return [(c, bytes(c.c2b)) for c in self.conns]

    def open_count(self):
        with self.lock:
            return sum(1 for c in self.conns if c.closed is None)

    def stop(self):
        self.stopping = True
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass
        self.wake_w.close()


# ---------------------------------------------------------------- the strict checker

class Malformed(AssertionError):
    pass


# XML 1.0 Char, as code points (section 2.2).
_BAD_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REF = re.compile(r"&([^;&<>\s]{0,40});?")
_XML_DECL = re.compile(rb"<\?xml\s+version\s*=\s*(['\"])1\.0\1"
                       rb"(?:\s+encoding\s*=\s*(['\"])[Uu][Tt][Ff]-8\2)?\s*\?>")


def _legal_cp(cp):
    return (cp in (0x9, 0xA, 0xD) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD
            or 0x10000 <= cp <= 0x10FFFF)


def _where(data, off):
    return f"at byte {off}: {bytes(data[max(0, off - 60):off + 60])!r}"


def check_refs(text, raw):
    """Only the five predefined entities and character references to legal chars."""
    for m in _REF.finditer(text):
        name = m.group(1)
        if not m.group(0).endswith(";"):
            raise Malformed(f"a bare '&' {_where(raw, m.start())}")
        if name in ("lt", "gt", "amp", "apos", "quot"):
            continue
        if re.fullmatch(r"#[0-9]{1,10}", name):
            cp = int(name[1:])
        elif re.fullmatch(r"#x[0-9a-fA-F]{1,8}", name):
            cp = int(name[2:], 16)
        else:
            raise Malformed(f"entity reference &{name}; {_where(raw, m.start())}")
        if not _legal_cp(cp):
            raise Malformed(f"character reference &{name}; to an illegal character "
                            f"{_where(raw, m.start())}")


def strict_parse(data, what="the stream", require_stream=True, partial=False):
    """Parse DATA (bytes of one XMPP stream, possibly restarted, possibly cut
    between stanzas) strictly; raise Malformed saying why and where.

    RFC 6120 section 11: valid shortest-form UTF-8 of legal XML characters, no
    DOCTYPE, DTD, entity declarations, comments or processing instructions (an
    XML declaration saying 1.0 and UTF-8 only just before a stream header), no
    references but the five predefined entities and character references, every
    prefix declared, 'stream' never rebound.  The stream must start with a
    <stream:stream> header (REQUIRE_STREAM), and what follows the last complete
    stanza may only be white space.  Returns the number of stanzas seen.
    """
    data = bytes(data)
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        raise Malformed(f"{what}: invalid UTF-8 ({e.reason}) {_where(data, e.start)}") \
            from None
    m = _BAD_CHAR.search(text)
    if m:
        off = len(text[:m.start()].encode())
        raise Malformed(f"{what}: illegal XML character U+{ord(m.group()):04X} "
                        f"{_where(data, off)}")
    try:
        check_refs(text, data)
    except Malformed as e:
        raise Malformed(f"{what}: {e}") from None

    stack = []
    state = {"stanzas": 0, "root_seen": False}
    err = []

    def refuse(why):
        def h(*args):
            err.append(f"{why} ({args[0]!r})" if args else why)
            raise Malformed(why)
        return h

    def start(name, attrs):
        if not stack:
            stack.append("wrapper")
            return
        if len(stack) == 1:
            if name != STREAM_NS + " stream":
                err.append(f"the root is <{name}>, not a stream header")
                raise Malformed(err[-1])
            state["root_seen"] = True
        stack.append(name)

    def end(name):
        stack.pop()
        if stack[-1] == STREAM_NS + " stream" and name != STREAM_NS + " stream":
            state["stanzas"] += 1

    def nsdecl(prefix, uri):
        if prefix == "stream" and uri != STREAM_NS:
            err.append(f"the 'stream' prefix rebound to {uri!r}")
            raise Malformed(err[-1])

    p = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.StartNamespaceDeclHandler = nsdecl
    p.StartDoctypeDeclHandler = refuse("a DOCTYPE")
    p.EntityDeclHandler = refuse("an entity declaration")
    p.UnparsedEntityDeclHandler = refuse("an unparsed entity declaration")
    p.NotationDeclHandler = refuse("a notation declaration")
    p.ElementDeclHandler = refuse("an element declaration")
    p.AttlistDeclHandler = refuse("an attribute list declaration")
    p.CommentHandler = refuse("a comment")
    p.ProcessingInstructionHandler = refuse("a processing instruction")
    p.SkippedEntityHandler = refuse("a skipped entity")
    p.ExternalEntityRefHandler = refuse("an external entity reference")
    p.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def feed(chunk, base):
        try:
            p.Parse(chunk, False)
        except xml.parsers.expat.ExpatError as e:
            why = err[-1] if err else xml.parsers.expat.ErrorString(e.code)
            # The wrapper's 1 line: byte offsets in DATA are offset - len(prefix).
            off = max(0, base + p.CurrentByteIndex - len(prefix_bytes))
            raise Malformed(f"{what}: {why} {_where(data, off)}") from None
        except Malformed:
            off = max(0, base + p.CurrentByteIndex - len(prefix_bytes))
            raise Malformed(f"{what}: {err[-1]} {_where(data, off)}") from None

    prefix_bytes = b"<jha-recording>"
    feed(prefix_bytes, 0)
    pos = 0
    fed = len(prefix_bytes)
    # An XML declaration may only open a stream: at the start, or just before a
    # restart's header while no stanza is open.
    for m in re.finditer(rb"<\?", data):
        if not _XML_DECL.match(data, m.start()):
            continue
        at = m.start()
        feed(data[pos:at], fed - pos)
        fed += at - pos
        tail_ok = data[pos:at].rstrip().endswith(b">") or at == 0 or \
            not data[pos:at].strip()
        if not tail_ok or stack[-1] not in ("wrapper", STREAM_NS + " stream"):
            raise Malformed(f"{what}: an XML declaration inside a stanza "
                            f"{_where(data, at)}")
        d = _XML_DECL.match(data, at)
        if not re.match(rb"\s*<[A-Za-z_][\w.-]*:stream[\s>]|\s*<stream[\s>]",
                        data[d.end():d.end() + 64]) and d.end() != len(data):
            raise Malformed(f"{what}: an XML declaration not followed by a stream "
                            f"header {_where(data, at)}")
        fed += d.end() - at
        pos = d.end()
    feed(data[pos:], fed - pos)
    if partial:
        return state["stanzas"]
    rest = data[data.rfind(b">") + 1:] if b">" in data else data
    if rest.strip():
        raise Malformed(f"{what}: ends inside markup or a stanza: {rest[-120:]!r}")
    if stack[-1] not in ("wrapper", STREAM_NS + " stream"):
        raise Malformed(f"{what}: ends inside a stanza (open: {stack[1:]})")
    if require_stream and data.strip() and not state["root_seen"]:
        raise Malformed(f"{what}: no stream header")
    return state["stanzas"]


def check_backend(relay, since_conn=0):
    """strict_parse every recorded connection from index SINCE_CONN on; the number
    of connections checked.  Raises Malformed naming the connection."""
    n = 0
    for conn, data in relay.snapshot()[since_conn:]:
        strict_parse(data, what=f"backend {conn}")
        n += 1
    return n


def backend_contains(relay, marker):
    """The connections whose bytes toward the backend contain MARKER."""
    return [c for c, data in relay.snapshot() if marker in data]


# ---------------------------------------------------------------- clients

def plain_b64(user, password, domain=harness.XMPP_DOMAIN):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def raw_login(port, user, password, timeout=5.0, bind=True, restart=True):
    """A RawStream through proxyd logged in with SASL PLAIN, the stream restarted
    and a resource bound (BIND, RESTART false: stop before that): open."""
    s = xmpp.RawStream(port, timeout=timeout)
    try:
        feats = s.open_stream()
        if b"PLAIN" not in feats:
            raise xmpp.StreamError(f"no PLAIN offered: {feats!r}")
        s.send(f"<auth xmlns='{SASL_NS}' mechanism='PLAIN'>"
               f"{plain_b64(user, password)}</auth>")
        r = s.read_until(rb"<success[^>]*(?:/>|>.*?</success>)|</failure>|</stream:error>")
        if b"<success" not in r:
            raise xmpp.StreamError(f"login failed: {r!r}")
        if not restart:
            return s
        s.open_stream()
        if bind:
            s.send(f"<iq type='set' id='bind1'><bind xmlns='{BIND_NS}'>"
                   f"<resource>hostile{os.getpid()}-{time.monotonic_ns()}</resource>"
                   f"</bind></iq>")
            r = s.read_until(rb"<iq[^>]*id=['\"]bind1['\"].*?(?:</iq>|/>)|</stream:error>")
            if b"type='result'" not in r and b'type="result"' not in r:
                raise xmpp.StreamError(f"bind failed: {r!r}")
            m = re.search(rb"<jid>([^<]+)</jid>", r)
            s.jid = m.group(1).decode() if m else None
        return s
    except BaseException:
        s.close()
        raise


def raw_ping_works(port, user, password, timeout=5.0):
    """Log in through proxyd, ping the server, send a message with unicode and
    escaped entities to oneself and see it come back intact, close politely."""
    s = raw_login(port, user, password, timeout)
    try:
        s.send("<iq type='get' id='ping1' to='example.test'><ping xmlns='urn:xmpp:ping'/>"
               "</iq>")
        r = s.read_until(rb"<iq[^>]*id=['\"]ping1['\"][^>]*>|</stream:error>")
        assert b"result" in r, f"ping through proxyd: {r!r}"
        body = "legit \u00e9 \u6f22\u5b57 \U0001F600 &lt;&amp;&gt;&quot;&apos;"
        assert s.jid, "the bind result named no JID"
        s.send(f"<message to='{s.jid}' type='chat' id='m1'><body>{body}"
               f"</body></message>")
        r = s.read_until(rb"<message.*?</message>|</stream:error>")
        assert b"<stream:error" not in r, r
        got = r.decode()
        m = re.search(r"<body>(.*?)</body>", got, re.S)
        assert m, got
        decoded = xml.sax.saxutils.unescape(m.group(1), {"&quot;": '"', "&apos;": "'"})
        assert decoded == "legit \u00e9 \u6f22\u5b57 \U0001F600 <&>\"'", got
        s.send("</stream:stream>")
        s.read_all(2)
        return True
    finally:
        s.close()


def send_streaming(sock, head, chunk, total, tail=b"", read_timeout=5.0):
    """Send HEAD, then CHUNK repeatedly up to TOTAL bytes, then TAIL, while reading
    what comes back; stop sending as soon as the peer closes or stops reading.
    Returns (bytes sent, bytes received, eof seen)."""
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    out = memoryview(head)
    sent = 0
    received = bytearray()
    eof = False
    stalled_since = None
    body_left = total
    tail_sent = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not out and not eof:
                if body_left > 0:
                    n = min(len(chunk), body_left)
                    out = memoryview(chunk[:n])
                    body_left -= n
                elif tail and not tail_sent:
                    out = memoryview(tail)
                    tail_sent = True
            events = sel.select(0.2)
            progressed = False
            for _key, mask in events:
                if mask & selectors.EVENT_READ:
                    try:
                        d = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        d = None
                    except OSError:
                        d = b""
                    if d == b"":
                        eof = True
                    elif d:
                        received += d
                        progressed = True
                if mask & selectors.EVENT_WRITE and out and not eof:
                    try:
                        n = sock.send(out)
                        out = out[n:]
                        sent += n
                        progressed = True
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        if e.errno in (errno.EPIPE, errno.ECONNRESET):
                            out = memoryview(b"")
                            body_left = 0
                            tail_sent = True
                        else:
                            raise
            if eof:
                break
            if not out and body_left == 0 and (tail_sent or not tail):
                # All sent: wait for the answer.
                if stalled_since is None:
                    stalled_since = time.monotonic()
                if time.monotonic() - stalled_since > read_timeout:
                    break
                sel.modify(sock, selectors.EVENT_READ)
            elif not progressed:
                # The peer stopped reading: wait for it to close, no longer.
                if stalled_since is None:
                    stalled_since = time.monotonic()
                if time.monotonic() - stalled_since > read_timeout:
                    break
            else:
                stalled_since = None
    finally:
        sel.close()
    return sent, bytes(received), eof


def stanzas_of(data):
    """The stanzas (ElementTree elements) in the bytes of one recorded stream."""
    import xml.etree.ElementTree as ET
    data = re.sub(rb"<\?xml[^>]*\?>", b"", bytes(data))
    p = ET.XMLPullParser(events=("start", "end"))
    p.feed(b"<w>")
    p.feed(data)
    out, depth = [], 0
    stream_depths = []
    for ev, el in p.read_events():
        if ev == "start":
            depth += 1
            if el.tag == "{%s}stream" % STREAM_NS:
                stream_depths.append(depth)
        else:
            if stream_depths and depth == stream_depths[-1] + 1:
                out.append(el)
            if stream_depths and depth == stream_depths[-1]:
                stream_depths.pop()
            depth -= 1
    return out
