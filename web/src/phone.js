// The SIP side of the WIC: one JsSIP user agent per admission, registered
// over wss:// at the eP-CSCF with the WWSF's token, and at most one call.
//
// Events (CustomEvent, the payload in `detail`):
//   registration {state, count}  state: connecting | registering | registered | unregistered | failed
//   grant        {grant}         a fresh token from the WWSF (times changed)
//   call         {state, peer, text}  state: idle | calling | ringing | incoming | connected | ended | failed
//   media        {local, remote} MediaStreams to show (null: none)
//   problem      {code, text}    something the user should be told (codes: see web/README.md)
//   sessionover  {code, text}    the WWSF ended the session: log in again

import JsSIP from 'jssip';

const causes = JsSIP.C.causes;

// No STUN or TURN: the browser offers its own addresses only, so no packet
// goes to a third party (and in the tests nothing leaves loopback).
const PC_CONFIG = { iceServers: [] };

// The WWSF's refusals that mean the session (and so the identity) is gone.
const SESSION_OVER = new Set(['no_session', 'lease_lost']);

// How long logout waits for the un-REGISTER's answer before it goes on.
const UNREGISTER_WAIT_MS = 2000;
// After a REGISTER that got no answer while the WebSocket stayed up, the
// next attempt (the eP-CSCF or the core may be restarting).
const REGISTER_RETRY_MS = 20000;

// Test hook (window.wic.tamperNextToken): once set, every token handed to
// JsSIP has one signature character changed, until the page is reloaded, so
// the refresh-and-retry after a 401 gets a bad token too and the refusal is
// final. Harmless in production: nothing sets it but a test.
let tamperTokens = false;

// This tab's SIP device: the Contact and +sip.instance JsSIP registers with,
// kept in the tab's sessionStorage so that a reloaded page's REGISTER
// replaces its old binding at the registrar instead of adding a second one
// that nobody answers. Without storage, a new device per page.
const DEVICE_KEY = 'wwsf.device';

function randomToken(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join('');
}

function tabDevice() {
  let store = null;
  try {
    store = window.sessionStorage;
    const d = JSON.parse(store.getItem(DEVICE_KEY) || 'null');
    if (d && /^[a-z0-9]{8}$/.test(d.user) && /^[a-z0-9]{12}\.invalid$/.test(d.host)
        && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(d.instance))
      return d;
  } catch (e) {
    // refused or not JSON: a new one
  }
  const device = { user: randomToken(8), host: `${randomToken(12)}.invalid`, instance: crypto.randomUUID() };
  try {
    store?.setItem(DEVICE_KEY, JSON.stringify(device));
  } catch (e) {
    // full or refused
  }
  return device;
}

/** The first URI of an incoming request's P-Asserted-Identity (a network
 * may assert a SIP and a tel URI in one header: <sip:...>, <tel:...>), or
 * null when there is none. */
function assertedIdentity(request) {
  const value = request && request.getHeader('P-Asserted-Identity');
  if (!value)
    return null;
  const m = /<([^>]+)>/.exec(value);
  const text = m ? m[1] : value.split(',')[0].trim();
  return JsSIP.URI.parse(text) || text;
}

/** JsSIP's own log (every SIP message) in the console. */
export function enableDebugLog() {
  JsSIP.debug.enable('JsSIP:*');
}

export function tamperTokensFromNowOn() {
  tamperTokens = true;
}

// Test hook (window.wic.claimNextCallFrom): the next call's From names
// another user and display name, as a forged client would; the callee must
// still see who really calls (P-Asserted-Identity). Harmless in production:
// anyone can send any From, which is why the network asserts the caller.
let claimedFrom = null;

export function claimNextCallFrom(user, displayName) {
  claimedFrom = { user: String(user), displayName: String(displayName) };
}

function tamper(token) {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[2])
    return token;
  // The first character: the last one may carry only padding bits, which a
  // lenient base64url decoder ignores (the signature would still verify).
  const c = parts[2][0];
  parts[2] = (c === 'A' ? 'B' : 'A') + parts[2].slice(1);
  return parts.join('.');
}

// JsSIP sends authorization_jwt verbatim as the Authorization header value
// of every request (RequestSender.js), so it must carry the scheme.
function bearer(token) {
  return `Bearer ${tamperTokens ? tamper(token) : token}`;
}

// RFC 6750 section 3.1: the eP-CSCF says error="invalid_token" when the token
// was refused (expired, bad signature, bound to another connection).
function invalidToken(response) {
  const values = response.getHeaders ? response.getHeaders('WWW-Authenticate') : [];
  return values.some((v) => /\berror\s*=\s*"?invalid_token"?/i.test(v));
}

// RFC 3261 section 21.5.4: a 503 asks to try again, after Retry-After seconds
// when it says (the eP-CSCF throttles REGISTERs per address so). Bounded,
// and up to as long again at random, so that the WICs it turned away come
// back spread out rather than together into the same throttle.
const MAX_RETRY_AFTER_S = 600;

function retryDelayMs(response) {
  const value = response.getHeader ? response.getHeader('Retry-After') : undefined;
  const seconds = value ? parseInt(value, 10) : NaN;
  const base = Number.isInteger(seconds) && seconds > 0 ? Math.min(seconds, MAX_RETRY_AFTER_S) * 1000
    : REGISTER_RETRY_MS;
  return base + Math.floor(Math.random() * base);
}

async function localMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    throw Object.assign(new Error('this page cannot use a microphone'), { name: 'NotSupportedError' });
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (e) {
    // No camera, or it is busy: a voice call is still worth making.
    if (['NotFoundError', 'NotReadableError', 'OverconstrainedError'].includes(e.name))
      return navigator.mediaDevices.getUserMedia({ audio: true });
    throw e;
  }
}

function mediaProblem(e) {
  if (e && e.name === 'NotAllowedError')
    return 'The browser did not allow the microphone or camera. Allow them for this page and try again.';
  if (e && e.name === 'NotFoundError')
    return 'No microphone was found.';
  return `The microphone or camera could not be used (${(e && e.message) || e}).`;
}

function stopStream(stream) {
  if (stream)
    for (const track of stream.getTracks())
      track.stop();
}

// A session may end on its own between a click and this call: JsSIP then
// throws InvalidStateError, which has nothing to tell the user.
function terminate(session, options) {
  try {
    session.terminate(options);
  } catch (e) {
    if (e.name !== 'INVALID_STATE_ERROR' && !session.isEnded())
      throw e;
  }
}

async function inboundBytes(pc) {
  let total = 0;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && typeof s.bytesReceived === 'number')
      total += s.bytesReceived;
  });
  return total;
}

export class Phone extends EventTarget {
  #grant;
  #expires;
  #renewGrant; // async () => grant, from the WWSF (api.refresh)
  #ua = null;
  #stopping = false;
  #regState = 'unregistered';
  #regCount = 0;
  #connections = 0;
  #retried = false; // the one refresh-and-retry after a 401 invalid_token
  #renewFailure = null; // why the last token renewal failed, for the message
  #retryTimer = null;
  #session = null;
  #direction = null;
  #peer = '';
  #localStream = null;
  #callState = 'idle';
  #answering = false; // answer() waits for the microphone: a second click must not answer twice

  /**
   * grant: the admission's answer (api.js); expires: the REGISTER expiry in
   * seconds; renewGrant: fetches a fresh token for the same identity.
   */
  constructor({ grant, expires, renewGrant }) {
    super();
    this.#grant = grant;
    this.#expires = expires;
    this.#renewGrant = renewGrant;
  }

  get grant() {
    return this.#grant;
  }

  get registrationState() {
    return this.#regState;
  }

  get registrationCount() {
    return this.#regCount;
  }

  get callState() {
    return this.#callState;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #problem(code, text) {
    this.#emit('problem', { code, text });
  }

  #setReg(state) {
    this.#regState = state;
    this.#emit('registration', { state, count: this.#regCount });
  }

  #setCall(state, text) {
    this.#callState = state;
    this.#emit('call', { state, peer: this.#peer, text });
  }

  start() {
    let ua;
    const device = tabDevice();
    try {
      ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(this.#grant.epcscfUri)],
        uri: this.#grant.impu,
        contact_uri: `sip:${device.user}@${device.host};transport=ws`,
        instance_id: device.instance,
        authorization_jwt: bearer(this.#grant.token),
        // Registration is started here, on 'connected', once the token is
        // known to be good for this connection (see #onConnected).
        register: false,
        register_expires: this.#expires,
        session_timers: false,
        // After the WebSocket drops JsSIP reconnects by itself, waiting a
        // random 2..30 s, growing with each failed attempt.
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 30,
      });
    } catch (e) {
      this.#setReg('failed');
      this.#problem('other', `This identity cannot be used by the web phone (${e.message}).`);
      return;
    }
    this.#ua = ua;
    ua.on('connecting', () => {
      if (!this.#stopping && this.#regState !== 'registered')
        this.#setReg('connecting');
    });
    ua.on('connected', () => this.#onConnected());
    ua.on('disconnected', () => {
      if (this.#stopping)
        return;
      this.#setReg('connecting');
      this.#problem('network', this.#connections
        ? 'The connection to the phone network is lost. Reconnecting…'
        : 'The phone network cannot be reached. Trying again…');
    });
    ua.on('newTransaction', ({ transaction }) => this.#watchRegister(transaction));
    ua.on('registrationFailed', (e) => this.#onRegistrationFailed(e));
    ua.on('unregistered', () => {
      // After a refused re-REGISTER JsSIP also says 'unregistered': the
      // failure (or the retry under way) is what the user should see.
      if (this.#stopping || this.#regState !== 'registered')
        return;
      this.#setReg(ua.isConnected() ? 'unregistered' : 'connecting');
    });
    // With a listener, JsSIP leaves the re-REGISTER to us (Registrator.js):
    // the token used at the last REGISTER has expired by now.
    ua.on('registrationExpiring', () => this.#onExpiring());
    ua.on('newRTCSession', (e) => this.#onNewSession(e));
    this.#setReg('connecting');
    ua.start();
  }

  /** Unregisters (waiting a little for the answer) and closes the WebSocket. */
  async stop() {
    const ua = this.#ua;
    if (!ua || this.#stopping)
      return;
    this.#stopping = true;
    clearTimeout(this.#retryTimer);
    ua.terminateSessions();
    if (ua.isRegistered()) {
      // The eP-CSCF checks the token on an un-REGISTER too: a token that
      // has run out would leave the binding in the core until it expires.
      if (this.#grant.expiresAt - Date.now() / 1000 < 30)
        await this.#renew();
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, UNREGISTER_WAIT_MS);
        ua.once('unregistered', () => {
          clearTimeout(timer);
          resolve();
        });
        ua.unregister();
      });
    }
    ua.stop();
    this.#endCall();
    this.#setReg('unregistered');
  }

  /** Hands JsSIP the current token again (after the tamper test hook was set). */
  reapplyToken() {
    if (this.#ua)
      this.#ua.set('authorization_jwt', bearer(this.#grant.token));
  }

  /** Refreshes the token and re-REGISTERs now (test hook; what a timer would do). */
  async reregister() {
    if (!this.#ua || this.#stopping)
      return;
    this.#retried = false;
    await this.#renew();
    this.#register();
  }

  // ---- registration ----

  async #onConnected() {
    // The eP-CSCF binds a token to the connection it first registered on, so
    // after a reconnection a fresh token is needed; the admission's token is
    // fresh for the first one.
    if (this.#connections++ > 0)
      await this.#renew();
    this.#retried = false;
    this.#register();
  }

  #register() {
    if (this.#stopping || !this.#ua.isConnected())
      return; // the next 'connected' registers
    clearTimeout(this.#retryTimer);
    if (this.#regState !== 'registered')
      this.#setReg('registering');
    // Not ua.register(): that also tells JsSIP to REGISTER by itself on every
    // reconnection (UA.js), with a token the eP-CSCF bound to the old one.
    this.#ua.registrator().register();
  }

  async #onExpiring() {
    if (this.#stopping)
      return;
    this.#retried = false;
    await this.#renew();
    this.#register();
  }

  // JsSIP says 'registered' only for the first 200 OK, and nothing on a
  // re-registration, so the REGISTER transactions are watched instead:
  // onReceiveResponse is what a client transaction calls with each response
  // (Transactions.js); the Registrator handles it first.
  #watchRegister(transaction) {
    const request = transaction.request;
    if (transaction.type !== 'nict' || request.method !== 'REGISTER')
      return;
    if ((request.extraHeaders || []).includes('Expires: 0'))
      return; // an un-REGISTER
    const handlers = transaction.eventHandlers;
    const next = handlers.onReceiveResponse;
    handlers.onReceiveResponse = (response) => {
      next(response);
      if (response.status_code >= 200 && response.status_code < 300 && this.#ua.isRegistered())
        this.#onRegistered();
    };
  }

  #onRegistered() {
    if (this.#stopping)
      return;
    this.#regCount++;
    this.#retried = false;
    this.#renewFailure = null;
    this.#setReg('registered');
  }

  #onRegistrationFailed({ response, cause }) {
    if (this.#stopping)
      return;
    if (!this.#ua.isConnected()) {
      // The WebSocket dropped under the REGISTER: reconnecting registers again.
      this.#setReg('connecting');
      return;
    }
    const status = response ? response.status_code : 0;
    if (status === 401 && !this.#retried && invalidToken(response)) {
      // Expired, or bound to an old connection: one fresh token, one retry.
      this.#retried = true;
      this.#setReg('registering');
      this.#renew().then(() => this.#register());
      return;
    }
    if (status === 503) {
      const delay = retryDelayMs(response);
      this.#setReg('registering');
      this.#problem('network', `The phone network is busy. Registering again in ${Math.round(delay / 1000)} s…`);
      this.#retryTimer = setTimeout(() => this.reregister(), delay);
      return;
    }
    this.#setReg('failed');
    if (status) {
      let text = `The phone network refused the registration (${status} ${response.reason_phrase}).`;
      if (this.#renewFailure)
        text += ` The token could not be renewed: ${this.#renewFailure}.`;
      this.#problem('registration_refused', text);
    } else {
      this.#problem('network', `The phone network did not answer the registration (${cause}). Trying again shortly.`);
      this.#retryTimer = setTimeout(() => this.reregister(), REGISTER_RETRY_MS);
    }
  }

  /** A fresh token into JsSIP; false (old token kept) when the WWSF refused or was unreachable. */
  async #renew() {
    let grant;
    try {
      grant = await this.#renewGrant();
    } catch (e) {
      if (SESSION_OVER.has(e.code) && !this.#stopping) {
        this.#emit('sessionover', {
          code: 'other',
          text: e.code === 'lease_lost' ? 'Your number was withdrawn. Please log in again.'
                                        : 'Your session has ended. Please log in again.',
        });
      }
      // Otherwise the REGISTER still goes out with the token we have: it may
      // still be valid, and if not the refusal says so.
      this.#renewFailure = e.code === 'network' ? 'the web server could not be reached' : e.message;
      return false;
    }
    this.#renewFailure = null;
    this.#grant = grant;
    if (this.#ua)
      this.#ua.set('authorization_jwt', bearer(grant.token));
    this.#emit('grant', { grant });
    return true;
  }

  // ---- calls ----

  async call(target) {
    if (!this.#ua || this.#session || this.#callState === 'calling')
      return;
    // A bare user or number gets the IMPU's domain; tel: and visual
    // separators are handled by JsSIP (Utils.normalizeTarget).
    const uri = this.#ua.normalizeTarget(String(target).trim());
    if (!uri) {
      this.#problem('other', `"${target}" is not a number or address that can be called.`);
      return;
    }
    this.#peer = uri.toString();
    this.#direction = 'outgoing';
    this.#setCall('calling', `Calling ${this.#peer}…`);
    let stream;
    try {
      stream = await localMedia();
    } catch (e) {
      this.#setCall('failed', 'Call not made');
      this.#problem('other', mediaProblem(e));
      return;
    }
    if (this.#stopping || this.#callState !== 'calling') {
      stopStream(stream);
      return;
    }
    let session;
    try {
      const claim = claimedFrom;
      claimedFrom = null;
      session = this.#ua.call(this.#peer, {
        mediaStream: stream,
        pcConfig: PC_CONFIG,
        // Ask for the far end's video even when this browser has no camera.
        rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: true },
        ...(claim ? { fromUserName: claim.user, fromDisplayName: claim.displayName } : {}),
      });
    } catch (e) {
      stopStream(stream);
      this.#setCall('failed', 'Call not made');
      this.#problem('other', `The call could not be started (${e.message}).`);
      return;
    }
    // JsSIP emits the session's events from later tasks only (the offer is
    // made asynchronously), so attaching the handlers now misses none.
    this.#adopt(session, stream);
  }

  async answer() {
    const session = this.#session;
    if (!session || this.#direction !== 'incoming' || this.#callState !== 'incoming' || this.#answering)
      return;
    this.#answering = true;
    this.#setCall('incoming', `Answering ${this.#peer}…`);
    let stream;
    try {
      stream = await localMedia();
    } catch (e) {
      terminate(session); // 480: the call cannot be taken here
      this.#problem('other', mediaProblem(e));
      return;
    }
    if (session.isEnded()) {
      stopStream(stream);
      return;
    }
    this.#localStream = stream;
    this.#emitMedia(null);
    session.answer({ mediaStream: stream, pcConfig: PC_CONFIG });
  }

  decline() {
    if (this.#session && this.#direction === 'incoming' && this.#callState === 'incoming')
      terminate(this.#session, { status_code: 603, reason_phrase: 'Decline' });
  }

  hangup() {
    if (this.#session)
      terminate(this.#session);
    else if (this.#callState === 'calling')
      this.#setCall('ended', 'Call cancelled'); // still asking for the microphone
  }

  /** True when the received RTP bytes grow over about a second (getStats). */
  async mediaFlowing() {
    const pc = this.#session && this.#session.connection;
    if (!pc)
      return false;
    const before = await inboundBytes(pc);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    if (pc.connectionState === 'closed')
      return false;
    return (await inboundBytes(pc)) > before;
  }

  #onNewSession({ originator, session, request }) {
    if (originator !== 'remote')
      return; // ours: adopted in call()
    if (this.#session || this.#callState === 'calling' || this.#stopping) {
      terminate(session, { status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    this.#direction = 'incoming';
    // Who calls is what the network asserts (the eP-CSCF puts the caller's
    // registered IMPU in P-Asserted-Identity); From and its display name
    // are the caller's own words, shown only when nothing is asserted.
    const asserted = assertedIdentity(request);
    this.#peer = (asserted || session.remote_identity.uri).toString();
    this.#adopt(session, null);
    const name = asserted ? null : session.remote_identity.display_name;
    this.#setCall('incoming', `Incoming call from ${name ? `${name} <${this.#peer}>` : this.#peer}`);
  }

  #adopt(session, stream) {
    this.#session = session;
    this.#answering = false;
    this.#localStream = stream;
    this.#emitMedia(null);
    const watch = (pc) => {
      pc.addEventListener('track', (ev) => {
        const remote = ev.streams[0] || new MediaStream([ev.track]);
        this.#emitMedia(remote);
      });
    };
    // Outgoing: the RTCPeerConnection exists already; incoming: on answer().
    if (session.connection)
      watch(session.connection);
    else
      session.on('peerconnection', ({ peerconnection }) => watch(peerconnection));
    session.on('progress', ({ originator }) => {
      if (this.#direction === 'outgoing' && originator === 'remote')
        this.#setCall('ringing', `Ringing ${this.#peer}…`);
    });
    session.on('confirmed', () => this.#setCall('connected', `In a call with ${this.#peer}`));
    session.on('ended', ({ originator }) => {
      this.#endCall();
      this.#setCall('ended', originator === 'local' ? 'Call ended' : `${this.#peer} hung up`);
    });
    session.on('failed', (e) => {
      this.#endCall();
      this.#callFailed(e);
    });
  }

  #emitMedia(remote) {
    this.#emit('media', { local: this.#localStream, remote });
  }

  #endCall() {
    stopStream(this.#localStream);
    this.#localStream = null;
    this.#session = null;
    this.#emitMedia(null);
  }

  #callFailed({ originator, message, cause }) {
    const peer = this.#peer;
    if (this.#direction === 'incoming') {
      if (cause === causes.CANCELED)
        this.#setCall('ended', `Missed call from ${peer}`);
      else if (originator === 'local' && cause === causes.REJECTED)
        this.#setCall('ended', 'Call declined');
      else
        this.#setCall('failed', `The call from ${peer} failed (${cause})`);
      return;
    }
    if (originator === 'local' && cause === causes.CANCELED) {
      this.#setCall('ended', 'Call cancelled');
      return;
    }
    const status = message && message.status_code ? message.status_code : 0;
    const what = status ? `${status} ${message.reason_phrase}` : cause;
    this.#setCall('failed', `Call failed (${what})`);
    if ([404, 408, 410, 480, 604].includes(status)
        || [causes.NOT_FOUND, causes.UNAVAILABLE, causes.REQUEST_TIMEOUT, causes.NO_ANSWER].includes(cause))
      this.#problem('callee_unreachable', `${peer} cannot be reached right now (${what}).`);
    else if (cause === causes.BUSY)
      this.#problem('other', `${peer} is busy.`);
    else if (cause === causes.REJECTED && status === 603)
      this.#problem('other', `${peer} declined the call.`);
    else if (cause === causes.CONNECTION_ERROR)
      this.#problem('network', 'The call failed: the connection to the phone network was lost.');
    else if (cause === causes.USER_DENIED_MEDIA_ACCESS)
      this.#problem('other', mediaProblem({ name: 'NotAllowedError' }));
    else
      this.#problem('other', `The call failed (${what}).`);
  }
}
