// What every runbook tells: notifications to the target's webhooks, and records in its audit trail.
import { Context } from '@temporalio/activity';
import type { AuditEvent } from '../common/audit';
import type { RunbookEvent } from '../common/events';
import { appendAudit } from '../domain/audit';
import { sendNotification } from '../domain/notify';
import type { Deps } from './deps';
import { createGate } from './gate';

export function createRecordActivities(deps: Deps) {
  const gate = createGate(deps);
  return {
    /** Sends an event to the target's webhooks; the metrics hear of it on the first attempt only. */
    async notify(event: RunbookEvent): Promise<string[]> {
      const ctx = Context.current();
      if (ctx.info.attempt === 1) deps.onEvent?.(event);
      // Webhooks reached by an earlier attempt are not sent the event again.
      const sent = new Set((ctx.info.heartbeatDetails as string[] | undefined) ?? []);
      return sendNotification(deps.config, event, {
        skip: sent,
        onSent: (webhook) => {
          sent.add(webhook);
          ctx.heartbeat([...sent]);
        },
      });
    },

    /**
     * Appends to the target's audit chain. The run is the one this activity belongs to, whatever the
     * event says; a retry of an append that landed adds nothing (its key: this run and activity).
     */
    async recordAudit(event: AuditEvent): Promise<void> {
      const { info, log } = Context.current();
      const workflowId = info.workflowExecution?.workflowId ?? 'unknown';
      const runId = info.workflowExecution?.runId ?? 'unknown';
      // A record of someone's decision is written only if this run holds their signed statement.
      await gate.checkAuditClaim(event);
      const result = await appendAudit(deps, { ...event, workflowId, runId }, `${runId}/${info.activityId}`);
      if (result.disagreeing.length) {
        log.warn(
          `audit record ${result.seq} of ${event.target} differs in ${result.disagreeing.join(', ')}: see \`runbook audit ${event.target} --verify\``,
        );
      }
    },
  };
}
