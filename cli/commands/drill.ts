import { Command } from 'commander';
import { workflowIds } from '../../common/workflow-ids';
import { z } from 'zod';
import { isBackupId } from '../../common/backup-id';
import { targetOf } from '../../common/config';
import { renderDrillText, seconds } from '../../common/drill-report';
import type { DrillReport } from '../../common/drill-types';
import { RunbookError } from '../../common/errors';
import { OUTCOME_ATTR, RPO_ATTR, RTO_ATTR } from '../../common/search-attributes';
import {
  action,
  connectClient,
  requireWorker,
  failureReport,
  loadCliConfig,
  parseOptions,
  print,
  requireSearchAttributes,
  type GlobalOptions,
} from '../context';

const drillOptions = z.object({
  random: z.coerce.number({ error: 'a whole number from 1 to 1000' }).int('a whole number from 1 to 1000').min(1).max(1000).optional(),
  from: z.string().optional(),
  backup: z.string().refine(isBackupId, 'a backup id').optional(),
  wait: z.boolean().default(false),
  requestedBy: z.string().default(process.env.USER ?? 'unknown'),
});

export const drillCommand = new Command('drill')
  .description('restore a stored backup into a sandbox on a worker, verify it, and measure RTO and RPO (the target is not touched)')
  .argument('<target>')
  .option('--random <n>', 'drill one of the newest n backups at random (default: the target drill.random, 1)')
  .option('--from <destination>', 'the destination to fetch from (default: the off-site one)')
  .option('--backup <backupId>', 'drill this backup')
  .option('--requested-by <name>', 'who asks (default: $USER)')
  .option('--wait', 'wait for the drill and print its report')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(drillOptions, raw);
      const config = loadCliConfig(global);
      const target = targetOf(config, targetName);
      if (opts.from && !target.destinations.includes(opts.from)) {
        throw new RunbookError(
          'BAD_INPUT',
          `--from: ${opts.from} is not a destination of ${targetName}`,
          `use one of: ${target.destinations.join(', ')}`,
        );
      }
      const client = await connectClient(config);
      await requireSearchAttributes(client, config);
      if (opts.wait) await requireWorker(client, config);
      const workflowId = workflowIds.manualDrill(targetName);
      const handle = await client.workflow.start('drillRedis', {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [{ target: targetName, random: opts.random, from: opts.from, backupId: opts.backup, requestedBy: opts.requestedBy }],
      });
      if (!opts.wait) {
        print(
          global,
          { workflowId, runId: handle.firstExecutionRunId },
          () => `started ${workflowId}\nfollow it with: runbook status ${workflowId}\n`,
        );
        return;
      }
      let report: DrillReport;
      const { follow } = await import('../progress');
      try {
        report = await follow<DrillReport>(handle, global.json ? undefined : process.stderr);
      } catch (err) {
        // A failed drill still has its report: print it, then fail with its reason.
        const failed = failureReport<DrillReport>(err);
        if (failed) print(global, failed, () => renderDrillText(failed));
        throw err;
      }
      print(global, report, () => renderDrillText(report));
    }),
  );

const listOptions = z.object({
  outcome: z.enum(['passed', 'failed']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(20),
});

const list = new Command('list')
  .description("a target's drills, newest first, from Temporal's visibility (filter with --outcome)")
  .argument('<target>')
  .option('--outcome <outcome>', 'passed or failed')
  .option('--limit <n>', 'at most this many (default 20)')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(listOptions, raw);
      const config = loadCliConfig(global);
      targetOf(config, targetName);
      const client = await connectClient(config);
      const query = [
        `WorkflowType = 'drillRedis'`,
        `RunbookTarget = '${targetName}'`,
        ...(opts.outcome ? [`RunbookOutcome = '${opts.outcome}'`] : []),
      ].join(' AND ');
      const rows: {
        workflowId: string;
        status: string;
        startTime: string;
        outcome: string | null;
        rtoSeconds: number | null;
        rpoSeconds: number | null;
      }[] = [];
      for await (const w of client.workflow.list({ query })) {
        rows.push({
          workflowId: w.workflowId,
          status: w.status.name,
          startTime: w.startTime.toISOString(),
          outcome: w.typedSearchAttributes.get(OUTCOME_ATTR) ?? null,
          rtoSeconds: w.typedSearchAttributes.get(RTO_ATTR) ?? null,
          rpoSeconds: w.typedSearchAttributes.get(RPO_ATTR) ?? null,
        });
        if (rows.length >= opts.limit) break;
      }
      print(global, rows, () =>
        rows.length === 0
          ? `no drills of ${targetName}${opts.outcome ? ` with outcome ${opts.outcome}` : ''} (run \`runbook drill ${targetName}\`)\n`
          : rows
              .map(
                (r) =>
                  `${r.startTime}  ${(r.outcome ?? r.status.toLowerCase()).padEnd(7)}  RTO ${seconds(r.rtoSeconds === null ? null : r.rtoSeconds * 1000).padStart(8)}  RPO ${seconds(r.rpoSeconds === null ? null : r.rpoSeconds * 1000).padStart(10)}  ${r.workflowId}`,
              )
              .join('\n') + '\n',
      );
    }),
  );

export const drillsCommand = new Command('drills').description('restore drills: their outcomes, RTO and RPO').addCommand(list);
