// Starts the real warmgate program for the web tests and drives its admin
// API. The program is the one named by WARMGATE_BIN (`cargo xtask web-test`
// sets it); it listens on free loopback ports unless told otherwise, with a
// plan written to a temporary directory.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** A plan that holds every client until the signal `app` is set. */
export const HELD_CONFIG = `[gate]
hold_timeout = "60s"

[[phase]]
name = "services"

[[phase.check]]
name = "app"
kind = "signal"
`;

/** The same plan, but a held client is refused after 300 ms. */
export const SHORT_HOLD_CONFIG = HELD_CONFIG.replace('hold_timeout = "60s"', 'hold_timeout = "300ms"');

/** The HMAC secret of `AUTH_CONFIG`, given to warmgate through the environment. */
export const AUTH_SECRET = 'web-tests-only-secret-0123456789abcdef';

/** A plan that is ready at once and asks every client for an HS256 JWT. */
export const AUTH_CONFIG = `[auth]
mode = "jwt"
algorithms = ["HS256"]
secret_env = "WARMGATE_WEB_TEST_SECRET"
leeway = "0s"
`;

/** The environment `AUTH_CONFIG` needs. */
export const AUTH_ENV = { WARMGATE_WEB_TEST_SECRET: AUTH_SECRET };

/**
 * An HS256 JWT for `sub`, signed with `AUTH_SECRET`, valid for
 * `lifetimeSeconds`.
 */
export function hs256Token(sub, lifetimeSeconds = 300, secret = AUTH_SECRET) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub, iat: now, exp: now + lifetimeSeconds })}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** A loopback port that was free a moment ago. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The serving line, the first line a server of this project prints on
 * stdout: `NAME: serving http://ADDR`, then ` (admin http://ADDR)` for
 * warmgate (docs/observability.md). Rust reads it with
 * `warmgate_devservers::serving`; keep the two alike.
 */
const ADDRESS = String.raw`(?:\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}`;
const SERVING = new RegExp(String.raw`^(\S+): serving http://(${ADDRESS})(?: \(admin http://(${ADDRESS})\))?$`);

/**
 * Reads a serving line.
 *
 * @param {string} line the line, with or without its line break
 * @returns {{ name: string, publicAddress: string, adminAddress: string | undefined }}
 *   each address as `HOST:PORT` (`[::1]:PORT` for IPv6)
 * @throws {Error} naming the line, when it is not a serving line
 */
export function parseServingLine(line) {
  const match = SERVING.exec(line.trimEnd());
  if (!match) {
    throw new Error(
      `not a serving line ("NAME: serving http://ADDR", then " (admin http://ADDR)" for warmgate): ${JSON.stringify(line)}`,
    );
  }
  const [, name, publicAddress, adminAddress] = match;
  return { name, publicAddress, adminAddress };
}

/** How long warmgate may take to say where it serves. */
const START_TIMEOUT_MS = 15_000;

/** How long `stop()` waits after SIGTERM before SIGKILL (drain_grace is 7 s by default, plus the 1 s close margin). */
const STOP_TIMEOUT_MS = 12_000;

/** Every program started and not yet exited, killed if the tests end first. */
const running = new Set();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * @typedef {object} Gateway
 * @property {string} publicUrl `http://HOST:PORT/`, where the page is served
 * @property {string} adminUrl `http://HOST:PORT` of the admin listener
 * @property {string} wsUrl `ws://HOST:PORT/ws`
 * @property {string} publicAddress `HOST:PORT` of the public listener
 * @property {string} adminAddress `HOST:PORT` of the admin listener
 * @property {(name: string, ready: boolean) => Promise<void>} setSignal
 * @property {() => Promise<void>} drain `POST /drain` (the same as SIGTERM)
 * @property {() => Promise<{ code: number | null, signal: string | null }>} exited resolves when the process exits
 * @property {() => Promise<{ code: number | null, signal: string | null }>} stop SIGTERM, then the exit
 * @property {() => string} log what the program wrote on stderr so far
 */

/**
 * Starts warmgate and resolves once it says where it serves.
 *
 * @param {object} [options]
 * @param {string} [options.config] the plan (TOML); empty for one that is ready at once
 * @param {string} [options.listen] the public address, `127.0.0.1:0` by default
 * @param {string} [options.adminListen] the admin address, `127.0.0.1:0` by default
 * @param {Record<string, string>} [options.env] more environment variables
 * @returns {Promise<Gateway>}
 */
export async function startGateway({
  config = HELD_CONFIG,
  listen = '127.0.0.1:0',
  adminListen = '127.0.0.1:0',
  env = {},
} = {}) {
  const program = process.env.WARMGATE_BIN;
  if (!program) {
    throw new Error(
      'WARMGATE_BIN is not set: these tests run against the real warmgate program. ' +
        'Build it (cargo build -p warmgate) and run, from the repository root: ' +
        'WARMGATE_BIN=target/debug/warmgate node --experimental-websocket --test web/test/',
    );
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'warmgate-web-'));
  const configPath = path.join(dir, 'warmgate.toml');
  writeFileSync(configPath, config);

  const child = spawn(program, ['--config', configPath, '--listen', listen, '--admin-listen', adminListen], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  running.add(child);
  // Keep reading stderr (the log) so the program never blocks on a full
  // pipe; its tail explains a failure.
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    log = (log + chunk).slice(-64 * 1024);
  });
  const exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal });
    });
  });

  let serving;
  try {
    serving = await firstLine(child, exit, () => log);
  } catch (error) {
    child.kill('SIGKILL');
    await exit;
    throw error;
  }
  let publicAddress;
  let adminAddress;
  try {
    const line = parseServingLine(serving);
    if (line.name !== 'warmgate' || line.adminAddress === undefined) {
      throw new Error(`not warmgate's serving line (with its admin address): ${JSON.stringify(serving)}`);
    }
    ({ publicAddress, adminAddress } = line);
  } catch (error) {
    child.kill('SIGKILL');
    await exit;
    throw error;
  }
  const adminUrl = `http://${adminAddress}`;

  /** POSTs to the admin listener and checks the status. */
  async function post(pathname, body, expected) {
    const response = await fetch(`${adminUrl}${pathname}`, {
      method: 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status !== expected) {
      throw new Error(`POST ${pathname} answered ${response.status} (expected ${expected}): ${text}`);
    }
  }

  return {
    publicUrl: `http://${publicAddress}/`,
    adminUrl,
    wsUrl: `ws://${publicAddress}/ws`,
    publicAddress,
    adminAddress,
    setSignal: (name, ready) => post(`/signals/${encodeURIComponent(name)}`, { ready }, 204),
    drain: () => post('/drain', undefined, 202),
    exited: () => exit,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        // A drain with admitted clients lasts up to drain_grace; past that
        // the program is stuck, and the tests must not hang on it.
        const stuck = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        stuck.unref();
        const result = await exit;
        clearTimeout(stuck);
        return result;
      }
      return exit;
    },
    log: () => log,
  };
}

/** The program's first stdout line, or an error if it exits or stays silent. */
function firstLine(child, exit, log) {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const silent = setTimeout(() => {
      reject(new Error(`warmgate printed nothing on stdout within ${START_TIMEOUT_MS} ms; its log:\n${log()}`));
    }, START_TIMEOUT_MS);
    lines.once('line', (line) => {
      clearTimeout(silent);
      // Later lines (if any) are read and dropped, so stdout never fills.
      lines.on('line', () => {});
      resolve(line);
    });
    exit.then(({ code, signal }) => {
      clearTimeout(silent);
      reject(new Error(`warmgate exited (code ${code}, signal ${signal}) before serving; its log:\n${log()}`));
    });
  });
}
