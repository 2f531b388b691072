// What the runbooks tell people about: one event shape for webhooks, metrics and logs.
import type { NotifyEvent } from './config';

export interface RunbookEvent {
  event: NotifyEvent;
  target: string;
  at: string;
  /** One line, for a chat message's first line. */
  title: string;
  /** A few lines of detail. */
  text: string;
  workflowId?: string;
  /** Figures for machines (Slack message metadata, metrics). */
  fields?: Record<string, string | number | boolean | null>;
}
