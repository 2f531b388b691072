// What every runbook tells: notifications to the target's webhooks, and records in its audit trail.
import { Context } from '@temporalio/activity';
import type { AuditEvent } from '../common/audit';
import type { RunbookEvent } from '../common/events';
import { appendAudit } from '../domain/audit';
import { sendNotification } from '../domain/notify';
import type { Deps } from './deps';

export function createRecordActivities(deps: Deps) {
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

    async recordAudit(event: AuditEvent): Promise<void> {
      return appendAudit(deps.config, deps.stores, event);
    },
  };
}
