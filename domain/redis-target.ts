// One way to reach a target: its URL from the config, its password resolved from its reference.
import { Redis } from 'ioredis';
import type { TargetConfig } from '../common/config';
import { RunbookError } from '../common/errors';
import { resolveOptionalSecret } from './secrets';

export interface Endpoint {
  host: string;
  port: number;
  db: number;
  tls: boolean;
  username?: string;
  password?: string;
}

export function endpointOf(targetName: string, target: TargetConfig): Endpoint {
  const url = new URL(target.url);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 6379),
    db: Number(url.pathname.slice(1) || 0),
    tls: url.protocol === 'rediss:',
    username: target.username,
    password: resolveOptionalSecret(target.password, `target ${targetName} password`),
  };
}

export const describeEndpoint = (e: Endpoint) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;

/** Connects once, without ioredis's endless reconnects, and turns its errors into ours. */
export async function connectTarget(
  targetName: string,
  target: TargetConfig,
  timeoutMs = 10_000,
  /** A command unanswered this long fails (a path that silently drops traffic never closes the socket). */
  commandTimeoutMs?: number,
): Promise<Redis> {
  const e = endpointOf(targetName, target);
  const client = new Redis({
    host: e.host,
    port: e.port,
    username: e.username,
    password: e.password,
    db: e.db,
    tls: e.tls ? {} : undefined,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs,
    // Loading is looked at where it matters (INFO persistence); ioredis's own ready check would wait
    // for it in steps of a second, invisibly.
    enableReadyCheck: false,
  });
  // ioredis rejects connect() with "Connection is closed"; the cause (WRONGPASS...) comes as an event.
  let cause: unknown;
  client.on('error', (err) => (cause ??= err));
  try {
    await client.connect();
    // Without the ready check, a refused AUTH shows only at the first command: this one (INFO is
    // answered while loading, too).
    await client.info('server');
  } catch (err) {
    client.disconnect();
    throw classifyRedisError(cause ?? err, targetName, e);
  }
  return client;
}

export function classifyRedisError(err: unknown, targetName: string, e: Endpoint): RunbookError {
  if (err instanceof RunbookError) return err;
  const msg = (err as Error).message ?? String(err);
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(msg)) {
    return new RunbookError(
      'TARGET_AUTH_FAILED',
      `target ${targetName} (${describeEndpoint(e)}) refused the credentials: ${msg.split('\n')[0]}`,
      "check the target's password reference (and username) in the config",
    );
  }
  if (/LOADING/.test(msg)) {
    return new RunbookError(
      'TARGET_LOADING',
      `target ${targetName} (${describeEndpoint(e)}) is loading its dataset`,
      'wait until it has loaded and try again',
    );
  }
  return new RunbookError(
    'TARGET_UNREACHABLE',
    `target ${targetName} (${describeEndpoint(e)}) is unreachable: ${msg.split('\n')[0]}`,
    'check the URL in the config, that Redis runs, and that the worker can reach it',
  );
}

/** INFO parsed into sections of key -> value. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export function parseKeyspace(info: Record<string, string>): Record<string, { keys: number; expires: number }> {
  const out: Record<string, { keys: number; expires: number }> = {};
  for (const [k, v] of Object.entries(info)) {
    if (!/^db\d+$/.test(k)) continue;
    const f = Object.fromEntries(v.split(',').map((kv) => kv.split('=') as [string, string]));
    out[k] = { keys: Number(f.keys ?? 0), expires: Number(f.expires ?? 0) };
  }
  return out;
}
