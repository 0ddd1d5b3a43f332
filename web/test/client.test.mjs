// warmgate-client.js in Node, against the real warmgate program
// (WARMGATE_BIN), with Node's own WebSocket. Every wait waits on an event.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { WarmgateClient } from '../warmgate-client.js';
import { startGateway, HELD_CONFIG } from './gateway.mjs';

/** The next `type` event's detail that satisfies `matches`. */
function next(client, type, matches = () => true) {
  return new Promise((resolve) => {
    const listener = ({ detail }) => {
      if (matches(detail)) {
        client.removeEventListener(type, listener);
        resolve(detail);
      }
    };
    client.addEventListener(type, listener);
  });
}

/** Records every `state` a client goes through. */
function states(client) {
  const seen = [];
  client.addEventListener('state', ({ detail }) => seen.push(detail.state));
  return seen;
}

test('a held client warms, queues its message, and delivers it once on ready', async () => {
  const gateway = await startGateway({ config: HELD_CONFIG });
  const alice = new WarmgateClient(gateway.wsUrl);
  const bob = new WarmgateClient(gateway.wsUrl);
  try {
    const seen = states(alice);
    const warming = next(alice, 'warming');
    alice.connect();
    bob.connect();
    assert.deepEqual((await warming).pending, ['app']);
    assert.deepEqual(seen.slice(0, 2), ['connecting', 'warming']);
    await next(bob, 'warming');

    // Sent while warming: queued, not on the wire.
    const id = alice.send('hello while warming');
    assert.deepEqual(alice.pending.map((message) => message.client_msg_id), [id]);

    const acked = next(alice, 'ack', (ack) => ack.client_msg_id === id);
    const delivered = next(bob, 'chat', (chat) => chat.client_msg_id === id);
    const ready = next(alice, 'ready');
    await gateway.setSignal('app', true);
    await ready;
    assert.equal(alice.state, 'ready');
    const ack = await acked;
    const chat = await delivered;
    assert.equal(chat.text, 'hello while warming');
    assert.equal(chat.id, ack.id);
    assert.deepEqual(alice.pending, []);
  } finally {
    alice.close();
    bob.close();
    await gateway.stop();
  }
});

test('un-acked messages are resent after a reconnect and the server delivers them once', async () => {
  const gateway = await startGateway({ config: HELD_CONFIG });
  await gateway.setSignal('app', true);
  const bob = new WarmgateClient(gateway.wsUrl);
  const alice = new WarmgateClient(gateway.wsUrl, { baseBackoffMs: 1, random: () => 0 });
  try {
    bob.connect();
    await next(bob, 'ready');
    const bobChats = [];
    bob.addEventListener('chat', ({ detail }) => bobChats.push(detail.client_msg_id));

    alice.connect();
    await next(alice, 'ready');
    // The message goes out, then the connection drops before its ack is
    // read: the client still holds it as un-acked.
    const firstDelivery = next(bob, 'chat');
    const id = alice.send('sent twice, shown once');
    alice._socket.close();
    await firstDelivery;
    await next(alice, 'ready');
    await next(alice, 'ack', (ack) => ack.client_msg_id === id);
    assert.deepEqual(alice.pending, []);

    // A marker after the resend: when Bob has it, he has seen everything.
    const marker = alice.send('marker');
    await next(bob, 'chat', (chat) => chat.client_msg_id === marker);
    assert.deepEqual(bobChats, [id, marker]);
  } finally {
    alice.close();
    bob.close();
    await gateway.stop();
  }
});

test('after unavailable the client waits retry_after_ms before trying again', async () => {
  const gateway = await startGateway({ config: HELD_CONFIG.replace('"60s"', '"200ms"') });
  const client = new WarmgateClient(gateway.wsUrl);
  try {
    const unavailable = next(client, 'unavailable');
    const reconnecting = next(client, 'state', (state) => state.state === 'reconnecting');
    client.connect();
    const refusal = await unavailable;
    const refusedAt = Date.now();
    assert.equal(refusal.reason, 'hold_timeout');
    assert.equal((await reconnecting).retryInMs, refusal.retry_after_ms);
    await next(client, 'state', (state) => state.state === 'connecting');
    const waited = Date.now() - refusedAt;
    assert.ok(
      waited >= refusal.retry_after_ms - 5,
      `reconnected after ${waited} ms; the server asked for ${refusal.retry_after_ms} ms`,
    );
  } finally {
    client.close();
    await gateway.stop();
  }
});

test('on draining the client leaves and comes back after reconnect_after_ms', async () => {
  const gateway = await startGateway({ config: HELD_CONFIG });
  await gateway.setSignal('app', true);
  const client = new WarmgateClient(gateway.wsUrl);
  try {
    client.connect();
    await next(client, 'ready');
    const draining = next(client, 'draining');
    const reconnecting = next(client, 'state', (state) => state.state === 'reconnecting');
    await gateway.drain();
    const message = await draining;
    assert.equal((await reconnecting).retryInMs, message.reconnect_after_ms);
    // The client left at once, so the server's drain is not held up by it.
    await gateway.exited();
  } finally {
    client.close();
    await gateway.stop();
  }
});

test('backoff is full jitter under an exponential cap', () => {
  const at = (random) => new WarmgateClient('ws://127.0.0.1:9/ws', { random, baseBackoffMs: 500, maxBackoffMs: 30_000 });
  assert.equal(at(() => 0).backoffDelay(3), 0);
  assert.equal(at(() => 0.999999).backoffDelay(0), 499);
  assert.equal(at(() => 0.5).backoffDelay(2), 1000);
  assert.equal(at(() => 0.999999).backoffDelay(20), 29_999);
});

test('an unexpected close never reconnects sooner than the server asked', () => {
  const timers = [];
  const client = new WarmgateClient('ws://127.0.0.1:9/ws', {
    random: () => 0,
    setTimeout: (callback, ms) => {
      timers.push(ms);
      return timers.length;
    },
    clearTimeout: () => {},
    WebSocket: class {
      addEventListener() {}
      close() {}
    },
  });
  client.connect();
  // The server asked for 700 ms, then the connection broke with 1006.
  client._askedDelayMs = 700;
  client._onClose(1006);
  assert.deepEqual(timers, [700]);
  assert.equal(client.state, 'reconnecting');
  client.close();
  assert.equal(client.state, 'offline');
});
