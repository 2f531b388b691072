// The one failure reader, for workflows and the CLI alike: a failure reaches its reader wrapped in
// the layers it travelled through (workflow, child workflow, activity); these read through them.
import { ApplicationFailure, CancelledFailure, TerminatedFailure } from '@temporalio/common';
import { RunbookError } from './errors';

/** The failure and its causes, outermost first. */
function chain(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err; e !== undefined && e !== null && out.length < 32; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

export interface FailureView {
  /** Our error code (or another application failure type), when there is one. */
  code?: string;
  /** What went wrong, for a person. */
  message: string;
  /** What to do about it, when known apart from the message. */
  hint?: string;
}

/**
 * What a person should read: the outermost application failure (a runbook sets its own code on top of
 * its causes'), a cancellation or termination, or else the innermost message.
 */
export function readFailure(err: unknown): FailureView {
  for (const e of chain(err)) {
    if (e instanceof RunbookError) return { code: e.code, message: e.message, hint: e.hint };
    if (e instanceof ApplicationFailure) return { code: e.type ?? undefined, message: e.message };
    // Cancelled or terminated by someone: the run ended without doing its work, which is no bug of ours.
    if (e instanceof CancelledFailure || e instanceof TerminatedFailure)
      return {
        code: 'WORKFLOW_FAILED',
        message: `the run was ${e instanceof CancelledFailure ? 'cancelled' : 'terminated'}: ${e.message}`,
      };
  }
  return { message: messageOf(err) };
}

/** The innermost message of a failure: what went wrong, not the layers it travelled through. */
export function messageOf(err: unknown): string {
  const messages = chain(err)
    .map((e) => (e as { message?: unknown })?.message)
    .filter((m): m is string => typeof m === 'string' && m !== '');
  return messages.at(-1) ?? String(err);
}

/** The type of the innermost application failure: the cause's own code. */
export function innermostCode(err: unknown): string | undefined {
  return (
    chain(err)
      .filter((e): e is ApplicationFailure => e instanceof ApplicationFailure && !!e.type)
      .at(-1)?.type ?? undefined
  );
}

/** The report a failed runbook carries in its failure (restores, drills and recoveries do), if any. */
export function reportOf<T>(err: unknown): T | undefined {
  for (const e of chain(err)) if (e instanceof ApplicationFailure && e.details?.[0]) return e.details[0] as T;
  return undefined;
}
