# test_proxyd_passes_backend_stanzas.py: once a session is bound, what the
# backend sends goes to the client in pass mode (repaired, lexed, proved
# well-formed, then passed as its bytes); a backend that sends something broken
# still never gets a malformed byte to the client, and the session ends with
# an error.  What the client sends then is written from its bytes (writing
# mode): the backend gets exactly the serializer's canonical bytes, whichever
# path a stanza took.  The backend here is a scripted XMPP server, so that it
# can lie, and records what it gets.

import json
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET

import harness
from proxyd_helpers import plain_proxyd, raw_login

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
DOMAIN = harness.XMPP_DOMAIN

# What the backend sends once the session is bound: (bytes, pause after).
SCRIPT = [
    (b"<message from='b@example.test/x' to='u@example.test/raw' type=\"chat\" id='p1'>"
     b"<body>AT&T caf\xc3\xa9 \xff &nbsp; &#x1F600; &lt;ok&gt;</body></message>\n", 0),
    (b"<iq type='get' id='p2' from='example.test'><ping xmlns='urn:xmpp:ping'/></iq>", 0),
    (b"<message id='p3'><x:y xmlns:x='urn:x'>z</x:y></message>", 0.05),
    (b"<message id='p4'><body>cut", 0.1),
    (b" across two writes</body></message>", 0.05),
    (b"<message id='p5'><body>never shown</message>", 0),
]


class ScriptedBackend:
    """Any PLAIN login succeeds, bind grants the resource asked for, then
    SCRIPT is sent; a connection that never logs in (hamon's check) gets
    the header and the features only."""

    def __init__(self, script=SCRIPT):
        self.script = script
        self.received = b""     # what came after the bind request
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.domain = DOMAIN
        self.scripted = 0
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def read_until(c, buf, rx):
        while not re.search(rx, buf, re.S):
            chunk = c.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        m = re.search(rx, buf, re.S)
        return buf[m.end():]

    def header(self, c, features):
        c.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' "
                  b"from='" + DOMAIN.encode() + b"' version='1.0'><stream:features>" +
                  features + b"</stream:features>")

    def serve(self, c):
        buf = b""
        try:
            with c:
                c.settimeout(10)
                buf = self.read_until(c, buf, rb"<stream:stream[^>]*>")
                self.header(c, b"<mechanisms xmlns='" + NS_SASL.encode() +
                            b"'><mechanism>PLAIN</mechanism></mechanisms>")
                buf = self.read_until(c, buf, rb"</auth>|<auth[^>]*/>")
                c.sendall(b"<success xmlns='" + NS_SASL.encode() + b"'/>")
                buf = self.read_until(c, buf, rb"<stream:stream[^>]*>")
                self.header(c, b"<bind xmlns='" + NS_BIND.encode() + b"'/>")
                m = re.search(rb"<resource>([^<]*)</resource>", buf)
                while m is None:
                    buf += c.recv(65536)
                    m = re.search(rb"<resource>([^<]*)</resource>.*?</iq>", buf, re.S)
                c.sendall(b"<iq type='result' id='b1'><bind xmlns='" + NS_BIND.encode() +
                          b"'><jid>u@example.test/" + m.group(1) + b"</jid></bind></iq>")
                for data, pause in self.script:
                    c.sendall(data)
                    time.sleep(pause)
                self.scripted += 1
                self.received = buf.split(b"</iq>", 1)[1]
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
        except (OSError, EOFError):
            pass

    def close(self):
        self.stop = True
        self.sock.close()


def stanzas(data):
    """The client's bytes after the stream header, parsed strictly."""
    body = data.split(b"<stream:stream", 1)[-1].split(b">", 1)[-1]
    body = body.replace(b"</stream:stream>", b"")
    root = ET.fromstring(b"<w xmlns='jabber:client' "
                         b"xmlns:stream='http://etherx.jabber.org/streams'>" + body + b"</w>")
    return list(root)


def test_a_bound_sessions_backend_stanzas_pass_repaired_and_broken_ones_end_it(
        daemon_factory, workdir):
    be = ScriptedBackend()
    try:
        _proxyd, port = plain_proxyd(daemon_factory, workdir, be)
        s, _jid = raw_login(port, "u", resource="raw")
        try:
            data = s.buf + s.read_all(5)
        finally:
            s.close()
        harness.wait_until(lambda: be.scripted == 1, 5, "the backend sent its script")
        got = {e.get("id"): e for e in stanzas(b"<stream:stream>" + data)}
        # p1: passed, repaired on the way: a lone '&' shown as written, a bad byte
        # as U+FFFD, an unknown entity as written; the rest as the backend meant it
        assert got["p1"].find("{jabber:client}body").text == \
            "AT&T caf\u00e9 \ufffd &nbsp; \U0001F600 <ok>", data
        assert got["p1"].get("type") == "chat"
        assert got["p2"].find("{urn:xmpp:ping}ping") is not None
        # p3 has a prefix: parsed and serialized as before
        assert got["p3"].find("{urn:x}y").text == "z"
        # p4 came in two reads: whole
        assert got["p4"].find("{jabber:client}body").text == "cut across two writes"
        # p5 is broken: nothing of it reaches the client, the session ends
        assert "p5" not in got and b"never shown" not in data, data
        err = got.get(None)
        assert err is not None and err.tag == "{http://etherx.jabber.org/streams}error", data
        assert err.find("{urn:ietf:params:xml:ns:xmpp-streams}internal-server-error") \
            is not None, data
        assert data.rstrip().endswith(b"</stream:stream>"), data[-200:]
        # the passed stanza went as the backend wrote it (its double quotes)
        assert b"type=\"chat\" id='p1'" in data, data
        # proxyd serves the next session as before
        s2, _ = raw_login(port, "v", resource="again")
        s2.close()
    finally:
        be.close()


# What a bound client sends (one write each) and what the backend must get:
# the canonical form, single quotes, entities only where needed, "<x/>" for
# an empty element.  w1-w3 are written from their bytes; w4 (a CR, which
# expat turns into a line feed) and w5 (a prefix) take the parse path; both
# paths give the same form.
CLIENT = [
    (b'<message to="b@example.test" type="chat" id="w1"><body>&lt;&amp;&gt;&quot;&apos; '
     b'caf\xc3\xa9 &#x1F600;</body></message>',
     b"<message to='b@example.test' type='chat' id='w1'><body>&lt;&amp;&gt;\"' "
     b"caf\xc3\xa9 \xf0\x9f\x98\x80</body></message>"),
    (b"<iq type='get' id='w2'><query xmlns='jabber:iq:roster'/></iq>",
     b"<iq type='get' id='w2'><query xmlns='jabber:iq:roster'/></iq>"),
    (b"<message id='w3'  xml:lang=\"en\"><body><![CDATA[a<b]]></body>"
     b"<x xmlns='urn:x'></x></message>\n",
     b"<message id='w3' xml:lang='en'><body>a&lt;b</body><x xmlns='urn:x'/></message>"),
    (b"<message id='w4'><body>line\r\nfeed</body></message>",
     b"<message id='w4'><body>line\nfeed</body></message>"),
    (b"<message id='w5'><p:x xmlns:p='urn:p'>z</p:x></message>",
     b"<message id='w5'><x xmlns='urn:p'>z</x></message>"),
]


def test_a_bound_clients_stanzas_reach_the_backend_as_the_serializer_writes_them(
        daemon_factory, workdir):
    be = ScriptedBackend(script=[])
    try:
        proxyd, port = plain_proxyd(daemon_factory, workdir, be)
        s, _jid = raw_login(port, "u", resource="w")
        try:
            harness.wait_until(lambda: be.scripted == 1, 5, "the session is bound")
            for sent, _ in CLIENT:
                s.send(sent)
                time.sleep(0.02)
            want = b"".join(w for _, w in CLIENT)
            harness.wait_until(lambda: len(be.received) >= len(want), 5,
                               "the backend got every stanza")
            assert be.received == want, be.received
            # and all at once, in one write
            be.received = b""
            s.send(b"".join(c for c, _ in CLIENT))
            harness.wait_until(lambda: len(be.received) >= len(want), 5,
                               "the backend got every stanza")
            assert be.received == want, be.received
            # w1-w3 went unparsed both times, w4 and w5 through expat
            r = proxyd.cli("sessions", "--json")
            assert r.returncode == 0, r.stderr
            sess = [x for x in json.loads(r.stdout) if x["jid"] == _jid]
            assert len(sess) == 1, r.stdout
            assert sess[0]["stanzas_in_written"] == 6, sess
            assert sess[0]["stanzas_in"] >= 10, sess
            # a broken stanza ends the session; nothing of it reaches the backend
            be.received = b""
            s.send(b"<message id='w6'><body>x</message>")
            data = s.read_all(5)
            assert b"not-well-formed" in data, data
            assert b"w6" not in be.received, be.received
        finally:
            s.close()
    finally:
        be.close()
