import { WorkflowFailedError } from '@temporalio/client';
import { expect } from 'vitest';

/** The innermost failure of a workflow that must fail: its type and message. */
export async function failureOf(p: Promise<unknown>): Promise<{ type?: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  let cause = (err as WorkflowFailedError).cause as { type?: string; message: string; cause?: unknown } | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  return { type: cause?.type, message: cause?.message ?? '' };
}
