# test_proxyd_refuses_elements_in_the_xml_namespace.py: Prosody relays an
# element in the XML namespace (<xml:x/>) with that namespace as a default,
# which breaks the recipient's stream (and, stored offline, every later login
# of the recipient).  proxyd refuses such a stanza from the sender instead.

import xmpp
from proxyd_helpers import Chain, raw_login


def test_xml_namespace_element_is_refused_and_the_recipient_is_unharmed(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    s, jid = raw_login(ch.port_plain, "alice")
    s.send(f"<message to='{ch.jid('bob')}' id='poison'><body>p</body>"
           f"<xml:x>boom</xml:x></message>")
    data = s.read_all(timeout=3)
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"XML namespace" in data
    # Bob (offline until now) logs in and his stream stays whole.
    b, bjid = raw_login(ch.port_plain, "bob")
    b.send("<presence/>")
    b.send(f"<message to='{bjid}' id='ok'><body>fine</body></message>")
    b.read_until(rb"<body>fine</body>")
    assert b"boom" not in b.buf
