// The chat page: a banner that always says where the connection stands,
// and a chat whose messages typed while warming show as pending until
// their `ack`. All protocol work is in warmgate-client.js.

import { WarmgateClient } from './warmgate-client.js';

const status = document.querySelector('#status');
const phases = document.querySelector('#phases');
const list = document.querySelector('#messages');
const form = document.querySelector('#compose');
const roomInput = document.querySelector('#room');
const textInput = document.querySelector('#text');

const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const client = new WarmgateClient(`${scheme}//${location.host}/ws`);

/** Why the client is reconnecting: `draining` or `unavailable`. */
let lastRefusal = null;
/** The newest `warming` message, for the banner's names and clock. */
let warming = null;
/** The optional checks that are down, while degraded. */
let degraded = [];
/** Our own messages on screen, by client_msg_id. */
const shown = new Map();

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

function banner(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function showPhases(message) {
  const names = message?.phases ?? [];
  phases.hidden = names.length === 0;
  phases.replaceChildren(
    ...names.map((name) => {
      const item = document.createElement('li');
      item.textContent = name;
      const current = names.indexOf(message.phase);
      const index = names.indexOf(name);
      if (index === current) item.setAttribute('aria-current', 'step');
      else if (current >= 0 && index < current) item.className = 'done';
      return item;
    }),
  );
}

/** The client's state and, while reconnecting, the wait before the next try. */
let current = { state: 'connecting', retryInMs: null };

/** Draws the banner from everything known; called on every change. */
function render() {
  switch (current.state) {
    case 'connecting':
      banner('connecting', 'Connecting…');
      break;
    case 'warming': {
      const pending = warming?.pending?.length ? warming.pending.join(', ') : 'startup';
      banner('warming', `Warming up: waiting for ${pending} (${seconds(warming?.elapsed_ms ?? 0)})`);
      break;
    }
    case 'ready':
      banner('ready', 'Connected');
      break;
    case 'degraded':
      banner('degraded', `Degraded: ${degraded.join(', ') || 'a dependency'} unavailable, messages may be delayed`);
      break;
    case 'reconnecting': {
      const wait = seconds(current.retryInMs ?? 0);
      if (lastRefusal === 'draining') banner('reconnecting', `Server restarting, reconnecting in ${wait}`);
      else if (lastRefusal === 'unavailable') banner('reconnecting', `Unavailable, retrying in ${wait}`);
      else banner('reconnecting', `Connection lost, reconnecting in ${wait}`);
      break;
    }
    default:
      banner('offline', 'Offline');
  }
}

client.addEventListener('warming', ({ detail }) => {
  warming = detail;
  showPhases(detail);
  render();
});
client.addEventListener('ready', ({ detail }) => {
  degraded = detail.degraded ?? [];
  lastRefusal = null;
  phases.hidden = true;
});
client.addEventListener('readiness', ({ detail }) => {
  degraded = detail.degraded ?? [];
  render();
});
client.addEventListener('draining', () => {
  lastRefusal = 'draining';
});
client.addEventListener('unavailable', ({ detail }) => {
  lastRefusal = detail.reason === 'draining' ? 'draining' : 'unavailable';
});
client.addEventListener('state', ({ detail }) => {
  current = detail;
  render();
});

function addMessage({ text, room, from, pending, clientMsgId }) {
  const item = document.createElement('li');
  item.className = pending ? 'message pending' : 'message';
  if (clientMsgId) item.dataset.clientMsgId = clientMsgId;
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = from ? `${from} · ${room}` : `you · ${room}`;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  item.append(meta, body);
  list.append(item);
  item.scrollIntoView({ block: 'end' });
  return item;
}

client.addEventListener('ack', ({ detail }) => {
  const item = shown.get(detail.client_msg_id);
  if (item) item.className = 'message sent';
});

client.addEventListener('chat', ({ detail }) => {
  // Our own message comes back too: it is already on screen.
  if (detail.client_msg_id && shown.has(detail.client_msg_id)) return;
  addMessage({ text: detail.text, room: detail.room, from: detail.from });
});

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = textInput.value.trim();
  const room = roomInput.value.trim() || 'lobby';
  if (!text) return;
  const clientMsgId = client.send(text, room);
  shown.set(clientMsgId, addMessage({ text, room, pending: true, clientMsgId }));
  textInput.value = '';
});

client.connect();
