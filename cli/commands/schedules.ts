import { Command } from 'commander';
import type { Client, ScheduleOptions, ScheduleOverlapPolicy } from '@temporalio/client';
import { z } from 'zod';
import { desiredSchedules, MANAGED_BY, planSchedules, type DesiredSchedule, type ExistingSchedule } from '../../common/schedule-plan';
import { action, parseOptions, connectClient, requireSearchAttributes, loadCliConfig, print, type GlobalOptions } from '../context';

function scheduleOptions(d: DesiredSchedule): ScheduleOptions {
  return {
    scheduleId: d.scheduleId,
    spec: { cronExpressions: [d.cron], timezone: d.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: d.workflowType,
      workflowId: d.scheduleId,
      taskQueue: d.taskQueue,
      workflowExecutionTimeout: d.deadline as `${number}h`,
      args: [{ target: d.target, requestedBy: `schedule:${d.name}` }],
    },
    // A run still going when the next is due: skip the new one rather than stack them.
    policies: { overlap: 'SKIP' satisfies ScheduleOverlapPolicy, catchupWindow: d.catchupWindow as `${number}h` },
    // The note carries the spec's hash: it can be updated in place, where a memo cannot.
    state: { paused: d.paused, note: `${MANAGED_BY} spec ${d.specHash}` },
    memo: { managedBy: MANAGED_BY },
  };
}

/**
 * What Temporal has. The list is eventually consistent, so the schedules the config names are also
 * described by id (consistent): a second apply right after the first still sees what it made.
 */
async function existingSchedules(client: Client, ids: string[] = []): Promise<ExistingSchedule[]> {
  const seen = new Set<string>();
  for await (const s of client.schedule.list()) seen.add(s.scheduleId);
  ids.forEach((id) => seen.add(id));
  const out: ExistingSchedule[] = [];
  for (const scheduleId of seen) {
    const d = await client.schedule
      .getHandle(scheduleId)
      .describe()
      .catch((err: Error) => {
        if (err.name === 'ScheduleNotFoundError') return undefined;
        throw err;
      });
    if (!d) continue;
    const managedBy = (d.memo as { managedBy?: string } | undefined)?.managedBy;
    const specHash = managedBy === MANAGED_BY ? /spec ([0-9a-f]+)$/.exec(d.state.note ?? '')?.[1] : undefined;
    out.push({ scheduleId, managedBy, specHash });
  }
  return out;
}

const applyOptions = z.object({ dryRun: z.boolean().default(false) });

const apply = new Command('apply')
  .description('make Temporal Schedules match the config: create, update and delete (idempotent)')
  .option('--dry-run', 'show the changes, make none')
  .action(
    action(async (raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { dryRun } = parseOptions(applyOptions, raw);
      const config = loadCliConfig(global);
      const client = await connectClient(config);
      const desired = desiredSchedules(config);
      // A drill schedule on a server without the drills' search attributes would start drills that cannot run.
      if (desired.some((d) => d.workflowType === 'drillRedis')) await requireSearchAttributes(client, config);
      const plan = planSchedules(
        desired,
        await existingSchedules(
          client,
          desired.map((d) => d.scheduleId),
        ),
      );
      if (!dryRun) {
        for (const d of plan.create) await client.schedule.create(scheduleOptions(d));
        for (const d of plan.update) {
          const next = scheduleOptions(d);
          await client.schedule.getHandle(d.scheduleId).update((prev) => ({
            ...prev,
            spec: next.spec,
            action: next.action as typeof prev.action,
            policies: { ...prev.policies, ...next.policies },
            state: { ...prev.state, ...next.state },
          }));
        }
        for (const id of plan.remove) await client.schedule.getHandle(id).delete();
      }
      const summary = {
        dryRun,
        created: plan.create.map((d) => d.scheduleId),
        updated: plan.update.map((d) => d.scheduleId),
        deleted: plan.remove,
        unchanged: plan.unchanged,
      };
      print(global, summary, () => {
        const lines = [
          ...summary.created.map((id) => `create    ${id}`),
          ...summary.updated.map((id) => `update    ${id}`),
          ...summary.deleted.map((id) => `delete    ${id}`),
          ...summary.unchanged.map((id) => `unchanged ${id}`),
        ];
        const changes = summary.created.length + summary.updated.length + summary.deleted.length;
        lines.push(changes === 0 ? 'schedules are up to date' : `${changes} change(s)${dryRun ? ' (dry run: none made)' : ' made'}`);
        return lines.join('\n') + '\n';
      });
      await client.connection.close();
    }),
  );

const list = new Command('list').description('list the schedules this config manages').action(
  action(async (_raw: unknown, cmd: Command) => {
    const global = cmd.optsWithGlobals<GlobalOptions>();
    const config = loadCliConfig(global);
    const client = await connectClient(config);
    const rows: { scheduleId: string; paused: boolean; nextRuns: string[]; recentActions: string[] }[] = [];
    for (const s of await existingSchedules(client)) {
      if (s.managedBy !== MANAGED_BY) continue;
      const d = await client.schedule.getHandle(s.scheduleId).describe();
      rows.push({
        scheduleId: s.scheduleId,
        paused: d.state.paused,
        nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
        recentActions: d.info.recentActions.slice(-3).map((a) => `${a.takenAt.toISOString()} ${a.action.workflow.workflowId}`),
      });
    }
    print(global, rows, () =>
      rows.length === 0
        ? 'no schedules (run `runbook schedules apply`)\n'
        : rows.map((r) => `${r.scheduleId}${r.paused ? ' (paused)' : ''}\n  next: ${r.nextRuns[0] ?? 'none'}\n`).join(''),
    );
    await client.connection.close();
  }),
);

export const schedulesCommand = new Command('schedules')
  .description('backup and drill schedules from the config')
  .addCommand(apply)
  .addCommand(list);
