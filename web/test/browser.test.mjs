// The chat page in a real browser: Debian's Chromium, driven headless by
// playwright-core, against the real warmgate program (WARMGATE_BIN) whose
// plan holds clients on a pending signal check. Every wait waits on the
// page or the server, never on the clock.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { createServer } from 'node:http';

import { startGateway, freePort, HELD_CONFIG, AUTH_CONFIG, AUTH_ENV, hs256Token } from './gateway.mjs';

// The README's screenshots; `cargo xtask ci` sends them under target/.
const SCREENSHOTS =
  process.env.WARMGATE_SCREENSHOTS ??
  path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'img');

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** The banner, once its `data-state` is `state`. */
async function banner(page, state) {
  const status = page.locator(`#status[data-state="${state}"]`);
  await status.waitFor();
  return status;
}

test('warming, a pending message, then connected: delivered once, acked, and seen in a second context', async () => {
  const gateway = await startGateway({ config: HELD_CONFIG });
  try {
    const alice = await browser.newContext({ viewport: { width: 420, height: 780 } });
    const bob = await browser.newContext();
    const alicePage = await alice.newPage();
    const bobPage = await bob.newPage();
    await alicePage.goto(gateway.publicUrl);
    await bobPage.goto(gateway.publicUrl);

    // 1. The warming banner names the pending check.
    const warming = await banner(alicePage, 'warming');
    assert.match(await warming.textContent(), /Warming up: waiting for app \(\d+\.\d s\)/);
    await banner(bobPage, 'warming');
    mkdirSync(SCREENSHOTS, { recursive: true });

    // 2. A message typed while warming shows as pending.
    await alicePage.fill('#text', 'hello from the warm-up');
    await alicePage.press('#text', 'Enter');
    const pending = alicePage.locator('#messages li.message.pending');
    await pending.waitFor();
    assert.match(await pending.textContent(), /hello from the warm-up/);
    await alicePage.screenshot({ path: path.join(SCREENSHOTS, 'warming.png') });

    // 3. The signal turns the gate ready: Connected, the message delivered
    //    once and acked.
    await gateway.setSignal('app', true);
    const connected = await banner(alicePage, 'ready');
    assert.equal((await connected.textContent()).trim(), 'Connected');
    await alicePage.locator('#messages li.message.sent').waitFor();
    assert.equal(await alicePage.locator('#messages li.message', { hasText: 'hello from the warm-up' }).count(), 1);
    assert.equal(await alicePage.locator('#messages li.message.pending').count(), 0);

    // 4. The second context, in the same room, receives it.
    await bobPage.locator('#messages li.message', { hasText: 'hello from the warm-up' }).waitFor();
    await alicePage.screenshot({ path: path.join(SCREENSHOTS, 'connected.png') });
    await alice.close();
    await bob.close();
  } finally {
    await gateway.stop();
  }
});

test('an optional dependency going down turns the banner to degraded, naming it, and back', async () => {
  const config = `${HELD_CONFIG}
[[phase.check]]
name = "cache"
kind = "signal"
required = false
`;
  const gateway = await startGateway({ config });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(gateway.publicUrl);
    await banner(page, 'warming');
    await gateway.setSignal('cache', true);
    await gateway.setSignal('app', true);
    await banner(page, 'ready');

    await gateway.setSignal('cache', false);
    const degraded = await banner(page, 'degraded');
    assert.equal((await degraded.textContent()).trim(), 'Degraded: cache unavailable, messages may be delayed');

    await gateway.setSignal('cache', true);
    const connected = await banner(page, 'ready');
    assert.equal((await connected.textContent()).trim(), 'Connected');
  } finally {
    await context.close();
    await gateway.stop();
  }
});

test('on drain the page says the server is restarting and reconnects to a new process on the same port', async () => {
  const first = await startGateway({ config: HELD_CONFIG });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(first.publicUrl);
    await first.setSignal('app', true);
    await banner(page, 'ready');

    await first.drain();
    const restarting = await banner(page, 'reconnecting');
    assert.match(await restarting.textContent(), /Server restarting, reconnecting in \d+\.\d s/);
    await first.exited();

    // A fresh process on the same address, ready at once.
    const second = await startGateway({ config: '', listen: first.publicAddress });
    try {
      const connected = await banner(page, 'ready');
      assert.equal((await connected.textContent()).trim(), 'Connected');
      // No reload happened: the page kept its history object.
      assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1);
    } finally {
      await second.stop();
    }
  } finally {
    await context.close();
    await first.stop();
  }
});

test('when the gate never turns ready the page says unavailable and retries no sooner than asked', async () => {
  const gateway = await startGateway({ config: HELD_CONFIG.replace('hold_timeout = "60s"', 'hold_timeout = "200ms"') });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // Every WebSocket the page opens, and each `unavailable` it receives.
    const opened = [];
    const refusals = [];
    let reopened;
    const secondConnection = new Promise((resolve) => {
      reopened = resolve;
    });
    page.on('websocket', (ws) => {
      opened.push(Date.now());
      if (opened.length === 2) reopened();
      ws.on('framereceived', ({ payload }) => {
        const message = JSON.parse(String(payload));
        if (message.type === 'unavailable') refusals.push({ at: Date.now(), retryAfterMs: message.retry_after_ms });
      });
    });
    await page.goto(gateway.publicUrl);
    const unavailable = await banner(page, 'reconnecting');
    assert.match(await unavailable.textContent(), /Unavailable, retrying in \d+\.\d s/);

    // Wait for the second connection, then compare it with what was asked.
    // Playwright reports events a little late, which can only shorten the
    // measured wait, hence the small allowance.
    await secondConnection;
    assert.ok(refusals.length >= 1, 'an unavailable frame arrived');
    const waited = opened[1] - refusals[0].at;
    assert.ok(
      waited >= refusals[0].retryAfterMs - 50,
      `retried after ${waited} ms, but the server asked for ${refusals[0].retryAfterMs} ms`,
    );
  } finally {
    await context.close();
    await gateway.stop();
  }
});

/** Serves `html` at `/` on a free loopback port; resolves to its origin and a stop function. */
async function servePage(html) {
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, stop: () => new Promise((resolve) => server.close(resolve)) };
}

test('a page from another origin cannot open a WebSocket when allowed_origins is set; the own page can', async () => {
  const port = await freePort();
  const ownOrigin = `http://127.0.0.1:${port}`;
  const gateway = await startGateway({
    config: `[gate]\nallowed_origins = ["${ownOrigin}"]\n`,
    listen: `127.0.0.1:${port}`,
  });
  // A page on another origin that tries to open a WebSocket to warmgate
  // and reports how it went.
  const attacker = await servePage(`<!doctype html><title>elsewhere</title><script>
    const socket = new WebSocket('ws://127.0.0.1:${port}/ws', ['warmgate.v1']);
    window.outcome = new Promise((resolve) => {
      socket.onopen = () => resolve('open');
      socket.onclose = (event) => resolve('closed ' + event.code);
    });
  </script>`);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(attacker.origin);
    assert.equal(await page.evaluate(() => window.outcome), 'closed 1006');
    // The browser does not show the status to the page; warmgate's log does.
    assert.match(gateway.log(), new RegExp(`origin ${attacker.origin} is not allowed|origin="${attacker.origin}"|origin=${attacker.origin}`));
    assert.match(gateway.log(), /refused with 403/);

    // The chat page served by warmgate itself is on the allowed origin.
    const own = await context.newPage();
    await own.goto(`${ownOrigin}/`);
    await banner(own, 'ready');
  } finally {
    await context.close();
    await attacker.stop();
    await gateway.stop();
  }
});

test('the chat page asks window.warmgateToken for a token and connects as its subject', async () => {
  const gateway = await startGateway({ config: AUTH_CONFIG, env: AUTH_ENV });
  const context = await browser.newContext();
  try {
    const signedIn = await context.newPage();
    await signedIn.exposeFunction('mintToken', () => hs256Token('ada'));
    await signedIn.addInitScript(() => {
      window.warmgateToken = () => window.mintToken();
    });
    await signedIn.goto(gateway.publicUrl);
    await banner(signedIn, 'ready');

    // Without a token the upgrade is refused (401), so the page never
    // connects and keeps retrying.
    const anonymous = await context.newPage();
    await anonymous.goto(gateway.publicUrl);
    await banner(anonymous, 'reconnecting');
    assert.match(gateway.log(), /refused with 401/);
  } finally {
    await context.close();
    await gateway.stop();
  }
});
