// The runbook configuration: one YAML file, validated by a strict schema. Unknown keys are errors
// (a typo in `retention` must not silently keep every backup forever).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { RunbookError } from './errors';
import { isValidCron } from './cron';

/** A secret is never written in the file: it is named, and resolved where it is used. */
export const secretRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/, 'a secret reference: env:NAME or file:PATH (never the secret itself)');

const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a name of lowercase letters, digits, "-" or "_" (at most 63 characters)');

/** A person's name, as targets list approvers and as allowed-signers files name principals. */
export const personName = z.string().regex(/^[\w.@-]{1,64}$/, 'a name of letters, digits and . _ @ -');

/** An SSH public key line, as in ~/.ssh/id_ed25519.pub or an allowed-signers file. */
export const sshPublicKey = z
  .string()
  .regex(
    /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( .*)?$/,
    'an SSH public key line such as "ssh-ed25519 AAAAC3Nz... alice@laptop"',
  );

/** An Ed25519 public key of a worker's signing key: "ed25519:" and its 32 bytes in base64. */
export const signingPublicKey = z
  .string()
  .regex(/^ed25519:[A-Za-z0-9+/]{43}=$/, 'a signing public key such as "ed25519:3q2+7w...=" (from `runbook keys signing`)');

const duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as "90s", "5m" or "24h"');

const localStorage = z.strictObject({
  type: z.literal('local'),
  path: z.string().min(1),
});

const s3Storage = z.strictObject({
  type: z.literal('s3'),
  bucket: z.string().min(3),
  prefix: z
    .string()
    .regex(/^([A-Za-z0-9._-]+\/)*$/, 'a key prefix like "redis/" or "" (no leading "/", no "..")')
    .refine((p) => !p.split('/').includes('..'), 'a key prefix without ".." segments')
    .default(''),
  region: z.string().default('us-east-1'),
  endpoint: z.url().optional(),
  forcePathStyle: z.boolean().default(false),
  /** A read that receives nothing for this long is given up and retried (default 60s): a stalled download holds nothing for hours. */
  stallTimeout: duration.optional(),
  accessKeyId: secretRef.optional(),
  secretAccessKey: secretRef.optional(),
  partSizeMiB: z.number().int().min(5).max(512).default(16),
  /** Where the bucket has Object Lock enabled, audit records are kept unchangeable this long (default 400d). */
  auditRetention: duration.optional(),
  /** Their Object Lock mode: COMPLIANCE (nobody can shorten it, default) or GOVERNANCE (a privileged user can). */
  auditRetentionMode: z.enum(['GOVERNANCE', 'COMPLIANCE']).optional(),
});

export const storageSchema = z.discriminatedUnion('type', [localStorage, s3Storage]);

export const retentionSchema = z
  .strictObject({
    keepLast: z.number().int().min(0).default(0),
    hourly: z.number().int().min(0).default(0),
    daily: z.number().int().min(0).default(0),
    weekly: z.number().int().min(0).default(0),
    monthly: z.number().int().min(0).default(0),
  })
  .refine((r) => r.keepLast + r.hourly + r.daily + r.weekly + r.monthly > 0, {
    message: 'a retention policy that keeps at least one backup (set keepLast, hourly, daily, weekly or monthly)',
  });

const scheduleSchema = z.strictObject({
  name,
  cron: z.string().refine(isValidCron, 'a five-field cron expression such as "0 2 * * *"'),
  timezone: z.string().default('UTC'),
  catchupWindow: z
    .string()
    .regex(/^\d+(s|m|h|d)$/, 'a duration such as "30m" or "6h"')
    .default('1h'),
  paused: z.boolean().default(false),
  /** The whole scheduled backup, its retries included, ends by then (default 12h): a run never outlives its purpose. */
  deadline: z
    .string()
    .regex(/^\d+(m|h|d)$/, 'a duration such as "45m" or "12h"')
    .optional(),
});

/** Who writes to a target, and how to stop and restart them around a restore. */
const writerSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('command'),
    name,
    /** Shell commands; they must be idempotent (pausing twice is pausing). */
    pause: z.string().min(1),
    resume: z.string().min(1),
    timeout: duration.default('2m'),
  }),
  z.strictObject({
    type: z.literal('kubernetes'),
    name,
    deployment: z.string().min(1),
    namespace: z.string().default('default'),
    context: z.string().optional(),
    kubectl: z.string().default('kubectl'),
    timeout: duration.default('5m'),
  }),
  z.strictObject({
    type: z.literal('http'),
    name,
    pauseUrl: z.url(),
    resumeUrl: z.url(),
    /** Sent as "Authorization: Bearer <token>". */
    token: secretRef.optional(),
    timeout: duration.default('30s'),
  }),
]);

export const restoreSchema = z
  .strictObject({
    strategy: z.enum(['replica-promote', 'file-swap', 'logical']).default('replica-promote'),
    /** People (under `people`, or principals of `allowedSigners`) whose signed approval counts. */
    approvers: z.array(personName).default([]),
    approvals: z.number().int().min(1).max(10).default(1),
    /** Four eyes by default: whoever asked for a restore cannot approve it. */
    allowSelfApproval: z.boolean().default(false),
    approvalTimeout: duration.default('24h'),
    /** CLIENT PAUSE WRITE on the target while it is replaced (not with the logical strategy). */
    pauseWrites: z.boolean().default(true),
    /** Each CLIENT PAUSE lasts this long and is renewed while the restore runs: the bound if the runbook dies. */
    pauseLimit: duration.default('60s'),
    writers: z.array(writerSchema).default([]),
    /**
     * replica-promote's master: 'worker' answers the replication handshake itself and sends the RDB
     * as it is; 'scratch' starts a redis-server on it (slower: it loads, forks and re-serialises).
     */
    master: z.enum(['worker', 'scratch']).default('worker'),
    /** The address the target reaches the worker (and its scratch servers) at. */
    scratchHost: z.string().default('127.0.0.1'),
    fileSwap: z
      .strictObject({
        /** The server's data dir as the worker sees it; default: CONFIG GET dir. */
        dataDir: z.string().optional(),
        /** Starts the server; run with REDIS_EXTRA_ARGS ("--appendonly no" on the first start after an AOF target's swap). */
        start: z.string().min(1),
        /** Stops the server; default SHUTDOWN NOSAVE. */
        stop: z.string().optional(),
        timeout: duration.default('5m'),
      })
      .optional(),
    /** A command run after the data is live and before verification; non-zero exit fails the restore (and rolls back). */
    afterMakeLive: z.string().optional(),
  })
  .refine((r) => r.approvers.length === 0 || r.approvals <= r.approvers.length, {
    message: 'no more required approvals than approvers',
    path: ['approvals'],
  })
  .refine((r) => new Set(r.writers.map((w) => w.name)).size === r.writers.length, {
    message: 'writer names without repeats',
    path: ['writers'],
  });

/** What a drill checks in its sandbox once the backup is loaded (`runbook drill` and the drill schedule). */
const smokeSchema = z.strictObject({
  /** Key patterns (SCAN MATCH globs such as "task:*") of which at least one key must exist. */
  exists: z.array(z.string().min(1)).default([]),
  /** Keys whose string value must be exactly this. */
  get: z.record(z.string().min(1), z.string()).default({}),
});

const drillSchema = z.strictObject({
  /** When the drill schedule runs (`runbook schedules apply`); absent: drills are run by hand only. */
  cron: z.string().refine(isValidCron, 'a five-field cron expression such as "0 4 1 * *"').optional(),
  timezone: z.string().default('UTC'),
  paused: z.boolean().default(false),
  /** A drill must have passed within this long, or `runbook check` fails. */
  interval: duration.default('35d'),
  /** The destination the drill fetches from; default: the first off-site (S3) one, else the last. */
  from: name.optional(),
  /** Drill one of the newest N backups at random, so that older backups are proven too (1: the newest). */
  random: z.number().int().min(1).max(1000).default(1),
  /** The window the largest gap between verified backups is measured over (keep it within what retention keeps densely). */
  rpoWindow: duration.default('7d'),
});

export const NOTIFY_EVENTS = [
  'backup-failed',
  'drill-failed',
  'objective-missed',
  'restore-awaiting-approval',
  'restore-done',
  /** An undo of a restore (resume writers, unpause, roll back) has been retrying for a while: someone should look. */
  'restore-undo-waiting',
] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

const notifySchema = z.strictObject({
  webhook: name,
  events: z
    .array(z.enum(NOTIFY_EVENTS))
    .min(1)
    .default([...NOTIFY_EVENTS]),
});

const webhookSchema = z.strictObject({
  /** A Slack incoming-webhook URL (or any endpoint taking its JSON body) is a secret: by reference only. */
  url: secretRef,
  timeout: duration.default('10s'),
});

/** Thresholds of `runbook check`, after seed 000's alert conditions. */
const checkSchema = z.strictObject({
  /** The newest backup's RDB differs from the average of the previous ones by more than this fraction. */
  sizeChange: z.number().min(0).default(0.5),
  /** A local destination's file system is fuller than this fraction. */
  diskFull: z.number().gt(0).max(1).default(0.8),
});

const redisUrl = z
  .string()
  .regex(/^rediss?:\/\/[^/?#]+(\/\d{1,2})?$/, 'a Redis URL such as redis://host:6379 or redis://host:6379/0')
  .refine((u) => !/^rediss?:\/\/[^/@]*:[^/@]*@/.test(u), 'a URL without a password: use "password: env:NAME"');

export const targetSchema = z
  .strictObject({
    url: redisUrl,
    username: z.string().optional(),
    password: secretRef.optional(),
    capture: z.enum(['replication', 'bgsave-copy']).default('replication'),
    /** bgsave-copy reads `dir`/`dbfilename` from the server unless set here (e.g. a mounted volume). */
    dataDir: z.string().optional(),
    destinations: z.array(name).min(1),
    compression: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
    compressionLevel: z.number().int().min(1).max(19).optional(),
    /**
     * How each stored copy is proven before the manifest is written. stream: while it is written (each
     * destination hashes what it was handed, S3 verifies our CRC32 of every part and of the object, and
     * the compressed stream is decompressed beside the write to the RDB's SHA-256). reread: that, then
     * every copy is read back as well (what only a re-read sees: a store that acknowledged and lost it).
     */
    verify: z.enum(['stream', 'reread']).default('stream'),
    retention: retentionSchema.default({ keepLast: 7, hourly: 0, daily: 7, weekly: 4, monthly: 6 }),
    schedules: z.array(scheduleSchema).default([]),
    /** The longest silence tolerated from the server while capturing (the fork before the first byte included). */
    captureIdleTimeout: duration.default('60s'),
    /**
     * How long a step's transient failures (a server restarting, a network blip, S3 5xx) are retried
     * before the runbook gives up (default 5m). Undos (resume writers, unpause, roll back) never give up.
     */
    retryFor: duration.optional(),
    /** How many keys SCAN samples to count key prefixes for the manifest. */
    prefixSample: z.number().int().min(0).max(1_000_000).default(10_000),
    restore: restoreSchema.prefault({}),
    /** A name under encryption.keys or encryption.recipients: every stored copy is encrypted to it (and to encryption.breakGlass). */
    encrypt: name.optional(),
    /** Recovery point objective: the most data, in time, a recovery may lose. */
    rpo: duration.default('24h'),
    /** Recovery time objective: from the start of a recovery to a verified, usable server. */
    rto: duration.default('1h'),
    smoke: smokeSchema.prefault({}),
    drill: drillSchema.optional(),
    notify: z.array(notifySchema).default([]),
    check: checkSchema.prefault({}),
  })
  .refine((t) => t.restore.strategy !== 'file-swap' || t.restore.fileSwap, {
    message: 'restore.fileSwap settings (start command) for the file-swap strategy',
    path: ['restore', 'fileSwap'],
  })
  .refine((t) => new Set(t.destinations).size === t.destinations.length, {
    message: 'destinations without repeats',
    path: ['destinations'],
  })
  .refine((t) => !t.drill?.from || t.destinations.includes(t.drill.from), {
    message: "one of the target's destinations",
    path: ['drill', 'from'],
  });

export const configSchema = z
  .strictObject({
    temporal: z
      .strictObject({
        /** Absent: TEMPORAL_ADDRESS or the Temporal client profile, else the embedded dev server of `runbook dev`. */
        address: z.string().optional(),
        /** Absent: TEMPORAL_NAMESPACE or the profile's, else "default". */
        namespace: z.string().optional(),
        taskQueue: z.string().default('redis-runbooks'),
        /** true: TLS with the system's CAs; or a CA, a client certificate and its key, by reference; false: plaintext. */
        tls: z
          .union([
            z.boolean(),
            z
              .strictObject({
                ca: secretRef.optional(),
                cert: secretRef.optional(),
                key: secretRef.optional(),
                serverName: z.string().min(1).optional(),
              })
              .refine((t) => !t.cert === !t.key, {
                message: 'cert and key together (a client certificate and its private key)',
                path: ['key'],
              }),
          ])
          .optional(),
        /** Sent as `authorization: Bearer <key>` (Temporal Cloud API keys); by reference. */
        apiKey: secretRef.optional(),
        /** Encrypt everything Temporal stores of our workflows (AES-256-GCM): the first key encrypts, all decrypt. */
        payloadKeys: z
          .array(z.strictObject({ id: name, key: secretRef }))
          .min(1)
          .refine((keys) => new Set(keys.map((k) => k.id)).size === keys.length, 'key ids without repeats')
          .optional(),
        devServer: z
          .strictObject({
            port: z.number().int().min(1).max(65535).default(7233),
            uiPort: z.number().int().min(1).max(65535).optional(),
            dbFile: z.string().default('.runbook/temporal.sqlite'),
          })
          .prefault({}),
      })
      .prefault({}),
    storage: z.record(name, storageSchema),
    /**
     * Encryption at rest. keys: age identities (AGE-SECRET-KEY-1...), by reference, to encrypt and read;
     * recipients: age public keys (age1...), written as they are, to encrypt only (a worker that only backs
     * up needs no secret); breakGlass: recipients every encrypted backup is also encrypted to (offline keys).
     */
    encryption: z
      .strictObject({
        keys: z.record(name, secretRef).default({}),
        recipients: z
          .record(
            name,
            z
              .string()
              .regex(
                /^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/,
                'an age public key: age1 and 58 characters, as `age-keygen -y` prints it',
              ),
          )
          .default({}),
        breakGlass: z
          .array(
            z
              .string()
              .regex(
                /^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/,
                'an age public key: age1 and 58 characters, as `age-keygen -y` prints it',
              ),
          )
          .default([]),
      })
      .refine((e) => Object.keys(e.recipients).every((r) => !(r in e.keys)), {
        message: 'names not also used under encryption.keys',
        path: ['recipients'],
      })
      .optional(),
    /**
     * Who may ask for and approve restores, by their SSH public keys: a decision counts only when it is
     * signed by one of these keys, and it counts for the person the key belongs to, whatever name is typed.
     */
    people: z.record(personName, z.strictObject({ keys: z.array(sshPublicKey).min(1) })).default({}),
    /** More people from an allowed-signers file (git's format: "name[,name...] ssh-ed25519 AAAA..." per line), by file: reference. */
    allowedSigners: z
      .string()
      .regex(/^file:.+/, 'an allowed-signers file by reference: file:PATH')
      .optional(),
    /**
     * The worker signs every manifest, drill report and audit record with `key` (an Ed25519 private key,
     * PKCS#8 PEM, by reference); only signatures by a key in `trust` count (keep retired keys there while
     * their backups exist). Make a key with `runbook keys signing`.
     */
    signing: z
      .strictObject({
        key: secretRef.optional(),
        trust: z.array(signingPublicKey).min(1),
      })
      .optional(),
    /** Where notifications go; targets name them under `notify`. */
    webhooks: z.record(name, webhookSchema).default({}),
    targets: z.record(name, targetSchema),
  })
  .superRefine((config, ctx) => {
    for (const [targetName, target] of Object.entries(config.targets)) {
      if (target.encrypt && !config.encryption?.keys[target.encrypt] && !config.encryption?.recipients[target.encrypt]) {
        ctx.addIssue({
          code: 'custom',
          path: ['targets', targetName, 'encrypt'],
          message: `a name defined under encryption.keys or encryption.recipients (known: ${[...Object.keys(config.encryption?.keys ?? {}), ...Object.keys(config.encryption?.recipients ?? {})].join(', ') || 'none'})`,
        });
      }
      target.restore.approvers.forEach((a, i) => {
        if (!(a in config.people) && !config.allowedSigners) {
          ctx.addIssue({
            code: 'custom',
            path: ['targets', targetName, 'restore', 'approvers', i],
            message: `a person defined under "people" with their SSH public keys (known: ${Object.keys(config.people).join(', ') || 'none'}), or an allowedSigners file`,
          });
        }
      });
      target.notify.forEach((n, i) => {
        if (!(n.webhook in config.webhooks)) {
          ctx.addIssue({
            code: 'custom',
            path: ['targets', targetName, 'notify', i, 'webhook'],
            message: `a webhook name defined under "webhooks" (known: ${Object.keys(config.webhooks).join(', ') || 'none'})`,
          });
        }
      });
      target.destinations.forEach((dest, i) => {
        if (!(dest in config.storage)) {
          ctx.addIssue({
            code: 'custom',
            path: ['targets', targetName, 'destinations', i],
            message: `a storage name defined under "storage" (known: ${Object.keys(config.storage).join(', ') || 'none'})`,
          });
        }
      });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type TargetConfig = z.infer<typeof targetSchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
export type RetentionPolicy = z.infer<typeof retentionSchema>;
export type ScheduleConfig = z.infer<typeof scheduleSchema>;
export type RestoreConfig = z.infer<typeof restoreSchema>;
export type WriterConfig = z.infer<typeof writerSchema>;
export type DrillConfig = z.infer<typeof drillSchema>;
export type SmokeConfig = z.infer<typeof smokeSchema>;

/** The destination a drill proves: the configured one, else the first off-site (S3) one, else the last. */
export function drillSource(config: Config, targetName: string): string {
  const t = targetOf(config, targetName);
  return t.drill?.from ?? t.destinations.find((d) => config.storage[d]?.type === 's3') ?? t.destinations[t.destinations.length - 1]!;
}

export const DEFAULT_CONFIG_FILE = 'runbook.yaml';

export function configPath(explicit?: string): string {
  return path.resolve(explicit ?? process.env.RUNBOOK_CONFIG ?? DEFAULT_CONFIG_FILE);
}

/** Parses and validates a config text; relative local paths are resolved against the file's folder. */
export function parseConfig(text: string, file = '<config>'): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new RunbookError('CONFIG_INVALID', `${file}: not valid YAML: ${(err as Error).message}`, 'fix the YAML syntax');
  }
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const where = issue.path.length ? issue.path.join('.') : '(top level)';
      return `  ${where}: expected ${describeIssue(issue)}`;
    });
    throw new RunbookError(
      'CONFIG_INVALID',
      `${file} is not a valid runbook config:\n${lines.join('\n')}`,
      'correct the settings named above (see docs/configuration.md)',
    );
  }
  const base = path.dirname(path.resolve(file));
  for (const storage of Object.values(result.data.storage)) {
    if (storage.type === 'local') storage.path = path.resolve(base, storage.path);
  }
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `no key named ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type') return `${issue.expected}`;
  if (issue.code === 'invalid_value') return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  // A bad name of a storage or target: say what a name must be, not only that the key is invalid.
  if (issue.code === 'invalid_key') return issue.issues.map(describeIssue).join('; ');
  return issue.message.replace(/^Invalid input: expected /, '');
}

export function loadConfig(explicit?: string): Config {
  const file = configPath(explicit);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new RunbookError(
      'CONFIG_NOT_FOUND',
      `no config file at ${file}`,
      'create runbook.yaml (see runbook.example.yaml) or pass --config / set RUNBOOK_CONFIG',
    );
  }
  return parseConfig(text, file);
}

export function targetOf(config: Config, targetName: string): TargetConfig {
  const target = config.targets[targetName];
  if (!target) {
    throw new RunbookError(
      'UNKNOWN_TARGET',
      `no target named "${targetName}" in the config`,
      `use one of: ${Object.keys(config.targets).join(', ') || '(none defined)'}`,
    );
  }
  return target;
}
