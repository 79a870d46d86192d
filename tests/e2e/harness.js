'use strict';
// What the end-to-end tests share: the stack (stack.py, started per test
// file), Debian's headless Chromium driven by playwright-core, one WIC page
// per browser context (its own cookies: its own WWSF session), the core's
// view of registrations (kamcmd) and of leases (wwsfctl), screenshots, and
// what to keep when a test fails.
//
// run_e2e.py sets the environment: NODE_PATH (playwright-core),
// WWSF_WEB_ROOT, E2E_ARTIFACTS, and the binaries for stack.py.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const nodeTest = require('node:test');
const { chromium } = require('playwright-core');

const HERE = __dirname;
const STACK_PY = path.join(HERE, 'stack.py');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(os.tmpdir(), 'wwsf-e2e-artifacts');
const KEEP = process.env.WWSF_KEEP_TMP === '1';
// The test file this process runs (node --test runs each in a process of its own).
const FILE = path.basename(process.argv[1] || 'e2e', '.test.js');

// Debian's Chromium, headless, making no connection of its own (this
// machine's network is closed: background fetches only fail). Media: a fake camera and microphone,
// permission granted without a prompt; host candidates with their real
// address (no mDNS names), on loopback too (run_e2e.py gives the tests a
// network namespace where loopback is all there is); the test's
// self-signed certificates accepted (https and wss).
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
  '--ignore-certificate-errors',
];

const START_TIMEOUT_MS = 60000;
const STEP_TIMEOUT_MS = 15000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls fn() until it returns something truthy; throws naming `what`. */
async function waitFor(fn, what, timeoutMs = STEP_TIMEOUT_MS, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v)
      return v;
    if (Date.now() > deadline)
      throw new Error(`gave up after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---- the stack -----------------------------------------------------------

class Stack {
  constructor(proc, dir, info, stderr) {
    this.proc = proc;
    this.dir = dir;
    this.info = info;
    this.stderr = stderr;
    this.exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(sig || code)));
  }

  kamcmd(which, ...args) {
    try {
      return execFileSync(this.info.kamcmd, ['-s', this.info[`${which}_ctl`], ...args],
        { encoding: 'utf-8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
    } catch (e) {
      return `error: ${e.stdout || ''}${e.stderr || ''}`;
    }
  }

  /** The S-CSCF's usrloc record of an IMPU (kamcmd text), or null. */
  registration(impu) {
    const aor = impu.replace(/^sips?:/, '');
    const out = this.kamcmd('scscf', 'ul.lookup', 'location', aor);
    if (out.startsWith('error') || out.includes('AOR not found'))
      return null;
    return out;
  }

  wwsfctl(...args) {
    const out = execFileSync(this.info.wwsfctl, ['--db', this.info.db, '--json', ...args],
      { encoding: 'utf-8', timeout: 30000 });
    return out.trim() ? JSON.parse(out) : null;
  }

  lease(impu) {
    return this.wwsfctl('lease', 'show', impu);
  }

  leases(pool, state = 'leased') {
    return this.wwsfctl('lease', 'list', '--pool', pool, '--state', state) || [];
  }

  log(name) {
    try {
      return fs.readFileSync(this.info.logs[name], 'utf-8');
    } catch (e) {
      return '';
    }
  }

  /** A place in a log: logSince(name, mark) is what came after it. */
  mark(name) {
    return this.log(name).length;
  }

  logSince(name, mark) {
    return this.log(name).slice(mark);
  }

  async stop({ keep = false } = {}) {
    if (this.proc.exitCode === null && this.proc.signalCode === null)
      this.proc.kill('SIGTERM');
    let timer;
    const how = await Promise.race([this.exited, new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 60000);
    })]);
    clearTimeout(timer);
    if (how === 'timeout')
      this.proc.kill('SIGKILL');
    if (keep || KEEP || (how !== 0 && how !== 'SIGTERM')) {
      process.stderr.write(`kept ${this.dir} (stack.py ended: ${how}); logs:\n`);
      for (const [name, file] of Object.entries(this.info.logs))
        process.stderr.write(`  ${name}: ${file}\n`);
    } else {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    return how;
  }

  /** The tails of every log, for a failure report. */
  logTails(lines = 60) {
    let out = '';
    for (const name of Object.keys(this.info.logs)) {
      const tail = this.log(name).split('\n').slice(-lines).join('\n');
      out += `\n==== ${name} (${this.info.logs[name]}), last ${lines} lines ====\n${tail}\n`;
    }
    return out;
  }
}

/**
 * Starts stack.py in a temporary folder. Options (stack.py's flags):
 * tokenTtl ('300s'), leaseTtl ('10m'), minExpires (60), tokenLeeway (60),
 * registerRate, rateUnit (the eP-CSCF's REGISTER_RATE and RATE_UNIT; epcscf.cfg's defaults).
 */
async function startStack(options = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwsf-e2e-'));
  const args = [STACK_PY, 'serve', dir, '--no-throttle'];
  if (process.env.WWSF_WEB_ROOT)
    args.push('--web-root', process.env.WWSF_WEB_ROOT);
  const flags = { tokenTtl: '--token-ttl', leaseTtl: '--lease-ttl', minExpires: '--min-expires',
    tokenLeeway: '--token-leeway', quarantine: '--quarantine', registerRate: '--register-rate',
    rateUnit: '--rate-unit' };
  for (const [key, flag] of Object.entries(flags))
    if (options[key] !== undefined)
      args.push(flag, String(options[key]));
  const proc = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  const started = Date.now();
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGTERM');
      reject(new Error(`the stack did not start within ${START_TIMEOUT_MS / 1000} s:\n${stderr}`));
    }, START_TIMEOUT_MS);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/^stack: ready (.+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(JSON.parse(fs.readFileSync(m[1], 'utf-8')));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stack.py exited (${code}) before it was ready (kept ${dir}):\n${stderr}`));
    });
  });
  process.stderr.write(`stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${info.wwsf_url} `
    + `(eP-CSCF ${info.epcscf_uri}) in ${dir}\n`);
  return new Stack(proc, dir, info, () => stderr);
}

// ---- the browser and the WIC's page ----------------------------------------

async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

let shots = 0;

/** One WIC in a browser context of its own. */
class Wic {
  constructor(browser, stack, name) {
    this.browser = browser;
    this.stack = stack;
    this.name = name;
    this.console = [];
  }

  /** tabOf: another Wic whose browser context (cookies included) this one
   * shares, as a second tab of the same browser. */
  async open({ expires, query = '', tabOf = null } = {}) {
    this.sharedContext = !!tabOf;
    this.context = tabOf ? tabOf.context
      : await this.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 900, height: 860 } });
    this.page = await this.context.newPage();
    this.page.setDefaultTimeout(STEP_TIMEOUT_MS);
    this.page.on('console', (m) => this.keep(`${m.type()}: ${m.text()}`));
    this.page.on('pageerror', (e) => this.keep(`pageerror: ${e.message}`));
    const params = new URLSearchParams(query);
    // JsSIP's log (every SIP message) in the console, which a failure prints.
    params.set('debug', '');
    if (expires)
      params.set('expires', String(expires));
    const qs = params.toString();
    await this.page.goto(this.stack.info.wwsf_url + (qs ? `?${qs}` : ''));
    await this.page.waitForSelector('#login-form', { state: 'visible' });
    await this.page.waitForFunction(() => window.wic && typeof window.wic.state === 'function');
    return this;
  }

  /** Reloads the page (the tab's sessionStorage and cookies stay). */
  async reload() {
    await this.page.reload();
    await this.page.waitForFunction(() => window.wic && typeof window.wic.state === 'function');
  }

  keep(line) {
    this.console.push(line);
    if (this.console.length > 400)
      this.console.splice(0, this.console.length - 400);
  }

  async login(username, password) {
    await this.page.fill('#username', username);
    await this.page.fill('#password', password);
    await this.page.click('#login-button');
  }

  async visitor(name, email) {
    await this.page.fill('#anon-name', name);
    await this.page.fill('#anon-email', email);
    await this.page.click('#anon-button');
  }

  async attr(selector, name) {
    return this.page.getAttribute(selector, name);
  }

  async text(selector) {
    return ((await this.page.textContent(selector)) || '').trim();
  }

  async visible(selector) {
    return this.page.isVisible(selector);
  }

  /** Waits until #ID has data-state=STATE (or one of several). */
  async waitState(id, states, timeoutMs = STEP_TIMEOUT_MS) {
    const want = [].concat(states);
    try {
      await this.page.waitForFunction(([i, w]) => {
        const el = document.getElementById(i);
        return el && w.includes(el.getAttribute('data-state'));
      }, [id, want], { timeout: timeoutMs, polling: 100 });
    } catch (e) {
      throw new Error(`${this.name}: #${id} never reached ${want.join('|')} in ${timeoutMs / 1000} s; it is `
        + `${await this.attr(`#${id}`, 'data-state')}; #error says ${JSON.stringify(await this.error())}`);
    }
  }

  async waitRegistered(timeoutMs = STEP_TIMEOUT_MS) {
    await this.page.waitForSelector('#session', { state: 'visible', timeout: timeoutMs });
    await this.waitState('reg-state', 'registered', timeoutMs);
  }

  async waitCall(states, timeoutMs = STEP_TIMEOUT_MS) {
    await this.waitState('call-state', states, timeoutMs);
  }

  /** The shown error: {code, text}, or null when none is shown. */
  async error() {
    return this.page.evaluate(() => {
      const el = document.getElementById('error');
      if (!el || el.hidden || !el.textContent.trim())
        return null;
      return { code: el.getAttribute('data-code'), text: el.textContent.trim() };
    });
  }

  async waitError(code, timeoutMs = STEP_TIMEOUT_MS) {
    try {
      await this.page.waitForFunction((c) => {
        const el = document.getElementById('error');
        return el && !el.hidden && el.getAttribute('data-code') === c;
      }, code, { timeout: timeoutMs, polling: 100 });
    } catch (e) {
      throw new Error(`${this.name}: no error ${code} shown in ${timeoutMs / 1000} s; shown: `
        + `${JSON.stringify(await this.error())}, state ${JSON.stringify(await this.state())}`);
    }
    return this.error();
  }

  async impu() {
    return this.text('#impu');
  }

  async regCount() {
    return Number(await this.text('#reg-count'));
  }

  async state() {
    return this.page.evaluate(() => window.wic.state());
  }

  async mediaFlowing() {
    return this.page.evaluate(() => window.wic.mediaFlowing());
  }

  async call(target) {
    await this.page.fill('#call-target', target);
    await this.page.click('#call-button');
  }

  async screenshot(name) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
    shots += 1;
    return file;
  }

  async close() {
    if (this.sharedContext && this.page)
      await this.page.close().catch(() => {});
    else if (this.context)
      await this.context.close().catch(() => {});
    this.context = null;
  }
}

// ---- a test file's frame ----------------------------------------------------

/**
 * The frame of one test file: starts the stack (with `options`) and a
 * browser before its tests, and stops both after them. e2eTest() is
 * node:test's test() that, when the test fails, saves a screenshot of every
 * open page and prints their console and the servers' logs; the stack's
 * folder is kept then.
 */
function frame(options = {}) {
  const f = {
    stack: null,
    browser: null,
    wics: [],
    failed: false,
  };
  nodeTest.before(async () => {
    // The failure screenshots of this file's last run go; the others' stay.
    if (fs.existsSync(ARTIFACTS))
      for (const name of fs.readdirSync(ARTIFACTS))
        if (name.startsWith(`failed-${FILE}-`))
          fs.rmSync(path.join(ARTIFACTS, name), { force: true });
    f.stack = await startStack(options);
    f.browser = await launchBrowser();
  }, { timeout: START_TIMEOUT_MS + 30000 });
  nodeTest.after(async () => {
    for (const w of f.wics)
      await w.close();
    if (f.browser)
      await f.browser.close().catch(() => {});
    if (f.stack)
      await f.stack.stop({ keep: f.failed });
  }, { timeout: 90000 });

  f.wic = async (name, openOptions) => {
    const w = new Wic(f.browser, f.stack, name);
    f.wics.push(w);
    return w.open(openOptions);
  };

  f.test = (name, opts, fn) => {
    nodeTest.test(name, opts, async (t) => {
      try {
        await fn(t);
      } catch (e) {
        f.failed = true;
        await f.report(name);
        throw e;
      }
    });
  };

  f.report = async (name) => {
    const slug = `${FILE}-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`;
    for (const w of f.wics) {
      if (!w.context)
        continue;
      try {
        const file = await w.screenshot(`failed-${slug}-${w.name}`);
        process.stderr.write(`screenshot of ${w.name}: ${file}\n`);
      } catch (e) {
        process.stderr.write(`no screenshot of ${w.name}: ${e.message}\n`);
      }
      process.stderr.write(`==== console of ${w.name} (last 80 lines) ====\n${w.console.slice(-80).join('\n')}\n`);
    }
    if (f.stack)
      process.stderr.write(f.stack.logTails());
  };
  return f;
}

/** An HTTPS server on a free loopback port serving one page: a foreign origin. */
async function foreignSite(stack, html) {
  const server = https.createServer({
    cert: fs.readFileSync(stack.info.cert),
    key: fs.readFileSync(stack.info.key),
  }, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `https://127.0.0.1:${server.address().port}/` };
}

module.exports = {
  ARTIFACTS, Stack, Wic, foreignSite, frame, launchBrowser, sleep, startStack, waitFor,
};
