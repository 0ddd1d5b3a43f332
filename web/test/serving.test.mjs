// The serving line's reader (./gateway.mjs), on lines as warmgate and the
// benchmark servers print them and on lines that are not; no program runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseServingLine } from './gateway.mjs';

test("warmgate's line names both listeners", () => {
  assert.deepEqual(parseServingLine('warmgate: serving http://127.0.0.1:8080 (admin http://127.0.0.1:9090)\n'), {
    name: 'warmgate',
    publicAddress: '127.0.0.1:8080',
    adminAddress: '127.0.0.1:9090',
  });
});

test("a benchmark server's line names one listener", () => {
  assert.deepEqual(parseServingLine('warmgate-reference: serving http://[::1]:41234'), {
    name: 'warmgate-reference',
    publicAddress: '[::1]:41234',
    adminAddress: undefined,
  });
});

test('anything else is refused, naming the line', () => {
  for (const line of [
    '',
    'listening on 127.0.0.1:8080',
    'warmgate: serving https://127.0.0.1:8080',
    'two words: serving http://127.0.0.1:8080',
    'warmgate: serving http://localhost:8080',
    'warmgate: serving http://127.0.0.1',
    'warmgate: serving http://127.0.0.1:8080 (admin http://127.0.0.1:9090',
    'backend: serving http://127.0.0.1:8000 (WebSockets on ws://127.0.0.1:8000/ws)',
  ]) {
    assert.throws(
      () => parseServingLine(line),
      (error) => error.message.startsWith('not a serving line') && error.message.includes(JSON.stringify(line)),
      line,
    );
  }
});
