// The chat page served by warmgate at `/`.
//
// A banner that always says where the connection stands, and a chat whose
// messages typed before the gate is ready show as pending until their
// `ack`. Every piece of the protocol (admission, queueing, resending,
// reconnecting) lives in warmgate-client.js; this file only draws.

import { WarmgateClient, DEFAULT_ROOM } from './warmgate-client.js';

const statusBanner = document.querySelector('#status');
const progress = document.querySelector('#progress');
const phaseList = document.querySelector('#phases');
const holdLine = document.querySelector('#hold');
const notice = document.querySelector('#notice');
const conversation = document.querySelector('#conversation');
const messageList = document.querySelector('#messages');
const composer = document.querySelector('#composer');
const roomInput = document.querySelector('#room');
const textInput = document.querySelector('#text');

/** `ws:` for `http:`, `wss:` for `https:`, the same host, path `/ws`. */
function socketUrl(page) {
  const scheme = page.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${page.host}/ws`;
}

/** A duration in seconds with one decimal: `2.1 s`. */
function seconds(ms) {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

/** The room typed in the room field, or `lobby`. */
function currentRoom() {
  return roomInput.value.trim() || DEFAULT_ROOM;
}

// A page that signs its users in defines `window.warmgateToken` (a function
// returning a JWT, or a promise of one) before loading this script; each
// connection attempt asks it for a fresh token. Without one, a token stored
// in `sessionStorage` under `warmgate.token` is used, which is how a
// developer tries the page against a gateway that asks for tokens.
const tokenProvider =
  typeof globalThis.warmgateToken === 'function'
    ? globalThis.warmgateToken
    : () => globalThis.sessionStorage?.getItem('warmgate.token') ?? null;
const client = new WarmgateClient(socketUrl(location), { room: currentRoom(), token: tokenProvider });

// === what the banner knows ===

const view = {
  /** The client's state and, while reconnecting, the wait. */
  state: client.state,
  retryInMs: null,
  /** Why the last connection ended: `unavailable`, `draining`, or null. */
  cause: null,
  /** The newest `warming` frame. */
  warming: null,
  /** The gate's state and degraded checks, from `ready` and `readiness`. */
  gateState: null,
  degraded: [],
};

/** The banner's text for what is known now. */
function bannerText() {
  switch (view.state) {
    case 'warming': {
      const pending = view.warming?.pending ?? [];
      const elapsed = seconds(view.warming?.elapsed_ms ?? 0);
      return pending.length > 0 ? `Warming up: waiting for ${pending.join(', ')} (${elapsed})` : `Warming up (${elapsed})`;
    }
    case 'ready':
      // Admitted clients stay connected through `not_ready`; say so.
      return view.gateState === 'not_ready' ? 'Connected, but the server is not ready: messages may be delayed' : 'Connected';
    case 'degraded':
      return view.degraded.length > 0
        ? `Degraded: ${view.degraded.join(', ')} unavailable, messages may be delayed`
        : 'Degraded: messages may be delayed';
    case 'reconnecting': {
      const wait = seconds(view.retryInMs ?? 0);
      if (view.cause === 'draining') return `Server restarting, reconnecting in ${wait}`;
      if (view.cause === 'unavailable') return `Unavailable, retrying in ${wait}`;
      return `Connection lost, reconnecting in ${wait}`;
    }
    case 'offline':
      return 'Offline';
    default:
      return 'Connecting…';
  }
}

/** Draws the banner and the startup steps from `view`. */
function render() {
  statusBanner.dataset.state = view.state;
  const text = bannerText();
  // Only real changes reach the live region.
  if (statusBanner.textContent !== text) statusBanner.textContent = text;
  renderProgress();
}

/** The phases as steps (the current one highlighted) and the hold left. */
function renderProgress() {
  const warming = view.state === 'warming' ? view.warming : null;
  const phases = warming?.phases ?? [];
  progress.hidden = warming === null;
  if (warming === null) return;
  phaseList.hidden = phases.length === 0;
  const current = phases.indexOf(warming.phase);
  phaseList.replaceChildren(
    ...phases.map((name, index) => {
      const step = document.createElement('li');
      step.textContent = name;
      if (index === current) {
        step.className = 'current';
        step.setAttribute('aria-current', 'step');
      } else if (current >= 0 && index < current) {
        step.className = 'done';
      }
      return step;
    }),
  );
  holdLine.textContent = `Your place is held for ${seconds(warming.hold_remaining_ms ?? 0)} more.`;
}

client.addEventListener('state', ({ detail }) => {
  view.state = detail.state;
  view.retryInMs = detail.retryInMs;
  // A new attempt: whatever ended the previous one is over.
  if (detail.state === 'connecting') view.cause = null;
  render();
});
client.addEventListener('warming', ({ detail }) => {
  view.warming = detail;
  render();
});
client.addEventListener('ready', ({ detail }) => {
  view.gateState = detail.state;
  view.degraded = detail.degraded ?? [];
  view.warming = null;
  render();
});
client.addEventListener('readiness', ({ detail }) => {
  view.gateState = detail.state;
  view.degraded = detail.degraded ?? [];
  render();
});
client.addEventListener('unavailable', ({ detail }) => {
  // Held clients of a draining server are refused with reason `draining`.
  view.cause = detail.reason === 'draining' ? 'draining' : 'unavailable';
  render();
});
client.addEventListener('draining', () => {
  view.cause = 'draining';
  render();
});
client.addEventListener('error', ({ detail }) => {
  showNotice(`The server said: ${detail.message}`);
});

// === the chat ===

/** Our own messages on screen, by `client_msg_id`. */
const ownMessages = new Map();

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = false;
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = '';
}

/** True when the newest message is in view, so a new one may scroll. */
function atBottom() {
  return conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 48;
}

function span(className, text) {
  const element = document.createElement('span');
  element.className = className;
  element.textContent = text;
  return element;
}

/** Sets a message's time from the server's `ts_ms`, or from now. */
function setTime(item, tsMs) {
  const time = item.querySelector('time');
  const at = new Date(tsMs ?? Date.now());
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * Appends a message to the list. Text goes in as text, never as markup.
 *
 * @param {{ text: string, room: string, author: string, tsMs?: number, clientMsgId?: string, pending?: boolean }} message
 */
function appendMessage({ text, room, author, tsMs, clientMsgId, pending = false }) {
  const follow = atBottom();
  const item = document.createElement('li');
  item.className = pending ? 'message pending' : 'message';
  if (clientMsgId) item.dataset.clientMsgId = clientMsgId;

  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.append(span('author', author), span('room', `#${room}`), document.createElement('time'));
  if (clientMsgId) meta.append(span('delivery', pending ? 'pending' : 'sent'));
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  item.append(meta, body);
  setTime(item, tsMs);

  messageList.append(item);
  if (follow) item.scrollIntoView({ block: 'end' });
  return item;
}

client.addEventListener('ack', ({ detail }) => {
  const item = ownMessages.get(detail.client_msg_id);
  if (!item) return;
  item.className = 'message sent';
  item.dataset.id = detail.id;
  item.querySelector('.delivery').textContent = 'sent';
});

client.addEventListener('chat', ({ detail }) => {
  // Our own message comes back to us: it is on screen already.
  const own = detail.client_msg_id ? ownMessages.get(detail.client_msg_id) : undefined;
  if (own) {
    setTime(own, detail.ts_ms);
    return;
  }
  appendMessage({
    text: detail.text,
    room: detail.room,
    author: detail.from === client.connectionId ? 'You' : detail.from ?? 'someone',
    tsMs: detail.ts_ms,
  });
});

composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = textInput.value.trim();
  if (text === '') return;
  const room = currentRoom();
  let clientMsgId;
  try {
    clientMsgId = client.send(text, room);
  } catch (error) {
    // A bad room name, a 17th room, or a message too long for the server.
    showNotice(error.message);
    return;
  }
  clearNotice();
  ownMessages.set(clientMsgId, appendMessage({ text, room, author: 'You', clientMsgId, pending: true }));
  textInput.value = '';
  textInput.focus();
});

// Join a room as soon as it is chosen, to see its messages before
// writing there; the client joins it again after every reconnect.
roomInput.addEventListener('change', () => {
  try {
    client.join(currentRoom());
    clearNotice();
  } catch (error) {
    showNotice(error.message);
  }
});

client.connect();
render();
