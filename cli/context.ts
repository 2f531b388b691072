// What every command needs: the config, a Temporal client, output that is text or JSON, and one
// place where failures become a message and an exit code.
// The Temporal client (gRPC, protobuf) is imported when a command connects: `--help`, `config check`
// and the storage-only commands start without it.
import type { Client, Connection } from '@temporalio/client';
import { TASK_QUEUE } from '../common/types';
import { Command } from 'commander';
import { ZodError } from 'zod';
import { loadConfig, type Config } from '../common/config';
import { connectOptions, temporalConnectionSettings, temporalTarget, unreachable } from '../worker/connection';
import { RunbookError } from '../common/errors';
import { readFailure, reportOf, type FailureView } from '../common/failure';
import { SEARCH_ATTRIBUTES } from '../common/search-attributes';
import type { z } from 'zod';
import { EXIT, exitCodeFor } from './exit-codes';

export interface GlobalOptions {
  config?: string;
  json?: boolean;
}

/** The address the commands use: the config's, else TEMPORAL_ADDRESS or the profile's, else the dev server's. */
export function temporalAddress(config: Config): string {
  return temporalTarget(config).address;
}

/** The namespace the commands use: the config's, else TEMPORAL_NAMESPACE or the profile's, else "default". */
export function temporalNamespace(config: Config): string {
  return temporalTarget(config).namespace;
}

export async function connectClient(config: Config): Promise<Client> {
  const [{ Client, Connection }, { dataConverterFor }] = await Promise.all([
    import('@temporalio/client'),
    import('../worker/payload-codec'),
  ]);
  // An unresolved key or certificate is a config error, not a network one: resolved before connecting.
  const dataConverter = dataConverterFor(config);
  const settings = temporalConnectionSettings(config);
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...connectOptions(settings), connectTimeout: '5s' });
  } catch (err) {
    throw await unreachable(settings, err);
  }
  return new Client({
    connection,
    namespace: settings.namespace,
    identity: `runbook-cli@${process.env.USER ?? 'unknown'}`,
    dataConverter,
  });
}

/**
 * Commands that need a worker (queries, updates, --wait) say so within seconds when none polls the
 * task queue, instead of hanging until a timeout. A poller seen in the last two minutes counts: a live
 * worker long-polls without pause.
 */
export async function requireWorker(client: Client, config: Config): Promise<void> {
  const taskQueue = config.temporal.taskQueue ?? TASK_QUEUE;
  const deadline = Date.now() + 5_000;
  const { default: proto } = await import('@temporalio/proto');
  for (;;) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    const recent = (pollers ?? []).filter((p) => {
      const at = p.lastAccessTime?.seconds;
      return at !== undefined && at !== null && Date.now() / 1000 - Number(at) < 120;
    });
    if (recent.length) return;
    if (Date.now() > deadline) {
      throw new RunbookError(
        'NO_WORKER',
        `no worker polls the task queue ${taskQueue} on ${temporalAddress(config)}: nothing would run this`,
        'start one with `runbook worker` (or `runbook dev`) where it can reach Redis and the storage',
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A command's options through its schema; a refusal names the flag as typed (--requested-by). */
export function parseOptions<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const flag = (key: PropertyKey) => `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  throw new RunbookError('BAD_INPUT', parsed.error.issues.map((i) => `${flag(i.path[0] ?? '')}: ${i.message}`).join('; '));
}

/** A server without the runbooks' search attributes would fail drills and recoveries at their first step: say so first. */
export async function requireSearchAttributes(client: Client, _config?: Config): Promise<void> {
  const namespace = client.options.namespace;
  const { customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace });
  const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !(name in (customAttributes ?? {})));
  if (missing.length) {
    throw new RunbookError(
      'CONFIG_INVALID',
      `the Temporal namespace ${namespace} lacks the search attributes ${missing.join(', ')} that drills and recoveries record`,
      `create them once: ${missing.map((n) => `temporal operator search-attribute create --name ${n} --type ${SEARCH_ATTRIBUTES[n]}`).join('; ')}`,
    );
  }
}

export function loadCliConfig(opts: GlobalOptions): Config {
  return loadConfig(opts.config);
}

export function print(opts: GlobalOptions, data: unknown, text: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(data, null, 2)}\n` : text());
}

/** The failure a person should read, whatever layers it came through (workflow, activity, client). */
export function rootFailure(err: unknown): FailureView {
  if (err instanceof ZodError) {
    return { code: 'BAD_INPUT', message: err.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ') };
  }
  // A client-side error, not a failure of a run: the workflow id names nothing Temporal knows.
  if ((err as Error)?.name === 'WorkflowNotFoundError') {
    return {
      code: 'WORKFLOW_NOT_FOUND',
      message: (err as Error).message,
      hint: 'list runs in the Temporal UI, or with `temporal workflow list`',
    };
  }
  return readFailure(err);
}

/** The report a failed runbook carries in its failure (drills and recoveries do), if any. */
export const failureReport = <T>(err: unknown): T | undefined => reportOf<T>(err);

/** Prints the failure (as JSON with --json, as restic does) and exits with its code. */
export function handleError(err: unknown, json = false): never {
  const { code, message, hint } = rootFailure(err);
  const exit = code ? exitCodeFor(code) : EXIT.INTERNAL;
  if (json)
    process.stderr.write(
      `${JSON.stringify({ error: { code: code ?? 'INTERNAL', message, ...(hint ? { hint } : {}), exitCode: exit } })}\n`,
    );
  else process.stderr.write(`error${code ? ` [${code}]` : ''}: ${message}${hint ? `\n  hint: ${hint}` : ''}\n`);
  process.exit(exit);
}

/** Wraps a command's action so that every failure goes through handleError. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const cmd = args.at(-1);
      handleError(err, cmd instanceof Command ? cmd.optsWithGlobals<GlobalOptions>().json === true : process.argv.includes('--json'));
    }
  };
}
