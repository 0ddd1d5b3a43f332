// Type declarations for warmgate-client.js: the browser client of the
// warmgate WebSocket protocol (`warmgate.v1`, docs/protocol.md).

/** The gate's state, as the server reports it. */
export type GateState = 'starting' | 'ready' | 'degraded' | 'not_ready' | 'failed' | 'draining';

/** The client's own state, reported by the `state` event. */
export type ClientState = 'connecting' | 'warming' | 'ready' | 'degraded' | 'reconnecting' | 'offline';

// === server to client ===

/** Sent to a held client at once, on every readiness change, and every `warming_interval`. */
export interface WarmingMessage {
  type: 'warming';
  /** `starting`, `not_ready` or `failed` while held. */
  state: GateState;
  /** The current startup phase while `starting`, else null. */
  phase: string | null;
  /** Every phase that has checks, in order: the steps of startup. */
  phases: string[];
  /** The required checks not yet passing. */
  pending: string[];
  /** Time since the gate started. */
  elapsed_ms: number;
  /** How much longer this client will be held. */
  hold_remaining_ms: number;
  /** The readiness snapshot's sequence number (a heartbeat repeats it). */
  seq: number;
}

/** Sent once, on admission. */
export interface ReadyMessage {
  type: 'ready';
  state: 'ready' | 'degraded';
  /** The optional checks that are down (when `state` is `degraded`). */
  degraded: string[];
  /** How long the client was held; 0 when the gate was ready at connect. */
  waited_ms: number;
  /** This connection's id: the `from` of its chat messages without `[auth]` (with it, the token's `sub` is). */
  connection_id: string;
  seq: number;
}

/** Why a client was not admitted. */
export type UnavailableReason = 'hold_timeout' | 'failed' | 'draining' | 'capacity';

/** Sent to a client that is not admitted, just before close 1013. */
export interface UnavailableMessage {
  type: 'unavailable';
  reason: UnavailableReason;
  state: GateState;
  phase: string | null;
  pending: string[];
  /** When to come back (already jittered by the server); never sooner. */
  retry_after_ms: number;
  /** Messages sent while held that were never processed. */
  unprocessed: number;
}

/** Sent to admitted clients whenever the state or the degraded list changes. */
export interface ReadinessMessage {
  type: 'readiness';
  state: GateState;
  degraded: string[];
  seq: number;
}

/** The server is shutting down; close 1001 follows after `drain_grace`. */
export interface DrainingMessage {
  type: 'draining';
  /** When to reconnect (to another instance). */
  reconnect_after_ms: number;
}

export type ErrorCode =
  | 'invalid_message'
  | 'buffer_full'
  | 'unsupported_binary'
  | 'lagged'
  | 'rate_limited'
  | 'token_expired';

/** A refused message or a missed one; the connection stays open. */
export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The refused message's id, when the error is about one message. */
  client_msg_id?: string;
}

/** A message in a room this connection is in (our own included). */
export interface ChatMessage {
  type: 'chat';
  room: string;
  /** The server's id for the message. */
  id: string;
  /** The sender's `connection_id`. */
  from: string;
  text: string;
  /** Unix time in milliseconds. */
  ts_ms: number;
  /** The sender's own id for the message, when it gave one. */
  client_msg_id?: string;
}

/** Confirms one of our chat messages. */
export interface AckMessage {
  type: 'ack';
  /** Our id for the message, or null when we gave none. */
  client_msg_id: string | null;
  /** The server's id (the first one's, for a resent message). */
  id: string;
}

/** Confirms a `join`. */
export interface JoinedMessage {
  type: 'joined';
  room: string;
}

/** Every frame the server sends on `/ws`. */
export type ServerMessage =
  | WarmingMessage
  | ReadyMessage
  | UnavailableMessage
  | ReadinessMessage
  | DrainingMessage
  | ErrorMessage
  | ChatMessage
  | AckMessage
  | JoinedMessage;

export type ServerMessageType = ServerMessage['type'];

// === client to server ===

export interface ChatRequest {
  type: 'chat';
  room?: string;
  text: string;
  client_msg_id?: string;
}

export interface JoinRequest {
  type: 'join';
  room: string;
}

export type ClientMessage = ChatRequest | JoinRequest;

// === the client ===

/** `detail` of the `state` event. */
export interface StateDetail {
  state: ClientState;
  /** The delay before the next attempt while `reconnecting`, else null. */
  retryInMs: number | null;
}

/** `detail` of the `close` event: the WebSocket closed. */
export interface CloseDetail {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** A chat message not acked yet (queued or in flight). */
export interface PendingMessage {
  client_msg_id: string;
  room: string;
  text: string;
}

export interface WarmgateClientEventMap {
  warming: CustomEvent<WarmingMessage>;
  ready: CustomEvent<ReadyMessage>;
  readiness: CustomEvent<ReadinessMessage>;
  draining: CustomEvent<DrainingMessage>;
  unavailable: CustomEvent<UnavailableMessage>;
  chat: CustomEvent<ChatMessage>;
  ack: CustomEvent<AckMessage>;
  error: CustomEvent<ErrorMessage>;
  joined: CustomEvent<JoinedMessage>;
  /** Every server frame, including types newer than this client. */
  message: CustomEvent<ServerMessage | { type: string; [field: string]: unknown }>;
  state: CustomEvent<StateDetail>;
  close: CustomEvent<CloseDetail>;
  /** The token provider threw or rejected; the client backs off and retries. */
  tokenerror: CustomEvent<{ error: unknown }>;
}

/** What the client needs of a WebSocket implementation. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string; wasClean: boolean }) => void): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface WarmgateClientOptions {
  /** The default room of `send()`, joined on every `ready`. Default `lobby`. */
  room?: string;
  /** The WebSocket implementation. Default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** The jitter's source, in [0, 1]. Default `Math.random`. */
  random?: () => number;
  /** Default `globalThis.setTimeout`. */
  setTimeout?: (callback: () => void, ms: number) => unknown;
  /** Default `globalThis.clearTimeout`. */
  clearTimeout?: (handle: any) => void;
  /**
   * A monotonic clock in milliseconds (default `performance.now()`): a
   * reconnect timer that fires early is re-armed until this clock says the
   * delay has passed. Inject it together with `setTimeout`.
   */
  now?: () => number;
  /** The largest backoff. Default 30000 ms. */
  maxBackoffMs?: number;
  /** The backoff's first ceiling. Default 500 ms. */
  baseBackoffMs?: number;
  /** The server's `max_message_bytes`: `send()` refuses larger frames. Default 65536. */
  maxMessageBytes?: number;
  /**
   * Called before every connection attempt for a fresh token (a JWT), sent
   * as the subprotocol `bearer.<token>` beside `warmgate.v1`. A provider
   * that throws or rejects fires `tokenerror` and the client backs off.
   */
  token?: () => string | null | undefined | Promise<string | null | undefined>;
}

type Listener<E> = ((this: WarmgateClient, event: E) => void) | { handleEvent(event: E): void };

export declare class WarmgateClient extends EventTarget {
  constructor(url: string | URL, options?: WarmgateClientOptions);

  /** The URL this client connects to. */
  readonly url: string;
  /** The default room of `send()`. */
  readonly room: string;
  /** The client's state. */
  readonly state: ClientState;
  /** The delay before the next attempt while `reconnecting`, else null. */
  readonly retryInMs: number | null;
  /** This connection's id, once admitted: the `from` of our chat messages without `[auth]` (with it, the token's `sub` is). */
  readonly connectionId: string | null;
  /** Every chat message not acked yet, oldest first (copies). */
  readonly pending: PendingMessage[];

  /** Starts connecting; does nothing while connected or scheduled. */
  connect(): void;
  /** Stops for good (no reconnect), and turns `offline`. */
  close(code?: number, reason?: string): void;
  /**
   * Sends a chat message, or queues it until `ready`; it is resent with the
   * same id after a reconnect until acked. Returns its `client_msg_id`.
   * Throws a `RangeError` for a bad room name, a 17th room, or a message
   * over `maxMessageBytes`.
   */
  send(text: string, room?: string): string;
  /** Joins a room, now or on `ready`, and again after every reconnect. */
  join(room: string): void;

  addEventListener<K extends keyof WarmgateClientEventMap>(
    type: K,
    listener: Listener<WarmgateClientEventMap[K]> | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof WarmgateClientEventMap>(
    type: K,
    listener: Listener<WarmgateClientEventMap[K]> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** `warmgate.v1`, offered on every connection. */
export declare const SUBPROTOCOL: 'warmgate.v1';
export declare const BEARER_PREFIX: 'bearer.';
/** `lobby`: every client is in it from admission. */
export declare const DEFAULT_ROOM: 'lobby';
export declare const MAX_ROOM_CHARS: 64;
export declare const MAX_ROOMS: 16;
/** The delay after a 1013 whose `unavailable` frame was missed (before jitter). */
export declare const DEFAULT_RETRY_AFTER_MS: 2000;
export declare const DEFAULT_MAX_MESSAGE_BYTES: 65536;
/** Every server frame type, each dispatched as an event of the same name. */
export declare const SERVER_MESSAGE_TYPES: readonly ServerMessageType[];

/**
 * Exponential backoff with full jitter:
 * `round(random() * min(maxBackoffMs, baseBackoffMs * 2 ** attempt))`.
 */
export declare function backoffDelay(
  attempt: number,
  options?: { random?: () => number; baseBackoffMs?: number; maxBackoffMs?: number },
): number;

/**
 * The delay before the next attempt: `askedMs` itself when `followAsked`
 * (the server said when to come back), else the backoff but never less
 * than `askedMs`.
 */
export declare function reconnectDelay(plan: {
  attempt: number;
  askedMs?: number | null;
  followAsked?: boolean;
  random?: () => number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}): number;

export default WarmgateClient;
