// The closed vocabulary of failures, and the one way to fail. A RunbookError is a Temporal
// ApplicationFailure: thrown in an activity or a workflow it reaches the caller with its code as the
// failure `type` and is retried only when the code can clear by itself; the CLI maps the same code to
// an exit code (cli/exit-codes.ts), so every end speaks of the same things.
import { ApplicationFailure } from '@temporalio/common';

export const ErrorCode = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'CONFIG_NOT_FOUND',
  UNKNOWN_TARGET: 'UNKNOWN_TARGET',
  SECRET_UNRESOLVED: 'SECRET_UNRESOLVED',
  BAD_INPUT: 'BAD_INPUT',
  TARGET_UNREACHABLE: 'TARGET_UNREACHABLE',
  TARGET_AUTH_FAILED: 'TARGET_AUTH_FAILED',
  TARGET_LOADING: 'TARGET_LOADING',
  /** Nothing moved for too long (a download, a stream): given up, to be tried again. */
  STALLED: 'STALLED',
  CAPTURE_FAILED: 'CAPTURE_FAILED',
  BGSAVE_FAILED: 'BGSAVE_FAILED',
  RDB_INVALID: 'RDB_INVALID',
  /** A program the runbooks drive (zstd, age, redis-check-rdb, a hook) could not run or failed. */
  TOOL_FAILED: 'TOOL_FAILED',
  /** A scratch or sandbox redis-server on the worker did not serve the backup. */
  SCRATCH_FAILED: 'SCRATCH_FAILED',
  /** A writer (a command, an HTTP hook, a Kubernetes deployment) could not be paused or resumed. */
  WRITER_FAILED: 'WRITER_FAILED',
  /** The target could not be given the backup's data (replicate, swap the file, RESTORE the keys). */
  MAKE_LIVE_FAILED: 'MAKE_LIVE_FAILED',
  STORAGE_REFUSED: 'STORAGE_REFUSED',
  /** A destination failed in a way that may clear (unreachable, 5xx, throttled): retried. */
  STORAGE_FAILED: 'STORAGE_FAILED',
  /** A destination is out of space (or quota): not retried, since that does not clear in seconds. */
  STORAGE_FULL: 'STORAGE_FULL',
  /** No worker polls the runbooks' task queue: nothing would run what was asked. */
  NO_WORKER: 'NO_WORKER',
  BACKUP_NOT_FOUND: 'BACKUP_NOT_FOUND',
  WORKFLOW_NOT_FOUND: 'WORKFLOW_NOT_FOUND',
  VERIFY_FAILED: 'VERIFY_FAILED',
  TEMPORAL_UNAVAILABLE: 'TEMPORAL_UNAVAILABLE',
  /** A run ended without doing its work because someone cancelled or terminated it. */
  WORKFLOW_FAILED: 'WORKFLOW_FAILED',
  RESTORE_RUNNING: 'RESTORE_RUNNING',
  APPROVAL_REFUSED: 'APPROVAL_REFUSED',
  /** A signature (an approval, a manifest, a drill report, an audit record) is missing, forged or not trusted. */
  SIGNATURE_INVALID: 'SIGNATURE_INVALID',
  /** The worker refused a step that changes a target: the run holds no valid signed approval for it. */
  GATE_REFUSED: 'GATE_REFUSED',
  /** The audit trail is not intact: a record was changed, removed, inserted or reordered. */
  AUDIT_BROKEN: 'AUDIT_BROKEN',
  RESTORE_FAILED: 'RESTORE_FAILED',
  RESTORE_CANCELLED: 'RESTORE_CANCELLED',
  DRILL_FAILED: 'DRILL_FAILED',
  RECOVER_FAILED: 'RECOVER_FAILED',
  NOTIFY_FAILED: 'NOTIFY_FAILED',
  CHECK_FAILED: 'CHECK_FAILED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes that retrying cannot fix: the activity fails at once instead of burning its retries. */
export const PERMANENT: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.CONFIG_INVALID,
  ErrorCode.CONFIG_NOT_FOUND,
  ErrorCode.UNKNOWN_TARGET,
  ErrorCode.SECRET_UNRESOLVED,
  ErrorCode.BAD_INPUT,
  ErrorCode.TARGET_AUTH_FAILED,
  ErrorCode.BGSAVE_FAILED,
  ErrorCode.BACKUP_NOT_FOUND,
  ErrorCode.VERIFY_FAILED,
  ErrorCode.RDB_INVALID,
  ErrorCode.STORAGE_REFUSED,
  ErrorCode.STORAGE_FULL,
  ErrorCode.RESTORE_FAILED,
  ErrorCode.RESTORE_CANCELLED,
  ErrorCode.RESTORE_RUNNING,
  ErrorCode.DRILL_FAILED,
  ErrorCode.RECOVER_FAILED,
  ErrorCode.SIGNATURE_INVALID,
  ErrorCode.GATE_REFUSED,
  ErrorCode.AUDIT_BROKEN,
]);

/**
 * An error a person can act on: what went wrong, and what to do about it. It is an ApplicationFailure,
 * so a workflow fails with its code as the failure type; an activity's is passed on by `asFailure`.
 */
export class RunbookError extends ApplicationFailure {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    details?: unknown[],
  ) {
    super(message, code, PERMANENT.has(code), details);
    Object.defineProperty(this, 'name', { value: 'RunbookError', enumerable: false, configurable: true, writable: true });
  }
}

/**
 * The failure an activity reports for an error: the hint joins the message (a failure that crosses
 * Temporal carries one message), and the code decides whether Temporal retries it.
 */
export function asFailure(err: unknown): unknown {
  if (!(err instanceof RunbookError) || !err.hint) return err;
  return new ApplicationFailure(`${err.message} (${err.hint})`, err.code, err.nonRetryable, err.details, err.cause);
}

/** The one way to fail, in activities, workflows, the domain library and the CLI alike. */
export function fail(code: ErrorCode, message: string, hint?: string, details?: unknown[]): never {
  throw new RunbookError(code, message, hint, details);
}
