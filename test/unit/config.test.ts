import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';

const FILE = '/etc/redis-runbooks/runbook.yaml';

const DISK = 'disk: { type: local, path: backups }';

/** A valid config; each case below breaks one thing in it. */
const valid = (target = '', extra = '', storage = DISK) => `
storage:
  ${storage}
targets:
  main:
    url: redis://127.0.0.1:6379
    destinations: [disk]
${target}
${extra}`;

function errorOf(text: string, file = FILE): RunbookError {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(RunbookError);
    return err as RunbookError;
  }
  throw new Error('parseConfig accepted an invalid config');
}

interface InvalidCase {
  name: string;
  text: string;
  /** The line naming the bad path and what was expected, as `path: expected ...`. */
  path: string;
  expected: string;
  /** Text that must not appear in the message (a secret). */
  notEchoed?: string;
}

const invalid: InvalidCase[] = [
  {
    name: 'a retention count written as a word',
    text: valid('    retention: { keepLast: "seven" }'),
    path: 'targets.main.retention.keepLast',
    expected: 'number',
  },
  {
    name: 'a port that is not a number',
    text: valid('', 'temporal: { devServer: { port: "seventy" } }'),
    path: 'temporal.devServer.port',
    expected: 'number',
  },
  {
    name: 'a list of destinations written as a single string',
    text: valid().replace('destinations: [disk]', 'destinations: disk'),
    path: 'targets.main.destinations',
    expected: 'array',
  },
  {
    name: 'an unknown capture method',
    text: valid('    capture: snapshot'),
    path: 'targets.main.capture',
    expected: 'one of "replication", "bgsave-copy"',
  },
  {
    name: 'an unknown key at the top level (a typo of "retention")',
    text: valid('', 'retension: { keepLast: 3 }'),
    path: '(top level)',
    expected: 'no key named "retension"',
  },
  {
    name: 'an unknown key in a target (a typo of "retention")',
    text: valid('    retension: { keepLast: 3 }'),
    path: 'targets.main',
    expected: 'no key named "retension"',
  },
  {
    name: 'an unknown key deep inside a retention policy',
    text: valid('    retention: { keepLast: 3, yearly: 1 }'),
    path: 'targets.main.retention',
    expected: 'no key named "yearly"',
  },
  {
    name: 'a password written in the URL without a user',
    text: valid().replace('redis://127.0.0.1:6379', 'redis://:hunter2-in-url@127.0.0.1:6379'),
    path: 'targets.main.url',
    expected: 'a URL without a password: use "password: env:NAME"',
    notEchoed: 'hunter2-in-url',
  },
  {
    name: 'a password written in the URL with a user',
    text: valid().replace('redis://127.0.0.1:6379', 'rediss://backup:hunter2-in-url@redis.internal:6380/0'),
    path: 'targets.main.url',
    expected: 'a URL without a password',
    notEchoed: 'hunter2-in-url',
  },
  {
    name: 'a password that is the secret itself rather than a reference',
    text: valid('    password: hunter2-plain'),
    path: 'targets.main.password',
    expected: 'a secret reference: env:NAME or file:PATH',
    notEchoed: 'hunter2-plain',
  },
  {
    name: 'an S3 secret key that is the secret itself rather than a reference',
    text: valid('', '', `${DISK}\n  offsite: { type: s3, bucket: bkt, secretAccessKey: "wJalrXUtnFEMI-plain" }`),
    path: 'storage.offsite.secretAccessKey',
    expected: 'a secret reference',
    notEchoed: 'wJalrXUtnFEMI-plain',
  },
  {
    name: 'a destination that is not defined under storage',
    text: valid().replace('destinations: [disk]', 'destinations: [disk, offsite]'),
    path: 'targets.main.destinations.1',
    expected: 'a storage name defined under "storage" (known: disk)',
  },
  {
    name: 'the same destination twice',
    text: valid().replace('destinations: [disk]', 'destinations: [disk, disk]'),
    path: 'targets.main.destinations',
    expected: 'destinations without repeats',
  },
  {
    name: 'no destinations at all',
    text: valid().replace('destinations: [disk]', 'destinations: []'),
    path: 'targets.main.destinations',
    expected: '',
  },
  {
    name: 'a schedule cron with a minute out of range',
    text: valid('    schedules: [{ name: nightly, cron: "61 * * * *" }]'),
    path: 'targets.main.schedules.0.cron',
    expected: 'a five-field cron expression such as "0 2 * * *"',
  },
  {
    name: 'a schedule cron written in words',
    text: valid('    schedules: [{ name: nightly, cron: "0 2 * * *" }, { name: daily, cron: "every day" }]'),
    path: 'targets.main.schedules.1.cron',
    expected: 'a five-field cron expression',
  },
  {
    name: 'a schedule cron with six fields (seconds)',
    text: valid('    schedules: [{ name: nightly, cron: "0 0 2 * * *" }]'),
    path: 'targets.main.schedules.0.cron',
    expected: 'a five-field cron expression',
  },
  {
    name: 'a catch-up window that is not a duration',
    text: valid('    schedules: [{ name: nightly, cron: "0 2 * * *", catchupWindow: "an hour" }]'),
    path: 'targets.main.schedules.0.catchupWindow',
    expected: 'a duration such as "30m" or "6h"',
  },
  {
    name: 'a retention policy that keeps nothing',
    text: valid('    retention: { keepLast: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0 }'),
    path: 'targets.main.retention',
    expected: 'a retention policy that keeps at least one backup',
  },
  {
    name: 'an empty retention policy (all counts default to zero)',
    text: valid('    retention: {}'),
    path: 'targets.main.retention',
    expected: 'a retention policy that keeps at least one backup',
  },
  {
    name: 'an S3 prefix with a ".." segment',
    text: valid('', '', `${DISK}\n  offsite: { type: s3, bucket: bkt, prefix: "redis/../other/" }`),
    path: 'storage.offsite.prefix',
    expected: 'a key prefix',
  },
  {
    name: 'an S3 prefix that starts with "/"',
    text: valid('', '', `${DISK}\n  offsite: { type: s3, bucket: bkt, prefix: "/redis/" }`),
    path: 'storage.offsite.prefix',
    expected: 'a key prefix like "redis/"',
  },
  {
    name: 'a storage of an unknown type',
    text: valid().replace('type: local', 'type: ftp'),
    path: 'storage.disk.type',
    expected: "'local' | 's3'",
  },
  {
    name: 'a target name with uppercase letters',
    text: valid().replace('  main:', '  Main:'),
    path: 'targets.Main',
    expected: 'a name of lowercase letters, digits, "-" or "_" (at most 63 characters)',
  },
  {
    name: 'a storage name with a space',
    text: valid('', '', 'my disk: { type: local, path: backups }'),
    path: 'storage.my disk',
    expected: 'a name of lowercase letters',
  },
  {
    name: 'an empty file',
    text: '',
    path: 'storage',
    expected: 'record',
  },
];

describe('parseConfig refuses an invalid config, naming each bad path and what was expected', () => {
  it.each(invalid)('$name', ({ text, path: where, expected, notEchoed }) => {
    const err = errorOf(text);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(FILE);
    const line = err.message.split('\n').find((l) => l.trim().startsWith(`${where}: expected`));
    expect(line, `no line for ${where} in:\n${err.message}`).toBeDefined();
    expect(line).toContain(expected);
    if (notEchoed) {
      expect(err.message).not.toContain(notEchoed);
      expect(err.hint ?? '').not.toContain(notEchoed);
    }
  });

  it('names every bad path at once, not only the first', () => {
    const err = errorOf(valid('    retention: { keepLast: "seven" }\n    capture: snapshot', 'retension: {}'));
    expect(err.message).toMatch(/targets\.main\.retention\.keepLast: expected number/);
    expect(err.message).toMatch(/targets\.main\.capture: expected one of/);
    expect(err.message).toMatch(/\(top level\): expected no key named "retension"/);
  });

  it('names both missing sections of an empty file', () => {
    const err = errorOf('');
    expect(err.message).toMatch(/^ {2}storage: expected/m);
    expect(err.message).toMatch(/^ {2}targets: expected/m);
  });

  it('says that a file with a YAML syntax error is not valid YAML, and names the file', () => {
    const err = errorOf('storage: [unclosed\ntargets: {}\n');
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(`${FILE}: not valid YAML`);
    expect(err.hint).toMatch(/YAML syntax/);
  });

  it('refuses a YAML document that is not a mapping', () => {
    const err = errorOf('- just\n- a list\n');
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/\(top level\): expected object/);
  });
});

describe('parseConfig accepts a valid config and fills in the defaults', () => {
  it('fills capture, compression, retention, schedule and Temporal defaults', () => {
    const config = parseConfig(valid('    schedules: [{ name: nightly, cron: "0 2 * * *" }]'), FILE);
    const main = config.targets.main;
    expect(main.capture).toBe('replication');
    expect(main.compression).toBe('zstd');
    expect(main.retention).toEqual({ keepLast: 7, hourly: 0, daily: 7, weekly: 4, monthly: 6 });
    expect(main.prefixSample).toBe(10_000);
    expect(main.schedules).toEqual([{ name: 'nightly', cron: '0 2 * * *', timezone: 'UTC', catchupWindow: '1h', paused: false }]);
    expect(config.temporal.address).toBeUndefined();
    expect(config.temporal.namespace).toBeUndefined(); // TEMPORAL_NAMESPACE or "default" when connecting
    expect(config.temporal.taskQueue).toBe('redis-runbooks');
    expect(config.temporal.devServer.port).toBe(7233);
    expect(config.temporal.devServer.dbFile).toBe('.runbook/temporal.sqlite');
  });

  it('fills the devServer defaults when only part of the temporal section is given', () => {
    const config = parseConfig(valid('', 'temporal: { address: "temporal:7233" }'), FILE);
    expect(config.temporal).toMatchObject({ address: 'temporal:7233', taskQueue: 'redis-runbooks', devServer: { port: 7233 } });
  });

  it('fills the S3 defaults', () => {
    const config = parseConfig(valid('', '', 'disk: { type: s3, bucket: bkt }'), FILE);
    expect(config.storage.disk).toEqual({
      type: 's3',
      bucket: 'bkt',
      prefix: '',
      region: 'us-east-1',
      forcePathStyle: false,
      partSizeMiB: 16,
    });
  });

  it('keeps secret references as references', () => {
    const config = parseConfig(valid('    password: env:REDIS_PASSWORD\n    username: backup'), FILE);
    expect(config.targets.main.password).toBe('env:REDIS_PASSWORD');
  });

  it('resolves a relative local storage path against the folder of the config file', () => {
    const config = parseConfig(valid(), FILE);
    expect(config.storage.disk).toEqual({ type: 'local', path: '/etc/redis-runbooks/backups' });
  });

  it('resolves a relative local storage path of a relatively named config file against the working directory', () => {
    const config = parseConfig(valid(), path.join('conf', 'runbook.yaml'));
    expect(config.storage.disk).toMatchObject({ path: path.resolve('conf', 'backups') });
  });

  it('leaves an absolute local storage path as it is', () => {
    const config = parseConfig(valid().replace('path: backups', 'path: /var/backups/redis'), FILE);
    expect(config.storage.disk).toMatchObject({ path: '/var/backups/redis' });
  });
});

describe('loadConfig', () => {
  it('reports a missing file as CONFIG_NOT_FOUND, naming the path it looked at', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-config-test-'));
    try {
      const file = path.join(dir, 'nope.yaml');
      let err: unknown;
      try {
        loadConfig(file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RunbookError);
      expect((err as RunbookError).code).toBe('CONFIG_NOT_FOUND');
      expect((err as RunbookError).message).toContain(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
