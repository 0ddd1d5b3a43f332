// warmgate-client.js in Node, against the real warmgate program
// (WARMGATE_BIN, started by ./gateway.mjs), over Node's own WebSocket.
//
// Run from the repository root:
//   WARMGATE_BIN=target/debug/warmgate node --experimental-websocket --test web/test/
//
// Every wait waits on an event (with a bound, so a missing event fails the
// test instead of hanging it); none sleeps. The pure tests at the end need
// no program.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import WarmgateClientDefault, {
  WarmgateClient,
  backoffDelay,
  reconnectDelay,
  DEFAULT_RETRY_AFTER_MS,
} from '../warmgate-client.js';
import {
  startGateway,
  HELD_CONFIG,
  SHORT_HOLD_CONFIG,
  AUTH_CONFIG,
  AUTH_ENV,
  hs256Token,
} from './gateway.mjs';

if (typeof globalThis.WebSocket !== 'function') {
  throw new Error('no global WebSocket: on Node 20 run with `node --experimental-websocket --test web/test/`');
}

/** The longest any single event may take to come. */
const EVENT_TIMEOUT_MS = 15_000;

/**
 * The next `type` event of `client` whose detail satisfies `matches`:
 * `{ detail, at }`, `at` being `performance.now()` when it was dispatched.
 * Rejects when no such event comes within `timeoutMs`.
 */
function waitFor(client, type, matches = () => true, timeoutMs = EVENT_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeEventListener(type, listener);
      reject(new Error(`no matching \`${type}\` event within ${timeoutMs} ms (client state: ${client.state})`));
    }, timeoutMs);
    function listener(event) {
      if (!matches(event.detail)) return;
      clearTimeout(timer);
      client.removeEventListener(type, listener);
      resolve({ detail: event.detail, at: performance.now() });
    }
    client.addEventListener(type, listener);
  });
}

/** Every `state` event of `client`, in order, with the time it came. */
function recordStates(client) {
  const seen = [];
  client.addEventListener('state', ({ detail }) => seen.push({ ...detail, at: performance.now() }));
  return seen;
}

/**
 * A WebSocket class that records every frame the client sends (and on
 * which of its sockets), around Node's real WebSocket.
 */
function recordingWebSocket() {
  const sent = [];
  const sockets = [];
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.index = sockets.push(this) - 1;
    }

    send(data) {
      sent.push({ socket: this.index, frame: JSON.parse(data) });
      super.send(data);
    }
  }
  /** The chat frames sent so far. */
  const chats = () => sent.filter(({ frame }) => frame.type === 'chat');
  return { RecordingWebSocket, sent, sockets, chats };
}

/** Runs `body` with a fresh warmgate, then closes the clients and stops it. */
async function withGateway(config, body) {
  const gateway = await startGateway({ config });
  const clients = [];
  const track = (client) => {
    clients.push(client);
    return client;
  };
  try {
    await body(gateway, track);
  } finally {
    for (const client of clients) client.close();
    await gateway.stop();
  }
}

// === (a) warming ===

test('a held client goes connecting, then warming, and warming names the pending check', async () => {
  await withGateway(HELD_CONFIG, async (gateway, track) => {
    const client = track(new WarmgateClient(gateway.wsUrl));
    const states = recordStates(client);
    const warming = waitFor(client, 'warming');
    const warmingState = waitFor(client, 'state', ({ state }) => state === 'warming');
    client.connect();
    assert.equal(client.state, 'connecting');

    const { detail } = await warming;
    assert.equal(detail.type, 'warming');
    assert.deepEqual(detail.pending, ['app']);
    assert.equal(detail.state, 'starting');
    assert.equal(detail.phase, 'services');
    assert.deepEqual(detail.phases, ['services']);
    assert.equal(typeof detail.elapsed_ms, 'number');
    assert.ok(detail.hold_remaining_ms > 0 && detail.hold_remaining_ms <= 60_000, `hold_remaining_ms ${detail.hold_remaining_ms}`);

    await warmingState;
    // The socket is open, but that is not `ready`: only the server says so.
    assert.deepEqual(
      states.map(({ state }) => state),
      ['connecting', 'warming'],
    );
    assert.equal(client.state, 'warming');
    assert.equal(client.connectionId, null);
  });
});

// === (b) queue, ready, ack ===

test('a message sent while warming is queued, goes out on ready, and its ack clears it', async () => {
  await withGateway(HELD_CONFIG, async (gateway, track) => {
    const { RecordingWebSocket, chats } = recordingWebSocket();
    const client = track(new WarmgateClient(gateway.wsUrl, { WebSocket: RecordingWebSocket }));
    const warming = waitFor(client, 'state', ({ state }) => state === 'warming');
    client.connect();
    await warming;

    const id = client.send('queued while warming');
    assert.match(id, /^c-[0-9a-z]+-\d+$/);
    assert.deepEqual(client.pending, [{ client_msg_id: id, room: 'lobby', text: 'queued while warming' }]);
    // Queued, not sent: the socket is open but the client is not admitted.
    assert.deepEqual(chats(), []);

    const ready = waitFor(client, 'ready');
    const acked = waitFor(client, 'ack', (ack) => ack.client_msg_id === id);
    await gateway.setSignal('app', true);

    const admitted = await ready;
    assert.equal(admitted.detail.state, 'ready');
    assert.equal(typeof admitted.detail.connection_id, 'string');
    assert.equal(client.connectionId, admitted.detail.connection_id);
    assert.equal(client.state, 'ready');
    // Flushed on `ready`, once, as the protocol's chat frame.
    assert.deepEqual(
      chats().map(({ frame }) => frame),
      [{ type: 'chat', room: 'lobby', text: 'queued while warming', client_msg_id: id }],
    );

    const ack = await acked;
    assert.equal(ack.detail.client_msg_id, id);
    assert.equal(typeof ack.detail.id, 'string');
    assert.deepEqual(client.pending, []);
  });
});

// === (c) chat between clients ===

test('a chat from one client reaches a second client in the same room', async () => {
  await withGateway(HELD_CONFIG, async (gateway, track) => {
    await gateway.setSignal('app', true);
    const alice = track(new WarmgateClient(gateway.wsUrl, { room: 'ops' }));
    const bob = track(new WarmgateClient(gateway.wsUrl, { room: 'ops' }));
    const aliceReady = waitFor(alice, 'ready');
    // Bob joins `ops` by himself on `ready` (every client is in `lobby`).
    const bobJoined = waitFor(bob, 'joined', ({ room }) => room === 'ops');
    alice.connect();
    bob.connect();
    await aliceReady;
    await bobJoined;

    const id = alice.send('hello, ops');
    const received = waitFor(bob, 'chat', (chat) => chat.client_msg_id === id);
    const echoed = waitFor(alice, 'chat', (chat) => chat.client_msg_id === id);
    const acked = waitFor(alice, 'ack', (ack) => ack.client_msg_id === id);

    const { detail: chat } = await received;
    assert.equal(chat.type, 'chat');
    assert.equal(chat.room, 'ops');
    assert.equal(chat.text, 'hello, ops');
    assert.equal(chat.from, alice.connectionId);
    assert.equal(typeof chat.ts_ms, 'number');
    const { detail: ack } = await acked;
    assert.equal(chat.id, ack.id);
    // The sender gets its own message back too, with its id to match it.
    assert.equal((await echoed).detail.id, ack.id);
  });
});

// === (d) unavailable ===

test('after unavailable the client waits retry_after_ms, and reconnects no sooner', async () => {
  await withGateway(SHORT_HOLD_CONFIG, async (gateway, track) => {
    // A jitter of 0 makes every backoff 0 ms: only the server's delay can
    // keep the client from coming straight back.
    const client = track(new WarmgateClient(gateway.wsUrl, { random: () => 0 }));
    const unavailable = waitFor(client, 'unavailable');
    const closed = waitFor(client, 'close');
    const reconnecting = waitFor(client, 'state', ({ state }) => state === 'reconnecting');
    client.connect();

    const refusal = await unavailable;
    assert.equal(refusal.detail.reason, 'hold_timeout');
    assert.deepEqual(refusal.detail.pending, ['app']);
    assert.equal(refusal.detail.unprocessed, 0);
    const asked = refusal.detail.retry_after_ms;
    assert.ok(asked >= 2000 && asked <= 3000, `retry_after_ms ${asked} is retry_after (2 s) plus 0-50 %`);
    assert.equal((await closed).detail.code, 1013);

    const waiting = await reconnecting;
    assert.ok(waiting.detail.retryInMs >= asked, `retryInMs ${waiting.detail.retryInMs} < retry_after_ms ${asked}`);
    assert.equal(client.state, 'reconnecting');

    // The next attempt: no sooner than asked, counted from the refusal.
    const again = await waitFor(client, 'state', ({ state }) => state === 'connecting');
    const waited = again.at - refusal.at;
    assert.ok(waited >= asked, `reconnected ${waited.toFixed(1)} ms after unavailable; the server asked for ${asked} ms`);
  });
});

// === (e) draining ===

test('after drain the client gets draining, then reconnects after reconnect_after_ms', async () => {
  await withGateway(HELD_CONFIG, async (gateway, track) => {
    await gateway.setSignal('app', true);
    const client = track(new WarmgateClient(gateway.wsUrl, { random: () => 0 }));
    const order = [];
    client.addEventListener('draining', () => order.push('draining'));
    client.addEventListener('state', ({ detail }) => order.push(detail.state));
    const ready = waitFor(client, 'ready');
    client.connect();
    await ready;

    const draining = waitFor(client, 'draining');
    const reconnecting = waitFor(client, 'state', ({ state }) => state === 'reconnecting');
    const drainedAt = performance.now();
    await gateway.drain();

    const notice = await draining;
    const asked = notice.detail.reconnect_after_ms;
    assert.ok(asked >= 500 && asked <= 750, `reconnect_after_ms ${asked} is retry_after / 4 plus 0-50 %`);
    const waiting = await reconnecting;
    assert.equal(waiting.detail.retryInMs, asked);
    assert.deepEqual(order.slice(order.indexOf('draining')), ['draining', 'reconnecting']);

    const again = await waitFor(client, 'state', ({ state }) => state === 'connecting');
    assert.ok(again.at - notice.at >= asked, `reconnected ${(again.at - notice.at).toFixed(1)} ms after draining; asked ${asked} ms`);

    // The client left at once instead of idling until the 1001 after
    // drain_grace (7 s), so the drain did not have to wait for it.
    const { code } = await gateway.exited();
    assert.equal(code, 0);
    const drainTook = performance.now() - drainedAt;
    assert.ok(drainTook < 8000, `the drain took ${drainTook.toFixed(0)} ms: the client did not leave on draining`);
  });
});

// === resending ===

test('an un-acked message is resent after a reconnect with the same id, acked again and delivered once', async () => {
  await withGateway(HELD_CONFIG, async (gateway, track) => {
    await gateway.setSignal('app', true);
    const bob = track(new WarmgateClient(gateway.wsUrl));
    const bobReady = waitFor(bob, 'ready');
    bob.connect();
    await bobReady;
    const bobChats = [];
    bob.addEventListener('chat', ({ detail }) => bobChats.push(detail));

    // Alice's first connection breaks right after her first ack arrives,
    // before the client reads it: the message stays un-acked.
    const { RecordingWebSocket, chats } = recordingWebSocket();
    let lostAck = null;
    class AckLosingWebSocket extends RecordingWebSocket {
      addEventListener(type, listener, options) {
        if (type !== 'message') return super.addEventListener(type, listener, options);
        return super.addEventListener(
          'message',
          (event) => {
            const message = JSON.parse(event.data);
            if (message.type === 'ack' && lostAck === null) {
              lostAck = message;
              this.close(4000, 'test: the connection broke before the ack was read');
              return;
            }
            listener(event);
          },
          options,
        );
      }
    }
    const alice = track(new WarmgateClient(gateway.wsUrl, { WebSocket: AckLosingWebSocket, random: () => 0 }));
    const states = recordStates(alice);
    const aliceReady = waitFor(alice, 'ready');
    alice.connect();
    await aliceReady;

    const id = alice.send('exactly once');
    const acked = waitFor(alice, 'ack', (ack) => ack.client_msg_id === id);
    const closed = waitFor(alice, 'close');
    assert.equal((await closed).detail.code, 4000);
    assert.deepEqual(alice.pending, [{ client_msg_id: id, room: 'lobby', text: 'exactly once' }]);

    const { detail: ack } = await acked;
    assert.notEqual(lostAck, null);
    assert.equal(ack.id, lostAck.id, 'the resent message is acked with the first message id');
    assert.deepEqual(alice.pending, []);
    assert.deepEqual(
      states.map(({ state }) => state),
      ['connecting', 'ready', 'reconnecting', 'connecting', 'ready'],
    );
    // Sent on the first socket, resent with the same id on the second.
    assert.deepEqual(
      chats().map(({ socket, frame }) => [socket, frame.client_msg_id, frame.text]),
      [
        [0, id, 'exactly once'],
        [1, id, 'exactly once'],
      ],
    );

    // Bob's room is in order: once he has a later message, he has seen
    // every copy of the first one there will be.
    const marker = alice.send('marker');
    await waitFor(bob, 'chat', (chat) => chat.client_msg_id === marker);
    assert.deepEqual(
      bobChats.map((chat) => chat.client_msg_id),
      [id, marker],
    );
  });
});

test('a message queued while held survives an unavailable and goes out once after the next ready', async () => {
  await withGateway(SHORT_HOLD_CONFIG, async (gateway, track) => {
    const { RecordingWebSocket, chats } = recordingWebSocket();
    const client = track(new WarmgateClient(gateway.wsUrl, { WebSocket: RecordingWebSocket }));
    const warming = waitFor(client, 'warming');
    const unavailable = waitFor(client, 'unavailable');
    const reconnecting = waitFor(client, 'state', ({ state }) => state === 'reconnecting');
    client.connect();
    await warming;
    const id = client.send('held over');

    // Refused: the message was queued here, never given to the server.
    assert.equal((await unavailable).detail.unprocessed, 0);
    await reconnecting;
    // While the client waits, the gate turns ready: the next attempt is
    // admitted at once.
    const ready = waitFor(client, 'ready');
    const acked = waitFor(client, 'ack', (ack) => ack.client_msg_id === id);
    await gateway.setSignal('app', true);
    assert.equal((await ready).detail.waited_ms, 0);
    await acked;
    assert.deepEqual(
      chats().map(({ socket, frame }) => [socket, frame.client_msg_id]),
      [[1, id]],
    );
    assert.deepEqual(client.pending, []);
  });
});

test('a 1013 without an unavailable frame waits the default retry_after, not the backoff', async () => {
  // `/echo` holds clients without a frame and closes with 1013.
  await withGateway(SHORT_HOLD_CONFIG, async (gateway, track) => {
    const delays = [];
    const client = track(
      new WarmgateClient(gateway.wsUrl.replace(/\/ws$/, '/echo'), {
        random: () => 0,
        // Record the reconnect timer instead of waiting for it.
        setTimeout: (callback, ms) => delays.push(ms),
        clearTimeout: () => {},
      }),
    );
    const closed = waitFor(client, 'close');
    const reconnecting = waitFor(client, 'state', ({ state }) => state === 'reconnecting');
    let unavailable = false;
    client.addEventListener('unavailable', () => {
      unavailable = true;
    });
    client.connect();
    assert.equal((await closed).detail.code, 1013);
    const { detail } = await reconnecting;
    assert.equal(unavailable, false);
    assert.equal(detail.retryInMs, DEFAULT_RETRY_AFTER_MS);
    assert.deepEqual(delays, [DEFAULT_RETRY_AFTER_MS]);
  });
});

// === (f) backoff: pure ===

test('backoff is full jitter under an exponential ceiling', () => {
  const top = (attempt) => backoffDelay(attempt, { random: () => 1 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 50, 5000].map(top),
    [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000],
  );
  assert.equal(backoffDelay(0, { random: () => 0 }), 0);
  assert.equal(backoffDelay(9, { random: () => 0 }), 0);
  assert.equal(backoffDelay(2, { random: () => 0.5 }), 1000);
  assert.equal(backoffDelay(3, { random: () => 1, baseBackoffMs: 250, maxBackoffMs: 1500 }), 1500);
  assert.equal(backoffDelay(2, { random: () => 1, baseBackoffMs: 250, maxBackoffMs: 1500 }), 1000);
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const delay = backoffDelay(attempt);
    assert.ok(delay >= 0 && delay <= Math.min(30000, 500 * 2 ** attempt), `attempt ${attempt}: ${delay}`);
  }
});

test('a reconnect is never sooner than the server asked', () => {
  const pinned = { baseBackoffMs: 500, maxBackoffMs: 30000 };
  // The server said when: that delay, whatever the backoff would be.
  assert.equal(reconnectDelay({ attempt: 0, askedMs: 2150, followAsked: true, random: () => 0, ...pinned }), 2150);
  assert.equal(reconnectDelay({ attempt: 0, askedMs: 430, followAsked: true, random: () => 1, ...pinned }), 430);
  // Backing off: the backoff, but never below what was asked.
  assert.equal(reconnectDelay({ attempt: 0, askedMs: 2000, random: () => 0, ...pinned }), 2000);
  assert.equal(reconnectDelay({ attempt: 3, askedMs: 2000, random: () => 1, ...pinned }), 4000);
  assert.equal(reconnectDelay({ attempt: 9, askedMs: 2000, random: () => 1, ...pinned }), 30000);
  // Nothing asked: the plain backoff.
  assert.equal(reconnectDelay({ attempt: 0, askedMs: null, random: () => 1, ...pinned }), 500);
  assert.equal(reconnectDelay({ attempt: 0, random: () => 0, ...pinned }), 0);
  // A bad ask counts as none.
  assert.equal(reconnectDelay({ attempt: 1, askedMs: -5, followAsked: true, random: () => 1, ...pinned }), 1000);
});

test('the client backs off exponentially when nothing answers, up to the cap', async () => {
  // A port nothing listens on: every attempt is refused for real.
  const port = await new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  let clock = 0;
  const delays = [];
  const client = new WarmgateClient(`ws://127.0.0.1:${port}/ws`, {
    random: () => 1,
    // Time is ours: each timer moves the clock by its delay and fires at once.
    now: () => clock,
    setTimeout: (callback, ms) => {
      delays.push(ms);
      clock += ms;
      return setImmediate(callback);
    },
    clearTimeout: (handle) => clearImmediate(handle),
  });
  const retries = [];
  try {
    const eighth = new Promise((resolve) => {
      client.addEventListener('state', ({ detail }) => {
        if (detail.state !== 'reconnecting') return;
        retries.push(detail.retryInMs);
        if (retries.length === 8) {
          client.close();
          resolve();
        }
      });
    });
    client.connect();
    await eighth;
  } finally {
    client.close();
  }
  assert.deepEqual(retries, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.deepEqual(delays, retries);
  assert.equal(client.state, 'offline');
});

test('message ids are unique per client, even with the jitter pinned', () => {
  const a = new WarmgateClient('ws://127.0.0.1:9/ws', { random: () => 1 });
  const b = new WarmgateClient('ws://127.0.0.1:9/ws', { random: () => 1 });
  // Not connected: the messages only queue.
  const ids = [a.send('1'), a.send('2'), b.send('1'), b.send('2')];
  assert.equal(new Set(ids).size, 4);
  assert.deepEqual(
    a.pending.map((message) => message.text),
    ['1', '2'],
  );
  assert.equal(a.state, 'offline');
  assert.equal(WarmgateClientDefault, WarmgateClient);
  assert.throws(() => a.send('x', ''), RangeError);
  assert.throws(() => a.send('x', 'r'.repeat(65)), RangeError);
  assert.throws(() => a.send('x'.repeat(70 * 1024)), RangeError);
  assert.throws(() => new WarmgateClient('http://127.0.0.1:9/ws'), TypeError);
});

// === authentication ===

test('a token provider is asked before every attempt; its sub is the chat sender; a failing one backs off', async () => {
  const gateway = await startGateway({ config: AUTH_CONFIG, env: AUTH_ENV });
  const clients = [];
  try {
    let asked = 0;
    const { RecordingWebSocket, sockets } = recordingWebSocket();
    const client = new WarmgateClient(gateway.wsUrl, {
      WebSocket: RecordingWebSocket,
      token: async () => {
        asked += 1;
        return hs256Token('ada');
      },
    });
    clients.push(client);
    const ready = waitFor(client, 'ready');
    client.connect();
    await ready;
    assert.equal(asked, 1);
    // The token went as a subprotocol; the server selected only warmgate.v1.
    assert.equal(sockets[0].protocol, 'warmgate.v1');
    const echoed = waitFor(client, 'chat', (chat) => chat.text === 'signed');
    client.send('signed');
    assert.equal((await echoed).detail.from, 'ada');

    // Refused before the upgrade (401): Node reports it as an error, the
    // client backs off and asks for a token again on the next attempt.
    let refusedAsked = 0;
    const refused = new WarmgateClient(gateway.wsUrl, {
      token: () => {
        refusedAsked += 1;
        return hs256Token('mallory', 300, 'not-the-secret-not-the-secret-0000');
      },
      baseBackoffMs: 20,
      maxBackoffMs: 40,
    });
    clients.push(refused);
    const secondAttempt = waitFor(refused, 'state', (state) => state.state === 'connecting' && refusedAsked >= 2);
    refused.connect();
    await secondAttempt;
    assert.notEqual(refused.state, 'ready');

    // A provider that fails fires tokenerror and the client reconnects later.
    const failing = new WarmgateClient(gateway.wsUrl, {
      token: () => Promise.reject(new Error('signed out')),
      baseBackoffMs: 20,
    });
    clients.push(failing);
    const tokenError = waitFor(failing, 'tokenerror');
    const reconnecting = waitFor(failing, 'state', (state) => state.state === 'reconnecting');
    failing.connect();
    assert.equal((await tokenError).detail.error.message, 'signed out');
    await reconnecting;
  } finally {
    for (const client of clients) client.close();
    await gateway.stop();
  }
});
