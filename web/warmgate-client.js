// warmgate-client.js: the browser (and Node) client of the warmgate
// WebSocket protocol, as described in docs/protocol.md.
//
// Plain ES module, no dependencies, no build step. It runs in any modern
// browser and in Node 20+ (`--experimental-websocket` on Node 20).
//
// What it does for you:
//
// - opens `/ws` offering the `warmgate.v1` subprotocol, and only calls the
//   client ready when the server's `ready` frame arrives (never on `open`);
// - turns every server frame into a DOM `CustomEvent` named after its
//   `type` (`warming`, `ready`, `readiness`, `draining`, `unavailable`,
//   `chat`, `ack`, `error`, `joined`), with the parsed frame as `detail`;
// - reports its own state (`connecting`, `warming`, `ready`, `degraded`,
//   `reconnecting`, `offline`) with a `state` event;
// - queues chat messages until `ready`, tracks each by `client_msg_id` until
//   its `ack`, and resends the un-acked ones with the same id after every
//   reconnect (the server acks a repeated id again but delivers it once);
// - reconnects on its own, waiting exactly as long as the server asked
//   (`retry_after_ms`, `reconnect_after_ms`) and otherwise backing off
//   exponentially with full jitter, never sooner than the server asked.

/** The subprotocol offered on every connection. */
export const SUBPROTOCOL = 'warmgate.v1';

/** The subprotocol prefix that carries a token: `bearer.<token>`. */
export const BEARER_PREFIX = 'bearer.';

/** The room every `/ws` client is in from admission. */
export const DEFAULT_ROOM = 'lobby';

/** The longest room name the server accepts, in characters. */
export const MAX_ROOM_CHARS = 64;

/** The most rooms one connection may be in (`lobby` included). */
export const MAX_ROOMS = 16;

/**
 * The server's default `retry_after`: the delay to honour after a close
 * with 1013 whose `unavailable` frame was missed (docs/protocol.md,
 * "Writing a client").
 */
export const DEFAULT_RETRY_AFTER_MS = 2000;

/** The server's default `max_message_bytes`. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;

/** Every server frame type, each dispatched as an event of the same name. */
export const SERVER_MESSAGE_TYPES = Object.freeze([
  'warming',
  'ready',
  'readiness',
  'draining',
  'unavailable',
  'chat',
  'ack',
  'error',
  'joined',
]);

const KNOWN_TYPES = new Set(SERVER_MESSAGE_TYPES);

/** The close code of `unavailable` (Try Again Later). */
const CLOSE_TRY_AGAIN_LATER = 1013;
/** The close code we use when we leave on our own. */
const CLOSE_NORMAL = 1000;

/**
 * The exponential backoff with full jitter: a random delay in
 * `[0, min(maxBackoffMs, baseBackoffMs * 2 ** attempt)]`, in whole
 * milliseconds.
 *
 * @param {number} attempt failed attempts since the last `ready` (0 first)
 * @param {{ random?: () => number, baseBackoffMs?: number, maxBackoffMs?: number }} [options]
 * @returns {number}
 */
export function backoffDelay(attempt, { random = Math.random, baseBackoffMs = 500, maxBackoffMs = 30000 } = {}) {
  // 2 ** attempt turns into Infinity for a huge attempt; min() caps it.
  const ceiling = Math.min(maxBackoffMs, baseBackoffMs * 2 ** Math.max(0, attempt));
  return Math.round(random() * ceiling);
}

/**
 * The delay before the next connection attempt, applying every rule of
 * docs/protocol.md "Writing a client" in one place:
 *
 * - when the server ended the connection on purpose and said when to come
 *   back (`unavailable` then 1013, `draining` then 1001), its delay is used
 *   as it is: it is already jittered by the server;
 * - otherwise the exponential backoff with full jitter applies, but never
 *   shorter than any delay the server asked for (`askedMs`).
 *
 * @param {object} plan
 * @param {number} plan.attempt failed attempts since the last `ready`
 * @param {number | null} [plan.askedMs] the delay the server asked for, if any
 * @param {boolean} [plan.followAsked] true when the server told us when to
 *   come back (then `askedMs` is the answer)
 * @param {() => number} [plan.random]
 * @param {number} [plan.baseBackoffMs]
 * @param {number} [plan.maxBackoffMs]
 * @returns {number}
 */
export function reconnectDelay({ attempt, askedMs = null, followAsked = false, random, baseBackoffMs, maxBackoffMs }) {
  const asked = isDelay(askedMs) ? askedMs : null;
  if (followAsked && asked !== null) return asked;
  const backoff = backoffDelay(attempt, { random, baseBackoffMs, maxBackoffMs });
  return asked === null ? backoff : Math.max(asked, backoff);
}

/** True for a usable delay in milliseconds. */
function isDelay(value) {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * A prefix for `client_msg_id`s, random per client instance. It comes from
 * the platform's cryptographic generator (not the injectable `random`,
 * which tests pin): the server remembers ids per *room*, across every
 * sender, so two clients must never share a prefix.
 */
function randomPrefix() {
  const crypto = globalThis.crypto;
  if (crypto?.getRandomValues) {
    const words = crypto.getRandomValues(new Uint32Array(2));
    return words[0].toString(36) + words[1].toString(36);
  }
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
}

/** The length of a string in characters (code points), as the server counts. */
function charCount(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** The length of a string in UTF-8 bytes. */
function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/**
 * A client of the warmgate protocol on `/ws`.
 *
 * Events (all `CustomEvent`s):
 * - one per server frame type, named as the type, `detail` the frame;
 * - `message`: every server frame, known type or not;
 * - `state`: `detail = { state, retryInMs }`;
 * - `close`: the WebSocket closed, `detail = { code, reason, wasClean }`.
 */
export class WarmgateClient extends EventTarget {
  /** @type {string} */
  #url;
  /** The room `send()` uses when it is given none. */
  #room;
  #WebSocket;
  #random;
  #setTimeout;
  #clearTimeout;
  #now;
  #baseBackoffMs;
  #maxBackoffMs;
  #maxMessageBytes;
  /** @type {null | (() => unknown)} */
  #tokenProvider;
  /** Counts token requests, so an answer to a superseded one is dropped. */
  #tokenRequest = 0;

  /** @type {'connecting' | 'warming' | 'ready' | 'degraded' | 'reconnecting' | 'offline'} */
  #state = 'offline';
  #retryInMs = null;
  /** True once `close()` was called (until an explicit `connect()`). */
  #stopped = true;

  /**
   * The current connection, or null. One object per WebSocket, so events
   * of a socket we already left are recognised and ignored.
   * @type {null | { socket: WebSocket, opened: boolean, ended: boolean, admitted: boolean, askedMs: number | null, followAsked: boolean, left: boolean }}
   */
  #connection = null;
  /** The pending reconnect timer, if any. */
  #timer = null;
  /** Failed attempts since the last `ready`: the backoff's exponent. */
  #attempt = 0;

  /** `connection_id` from the last `ready`. */
  #connectionId = null;

  /**
   * Un-acked chat messages by `client_msg_id`, in the order they were
   * sent. This is also the queue: until `ready`, messages wait here.
   * @type {Map<string, { client_msg_id: string, room: string, text: string }>}
   */
  #pending = new Map();
  /** The rooms this client is in: all but `lobby` are joined again on every `ready`. */
  #rooms = new Set([DEFAULT_ROOM]);

  #idPrefix = randomPrefix();
  #idCounter = 0;

  /**
   * @param {string | URL} url a `ws:` or `wss:` URL of warmgate's `/ws`
   * @param {object} [options]
   * @param {string} [options.room] the default room of `send()`, joined on every `ready`
   * @param {typeof globalThis.WebSocket} [options.WebSocket]
   * @param {() => number} [options.random] the jitter's source, in [0, 1]
   * @param {typeof globalThis.setTimeout} [options.setTimeout]
   * @param {typeof globalThis.clearTimeout} [options.clearTimeout]
   * @param {() => number} [options.now] a monotonic clock in milliseconds
   * @param {number} [options.maxBackoffMs]
   * @param {number} [options.baseBackoffMs]
   * @param {number} [options.maxMessageBytes] the server's `max_message_bytes`
   * @param {() => (string | null | undefined | Promise<string | null | undefined>)} [options.token]
   *   called before every connection attempt for a fresh token (a JWT); it
   *   travels as the subprotocol `bearer.<token>` beside `warmgate.v1`,
   *   because browsers cannot set headers on a WebSocket. A provider that
   *   throws or rejects fires `tokenerror` and the client backs off.
   */
  constructor(url, options = {}) {
    super();
    const {
      room = DEFAULT_ROOM,
      WebSocket = globalThis.WebSocket,
      random = Math.random,
      setTimeout = globalThis.setTimeout,
      clearTimeout = globalThis.clearTimeout,
      now = () => globalThis.performance.now(),
      maxBackoffMs = 30000,
      baseBackoffMs = 500,
      maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
      token = null,
    } = options;
    if (token !== null && typeof token !== 'function') {
      throw new TypeError('options.token is a function that returns a token (or a promise of one)');
    }
    const parsed = new URL(String(url));
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw new TypeError(`a warmgate URL is ws: or wss:, not ${parsed.protocol} (${parsed.href})`);
    }
    if (typeof WebSocket !== 'function') {
      throw new TypeError(
        'no WebSocket implementation: pass options.WebSocket (on Node 20, run with --experimental-websocket)',
      );
    }
    checkRoom(room);
    this.#url = parsed.href;
    this.#room = room;
    this.#rooms.add(room);
    this.#WebSocket = WebSocket;
    this.#random = random;
    // Called unbound: browsers refuse `setTimeout` called on another object.
    this.#setTimeout = (callback, ms) => setTimeout(callback, ms);
    this.#clearTimeout = (handle) => clearTimeout(handle);
    this.#now = now;
    this.#maxBackoffMs = maxBackoffMs;
    this.#baseBackoffMs = baseBackoffMs;
    this.#maxMessageBytes = maxMessageBytes;
    this.#tokenProvider = token;
  }

  // === public API ===

  /** The URL this client connects to. */
  get url() {
    return this.#url;
  }

  /** The default room of `send()`. */
  get room() {
    return this.#room;
  }

  /**
   * The client's state: `connecting`, `warming`, `ready`, `degraded`,
   * `reconnecting` or `offline`.
   */
  get state() {
    return this.#state;
  }

  /** The delay before the next attempt while `reconnecting`, else null. */
  get retryInMs() {
    return this.#retryInMs;
  }

  /** This connection's id (the `from` of our chat messages), once admitted. */
  get connectionId() {
    return this.#connectionId;
  }

  /** Every chat message not acked yet (queued or in flight), oldest first. */
  get pending() {
    return [...this.#pending.values()].map((message) => ({ ...message }));
  }

  /**
   * Starts connecting. Does nothing while a connection is open, opening or
   * scheduled; after `close()` it starts again.
   */
  connect() {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#attempt = 0;
    this.#open();
  }

  /**
   * Stops for good: closes the connection, cancels any reconnect, and
   * turns `offline`. Un-acked messages stay in `pending` (a later
   * `connect()` sends them).
   *
   * @param {number} [code] the close code, 1000 by default
   * @param {string} [reason]
   */
  close(code = CLOSE_NORMAL, reason = 'client closed') {
    this.#stopped = true;
    this.#cancelTimer();
    const connection = this.#connection;
    this.#connection = null;
    if (connection) {
      connection.left = true;
      closeQuietly(connection.socket, code, reason);
    }
    this.#setState('offline', null);
  }

  /**
   * Sends a chat message, or queues it until `ready`. It is tracked until
   * its `ack` and resent after a reconnect with the same id.
   *
   * @param {string} text
   * @param {string} [room] the client's room by default
   * @returns {string} the `client_msg_id` given to the message
   */
  send(text, room = this.#room) {
    if (typeof text !== 'string') throw new TypeError('send() takes the text as a string');
    this.#admitRoom(room);
    this.#idCounter += 1;
    const message = { client_msg_id: `c-${this.#idPrefix}-${this.#idCounter}`, room, text };
    const frame = chatFrame(message);
    // A frame over the server's limit would be answered with close 1009,
    // and resending it after every reconnect would loop forever.
    if (utf8Length(frame) > this.#maxMessageBytes) {
      this.#idCounter -= 1;
      throw new RangeError(`the message is longer than the server takes (${this.#maxMessageBytes} bytes)`);
    }
    this.#pending.set(message.client_msg_id, message);
    const connection = this.#connection;
    if (connection?.admitted) this.#write(connection, frame);
    return message.client_msg_id;
  }

  /**
   * Joins a room (now if admitted, else on `ready`), and again after every
   * reconnect. Its messages arrive as `chat` events; `joined` confirms.
   *
   * @param {string} room
   */
  join(room) {
    const isNew = !this.#rooms.has(room);
    this.#admitRoom(room);
    const connection = this.#connection;
    if (isNew && connection?.admitted) this.#write(connection, JSON.stringify({ type: 'join', room }));
  }

  // === connection ===

  /** One connection attempt: a fresh token first, when there is a provider. */
  #open() {
    this.#timer = null;
    if (this.#tokenProvider === null) {
      this.#openSocket([SUBPROTOCOL]);
      return;
    }
    this.#tokenRequest += 1;
    const request = this.#tokenRequest;
    this.#setState('connecting', null);
    const current = () => !this.#stopped && request === this.#tokenRequest;
    let pending;
    try {
      pending = Promise.resolve(this.#tokenProvider());
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (token) => {
        if (!current()) return;
        const protocols = [SUBPROTOCOL];
        if (typeof token === 'string' && token !== '') protocols.push(`${BEARER_PREFIX}${token}`);
        try {
          this.#openSocket(protocols);
        } catch {
          // `#openSocket` turned offline already; nobody awaits this.
        }
      },
      (error) => {
        if (!current()) return;
        this.dispatchEvent(new CustomEvent('tokenerror', { detail: { error } }));
        this.#scheduleReconnect(this.#delay(null, false));
      },
    );
  }

  #openSocket(protocols) {
    let socket;
    try {
      socket = new this.#WebSocket(this.#url, protocols);
    } catch (error) {
      // Only a URL the platform refuses gets here (say, ws: from an https:
      // page): retrying cannot help.
      this.#stopped = true;
      this.#setState('offline', null);
      throw error;
    }
    const connection = {
      socket,
      opened: false,
      ended: false,
      admitted: false,
      askedMs: null,
      followAsked: false,
      left: false,
    };
    this.#connection = connection;
    socket.addEventListener('open', () => {
      connection.opened = true;
    });
    socket.addEventListener('message', (event) => this.#onMessage(connection, event));
    socket.addEventListener('close', (event) => this.#onClose(connection, event));
    // Browsers follow every `error` with `close`, where it is handled. Node
    // 20's WebSocket fires only `error` when the connection cannot be
    // opened (refused, bad handshake), so an error before `open` ends the
    // attempt here, as the 1006 close it stands for.
    socket.addEventListener('error', () => {
      if (!connection.opened) this.#onClose(connection, { code: 1006, reason: '', wasClean: false });
    });
    this.#setState('connecting', null);
  }

  /** @param {MessageEvent} event */
  #onMessage(connection, event) {
    if (connection !== this.#connection || connection.left) return;
    // `/ws` speaks JSON text only; anything else is not ours to read.
    if (typeof event.data !== 'string') return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message === null || typeof message !== 'object' || typeof message.type !== 'string') return;

    switch (message.type) {
      case 'warming':
        this.#emit(message);
        this.#setState('warming', null);
        return;
      case 'ready':
        this.#onReady(connection, message);
        return;
      case 'readiness':
        this.#emit(message);
        if (connection.admitted) this.#setState(admittedState(message), null);
        return;
      case 'unavailable':
        // The close (1013) follows; we reconnect when it arrives.
        connection.askedMs = isDelay(message.retry_after_ms) ? message.retry_after_ms : null;
        connection.followAsked = connection.askedMs !== null;
        this.#emit(message);
        return;
      case 'draining':
        this.#onDraining(connection, message);
        return;
      case 'ack':
        if (typeof message.client_msg_id === 'string') this.#pending.delete(message.client_msg_id);
        this.#emit(message);
        return;
      default:
        // chat, error, joined, and types added after this client.
        this.#emit(message);
    }
  }

  #onReady(connection, message) {
    connection.admitted = true;
    this.#attempt = 0;
    this.#connectionId = typeof message.connection_id === 'string' ? message.connection_id : null;
    // Rooms are per connection: join ours again (the server puts every
    // client in `lobby` by itself).
    for (const room of this.#rooms) {
      if (room !== DEFAULT_ROOM) this.#write(connection, JSON.stringify({ type: 'join', room }));
    }
    // Flush the queue and resend every un-acked message, oldest first, each
    // with its first `client_msg_id`: the server acks a repeat again with
    // the first id and does not deliver it twice.
    for (const pending of this.#pending.values()) this.#write(connection, chatFrame(pending));
    this.#emit(message);
    this.#setState(admittedState(message), null);
  }

  #onDraining(connection, message) {
    // The server goes away: stop sending (new messages queue), say when we
    // come back, and leave now rather than idle until its 1001 after
    // `drain_grace`; the protocol allows leaving first. Un-acked messages
    // are resent after the next `ready`.
    connection.admitted = false;
    connection.left = true;
    this.#emit(message);
    const asked = isDelay(message.reconnect_after_ms) ? message.reconnect_after_ms : null;
    this.#scheduleReconnect(this.#delay(asked, asked !== null));
    closeQuietly(connection.socket, CLOSE_NORMAL, 'server draining; reconnecting');
  }

  /** @param {{ code: number, reason: string, wasClean: boolean }} event a `CloseEvent`, or its stand-in */
  #onClose(connection, event) {
    if (connection !== this.#connection || connection.ended) return;
    connection.ended = true;
    const { code, reason, wasClean } = event;
    this.dispatchEvent(new CustomEvent('close', { detail: { code, reason, wasClean } }));
    // We left on our own (close(), or draining, already scheduled).
    if (connection.left || this.#stopped) return;
    connection.admitted = false;

    let delay;
    if (connection.followAsked) {
      // `unavailable`: come back exactly when asked.
      delay = this.#delay(connection.askedMs, true);
    } else if (code === CLOSE_TRY_AGAIN_LATER) {
      // 1013 without its `unavailable` frame: the server's default
      // `retry_after`, stretched by 0-50 % as the server does, and no
      // shorter than the backoff.
      delay = this.#delay(Math.round(DEFAULT_RETRY_AFTER_MS * (1 + this.#random() / 2)), false);
    } else {
      // Anything else (1001 without `draining`, as after unanswered pings;
      // a network failure; a refused connection): back off.
      delay = this.#delay(connection.askedMs, false);
    }
    this.#scheduleReconnect(delay);
  }

  /** The delay before the next attempt; see `reconnectDelay`. */
  #delay(askedMs, followAsked) {
    return reconnectDelay({
      attempt: this.#attempt,
      askedMs,
      followAsked,
      random: this.#random,
      baseBackoffMs: this.#baseBackoffMs,
      maxBackoffMs: this.#maxBackoffMs,
    });
  }

  /**
   * Turns `reconnecting` and connects again after `delay` ms. The timer is
   * checked against the clock when it fires and re-armed if it fired early
   * (timers may), so the server is never called back sooner than asked.
   */
  #scheduleReconnect(delay) {
    this.#cancelTimer();
    this.#attempt += 1;
    const due = this.#now() + delay;
    this.#setState('reconnecting', delay);
    const fire = () => {
      this.#timer = null;
      if (this.#stopped) return;
      const early = due - this.#now();
      if (early > 0) {
        this.#timer = this.#setTimeout(fire, Math.ceil(early));
        return;
      }
      this.#open();
    };
    this.#timer = this.#setTimeout(fire, delay);
  }

  #cancelTimer() {
    if (this.#timer !== null) {
      this.#clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  // === helpers ===

  /** Validates a room and remembers it for every later `ready`. */
  #admitRoom(room) {
    checkRoom(room);
    if (!this.#rooms.has(room) && this.#rooms.size >= MAX_ROOMS) {
      throw new RangeError(`a connection may be in at most ${MAX_ROOMS} rooms`);
    }
    this.#rooms.add(room);
  }

  /** Sends a frame on an open socket; a frame that cannot go is resent later. */
  #write(connection, frame) {
    try {
      connection.socket.send(frame);
    } catch {
      // The socket is closing: `close` follows, and un-acked messages are
      // resent after the next `ready`.
    }
  }

  /**
   * Dispatches a server frame: as an event named after its type when the
   * type is known (so a frame can never pose as `state` or `close`), and
   * always as `message`.
   */
  #emit(message) {
    if (KNOWN_TYPES.has(message.type)) {
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  #setState(state, retryInMs) {
    if (state === this.#state && retryInMs === this.#retryInMs) return;
    this.#state = state;
    this.#retryInMs = retryInMs;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, retryInMs } }));
  }
}

/** `ready` or `degraded`, from a `ready` or `readiness` frame. */
function admittedState(message) {
  return message.state === 'degraded' ? 'degraded' : 'ready';
}

/** The JSON text of a chat frame. */
function chatFrame({ client_msg_id, room, text }) {
  return JSON.stringify({ type: 'chat', room, text, client_msg_id });
}

/** Throws unless `room` is a room name the server accepts. */
function checkRoom(room) {
  if (typeof room !== 'string' || room.length === 0 || charCount(room) > MAX_ROOM_CHARS) {
    throw new RangeError(`a room name has 1 to ${MAX_ROOM_CHARS} characters, got ${JSON.stringify(room)}`);
  }
}

function closeQuietly(socket, code, reason) {
  try {
    socket.close(code, reason);
  } catch {
    // Already closed.
  }
}

export default WarmgateClient;
