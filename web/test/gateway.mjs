// Starts the real warmgate program (WARMGATE_BIN) for the web tests, on
// free loopback ports (or a given address), and drives its admin API.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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

/**
 * Starts warmgate with `config` (TOML text; empty for a plan that is ready
 * at once) and resolves once it says where it serves.
 * @param {{ config: string, listen?: string }} options
 */
export async function startGateway({ config, listen = '127.0.0.1:0' }) {
  const program = process.env.WARMGATE_BIN;
  if (!program) {
    throw new Error('WARMGATE_BIN is not set: point it at a warmgate build (cargo xtask web-test does)');
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'warmgate-web-'));
  const configPath = path.join(dir, 'warmgate.toml');
  writeFileSync(configPath, config);
  const child = spawn(program, ['--config', configPath, '--listen', listen, '--admin-listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk) => {
    log += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise((resolve) => lines.once('line', resolve)),
    exited.then(({ code }) => {
      throw new Error(`warmgate exited (${code}) before serving:\n${log}`);
    }),
  ]);
  const match = /^warmgate: serving http:\/\/(\S+) \(admin http:\/\/(\S+)\)$/.exec(first);
  if (!match) throw new Error(`warmgate said ${JSON.stringify(first)}`);
  const [, publicAddress, adminAddress] = match;
  const adminUrl = `http://${adminAddress}`;

  async function post(pathname, body) {
    const response = await fetch(`${adminUrl}${pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`POST ${pathname} answered ${response.status}: ${await response.text()}`);
  }

  return {
    publicAddress,
    publicUrl: `http://${publicAddress}/`,
    wsUrl: `ws://${publicAddress}/ws`,
    adminUrl,
    log: () => log,
    setSignal: (name, ready) => post(`/signals/${name}`, { ready }),
    drain: () => post('/drain'),
    /** Resolves when the process has exited on its own. */
    exited: () => exited,
    /** SIGTERM, then the exit. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
