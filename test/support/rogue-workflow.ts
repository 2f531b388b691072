// An attacker who can reach Temporal: it starts a workflow on a task queue of its own, answers that
// workflow's tasks itself through the raw workflow-task API (no SDK worker, no workflow code), and
// schedules one of the runbooks' activities on the real worker's task queue with input of its choosing.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import Long from 'long';

const { CommandType, TaskQueueKind } = proto.temporal.api.enums.v1;

export interface RogueOutcome {
  /** The activity's failure type (its error code), when it failed. */
  failureType?: string;
  message?: string;
  nonRetryable?: boolean;
  /** The activity's result, when it completed. */
  result?: unknown;
}

/**
 * Runs `activity` with `input` on `workerQueue` from a workflow of type `workflowType` (any name,
 * even one of ours), and returns what came of it. One attempt, a minute at most.
 */
export async function rogueActivity(
  client: Client,
  opts: { workerQueue: string; activity: string; input: unknown; workflowType?: string; namespace?: string },
): Promise<RogueOutcome> {
  const namespace = opts.namespace ?? 'default';
  const rogueQueue = `rogue-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const svc = client.workflowService;
  const handle = await client.workflow.start(opts.workflowType ?? 'restoreRedis', {
    taskQueue: rogueQueue,
    workflowId: `rogue/${opts.activity}/${Date.now()}`,
    args: [],
  });
  // A long poll needs a deadline of its own (the server refuses one without).
  const poll = () =>
    client.withDeadline(Date.now() + 30_000, () =>
      svc.pollWorkflowTaskQueue({
        namespace,
        taskQueue: { name: rogueQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        identity: 'attacker',
      }),
    );
  try {
    const first = await poll();
    await svc.respondWorkflowTaskCompleted({
      namespace,
      taskToken: first.taskToken,
      identity: 'attacker',
      commands: [
        {
          commandType: CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
          scheduleActivityTaskCommandAttributes: {
            activityId: '1',
            activityType: { name: opts.activity },
            taskQueue: { name: opts.workerQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            input: { payloads: [defaultPayloadConverter.toPayload(opts.input)] },
            startToCloseTimeout: { seconds: Long.fromNumber(60) },
            retryPolicy: { maximumAttempts: 1 },
          },
        },
      ],
    });
    for (const until = Date.now() + 60_000; Date.now() < until;) {
      const next = await poll();
      for (const e of next.history?.events ?? []) {
        const failed = e.activityTaskFailedEventAttributes?.failure;
        if (failed) {
          const app = failed.cause?.applicationFailureInfo ?? failed.applicationFailureInfo;
          return {
            failureType: app?.type ?? undefined,
            message: failed.cause?.message ?? failed.message ?? undefined,
            nonRetryable: app?.nonRetryable ?? undefined,
          };
        }
        const done = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
        if (e.activityTaskCompletedEventAttributes) return { result: done ? defaultPayloadConverter.fromPayload(done) : undefined };
      }
      if (next.taskToken?.length) {
        await svc.respondWorkflowTaskCompleted({ namespace, taskToken: next.taskToken, identity: 'attacker', commands: [] });
      }
    }
    throw new Error(`the rogue ${opts.activity} never finished`);
  } finally {
    await handle.terminate('rogue test over').catch(() => undefined);
  }
}
