// The web wallet in real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core). Run by crates/atomicity-cli/tests/web.rs, which starts a small devnet
// network (me, bob, carol) and passes, in the environment:
//   ME_WALLET, CAROL_WALLET  the `atomicity wallet` addresses (…/wallet#token=…)
//   ME_API, ME_TOKEN         me's local API and token (for the foreign-origin check)
//   BOB_DIR, ATOMICITY_BIN   so that Bob pays by the CLI
//   BOB_KEY, CAROL_KEY       the payers' keys
//   ARTIFACTS                where the screenshots go
//   CHROMIUM                 the browser (default /usr/bin/chromium)
// Exits 0 when every check held; otherwise prints what failed and exits 1.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};
const ME_WALLET = env('ME_WALLET');
const CAROL_WALLET = env('CAROL_WALLET');
const ME_API = env('ME_API');
const ME_TOKEN = env('ME_TOKEN');
const BOB_DIR = env('BOB_DIR');
const BIN = env('ATOMICITY_BIN');
const BOB_KEY = env('BOB_KEY');
const CAROL_KEY = env('CAROL_KEY');
const ARTIFACTS = env('ARTIFACTS');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(ARTIFACTS, { recursive: true });

const started = Date.now();
const step = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${text}`);
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}
const PHONE = { width: 390, height: 844 };
const shot = async (page, name) => {
  const path = join(ARTIFACTS, name + '.png');
  await page.screenshot({ path, fullPage: true });
  step('screenshot ' + path);
};
/** The page's error banner, or '' when it shows none. */
const banner = (page) => page.evaluate(() => {
  const e = document.getElementById('error');
  return e && !e.hidden ? e.textContent : '';
});
async function noError(page, where) {
  const text = await banner(page);
  check(text === '', `${where}: the page shows an error: ${text}`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Playwright gives every launch a new, empty profile (user data dir).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
const foreign = createServer();
try {
  // ---- Me: the overview ----------------------------------------------------------------------
  const meCtx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const me = await meCtx.newPage();
  me.on('pageerror', (e) => { console.log('me page error: ' + e.message); failed = true; });
  let loads = 0;
  me.on('load', () => { loads += 1; });
  await me.goto(ME_WALLET);
  await me.waitForSelector(`.line[data-peer="${BOB_KEY}"]`);
  check(!me.url().includes('token='), 'the token is taken out of the address bar: ' + me.url());
  await noError(me, 'overview');
  step('me: the overview shows the credit lines with Bob and Carol');
  await shot(me, '01-me-overview');

  // ---- Me: a payment request, made on the Receive page ---------------------------------------
  await me.click('nav a[data-page=receive]');
  await me.fill('#request-amount', '150');
  await me.fill('#request-memo', 'dinner');
  await me.click('#request-submit');
  await me.waitForSelector('#request-uri');
  await me.waitForFunction(() => document.getElementById('request-live')?.textContent === 'live');
  const uri = await me.inputValue('#request-uri');
  check(uri.startsWith('atomicity:') && uri.includes('request='), 'a request URI: ' + uri);
  await me.waitForFunction(() => {
    const img = document.getElementById('request-qr');
    return img && img.complete && img.naturalWidth > 0;
  });
  check((await me.textContent('#request-percent')) === '0%', 'a new request is at 0%');
  // Marks this document: a reload would lose it.
  await me.evaluate(() => { window.__sameDocument = 'yes'; });
  const loadsBefore = loads;
  step('me: request made on the page: ' + uri);
  await shot(me, '02-me-request-new');

  // ---- Bob pays 100.00 by the CLI ------------------------------------------------------------
  const bobOut = execFileSync(BIN, ['--data-dir', BOB_DIR, 'request', 'pay', uri, '100', '--json'], { encoding: 'utf8' });
  check(JSON.parse(bobOut).status === 'paid', 'Bob paid by the CLI: ' + bobOut);
  step('bob: paid 100.00 with `atomicity request pay`');
  await me.waitForFunction(() => document.getElementById('request-percent')?.textContent === '66%', null, { timeout: 20000 });
  check((await me.textContent('#request-paid')).startsWith('100.00 / 150.00 USD'), 'me sees 100.00 paid');
  step('me: the page shows 66% without a reload');
  await shot(me, '03-me-request-66');

  // ---- Carol pays the rest on her own wallet page, on a phone ---------------------------------
  const carolCtx = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const carol = await carolCtx.newPage();
  carol.on('pageerror', (e) => { console.log('carol page error: ' + e.message); failed = true; });
  await carol.goto(CAROL_WALLET);
  await carol.waitForSelector('#my-key');
  await carol.click('nav a[data-page=pay]');
  await carol.fill('#pay-to', uri);
  await carol.waitForFunction(() => document.getElementById('pay-hint').textContent.includes('payment request for 150.00 USD'));
  await carol.fill('#pay-amount', '50');
  await carol.click('#pay-submit');
  await carol.waitForSelector('#pay-outcome', { timeout: 30000 });
  const carolOutcome = await carol.getAttribute('#pay-outcome', 'data-status');
  check(carolOutcome === 'paid', 'Carol paid on her page: ' + await carol.textContent('#pay-outcome'));
  step('carol: paid 50.00 on her wallet page (390×844)');
  await shot(carol, '04-carol-phone-paid');

  // ---- Me: 100% without reloading ------------------------------------------------------------
  await me.waitForFunction(() => document.getElementById('request-percent')?.textContent === '100%', null, { timeout: 20000 });
  await me.waitForSelector('#request-status [data-status=filled]');
  check(await me.evaluate(() => window.__sameDocument) === 'yes', 'the page was not reloaded');
  check(loads === loadsBefore, 'no page load happened while the request filled');
  const fills = await me.$$eval('#request-fills tr[data-fill]', (rows) => rows.map((r) => r.textContent));
  check(fills.length === 2 && fills.every((f) => f.includes('paid')), 'two paid fills: ' + JSON.stringify(fills));
  check(fills.some((f) => f.includes('100.00')) && fills.some((f) => f.includes('50.00')), 'fills of 100.00 and 50.00');
  await me.waitForFunction(() => document.getElementById('request-live')?.textContent === 'final');
  step('me: the progress reached 100% (filled) without a reload; the stream ended');
  await shot(me, '05-me-request-filled');

  // ---- Errors are shown in words --------------------------------------------------------------
  await carol.fill('#pay-amount', '1');
  await carol.click('#pay-submit');
  await carol.waitForFunction(() => !document.getElementById('error').hidden);
  const words = await banner(carol);
  check(/filled/i.test(words) && words.includes('[request_filled]'), 'Carol is told in words: ' + words);
  step('carol: paying a filled request shows: ' + words);
  await shot(carol, '06-carol-phone-error');

  // ---- Me, on a phone: the request page and every other page --------------------------------
  const phoneCtx = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const phone = await phoneCtx.newPage();
  phone.on('pageerror', (e) => { console.log('phone page error: ' + e.message); failed = true; });
  await phone.goto(ME_WALLET);
  await phone.waitForSelector(`.line[data-peer="${CAROL_KEY}"]`);
  const net = (key) => phone.textContent(`.line[data-peer="${key}"] .big`);
  check((await net(BOB_KEY)).trim() === '100.00 USD', 'Bob owes me 100.00: ' + await net(BOB_KEY));
  check((await net(CAROL_KEY)).trim() === '50.00 USD', 'Carol owes me 50.00: ' + await net(CAROL_KEY));
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  check(width <= PHONE.width, 'no sideways scrolling at 390 px: the page is ' + width + ' px wide');
  await shot(phone, '07-me-phone-overview');
  for (const page of ['history', 'trust', 'settlements', 'pay', 'receive']) {
    await phone.click(`nav a[data-page=${page}]`);
    await phone.waitForSelector(`#view [data-page=${page}]`);
    await phone.waitForLoadState('networkidle');
    await noError(phone, page);
    const w = await phone.evaluate(() => document.documentElement.scrollWidth);
    check(w <= PHONE.width, `${page}: no sideways scrolling at 390 px (${w} px)`);
    await shot(phone, `08-me-phone-${page}`);
  }
  // The trust page acts through the API too, and says what is wrong in words.
  await phone.click('nav a[data-page=trust]');
  await phone.fill('#tag-key', CAROL_KEY);
  await phone.fill('#tag-tags', 'Bad Tag!');
  await phone.click('#tag-submit');
  await phone.waitForFunction(() => !document.getElementById('error').hidden);
  const tagWords = await banner(phone);
  check(tagWords.includes('[bad_tag]'), 'a bad tag is refused in words: ' + tagWords);
  await phone.fill('#tag-tags', 'dinner');
  await phone.click('#tag-submit');
  await phone.waitForSelector(`#trust-tags li[data-key="${CAROL_KEY}"][data-tag=dinner]`);
  await noError(phone, 'trust after tagging');
  step('me: tagged Carol "dinner" on the trust page (a bad tag was refused: ' + tagWords + ')');
  await phone.click('nav a[data-page=overview]');
  await phone.click('#view a.card[href^="#request/"]');
  await phone.waitForSelector('#request-status [data-status=filled]');
  await shot(phone, '09-me-phone-request');
  step('me: every page renders at 390×844 without errors or sideways scrolling');

  // ---- Without the token the page shows nothing ---------------------------------------------
  const bare = await (await browser.newContext()).newPage();
  await bare.goto(ME_WALLET.split('#')[0]);
  await bare.waitForFunction(() => !document.getElementById('error').hidden);
  const noToken = await banner(bare);
  check(noToken.includes('no API token'), 'without the token the page says so: ' + noToken);
  check((await bare.$$('.line')).length === 0, 'and shows no lines');
  step('a page opened without the token shows: ' + noToken);

  // ---- A page of another origin (another loopback port) cannot read the API ------------------
  foreign.on('request', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>another site</title><p>another site</p>');
  });
  await new Promise((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  const foreignUrl = `http://127.0.0.1:${foreign.address().port}/`;
  const other = await (await browser.newContext()).newPage();
  await other.goto(foreignUrl);
  const attempts = await other.evaluate(async ({ api, token }) => {
    const tries = {
      'GET /v1/id with the token': () => fetch(api + '/v1/id', { headers: { Authorization: 'Bearer ' + token } }),
      'GET /v1/balance without a token': () => fetch(api + '/v1/balance'),
      'GET /wallet/app.js': () => fetch(api + '/wallet/app.js'),
      'POST /v1/trust/block with the token': () => fetch(api + '/v1/trust/block', {
        method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ key: 'x' }),
      }),
    };
    const out = {};
    for (const [what, go] of Object.entries(tries)) {
      try {
        const res = await go();
        out[what] = 'read: HTTP ' + res.status + ' ' + (await res.text()).slice(0, 80);
      } catch (e) {
        out[what] = 'blocked: ' + e.name;
      }
    }
    return out;
  }, { api: ME_API, token: ME_TOKEN });
  for (const [what, result] of Object.entries(attempts)) {
    check(result.startsWith('blocked'), `a page at ${foreignUrl}: ${what}: ${result}`);
  }
  step(`a page at ${foreignUrl} could read nothing: ` + JSON.stringify(attempts));
  await shot(other, '10-foreign-origin');
  step('total ' + ((Date.now() - started) / 1000).toFixed(1) + ' s');
} catch (e) {
  console.log('FAILED: ' + (e && e.stack || e));
  failed = true;
} finally {
  foreign.close();
  await browser.close();
}
if (failed) {
  console.log('browser test failed');
  process.exit(1);
}
console.log('browser test passed');
