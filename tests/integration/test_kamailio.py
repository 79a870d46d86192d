#!/usr/bin/python3
"""The eP-CSCF and S-CSCF of pool-config/kamailio/ in real Kamailio 5.6
processes, with libwictoken checking tokens through wictoken.so (KEMI Lua):

- a WIC with an allowed Origin registers over WSS and over WS with a valid
  token and gets 200 OK from the S-CSCF, which holds the IMPU with the
  eP-CSCF's Path (and the WIC's flow in its received parameter);
- a foreign or missing Origin is refused at the handshake (403), a handshake
  that does not offer the subprotocol sip gets 400;
- a forged token (one signature bit flipped), an expired one, a missing one
  get 401 (error="invalid_token" when a token was given) and never reach
  the S-CSCF; a token for another IMPU gets 403;
- REGISTER sent straight to the S-CSCF, even with the TNA header, gets 403;
- requests for a registered IMPU come back down the WIC's WebSocket, from
  the S-CSCF only; the WIC's own requests lose their Bearer Authorization on the way; a
  connection that has not registered may send nothing else;
- a token is refused on a second connection (token binding);
- a call between two registered WICs: INVITE through the eP-CSCF, the
  S-CSCF (which finds the callee through the Path of its registration) and
  the eP-CSCF again, down the callee's WebSocket, the SDP untouched; ACK,
  re-INVITE and BYE follow the Record-Route both ways; CANCEL before the
  answer; an IMPU nobody registered (or that unregistered) gets 480;
- the caller's identity is the eP-CSCF's to assert: a WIC's request (and
  answer) carries one P-Asserted-Identity, the IMPU its connection
  registered, whatever the WIC wrote; requests from outside lose theirs;
  a connection may send only after the S-CSCF's 200 OK (a too short expiry
  gets 423 and no such right) and not after a de-registration; in-dialog
  requests whose route set leaves the core are refused; the S-CSCF serves
  a caller only while its IMPU is registered;
- a WIC's initial requests follow the Service-Route of its registration,
  never a Route the WIC wrote;
- REGISTERs from one address past the rate (pike) are answered 503 with
  Retry-After before their token is checked, another address is served,
  and the address is served again once it slows down;
- a key added to the JWKS file is picked up without a restart; without its
  JWKS file the eP-CSCF does not start.

Exit 77 (skipped) without the kamailio packages."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kamailio_fixture as f  # noqa: E402

JWKS_RELOAD = 1     # seconds between the eP-CSCF's JWKS re-reads in this test


def impu(name):
    return "sip:%s-%s@%s" % (name, f.random_token(6), f.DOMAIN)


class Servers(f.KamailioTestCase):
    """An S-CSCF and an eP-CSCF for the tests of a subclass, and helpers."""

    @classmethod
    def setUpClass(cls):
        tmp = cls.make_tmp()
        try:
            cls.key = f.SigningKey(tmp)
            cls.jwks_path = f.write_jwks(os.path.join(tmp, "jwks.json"), [cls.key])
            cls.tls_cert, cls.tls_key = f.make_tls_cert(tmp)
            cls.sip_port, cls.core_port, cls.ws_port, cls.wss_port = f.free_ports(4)
            cls.scscf = f.Kamailio(
                "scscf", os.path.join(tmp, "scscf"), os.path.join(f.CONFIG_DIR, "scscf.cfg"),
                ["SIP_PORT=%d" % cls.sip_port, "EPCSCF_IP=127.0.0.1", "EPCSCF_PORT=%d" % cls.core_port]
                + cls.scscf_defines(),
                udp_ports=[cls.sip_port])
            cls.servers.append(cls.scscf)
            cls.epcscf = cls.make_epcscf("epcscf", cls.ws_port, cls.wss_port, cls.core_port, cls.jwks_path)
            cls.servers.append(cls.epcscf)
            cls.scscf.start()
            cls.epcscf.start()
        except BaseException:
            cls.failed = True
            cls.stop_servers()
            raise

    @classmethod
    def scscf_defines(cls):
        return []

    # These tests send many REGISTERs from 127.0.0.1 in little time: no
    # throttling here (the Throttled class tests it).
    REGISTER_RATE = 100000

    @classmethod
    def make_epcscf(cls, name, ws_port, wss_port, core_port, jwks_path):
        return f.Kamailio(
            name, os.path.join(cls.tmp, name), os.path.join(f.CONFIG_DIR, "epcscf.cfg"),
            ["WITH_WS", "WS_PORT=%d" % ws_port, "WSS_PORT=%d" % wss_port, "REGISTER_RATE=%d" % cls.REGISTER_RATE,
             "CORE_PORT=%d" % core_port, 'TLS_CERT="%s"' % cls.tls_cert, 'TLS_KEY="%s"' % cls.tls_key,
             'LUA_SCRIPT="%s"' % os.path.join(f.CONFIG_DIR, "epcscf.lua")],
            env={"LUA_CPATH": os.path.join(f.WICTOKEN_LUA_DIR, "?.so") + ";;",
                 "EPCSCF_SCSCF_URI": "sip:127.0.0.1:%d" % cls.sip_port,
                 "EPCSCF_JWKS_FILE": jwks_path,
                 "EPCSCF_JWKS_RELOAD": str(JWKS_RELOAD),
                 "EPCSCF_WWSF_ISSUER": f.ISSUER,
                 "EPCSCF_TOKEN_AUDIENCE": f.AUDIENCE,
                 "EPCSCF_IMS_REALM": f.DOMAIN,
                 "EPCSCF_ALLOWED_ORIGINS": "%s https://portal.example.org" % f.ALLOWED_ORIGIN},
            udp_ports=[core_port], tcp_ports=[ws_port, wss_port])

    @classmethod
    def tearDownClass(cls):
        cls.stop_servers()

    def setUp(self):
        self.mark = "test %s" % self.id()

    # -- helpers --

    def wic(self, tls=True, origin=f.ALLOWED_ORIGIN):
        if tls:
            ws = f.WebSocket.connect(self.wss_port, tls_ca=self.tls_cert, origin=origin)
        else:
            ws = f.WebSocket.connect(self.ws_port, origin=origin)
        c = f.WicClient(ws)
        self.addCleanup(c.close)
        return c

    def token(self, user_impu, **claims):
        return self.key.sign(f.claims_for(user_impu, **claims))

    def register(self, client, user_impu, token, **kw):
        return client.transaction(f.register_request(user_impu, token, **kw))

    def registered_contacts(self, user_impu):
        """The S-CSCF's usrloc record of an IMPU (kamcmd text), or None."""
        # usrloc keys records by user@domain (use_domain), without the scheme.
        out = self.scscf.kamcmd("ul.lookup", "location", user_impu.split(":", 1)[1], check=False)
        if "AOR not found" in out or out.startswith("error"):
            return None
        return out

    def core_log(self):
        return self.scscf.log_since(self.mark)

    def assertRefusedHandshake(self, status, **kw):
        with self.assertRaises(f.HandshakeRefused) as cm:
            f.WebSocket.connect(self.wss_port, tls_ca=self.tls_cert, **kw)
        self.assertEqual(cm.exception.status, status, "handshake %r" % (kw,))
        return cm.exception

    def assertStatus(self, response, status):
        self.assertEqual(response.status, status, "expected %d, got:\n%s" % (status, response))

    def assertMayNotSend(self, client, from_impu, body, to=None, extra=()):
        """A MESSAGE from the connection (From: from_impu, to `to`, else to
        itself) is refused 403 by the eP-CSCF and never reaches the S-CSCF."""
        to = to or from_impu
        call_id = f.random_token(20)
        r = client.transaction(f.request("MESSAGE", to, from_impu, to, "SIP/2.0/WSS %s.invalid" % f.random_token(8),
                                         call_id=call_id, body=body, extra=list(extra)))
        self.assertStatus(r, 403)
        self.assertNotIn(call_id, self.core_log())

    def assertNeverReachedCore(self, call_id, user_impu):
        self.assertNotIn(call_id, self.core_log(), "the REGISTER reached the S-CSCF")
        self.assertIsNone(self.registered_contacts(user_impu), "%s is registered" % user_impu)



class EdgeAndCore(Servers):

    # -- (a) registration through the eP-CSCF --

    def test_register_over_wss_reaches_the_core(self):
        who = impu("wss")
        c = self.wic(tls=True)
        call_id = f.random_token(20)
        r = self.register(c, who, self.token(who), call_id=call_id)
        self.assertStatus(r, 200)
        self.assertEqual(r.call_id, call_id)
        # The S-CSCF saw the REGISTER (with TNA, without the token) and holds
        # the IMPU with the eP-CSCF's Path, which names the WIC's flow.
        # The S-CSCF logs "registered" after save() has sent the 200 OK: the
        # line may come a little after the answer.
        log = f.t.wait_until(lambda: "scscf: registered %s" % who in self.core_log() and self.core_log(), 10,
                             "the S-CSCF to log the registration of %s" % who)
        self.assertIn("scscf: REGISTER sip:%s to %s" % (f.DOMAIN, who), log)
        self.assertNotIn("Bearer", log)
        record = self.registered_contacts(who)
        self.assertIsNotNone(record, "%s not in the S-CSCF's usrloc" % who)
        self.assertIn("127.0.0.1:%d;lr;received=" % self.core_port, record)
        # The Path comes back in the 200 OK (the WIC said Supported: path).
        paths = r.header_all("Path")
        self.assertTrue(paths and "received=" in paths[0], str(r))

    def test_register_over_ws(self):
        who = impu("ws")
        c = self.wic(tls=False)
        self.assertStatus(self.register(c, who, self.token(who)), 200)
        self.assertIsNotNone(self.registered_contacts(who))

    def test_refresh_and_deregistration(self):
        who = impu("refresh")
        c = self.wic()
        call_id, contact = f.random_token(20), f.wic_contact()
        self.assertStatus(self.register(c, who, self.token(who), call_id=call_id, contact=contact), 200)
        # A re-REGISTER carries a fresh token (docs/DESIGN.md section 3).
        self.assertStatus(self.register(c, who, self.token(who), call_id=call_id, cseq=2, contact=contact), 200)
        self.assertIn(contact[0], self.registered_contacts(who))
        r = self.register(c, who, self.token(who), call_id=call_id, cseq=3, expires=0, contact=contact)
        self.assertStatus(r, 200)
        f.wait_until(lambda: self.registered_contacts(who) is None, 10, "%s to be gone from usrloc" % who)

    # -- (b) the WebSocket handshake --

    def test_foreign_origin_refused_at_handshake(self):
        for origin in ("https://evil.example.net", "https://wwsf.example.com.evil.net", "null",
                       "http://wwsf.example.com"):
            with self.subTest(origin=origin):
                e = self.assertRefusedHandshake(403, origin=origin)
                self.assertIsNone(e.header("Sec-WebSocket-Accept"))
        self.assertRefusedHandshake(403, origin=None)
        # Every allowed Origin is accepted, the second of the list too.
        f.WebSocket.connect(self.wss_port, tls_ca=self.tls_cert, origin="https://portal.example.org").close()

    def test_subprotocol_sip_required(self):
        for protocols in (None, "msrp", "sipx", "xsip, msrp"):
            with self.subTest(protocols=protocols):
                e = self.assertRefusedHandshake(400, protocols=protocols)
                self.assertEqual(e.header("Sec-WebSocket-Protocol"), "sip")
        f.WebSocket.connect(self.wss_port, tls_ca=self.tls_cert, protocols="msrp, SIP").close()

    def test_plain_http_is_not_served(self):
        with socket.create_connection(("127.0.0.1", self.ws_port), timeout=f.SIP_TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nOrigin: %s\r\n\r\n" % f.ALLOWED_ORIGIN.encode())
            ws = f.WebSocket(s)
            status, _, _, _ = ws._read_http_response()
        self.assertEqual(status, 404)

    # -- (c) tokens refused at the edge --

    def test_forged_token_gets_401_and_never_reaches_the_core(self):
        who = impu("forged")
        c = self.wic()
        call_id = f.random_token(20)
        r = self.register(c, who, f.flip_signature_bit(self.token(who)), call_id=call_id)
        self.assertStatus(r, 401)
        www = r.header("WWW-Authenticate") or ""
        self.assertTrue(www.startswith("Bearer "), str(r))
        self.assertIn('error="invalid_token"', www)
        self.assertIn('realm="%s"' % f.DOMAIN, www)
        self.assertNeverReachedCore(call_id, who)

    def test_missing_token_gets_a_challenge(self):
        who = impu("no-token")
        c = self.wic()
        call_id = f.random_token(20)
        r = self.register(c, who, None, call_id=call_id)
        self.assertStatus(r, 401)
        www = r.header("WWW-Authenticate") or ""
        self.assertTrue(www.startswith("Bearer "), str(r))
        self.assertIn('realm="%s"' % f.DOMAIN, www)
        self.assertNotIn("error=", www)
        self.assertNeverReachedCore(call_id, who)

    def test_expired_token_gets_401(self):
        who = impu("expired")
        c = self.wic()
        call_id = f.random_token(20)
        past = int(time.time()) - 3600
        r = self.register(c, who, self.token(who, now=past), call_id=call_id)
        self.assertStatus(r, 401)
        self.assertIn('error="invalid_token"', r.header("WWW-Authenticate") or "")
        self.assertNeverReachedCore(call_id, who)

    def test_token_of_another_impu_gets_403(self):
        who, other = impu("owner"), impu("other")
        c = self.wic()
        call_id = f.random_token(20)
        r = self.register(c, other, self.token(who), call_id=call_id)
        self.assertStatus(r, 403)
        self.assertNeverReachedCore(call_id, other)

    def test_token_refused_on_a_second_connection(self):
        who = impu("bound")
        token = self.token(who)
        self.assertStatus(self.register(self.wic(), who, token), 200)
        call_id = f.random_token(20)
        r = self.register(self.wic(), who, token, call_id=call_id)
        self.assertStatus(r, 401)
        self.assertIn('error="invalid_token"', r.header("WWW-Authenticate") or "")
        self.assertNotIn(call_id, self.core_log())

    def test_new_key_in_jwks_is_picked_up(self):
        new_key = f.SigningKey(self.tmp)
        who = impu("rotated")
        c = self.wic()
        r = self.register(c, who, new_key.sign(f.claims_for(who)))
        self.assertStatus(r, 401)
        tmp_path = self.jwks_path + ".new"
        f.write_jwks(tmp_path, [self.key, new_key])
        os.replace(tmp_path, self.jwks_path)
        # Each worker re-reads the file on its first REGISTER JWKS_RELOAD
        # seconds after the last; a few attempts reach every worker.
        f.wait_until(lambda: self.register(c, who, new_key.sign(f.claims_for(who))).status == 200,
                     JWKS_RELOAD * 10 + 20, "a token of the new key to be accepted", interval=JWKS_RELOAD / 2)

    def test_edge_without_its_jwks_does_not_start(self):
        missing = os.path.join(self.tmp, "no-such-jwks.json")
        broken = self.make_epcscf("epcscf-no-jwks", *f.free_ports(3), jwks_path=missing)
        self.addCleanup(broken.stop)
        rc = broken.start(wait=False).wait_exit()
        self.assertNotEqual(rc, 0)
        self.assertIn("issuer %s: cannot read a file: %s" % (f.ISSUER, missing), broken.log_text())

    # -- (d) the S-CSCF takes registrations from the eP-CSCF only --

    def test_register_straight_to_the_core_is_refused(self):
        who = impu("direct")
        peer = f.UdpSip()
        self.addCleanup(peer.close)
        tna = ('Digest username="%s", realm="%s", uri="sip:%s", nonce="", response="", '
               'integrity-protected="auth-done"' % (who.split(":", 1)[1], f.DOMAIN, f.DOMAIN))
        for auth in (tna, "Bearer " + self.token(who), None):
            with self.subTest(authorization=(auth or "none")[:20]):
                req = f.register_request(who, via=peer.via, authorization=auth)
                self.assertStatus(peer.transaction(req, self.sip_port), 403)
        self.assertIsNone(self.registered_contacts(who))
        self.assertIn("not the eP-CSCF", self.core_log())

    def test_core_wants_tna_even_from_the_edge_address(self):
        """A second S-CSCF that trusts this test's socket as its eP-CSCF:
        the address alone is not enough."""
        edge = f.UdpSip()
        self.addCleanup(edge.close)
        port = f.free_ports(1)[0]
        core = f.Kamailio("scscf-2", os.path.join(self.tmp, "scscf-2"), os.path.join(f.CONFIG_DIR, "scscf.cfg"),
                          ["SIP_PORT=%d" % port, "EPCSCF_IP=127.0.0.1", "EPCSCF_PORT=%d" % edge.port],
                          udp_ports=[port])
        self.addCleanup(core.stop)
        core.start()
        who = impu("tna")
        tna = ('Digest username="%s", realm="%s", uri="sip:%s", nonce="", response="", '
               'integrity-protected="auth-done"' % (who.split(":", 1)[1], f.DOMAIN, f.DOMAIN))
        for auth, status in ((None, 403), ("Bearer " + self.token(who), 403),
                             (tna.replace("auth-done", "tls-yes"), 403), (tna, 200)):
            with self.subTest(authorization=auth):
                req = f.register_request(who, via=edge.via, authorization=auth)
                self.assertStatus(edge.transaction(req, port), status)
        self.assertIn("Bearer credentials reached the core", core.log_text())

    def test_register_to_the_core_side_of_the_edge_is_refused(self):
        who = impu("core-side")
        peer = f.UdpSip()
        self.addCleanup(peer.close)
        req = f.register_request(who, self.token(who), via=peer.via)
        self.assertStatus(peer.transaction(req, self.core_port), 403)
        self.assertIsNone(self.registered_contacts(who))

    # -- after registration: the WIC's flow --

    def registered_wic(self, name, tls=True):
        who = impu(name)
        c = self.wic(tls=tls)
        self.assertStatus(self.register(c, who, self.token(who)), 200)
        return c, who

    def test_requests_for_a_registered_impu_come_down_its_websocket(self):
        c, who = self.registered_wic("callee")
        peer = f.UdpSip()
        self.addCleanup(peer.close)
        msg = f.request("MESSAGE", who, "sip:peer@%s" % f.DOMAIN, who, peer.via, body="hello")
        peer.send(msg, self.sip_port)
        got = c.receive()
        self.assertEqual(got.method, "MESSAGE", str(got))
        self.assertEqual(got.body, "hello")
        c.send(f.response_to(got, 200, "OK"))
        answer = peer.receive()
        self.assertStatus(answer, 200)

    def test_only_the_core_reaches_the_wics(self):
        c, who = self.registered_wic("guarded")
        record = self.registered_contacts(who)
        path = record.split("Path: ", 1)[1].splitlines()[0].strip()
        # What the S-CSCF would send, from another address than the S-CSCF's.
        stranger = f.UdpSip(host="127.0.0.2")
        self.addCleanup(stranger.close)
        msg = f.request("MESSAGE", who, "sip:peer@%s" % f.DOMAIN, who, stranger.via, body="spoofed",
                        extra=["Route: " + path])
        self.assertStatus(stranger.transaction(msg, self.core_port), 403)
        with self.assertRaises(socket.timeout):
            c.receive(0.5)

    def test_unregistered_impu_gets_480(self):
        peer = f.UdpSip()
        self.addCleanup(peer.close)
        who = impu("nobody")
        r = peer.transaction(f.request("MESSAGE", who, "sip:peer@%s" % f.DOMAIN, who, peer.via, body="x"),
                             self.sip_port)
        self.assertStatus(r, 480)

    def test_wic_requests_lose_their_bearer(self):
        c, who = self.registered_wic("sender", tls=False)
        token = self.token(who)
        # A MESSAGE to itself: through the eP-CSCF, the S-CSCF and back.
        msg = f.request("MESSAGE", who, who, who, "SIP/2.0/WS %s.invalid" % f.random_token(8), body="loop",
                        extra=["Authorization: Bearer " + token])
        c.send(msg)
        got = None
        while got is None or got.method != "MESSAGE":
            got = c.receive()
        self.assertEqual(got.body, "loop")
        self.assertNotIn(token, got.text)
        self.assertEqual([a for a in got.header_all("Authorization") if a.lower().startswith("bearer")], [])
        c.send(f.response_to(got, 200, "OK"))
        final = None
        while final is None or final.status is None or final.status < 200:
            final = c.receive()
        self.assertStatus(final, 200)

    # -- who is calling: asserted by the eP-CSCF --

    def message_between(self, sender, sender_impu, receiver, receiver_impu, from_uri, extra=(), reply_extra=()):
        """A MESSAGE from one registered WIC to another through both CSCFs;
        returns (the request as the receiver got it, the final response as
        the sender got it)."""
        call_id = f.random_token(20)
        sender.send(f.request("MESSAGE", receiver_impu, from_uri, receiver_impu,
                              "SIP/2.0/WSS %s.invalid" % f.random_token(8), call_id=call_id, body="who?",
                              extra=list(extra)))
        got = f.wait_for_request(receiver, "MESSAGE")
        self.assertEqual(got.call_id, call_id)
        receiver.send(f.response_to(got, 200, "OK", extra=list(reply_extra)))
        return got, f.wait_for_response(sender, call_id)

    def test_the_edge_asserts_who_is_calling(self):
        """Whatever identity a WIC claims (From, P-Asserted-Identity,
        P-Preferred-Identity), the request reaches the callee with one
        P-Asserted-Identity: the IMPU the caller's connection registered; the
        same for the callee's answer."""
        alice, alice_impu = self.registered_wic("asserted")
        bob, bob_impu = self.registered_wic("asked")
        ceo = "sip:ceo@%s" % f.DOMAIN
        got, answer = self.message_between(
            alice, alice_impu, bob, bob_impu, ceo,
            extra=["P-Asserted-Identity: <%s>" % ceo, "P-Preferred-Identity: <%s>" % ceo,
                   "P-Asserted-Identity: <tel:+15550100>"],
            reply_extra=["P-Asserted-Identity: <%s>" % ceo])
        self.assertEqual(got.header_all("P-Asserted-Identity"), ["<%s>" % alice_impu], str(got))
        self.assertEqual(got.header_all("P-Preferred-Identity"), [])
        self.assertIn(ceo, got.header("From"), "From is the WIC's own words and stays")
        self.assertStatus(answer, 200)
        self.assertEqual(answer.header_all("P-Asserted-Identity"), ["<%s>" % bob_impu], str(answer))

    def test_a_wic_cannot_steer_its_requests_by_route(self):
        """A Route the WIC writes into an initial request (towards any host)
        is not followed: the request goes to the S-CSCF and on to the
        callee, and nothing reaches the host the WIC named, on either
        eP-CSCF leg."""
        alice, alice_impu = self.registered_wic("steering")
        bob, bob_impu = self.registered_wic("steered")
        elsewhere = f.UdpSip(host="127.0.0.2")
        self.addCleanup(elsewhere.close)
        route = "Route: <sip:127.0.0.2:%d;lr>" % elsewhere.port
        got, answer = self.message_between(alice, alice_impu, bob, bob_impu, alice_impu, extra=[route])
        self.assertStatus(answer, 200)
        self.assertNotIn("127.0.0.2", "\n".join(got.header_all("Route")), str(got))
        with self.assertRaises(socket.timeout):
            elsewhere.receive(0.5)

    def test_a_wic_cannot_steer_an_in_dialog_request_out_of_the_core(self):
        """A request made to look in-dialog (a To tag) with a route set that
        leaves the eP-CSCF for another host than the core's is refused, and
        nothing reaches that host."""
        alice, alice_impu = self.registered_wic("forger")
        elsewhere = f.UdpSip(host="127.0.0.2")
        self.addCleanup(elsewhere.close)
        for routes in (["<sip:127.0.0.1:%d;r2=on;lr>" % self.ws_port, "<sip:127.0.0.1:%d;r2=on;lr>" % self.core_port,
                        "<sip:127.0.0.2:%d;lr>" % elsewhere.port],
                       ["<sip:127.0.0.2:%d;lr>" % elsewhere.port]):
            with self.subTest(routes=routes):
                call_id = f.random_token(20)
                msg = f.request("MESSAGE", "sip:x@127.0.0.2:%d" % elsewhere.port, alice_impu,
                                "sip:x@%s" % f.DOMAIN, "SIP/2.0/WS %s.invalid" % f.random_token(8), call_id=call_id,
                                body="relay me", extra=["Route: " + ", ".join(routes)])
                msg = msg.replace("To: <sip:x@%s>" % f.DOMAIN, "To: <sip:x@%s>;tag=forged" % f.DOMAIN)
                self.assertStatus(alice.transaction(msg), 403)
                with self.assertRaises(socket.timeout):
                    elsewhere.receive(0.3)

    def test_requests_from_outside_lose_their_asserted_identity(self):
        bob, bob_impu = self.registered_wic("listener")
        peer = f.UdpSip()
        self.addCleanup(peer.close)
        ceo = "sip:ceo@%s" % f.DOMAIN
        msg = f.request("MESSAGE", bob_impu, ceo, bob_impu, peer.via, body="trust me",
                        extra=["P-Asserted-Identity: <%s>" % ceo])
        peer.send(msg, self.sip_port)
        got = f.wait_for_request(bob, "MESSAGE")
        self.assertEqual(got.body, "trust me")
        self.assertEqual(got.header_all("P-Asserted-Identity"), [], str(got))
        bob.send(f.response_to(got, 200, "OK"))
        self.assertStatus(peer.receive(), 200)

    def test_too_short_an_expiry_gets_423_and_no_right_to_send(self):
        c, who = self.wic(), impu("hasty")
        r = self.register(c, who, self.token(who), expires=30)
        self.assertStatus(r, 423)
        self.assertEqual(r.header("Min-Expires"), "60", str(r))
        self.assertIsNone(self.registered_contacts(who))
        # The eP-CSCF grants a connection its right to send from the
        # S-CSCF's 200 OK only.
        self.assertMayNotSend(c, who, "may I?")

    def test_deregistered_connection_may_send_nothing_else(self):
        c, who = self.wic(), impu("leaving")
        call_id, contact = f.random_token(20), f.wic_contact()
        self.assertStatus(self.register(c, who, self.token(who), call_id=call_id, contact=contact), 200)
        self.assertStatus(self.register(c, who, self.token(who), call_id=call_id, cseq=2, expires=0,
                                        contact=contact), 200)
        self.assertMayNotSend(c, who, "still here?")

    def test_core_serves_only_registered_callers(self):
        """A registration that ended at the S-CSCF (here removed by the
        operator) while the eP-CSCF still lets the connection send: the
        S-CSCF refuses the caller's requests with 403."""
        alice, alice_impu = self.registered_wic("removed")
        bob, bob_impu = self.registered_wic("untouched")
        self.scscf.kamcmd("ul.rm", "location", alice_impu.split(":", 1)[1])
        self.assertIsNone(self.registered_contacts(alice_impu))
        call_id = f.random_token(20)
        r = alice.transaction(f.request("MESSAGE", bob_impu, alice_impu, bob_impu,
                                        "SIP/2.0/WSS %s.invalid" % f.random_token(8), call_id=call_id, body="x"))
        self.assertStatus(r, 403)
        self.assertIn("from %s refused: not registered" % alice_impu, self.core_log())
        with self.assertRaises(socket.timeout):
            bob.receive(0.5)

    # -- calls between two WICs --

    def test_call_between_two_wics(self):
        """INVITE caller WIC -> eP-CSCF -> S-CSCF -> (the callee's Path) ->
        eP-CSCF -> callee WIC; the SDP arrives as sent; ACK, a re-INVITE and
        BYE follow the Record-Route, both ways."""
        alice, alice_impu = self.registered_wic("caller")
        bob, bob_impu = self.registered_wic("callee")
        call = f.Call(alice, alice_impu, bob_impu)
        sdp = f.webrtc_sdp()
        alice.send(call.invite(sdp))
        invite = f.wait_for_request(bob, "INVITE")
        self.assertEqual(invite.body, sdp, "the SDP was changed on the way")
        self.assertNotIn("Bearer", invite.text)
        # Record-Route: the eP-CSCF twice (both sockets) on each side, the S-CSCF once.
        self.assertGreaterEqual(len(f.route_entries(invite.header_all("Record-Route"))), 3, str(invite))
        callee = f.Call.answering(bob, bob_impu, invite)
        bob.send(callee.respond(invite, 180, "Ringing"))
        self.assertStatus(f.wait_for_response(alice, call.call_id, final=False), 180)
        answer_sdp = f.webrtc_sdp()
        bob.send(callee.respond(invite, 200, "OK", sdp=answer_sdp))
        ok = f.wait_for_response(alice, call.call_id)
        self.assertStatus(ok, 200)
        self.assertEqual(ok.body, answer_sdp)
        call.established(ok)
        alice.send(call.ack())
        ack = f.wait_for_request(bob, "ACK")
        self.assertEqual(ack.call_id, call.call_id)
        # A re-INVITE from the callee, back through the S-CSCF to the caller.
        bob.send(callee.request("INVITE", sdp=answer_sdp))
        reinvite = f.wait_for_request(alice, "INVITE")
        self.assertEqual(reinvite.call_id, call.call_id)
        alice.send(call.respond(reinvite, 200, "OK", sdp=sdp))
        self.assertStatus(f.wait_for_response(bob, call.call_id), 200)
        bob.send(callee.request("ACK"))
        f.wait_for_request(alice, "ACK")
        # The caller hangs up.
        alice.send(call.request("BYE"))
        bye = f.wait_for_request(bob, "BYE")
        bob.send(callee.respond(bye, 200, "OK"))
        self.assertStatus(f.wait_for_response(alice, call.call_id), 200)
        log = self.core_log()
        for method in ("INVITE", "ACK", "BYE"):
            self.assertIn("scscf: %s " % method, log)

    def test_call_cancelled_before_answer(self):
        alice, alice_impu = self.registered_wic("canceller")
        bob, bob_impu = self.registered_wic("rung")
        call = f.Call(alice, alice_impu, bob_impu)
        alice.send(call.invite(f.webrtc_sdp()))
        invite = f.wait_for_request(bob, "INVITE")
        callee = f.Call.answering(bob, bob_impu, invite)
        bob.send(callee.respond(invite, 180, "Ringing"))
        self.assertStatus(f.wait_for_response(alice, call.call_id, final=False), 180)
        alice.send(call.cancel())
        cancel = f.wait_for_request(bob, "CANCEL")
        bob.send(callee.respond(cancel, 200, "OK"))
        bob.send(callee.respond(invite, 487, "Request Terminated"))
        self.assertStatus(f.wait_for_response(alice, call.call_id, method="INVITE"), 487)

    def test_call_to_an_unregistered_impu_gets_480(self):
        alice, alice_impu = self.registered_wic("lonely")
        # An IMPU nobody registered (a pool IMPU leased but not registered,
        # or free), and one whose WIC registered and then unregistered.
        gone_client, gone = self.wic(), impu("gone")
        call_id, contact = f.random_token(20), f.wic_contact()
        self.assertStatus(self.register(gone_client, gone, self.token(gone), call_id=call_id, contact=contact), 200)
        self.assertStatus(self.register(gone_client, gone, self.token(gone), call_id=call_id, cseq=2, expires=0,
                                        contact=contact), 200)
        for target in (impu("nobody"), gone):
            with self.subTest(target=target):
                call = f.Call(alice, alice_impu, target)
                alice.send(call.invite(f.webrtc_sdp()))
                r = f.wait_for_response(alice, call.call_id)
                self.assertStatus(r, 480)
                alice.send(call.ack_failure(r))
        # Another domain is not ours to answer for.
        call = f.Call(alice, alice_impu, "sip:someone@elsewhere.example.org")
        alice.send(call.invite(f.webrtc_sdp()))
        self.assertStatus(f.wait_for_response(alice, call.call_id), 404)

    def test_unregistered_connection_may_send_nothing_else(self):
        c = self.wic()
        who = impu("stranger")
        self.assertMayNotSend(c, who, "x", to="sip:someone@%s" % f.DOMAIN,
                              extra=["Authorization: Bearer " + self.token(who)])


class ServiceRoute(Servers):
    """The S-CSCF's 200 OK names another node in Service-Route (a UDP socket
    of the test on 127.0.0.2): the eP-CSCF sends the registered WIC's own
    requests there, with that Route and the asserted identity, and not to
    its configured scscf_uri."""

    @classmethod
    def scscf_defines(cls):
        cls.assigned = f.UdpSip(host="127.0.0.2")
        cls.service_route = "sip:orig@127.0.0.2:%d;lr" % cls.assigned.port
        return ['SERVICE_ROUTE="%s"' % cls.service_route]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.assigned.close()

    def test_requests_follow_the_service_route(self):
        c = self.wic()
        who = impu("routed")
        ok = self.register(c, who, self.token(who))
        self.assertStatus(ok, 200)
        self.assertEqual(ok.header_all("Service-Route"), ["<%s>" % self.service_route], str(ok))
        call_id = f.random_token(20)
        c.send(f.request("MESSAGE", "sip:peer@%s" % f.DOMAIN, who, "sip:peer@%s" % f.DOMAIN,
                         "SIP/2.0/WS %s.invalid" % f.random_token(8), call_id=call_id, body="via my S-CSCF",
                         extra=["Route: <sip:127.0.0.1:%d;lr>" % self.sip_port]))
        got = f.next_message(self.assigned, lambda m: m.method == "MESSAGE" and m.call_id == call_id,
                             f.SIP_TIMEOUT, "the MESSAGE at the node of the Service-Route")
        self.assertEqual(got.header_all("Route"), ["<%s>" % self.service_route], str(got))
        self.assertEqual(got.header_all("P-Asserted-Identity"), ["<%s>" % who], str(got))
        self.assertNotIn(call_id, self.core_log(), "the MESSAGE went to scscf_uri")
        self.assigned.sock.sendto(f.response_to(got, 200, "OK").encode(), ("127.0.0.1", self.core_port))
        self.assertStatus(f.wait_for_response(c, call_id), 200)


class Throttled(Servers):
    """The eP-CSCF with REGISTER_RATE=5 per RATE_UNIT of 2 s (pike): a burst
    of forged tokens from one address is answered 503 with Retry-After once
    over the rate, without a signature check; another address is served;
    the address is served again once it slows down."""

    REGISTER_RATE = 5

    def test_a_burst_from_one_address_is_throttled(self):
        c = self.wic()
        who = impu("flood")
        self.epcscf.mark("throttle burst")
        statuses = []
        started = time.monotonic()
        for _ in range(30):
            forged = f.flip_signature_bit(self.token(who))
            r = self.register(c, who, forged)
            statuses.append(r.status)
            if r.status == 503:
                self.assertEqual(r.header("Retry-After"), "10", str(r))
        units = (time.monotonic() - started) / 2
        sys.stderr.write("burst of 30 in %.1f sampling units: %s\n" % (units, statuses))
        checked = statuses.count(401)
        self.assertEqual(checked + statuses.count(503), len(statuses), statuses)
        self.assertGreaterEqual(checked, 1, statuses)
        # 5 per sampling unit that the burst spanned, and the unit it started
        # in and the one after (pike's counting starts mid-unit), and the
        # first hits of an address, which pike spends growing its tree of
        # address prefixes (one per byte of an IPv4 address) before it counts
        # the address itself: 8 here on a quiet machine.
        self.assertLessEqual(checked, self.REGISTER_RATE * (int(units) + 2) + 4, statuses)
        self.assertGreaterEqual(statuses.count(503), 1, statuses)
        # Only the REGISTERs let through had their token checked.
        log = self.epcscf.log_since("throttle burst")
        self.assertEqual(log.count("refused: 401"), checked, log[-2000:])
        # Another client address is served meanwhile.
        other = f.WicClient(f.WebSocket.connect(self.ws_port, source="127.0.0.2"))
        self.addCleanup(other.close)
        someone = impu("neighbour")
        self.assertStatus(self.register(other, someone, self.token(someone)), 200)
        # Once the flooding address slows down, it is served again.
        deadline = time.monotonic() + 20
        while True:
            r = self.register(c, who, self.token(who))
            if r.status == 200 or time.monotonic() > deadline:
                break
            self.assertStatus(r, 503)
            time.sleep(1)
        self.assertStatus(r, 200)


if __name__ == "__main__":
    f.main()
