// Type declarations for warmgate-client.js (the `warmgate.v1` protocol).

export type GateState = 'starting' | 'ready' | 'degraded' | 'not_ready' | 'failed' | 'draining';

export type ClientState = 'connecting' | 'warming' | 'ready' | 'degraded' | 'reconnecting' | 'offline';

export interface WarmingMessage {
  type: 'warming';
  state: GateState;
  phase: string | null;
  phases: string[];
  pending: string[];
  elapsed_ms: number;
  hold_remaining_ms: number;
  seq: number;
}

export interface ReadyMessage {
  type: 'ready';
  state: 'ready' | 'degraded';
  degraded: string[];
  waited_ms: number;
  connection_id: string;
  seq: number;
}

export interface ReadinessMessage {
  type: 'readiness';
  state: GateState;
  degraded: string[];
  seq: number;
}

export interface DrainingMessage {
  type: 'draining';
  reconnect_after_ms: number;
}

export interface UnavailableMessage {
  type: 'unavailable';
  reason: 'hold_timeout' | 'failed' | 'draining' | 'capacity';
  state: GateState;
  phase: string | null;
  pending: string[];
  retry_after_ms: number;
  unprocessed: number;
}

export interface ChatMessage {
  type: 'chat';
  room: string;
  id: string;
  from: string;
  text: string;
  ts_ms: number;
  client_msg_id?: string;
}

export interface AckMessage {
  type: 'ack';
  client_msg_id: string | null;
  id: string;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

export interface JoinedMessage {
  type: 'joined';
  room: string;
}

export interface StateDetail {
  state: ClientState;
  /** The wait before the next connect, while `reconnecting`; else null. */
  retryInMs: number | null;
}

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
  state: CustomEvent<StateDetail>;
}

export interface WarmgateClientOptions {
  /** The room `send` uses by default. Default `lobby`. */
  room?: string;
  WebSocket?: typeof WebSocket;
  random?: () => number;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** The first backoff cap after an unexpected close. Default 500 ms. */
  baseBackoffMs?: number;
  /** The largest backoff cap. Default 30 s. */
  maxBackoffMs?: number;
}

export declare const MESSAGE_TYPES: readonly string[];

export declare class WarmgateClient extends EventTarget {
  constructor(url: string, options?: WarmgateClientOptions);
  readonly url: string;
  readonly state: ClientState;
  readonly pending: PendingMessage[];
  connect(): this;
  close(): void;
  /** Queues or sends a chat message; returns its client_msg_id. */
  send(text: string, room?: string): string;
  backoffDelay(attempt: number): number;
  addEventListener<K extends keyof WarmgateClientEventMap>(
    type: K,
    listener: (event: WarmgateClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

export default WarmgateClient;
