// Notifications: a Slack-compatible JSON body POSTed to the webhooks a target names for the event.
// The URL is a secret (a Slack webhook URL is a credential): resolved here, and never in an error.
import type { Config } from '../common/config';
import { targetOf } from '../common/config';
import { durationMs } from '../common/duration';
import { RunbookError } from '../common/errors';
import type { RunbookEvent } from '../common/events';
import { resolveSecret } from './secrets';

export interface SlackBody {
  text: string;
  /** Slack message metadata: the event for programs reading the channel (or any other receiver). */
  metadata: { event_type: string; event_payload: Record<string, unknown> };
}

/** Slack reads `<...>` as a link or mention and `&` as an entity: escaped (as Slack asks), a reason stays text. */
export const slackEscape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function slackBody(e: RunbookEvent): SlackBody {
  return {
    text: `*${slackEscape(e.title)}*\n${slackEscape(e.text)}`,
    metadata: {
      event_type: `redis_runbooks_${e.event.replace(/-/g, '_')}`,
      event_payload: { target: e.target, at: e.at, workflowId: e.workflowId ?? null, ...e.fields },
    },
  };
}

/**
 * Sends the event to every webhook of its target that wants it, except those in `skip` (reached by an
 * earlier attempt); `onSent` hears of each success. Returns the names of all that want it.
 */
export async function sendNotification(
  config: Config,
  e: RunbookEvent,
  opts: { skip?: ReadonlySet<string>; onSent?: (webhook: string) => void } = {},
): Promise<string[]> {
  const all = targetOf(config, e.target).notify.filter((n) => n.events.includes(e.event));
  const wanted = all.filter((n) => !opts.skip?.has(n.webhook));
  const body = JSON.stringify(slackBody(e));
  // Settled, not all: a webhook reached after another failed still counts as reached.
  const results = await Promise.allSettled(
    wanted.map(async ({ webhook }) => {
      const hook = config.webhooks[webhook]!;
      const url = resolveSecret(hook.url, `webhooks.${webhook}.url`);
      let status: number;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(durationMs(hook.timeout)),
        });
        status = res.status;
        await res.body?.cancel();
      } catch (err) {
        // The cause names the host and reason; the URL (with its token) is never echoed.
        const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
        throw new RunbookError('NOTIFY_FAILED', `webhook ${webhook} could not be reached (${cause})`, 'check the URL it references');
      }
      if (status < 200 || status >= 300) {
        throw new RunbookError('NOTIFY_FAILED', `webhook ${webhook} answered HTTP ${status}`, 'check the URL it references');
      }
      opts.onSent?.(webhook);
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return all.map((w) => w.webhook);
}
