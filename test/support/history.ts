// What a run's history says of one of its activities: the attempt it started at, and why the attempt
// before failed (Temporal records only an activity's last start, with the previous failure).
import type { Client } from '@temporalio/client';

export async function activityAttempt(
  client: Client,
  workflowId: string,
  activity: string,
  /** Which of the activity's schedulings, when the run scheduled it more than once. */
  which: 'first' | 'last' = 'last',
): Promise<{ attempt: number; lastFailure?: string }> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  let out = { attempt: 0, lastFailure: undefined as string | undefined };
  for (const e of history.events ?? []) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) scheduled.set(String(e.eventId), name);
    const started = e.activityTaskStartedEventAttributes;
    if (started && scheduled.get(String(started.scheduledEventId)) === activity && (which === 'last' || out.attempt === 0)) {
      out = { attempt: started.attempt ?? 1, lastFailure: started.lastFailure?.message ?? undefined };
    }
  }
  return out;
}
