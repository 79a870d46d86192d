-- eP-CSCF routing logic (Kamailio 5.6, app_lua KEMI, Lua 5.1), loaded by
-- epcscf.cfg, which holds the sockets and the modules; the settings of the
-- token checks are below.
--
-- Every Kamailio worker process runs this file once at start (and again on
-- `kamcmd app_lua.reload`), so each process has its own wictoken context:
-- its own copy of the keys, re-read every JWKS_RELOAD seconds. What must be
-- shared between processes (which WebSocket a token was first used on, which
-- connections have registered) lives in htable, in shared memory.
--
-- Flow:
--   WebSocket handshake  ksr_xhttp_event(): Origin in the allow-list (else
--                        403), subprotocol "sip" offered (else 400), then the
--                        websocket module answers 101.
--   REGISTER from a WIC  throttled per source address (pike: 503 with
--                        Retry-After past REGISTER_RATE of epcscf.cfg), then
--                        ctx:check_register() on the raw message: 400/401/403
--                        answered here; accepted: Authorization replaced by
--                        the TNA header, Path with the WIC's flow added
--                        (path module, received=), relayed to the S-CSCF.
--   other WIC requests   only on a connection whose registration stands;
--                        Bearer Authorization removed; the caller's identity
--                        asserted here (P-Asserted-Identity: the IMPU the
--                        connection registered, whatever the WIC wrote);
--                        initial ones routed by the registration's
--                        Service-Route (the WIC's own Route removed).
--   from the core        only from core_addresses; routed by Route (the Path
--                        of the registration): the path module's
--                        use_received points $du at the WIC's WebSocket,
--                        which is never opened from here.

-- ---- Settings ------------------------------------------------------------
--
-- Edit them here, or override any of them with an environment variable of
-- the Kamailio process, EPCSCF_<NAME in capitals> (EPCSCF_JWKS_FILE=...):
-- the tests and containers do that. They are read when the script loads,
-- where KSR.* functions cannot be called yet (app_lua has no message then),
-- so they are not #!define values of epcscf.cfg. The sockets and TLS files
-- are in epcscf.cfg.
--
-- Lua finds wictoken.so on package.cpath: Debian's default holds
-- /usr/local/lib/lua/5.1/?.so and /usr/lib/lua/5.1/?.so, where meson installs
-- it; LUA_CPATH in the environment ("/some/dir/?.so;;") adds another place.
local settings = {
        -- Where accepted REGISTERs (and the WICs' other requests) go.
        scscf_uri = "sip:127.0.0.1:5070",
        -- The addresses that may send requests towards the WICs, separated by
        -- spaces: the S-CSCF's (and other core nodes'). "" takes the host of
        -- scscf_uri when it is an IP address.
        core_addresses = "",
        -- The IMS domain: realm of the 401 challenges and of the TNA header.
        ims_realm = "ims.example.com",
        -- The WWSF that signs the tokens (their "iss"), and its public keys: a
        -- copy of https://<wwsf>/.well-known/jwks.json, re-read every
        -- jwks_reload seconds (0: never; wwsfd publishes a key before signing
        -- with it). `kamcmd app_lua.reload` re-reads everything at once.
        wwsf_issuer = "https://wwsf.example.com",
        jwks_file = "/etc/wwsf/jwks.json",
        jwks_reload = 60,
        -- The "aud" the tokens must carry, and the clock leeway in seconds.
        token_audience = "ims.example.com",
        token_leeway = 60,
        -- A token is refused on another WebSocket connection than the one it
        -- was first used on ("yes" or "no").
        token_binding = "yes",
        -- The WebSocket Origins allowed (the pages that serve the WIC),
        -- separated by spaces. Browsers apply no CORS to WebSocket: this is it.
        allowed_origins = "https://wwsf.example.com",
}
for name, default in pairs(settings) do
        local v = os.getenv("EPCSCF_" .. name:upper())
        if v ~= nil then
                settings[name] = type(default) == "number" and assert(tonumber(v), "EPCSCF_" .. name:upper()) or v
        end
end

local SCSCF_URI = settings.scscf_uri
local CORE_ADDRESSES = {}
for address in settings.core_addresses:gmatch("%S+") do
        CORE_ADDRESSES[address] = true
end
if next(CORE_ADDRESSES) == nil then
        local host = SCSCF_URI:match("^sips?:([%d.]+)") or SCSCF_URI:match("^sips?:%[([%x:]+)%]")
        CORE_ADDRESSES[assert(host, "epcscf.lua: core_addresses is needed when scscf_uri names no IP address")] = true
end
local IMS_REALM = settings.ims_realm
local WWSF_ISSUER = settings.wwsf_issuer
local JWKS_RELOAD = settings.jwks_reload
local TOKEN_LEEWAY = settings.token_leeway
local TOKEN_BINDING = settings.token_binding == "yes"

-- A connection may send other requests for as long as the registration the
-- S-CSCF granted (the expires of its Contact in the 200 OK; else what the
-- REGISTER asked for), plus this many seconds, and at most MAX_FLOW_SECONDS.
-- Without an expiry in the REGISTER, the registrar's default (RFC 3261
-- section 10.2.1.1). The S-CSCF checks the registration again on every
-- request (scscf.cfg).
local FLOW_SLACK = 30
local MAX_FLOW_SECONDS = 86400
local DEFAULT_EXPIRES = 600

local wt = require "wictoken"

-- KSR.* logs only while a message is being routed; what the library says
-- while the script loads goes to standard error (the log, with -E).
local routing = false
local LOG_FUNCTIONS = {
        [wt.LOG_ERR] = "err",
        [wt.LOG_WARNING] = "warn",
        [wt.LOG_INFO] = "info",
        [wt.LOG_DEBUG] = "dbg",
}
local function library_log(level, line)
        if routing then
                KSR[LOG_FUNCTIONS[level] or "info"]("wictoken: " .. line .. "\n")
        else
                io.stderr:write("epcscf.lua: wictoken: " .. line .. "\n")
        end
end

local origins = {}
for origin in settings.allowed_origins:gmatch("%S+") do
        origins[#origins + 1] = origin
end

-- A JWKS that is missing or malformed at start stops Kamailio here: an
-- eP-CSCF that would refuse every WIC should not look healthy.
local ctx = assert(wt.new {
        issuers = { [WWSF_ISSUER] = settings.jwks_file },
        audience = settings.token_audience,
        realm = IMS_REALM,
        origins = origins,
        leeway = TOKEN_LEEWAY,
        token_binding = TOKEN_BINDING,
        log = library_log,
})

local next_reload = os.time() + JWKS_RELOAD
local function reload_keys_when_due()
        if JWKS_RELOAD <= 0 or os.time() < next_reload then
                return
        end
        next_reload = os.time() + JWKS_RELOAD
        local n, err = ctx:reload()
        if not n then
                KSR.err("wictoken: JWKS reload failed, the old keys stay: " .. err .. "\n")
        end
end

-- ---- WebSocket handshake ---------------------------------------------------

-- true when the comma-separated Sec-WebSocket-Protocol list holds "sip"
-- (the websocket module only looks for the substring).
local function offers_sip(protocols)
        if not protocols then
                return false
        end
        for p in protocols:gmatch("[^,]+") do
                if p:match("^%s*(.-)%s*$"):lower() == "sip" then
                        return true
                end
        end
        return false
end

function ksr_xhttp_event(evname)
        routing = true
        local upgrade = KSR.hdr.get("Upgrade")
        if not KSR.is_GET() or not upgrade or upgrade:lower() ~= "websocket" then
                KSR.xhttp.xhttp_reply(404, "Not Found", "text/plain", "WebSocket (subprotocol sip) only\r\n")
                return 1
        end
        local origin = KSR.hdr.get("Origin")
        local allowed, why = ctx:check_origin(origin)
        if not allowed then
                KSR.notice("WebSocket from " .. KSR.pv.get("$si") .. " refused: " .. why .. "\n")
                KSR.xhttp.xhttp_reply(403, "Forbidden", "text/plain", "Origin not allowed\r\n")
                return 1
        end
        if not offers_sip(KSR.hdr.get("Sec-WebSocket-Protocol")) then
                KSR.hdr.append_to_reply("Sec-WebSocket-Protocol: sip\r\n")
                KSR.xhttp.xhttp_reply(400, "Bad Request", "text/plain", "Sec-WebSocket-Protocol must offer sip\r\n")
                return 1
        end
        KSR.websocket.handle_handshake()
        return 1
end

-- ---- SIP ---------------------------------------------------------------------

local function relay()
        if KSR.tm.t_relay() < 0 then
                KSR.sl.sl_reply_error()
        end
end

-- A CANCEL goes where its INVITE's transaction went, or nowhere.
local function relay_cancel()
        if KSR.tm.t_check_trans() > 0 then
                relay()
        end
end

-- Token binding across processes: the library binds a token to the first
-- connection it sees it on, but each process has its own context, and
-- Kamailio hands a WebSocket connection to any TCP worker. The first
-- connection of each jti is kept in htable "wicjti" until the token expires.
local function bound_elsewhere(verdict, conid)
        if not TOKEN_BINDING or not verdict.jti or verdict.jti == "" then
                return false
        end
        local key = "jti:" .. verdict.jti
        -- Under the slot's lock: two processes seeing the same token at once
        -- must not both take it as their first use.
        KSR.htable.sht_lock("wicjti", key)
        local first = KSR.htable.sht_get("wicjti", key)
        if first == nil then
                KSR.htable.sht_setxs("wicjti", key, conid, math.max(1, verdict.exp - os.time() + TOKEN_LEEWAY))
        end
        KSR.htable.sht_unlock("wicjti", key)
        return first ~= nil and tostring(first) ~= conid
end

-- The expiry a REGISTER asks for (RFC 3261 section 10.2.1.1): the first
-- Contact's expires parameter, else the Expires header, else the default;
-- 0 for "Contact: *"; nil for a REGISTER without Contact (a query, which
-- changes no binding).
local function expires_param(params)
        return tonumber(params:match(";%s*[Ee][Xx][Pp][Ii][Rr][Ee][Ss]%s*=%s*(%d+)"))
end

-- Contact values with their quoted strings emptied (a display name, or
-- +sip.instance="<urn:uuid:...>", may hold <, > and commas).
local function unquoted(contacts)
        return (contacts:gsub('"[^"]*"', '""'))
end

local function requested_expires()
        local contact = KSR.pv.get("$hdr(Contact)")
        if contact == nil then
                return nil
        end
        if contact:match("^%s*%*") then
                return 0
        end
        -- Parameters of the URI (inside <>) are not the Contact's own.
        local e = expires_param((unquoted(contact):gsub("<[^>]*>", "")))
        if e == nil then
                e = tonumber(KSR.pv.get("$hdr(Expires)"))
        end
        return e or DEFAULT_EXPIRES
end

-- The URI of a Contact value in name-addr form, or nil.
local function first_contact_uri(contact)
        return contact and unquoted(contact):match("<([^>]+)>")
end

-- The expiry the registrar granted a contact: its expires parameter in the
-- 200 OK's Contact list (RFC 3261 section 10.3, step 8), or nil.
local function granted_expires(contacts, uri)
        if contacts == nil or uri == nil or uri == "" then
                return nil
        end
        for u, params in unquoted(contacts):gmatch("<([^>]*)>([^,]*)") do
                if u == uri then
                        return expires_param(params)
                end
        end
        return nil
end

-- Seconds a throttled address is told to wait (see REGISTER_RATE in
-- epcscf.cfg).
local THROTTLE_RETRY_AFTER = 10

local function register_from_wic()
        -- Before the token: a flood of forged tokens must not cost a
        -- signature verification each.
        if KSR.pike.pike_check_req() < 0 then
                KSR.hdr.append_to_reply("Retry-After: " .. THROTTLE_RETRY_AFTER .. "\r\n")
                KSR.sl.send_reply(503, "Service Unavailable")
                return
        end
        reload_keys_when_due()
        local conid = tostring(KSR.pv.get("$conid"))
        local verdict, err = ctx:check_register(KSR.pv.get("$mb"), conid)
        if not verdict then
                KSR.err("wictoken: no verdict: " .. err .. "\n")
                KSR.sl.send_reply(500, "Server Internal Error")
                return
        end
        if verdict.accepted and bound_elsewhere(verdict, conid) then
                verdict = {
                        accepted = false, status = 401, phrase = "Unauthorized",
                        reason = "token first used on another connection",
                        www_authenticate = string.format('Bearer realm="%s", authz_server="%s", error="invalid_token"',
                                IMS_REALM, WWSF_ISSUER),
                }
        end
        if not verdict.accepted then
                KSR.notice(string.format("REGISTER from %s:%s refused: %d %s\n", KSR.pv.get("$si"),
                        tostring(KSR.pv.get("$sp")), verdict.status, verdict.reason))
                if verdict.www_authenticate then
                        KSR.hdr.append_to_reply("WWW-Authenticate: " .. verdict.www_authenticate .. "\r\n")
                end
                KSR.sl.send_reply(verdict.status, verdict.phrase)
                return
        end
        KSR.info(string.format("REGISTER of %s (%s) from %s:%s accepted\n", verdict.impu, verdict.impi,
                KSR.pv.get("$si"), tostring(KSR.pv.get("$sp"))))
        -- Once the S-CSCF has accepted the registration, the connection may
        -- send other requests as this IMPU (see wic_request()) for as long
        -- as the registration the S-CSCF granted, and they go where its
        -- Service-Route says: ksr_register_reply() keeps both. A
        -- de-registration ends that at once.
        local expires = requested_expires()
        if expires == 0 then
                KSR.htable.sht_rm("wicflows", conid)
                KSR.htable.sht_rm("wicroutes", conid)
        elseif expires ~= nil then
                KSR.pv.sets("$avp(wic_conid)", conid)
                KSR.pv.sets("$avp(wic_impu)", verdict.impu)
                KSR.pv.sets("$avp(wic_contact)", first_contact_uri(KSR.pv.get("$hdr(Contact)")) or "")
                KSR.pv.seti("$avp(wic_expires)", expires)
                KSR.tm.t_on_reply("ksr_register_reply")
        end
        -- The token never reaches the core: every Authorization goes, the
        -- Trusted Node Authentication header takes its place.
        KSR.hdr.remove("Authorization")
        KSR.hdr.append("Authorization: " .. verdict.tna_authorization .. "\r\n")
        -- Path: <sip:CORE_IP:CORE_PORT;lr;received=sip:WIC-ADDRESS;transport=ws(s)>
        if KSR.path.add_path_received() < 0 then
                KSR.sl.send_reply(500, "Server Internal Error")
                return
        end
        KSR.setdsturi(SCSCF_URI)
        relay()
end

-- Removes the Authorization headers that carry Bearer credentials (JsSIP
-- sends its token on every request); Digest answers to a far end's
-- challenge stay. Returns how many it removed.
local function strip_bearer()
        local removed = 0
        KSR.textopsx.hf_iterator_start("auth")
        while KSR.textopsx.hf_iterator_next("auth") > 0 do
                local name = KSR.textopsx.hf_iterator_hname("auth")
                if name and name:lower() == "authorization" then
                        local body = KSR.textopsx.hf_iterator_hbody("auth") or ""
                        if body:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s") then
                                KSR.textopsx.hf_iterator_rm("auth")
                                removed = removed + 1
                        end
                end
        end
        KSR.textopsx.hf_iterator_end("auth")
        return removed
end

-- The caller's identity is the eP-CSCF's to say (RFC 3325, TS 24.229
-- 5.2.6.3.3): whatever identity headers a WIC wrote go; on an initial
-- request, P-Asserted-Identity names the IMPU its connection registered, the
-- one identity the S-CSCF and the callee trust (From stays the WIC's words).
local function drop_claimed_identity()
        KSR.hdr.remove("P-Asserted-Identity")
        KSR.hdr.remove("P-Preferred-Identity")
end

local function assert_identity(impu)
        KSR.hdr.append("P-Asserted-Identity: <" .. impu .. ">\r\n")
end

-- The IMPU that a WIC's connection registered (with a standing
-- registration), or nil.
local function flow_impu(conid)
        local impu = KSR.htable.sht_get("wicflows", conid)
        -- Came from a checked token; still, nothing that could end the
        -- header goes into one.
        if impu == nil or impu:find('[%c%s<>"]') then
                return nil
        end
        return impu
end

-- A Service-Route as kept: one or more <URI> separated by commas, nothing
-- that could end a header. Returns the first URI (the next hop), or nil.
local function first_route_uri(routes)
        if routes == nil or routes:find("%c") then
                return nil
        end
        return routes:match("^%s*<(sips?:[^>]+)>")
end

-- The host of a SIP URI (without brackets), or nil.
local function uri_host(uri)
        local hostport = uri and (uri:match("^sips?:[^@;>]*@([^;>?]+)") or uri:match("^sips?:([^;>?]+)"))
        if hostport == nil then
                return nil
        end
        return hostport:match("^%[([^%]]+)%]") or hostport:match("^([^:]+)")
end

-- Where a WIC's in-dialog request may go once loose_route() has taken the
-- eP-CSCF's own entries off its route set: the core (core_addresses, or the
-- host of the connection's Service-Route), never another host the WIC names.
local function next_hop_in_core(conid)
        local host = KSR.pv.get("$dd") or KSR.pv.get("$rd")
        if host == nil then
                return false
        end
        host = host:match("^%[(.*)%]$") or host
        return CORE_ADDRESSES[host] == true
                or host == uri_host(first_route_uri(KSR.htable.sht_get("wicroutes", conid)))
end

local function wic_request()
        -- A CANCEL goes only where its INVITE went (relay_cancel()): also
        -- after the registration has ended (a call abandoned at logout).
        if KSR.is_CANCEL() then
                strip_bearer()
                relay_cancel()
                return
        end
        local conid = tostring(KSR.pv.get("$conid"))
        local impu = flow_impu(conid)
        if impu == nil then
                KSR.sl.send_reply(403, "Forbidden")
                return
        end
        strip_bearer()
        drop_claimed_identity()
        -- The WIC's Contact names no reachable host: mark it with its
        -- connection (";alias=") for requests that target it later.
        if KSR.hdr.is_present("Contact") > 0 then
                KSR.nathelper.add_contact_alias()
        end
        if KSR.siputils.has_totag() > 0 then
                if KSR.rr.loose_route() > 0 then
                        if next_hop_in_core(conid) then
                                relay()
                        else
                                KSR.notice(string.format("%s from %s:%s refused: its route set leaves the core\n",
                                        KSR.pv.get("$rm"), KSR.pv.get("$si"), tostring(KSR.pv.get("$sp"))))
                                KSR.sl.send_reply(403, "Forbidden")
                        end
                elseif KSR.is_ACK() then
                        KSR.tm.t_check_trans()
                else
                        KSR.sl.send_reply(404, "Not Here")
                end
                return
        end
        -- Originating requests go where the registration's Service-Route
        -- says (else to scscf_uri), and nowhere the WIC says: a Route it
        -- preloaded goes (TS 24.229 5.2.6.3.3). Stay on the path of the dialog.
        assert_identity(impu)
        KSR.hdr.remove("Route")
        local routes = KSR.htable.sht_get("wicroutes", conid)
        local next_hop = first_route_uri(routes)
        KSR.rr.record_route()
        if next_hop then
                KSR.hdr.insert("Route: " .. routes .. "\r\n")
                KSR.setdsturi(next_hop)
        else
                KSR.setdsturi(SCSCF_URI)
        end
        relay()
end

-- From the core: requests that the S-CSCF routes through the Path of a
-- registration (or the Record-Route of a dialog) towards a WIC.
local function core_request()
        if not CORE_ADDRESSES[KSR.pv.get("$si")] then
                KSR.sl.send_reply(403, "Forbidden")
                return
        end
        if KSR.is_CANCEL() then
                relay_cancel()
                return
        end
        -- Through the Path of a registration, the path module's use_received
        -- sets the WIC's connection as destination; in a dialog, the alias
        -- that add_contact_alias() put in the WIC's Contact does.
        -- loose_route() answers -3 (RR_PRELOADED) for an initial request
        -- whose only Route was ours, the Path case, after the path module
        -- has set the destination; -1 means no Route for us at all.
        local routed = KSR.rr.loose_route()
        if routed < 0 and routed ~= -3 then
                KSR.sl.send_reply(403, "Forbidden")
                return
        end
        if KSR.pv.get("$ru"):find(";alias=", 1, true) then
                KSR.nathelper.handle_ruri_alias()
        end
        if KSR.siputils.has_totag() < 0 then
                KSR.rr.record_route()
        end
        -- A browser cannot be connected to: only its own WebSocket reaches it.
        KSR.set_forward_no_connect()
        relay()
end

function ksr_request_route()
        routing = true
        if KSR.maxfwd.process_maxfwd(10) < 0 then
                KSR.sl.send_reply(483, "Too Many Hops")
                return 1
        end
        if KSR.is_WSX() then
                -- A WIC's Via names a host that does not exist (*.invalid):
                -- answers go back on the connection it came from.
                KSR.force_rport()
                if KSR.is_REGISTER() then
                        register_from_wic()
                else
                        wic_request()
                end
                return 1
        end
        if KSR.is_REGISTER() then
                -- Registrations enter the core through the WebSocket only.
                KSR.sl.send_reply(403, "Forbidden")
                return 1
        end
        core_request()
        return 1
end

-- The S-CSCF's answer to a WIC's REGISTER (tm onreply, armed in
-- register_from_wic()): its Service-Route, kept for the WIC's connection as
-- long as the flow.
function ksr_register_reply()
        routing = true
        local status = tonumber(KSR.pv.get("$rs")) or 0
        if status < 200 or status > 299 then
                return 1
        end
        local conid = KSR.pv.get("$avp(wic_conid)")
        local impu = KSR.pv.get("$avp(wic_impu)")
        if conid == nil or impu == nil then
                return 1
        end
        conid = tostring(conid)
        local granted = granted_expires(KSR.pv.get("$(hdr(Contact)[*])"), KSR.pv.get("$avp(wic_contact)"))
                or tonumber(KSR.pv.get("$avp(wic_expires)")) or 0
        if granted <= 0 then
                KSR.htable.sht_rm("wicflows", conid)
                KSR.htable.sht_rm("wicroutes", conid)
                return 1
        end
        local keep = math.min(granted, MAX_FLOW_SECONDS) + FLOW_SLACK
        KSR.htable.sht_setxs("wicflows", conid, impu, keep)
        local routes = KSR.pv.get("$(hdr(Service-Route)[*])")
        if first_route_uri(routes) then
                KSR.htable.sht_setxs("wicroutes", conid, routes, keep)
        else
                KSR.htable.sht_rm("wicroutes", conid)
        end
        return 1
end

-- Answers of a WIC (to requests from the core): its Contact gets the same
-- alias as in its requests; the identity of the answering party is asserted
-- as for requests.
function ksr_reply_route()
        routing = true
        if KSR.is_WSX() then
                if KSR.hdr.is_present("Contact") > 0 then
                        KSR.nathelper.add_contact_alias()
                end
                drop_claimed_identity()
                local impu = flow_impu(tostring(KSR.pv.get("$conid")))
                if impu ~= nil then
                        assert_identity(impu)
                end
        end
        return 1
end
