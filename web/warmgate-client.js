// warmgate-client.js: the warmgate protocol (`warmgate.v1`) for browsers
// and Node, as an ES module with no dependencies and no build step.
//
// The client is ready only when the server says `ready`, never on `open`.
// Messages sent before that wait in a queue; every chat message is tracked
// by its `client_msg_id` until its `ack`, and resent after a reconnect
// (the server delivers a resent id once). Reconnection never comes sooner
// than the server asked: `retry_after_ms` after `unavailable`,
// `reconnect_after_ms` after `draining`, and otherwise exponential backoff
// with full jitter. See docs/protocol.md.

/** Close codes with a meaning for reconnection. */
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TRY_AGAIN_LATER = 1013;

/** The server message types, each dispatched as an event of that name. */
export const MESSAGE_TYPES = [
  'warming',
  'ready',
  'readiness',
  'draining',
  'unavailable',
  'chat',
  'ack',
  'error',
  'joined',
];

export class WarmgateClient extends EventTarget {
  /**
   * @param {string} url the `/ws` URL, `ws://` or `wss://`
   * @param {object} [options]
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.room = options.room ?? 'lobby';
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.random = options.random ?? Math.random;
    this.setTimeout = options.setTimeout ?? globalThis.setTimeout.bind(globalThis);
    this.clearTimeout = options.clearTimeout ?? globalThis.clearTimeout.bind(globalThis);
    this.baseBackoffMs = options.baseBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;

    this._state = 'offline';
    this._socket = null;
    this._timer = null;
    this._closed = false;
    this._admitted = false;
    this._leaveAfterEvent = false;
    this._attempt = 0;
    /** The delay the server asked for before the next connect, if any. */
    this._askedDelayMs = null;
    /** Messages not yet acked, in send order. */
    this._unacked = new Map();
    /** Ids of unacked messages sent on the current connection. */
    this._sentHere = new Set();
    this._prefix = `c-${Math.floor(this.random() * 2 ** 32).toString(36)}-${Date.now().toString(36)}`;
    this._counter = 0;
  }

  /** `connecting`, `warming`, `ready`, `degraded`, `reconnecting` or `offline`. */
  get state() {
    return this._state;
  }

  /** Un-acked messages, oldest first. */
  get pending() {
    return [...this._unacked.values()];
  }

  /** Opens the connection (again, after `close()`). */
  connect() {
    this._closed = false;
    this._open();
    return this;
  }

  /** Closes for good: no reconnection. */
  close() {
    this._closed = true;
    if (this._timer !== null) {
      this.clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._socket) {
      this._socket.close(1000);
      this._socket = null;
    }
    this._setState('offline', null);
  }

  /**
   * Sends a chat message now if admitted, else when `ready` arrives.
   * Returns its `client_msg_id`.
   */
  send(text, room = this.room) {
    this._counter += 1;
    const message = { client_msg_id: `${this._prefix}-${this._counter}`, room, text };
    this._unacked.set(message.client_msg_id, message);
    if (this._admitted) this._transmit(message);
    return message.client_msg_id;
  }

  /**
   * The wait before reconnect attempt `attempt` (0-based) with nothing
   * asked by the server: full jitter over an exponential cap.
   */
  backoffDelay(attempt) {
    const cap = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** attempt);
    return Math.floor(this.random() * cap);
  }

  // === internals ===

  _open() {
    if (this._timer !== null) {
      this.clearTimeout(this._timer);
      this._timer = null;
    }
    this._admitted = false;
    this._sentHere.clear();
    this._askedDelayMs = null;
    this._setState('connecting', null);
    let socket;
    try {
      socket = new this.WebSocket(this.url, 'warmgate.v1');
    } catch (error) {
      this._dispatch('error', { code: 'connect_failed', message: String(error) });
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    socket.addEventListener('message', (event) => {
      if (socket === this._socket) this._onMessage(event.data);
    });
    socket.addEventListener('close', (event) => {
      if (socket === this._socket) this._onClose(event.code);
    });
  }

  _onMessage(data) {
    let message;
    try {
      message = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      this._dispatch('error', { code: 'invalid_frame', message: 'the server sent a frame that is not JSON' });
      return;
    }
    // The message's own event first, so a `state` listener already knows
    // what the message said (the pending checks, the degraded ones).
    if (MESSAGE_TYPES.includes(message.type)) this._dispatch(message.type, message);
    switch (message.type) {
      case 'warming':
        this._setState('warming', null);
        break;
      case 'ready':
        this._admitted = true;
        this._attempt = 0;
        this._setState(message.state === 'degraded' ? 'degraded' : 'ready', null);
        // Only now do queued and un-acked messages go out.
        this._flush();
        break;
      case 'readiness':
        if (this._admitted) {
          this._setState(message.state === 'degraded' ? 'degraded' : 'ready', null);
        }
        break;
      case 'draining':
        // The server closes with 1001 only after its grace; leave now and
        // come back after the delay it asked (to another instance).
        this._askedDelayMs = message.reconnect_after_ms ?? null;
        this._leaveAfterEvent = true;
        break;
      case 'unavailable':
        this._askedDelayMs = message.retry_after_ms ?? null;
        break;
      case 'ack':
        this._unacked.delete(message.client_msg_id);
        this._sentHere.delete(message.client_msg_id);
        break;
      default:
        break;
    }
    if (this._leaveAfterEvent) {
      this._leaveAfterEvent = false;
      const socket = this._socket;
      this._onClose(CLOSE_GOING_AWAY);
      socket?.close(1000);
    }
  }

  _onClose(code) {
    this._socket = null;
    this._admitted = false;
    if (this._closed) return;
    let delay;
    if (this._askedDelayMs !== null && (code === CLOSE_TRY_AGAIN_LATER || code === CLOSE_GOING_AWAY)) {
      // `unavailable` then 1013, or `draining` then 1001: exactly as asked.
      delay = this._askedDelayMs;
    } else {
      delay = this.backoffDelay(this._attempt);
      // Never sooner than anything the server asked on this connection.
      if (this._askedDelayMs !== null) delay = Math.max(delay, this._askedDelayMs);
      this._attempt += 1;
    }
    this._scheduleReconnect(delay);
  }

  _scheduleReconnect(delay = this.backoffDelay(this._attempt++)) {
    if (this._closed) return;
    this._setState('reconnecting', delay);
    this._timer = this.setTimeout(() => {
      this._timer = null;
      if (!this._closed) this._open();
    }, delay);
  }

  /** Sends every un-acked message not yet sent on this connection. */
  _flush() {
    for (const message of this._unacked.values()) {
      if (!this._sentHere.has(message.client_msg_id)) this._transmit(message);
    }
  }

  _transmit(message) {
    if (!this._socket || !this._admitted) return;
    this._sentHere.add(message.client_msg_id);
    this._socket.send(JSON.stringify({ type: 'chat', ...message }));
  }

  _setState(state, retryInMs) {
    this._state = state;
    this._dispatch('state', { state, retryInMs });
  }

  _dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

export default WarmgateClient;
