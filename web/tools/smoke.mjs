// A quick check that the built WIC loads in a real browser, under wwsfd's
// Content-Security-Policy, with no console errors or CSP violations, and
// that every element of the test contract (README.md) is on the page.
//
//   npm run smoke              serves dist/ itself (with wwsfd's CSP header)
//   npm run smoke -- URL       checks a running wwsfd instead (its own CSP)
//
// The browser is Debian's chromium ($CHROMIUM to use another binary), driven
// by playwright-core. Exit 0 passed, 1 failed, 77 no browser (skipped).
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

// Keep in step with add_security_headers() in src/wwsfd/http.c.
const CSP = "default-src 'self'; connect-src 'self' wss:; media-src 'self' blob:; "
  + "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const CONTRACT = [
  'login-form', 'username', 'password', 'login-button', 'anon-form', 'anon-name', 'anon-email', 'anon-button',
  'error', 'session', 'impu', 'reg-state', 'reg-count', 'token-expires', 'lease-expires', 'logout-button',
  'call-target', 'call-button', 'hangup-button', 'call-state', 'incoming', 'incoming-from', 'answer-button',
  'decline-button', 'local-video', 'remote-video',
];

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.map': 'application/json' };

function serveDist() {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = path === '/' ? 'index.html' : path.slice(1);
    if (!/^[\w.-]+$/.test(file)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(DIST, file));
      const headers = { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' };
      if (file.endsWith('.html'))
        headers['Content-Security-Policy'] = CSP;
      res.writeHead(200, headers).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function browserPath() {
  const candidates = [process.env.CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium'];
  return candidates.find((p) => p && existsSync(p));
}

const executablePath = browserPath();
if (!executablePath) {
  console.log('smoke: no chromium found (apt-get install chromium, or set CHROMIUM): skipped');
  process.exit(77);
}

let server = null;
let url = process.argv[2];
if (!url) {
  if (!existsSync(join(DIST, 'wic.js'))) {
    console.error('smoke: dist/ is not built (npm run build)');
    process.exit(1);
  }
  server = await serveDist();
  url = `http://127.0.0.1:${server.address().port}/`;
}

const failures = [];
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--ignore-certificate-errors'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error')
      failures.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => failures.push(`uncaught: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const response = await page.goto(url, { waitUntil: 'load' });
  if (!response || !response.ok())
    failures.push(`${url} answered ${response ? response.status() : 'nothing'}`);
  await page.waitForFunction(() => window.wic !== undefined, null, { timeout: 5000 })
    .catch(() => failures.push('window.wic is not defined: the bundle did not run'));
  const missing = await page.evaluate((ids) => ids.filter((id) => !document.getElementById(id)), CONTRACT);
  if (missing.length)
    failures.push(`missing elements: ${missing.join(', ')}`);
  const state = await page.evaluate(() => window.wic && window.wic.state());
  if (!state || state.view !== 'admission' || state.registration !== 'unregistered' || state.call !== 'idle')
    failures.push(`unexpected initial state: ${JSON.stringify(state)}`);
  const hooks = await page.evaluate(() => window.wic
    && ['state', 'mediaFlowing', 'tamperNextToken'].every((f) => typeof window.wic[f] === 'function'));
  if (!hooks)
    failures.push('window.wic lacks state(), mediaFlowing() or tamperNextToken()');
  // Give late errors (a blocked resource, a failing module) a moment to show.
  await page.waitForTimeout(300);
} finally {
  await browser.close();
  if (server)
    server.close();
}

if (failures.length) {
  for (const f of failures)
    console.error(`smoke: ${f}`);
  process.exit(1);
}
console.log(`smoke: ${url} loads with no errors; every contract element is there`);
