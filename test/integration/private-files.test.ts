// What other users of the worker's host can see: not the password of a scratch redis-server (the
// sandbox of drills, the master of restores) in any process's command line, nor a report's contents.
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScratch, type Scratch } from '../../domain/restore/scratch';
import { stateDir } from '../../domain/state-dir';
import { runCli } from '../support/cli';
import { startRedis, type RedisProcess } from '../support/redis';

let dir: string;
let source: RedisProcess;
let scratch: Scratch | undefined;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-private-files-'));
  process.env.RUNBOOK_STATE_DIR = path.join(dir, 'state');
  source = await startRedis();
  const c = source.client();
  for (let i = 0; i < 100; i++) await c.set(`k:${i}`, `v${i}`);
  await c.save();
});

afterAll(async () => {
  await scratch?.stop();
  await source?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The pids whose sockets listen on 127.0.0.1:port, found as `ss -lp` would: /proc/net/tcp, then each process's fds. */
function listeningOn(port: number): number[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set(
    readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === `0100007F:${hex}` && f[3] === '0A')
      .map((f) => `socket:[${f[9]}]`),
  );
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readdirSync(`/proc/${p}/fd`).some((fd) => {
          try {
            return inodes.has(readlinkSync(`/proc/${p}/fd/${fd}`));
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    })
    .map(Number);
}

const cmdline = (pid: number | string) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
};

describe("a scratch redis-server's password", () => {
  it('is in no command line: it comes from a 0600 config file in the private folder', async () => {
    scratch = await startScratch(path.join(source.dir, 'dump.rdb'));
    expect(await scratch.client.dbsize()).toBe(100);
    const password = scratch.password;
    expect(password.length).toBeGreaterThan(40);

    const pids = listeningOn(scratch.port);
    expect(pids).toHaveLength(1);
    const [pid] = pids as [number];
    expect((await scratch.client.info('server')).match(/process_id:(\d+)/)?.[1]).toBe(String(pid));
    expect(cmdline(pid)).toContain('redis-server');
    expect(cmdline(pid)).not.toContain(password);
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toContain(password);
    // Nor any other redis-server's on this machine (or anything else's).
    for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) expect(cmdline(p)).not.toContain(password);

    // Where it is instead: the server's own folder, inside this process's private folder.
    const cwd = readlinkSync(`/proc/${pid}/cwd`);
    expect(cwd.startsWith(stateDir() + path.sep)).toBe(true);
    expect(path.dirname(stateDir())).toBe(path.join(dir, 'state'));
    expect(statSync(stateDir()).mode & 0o777).toBe(0o700);
    const conf = path.join(cwd, 'redis.conf');
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    expect(readFileSync(conf, 'utf8')).toContain(`requirepass "${password}"`);

    await scratch.stop();
    scratch = undefined;
    expect(() => statSync(cwd)).toThrow();
  });
});

describe('runbook report', () => {
  it('writes its page for its reader only (0600), an existing file included', async () => {
    const configFile = path.join(dir, 'runbook.yaml');
    writeFileSync(
      configFile,
      `storage:
  disk: { type: local, path: ${dir}/backups }
targets:
  main:
    url: ${source.url}
    destinations: [disk]
`,
    );
    const out = path.join(dir, 'main-report.html');
    writeFileSync(out, 'old', { mode: 0o644 });
    const r = await runCli(configFile, 'report', 'main', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).toMatch(/^<!doctype html>/i);

    const fresh = path.join(dir, 'fresh.html');
    expect((await runCli(configFile, 'report', 'main', '--out', fresh)).status).toBe(0);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
  });
});
