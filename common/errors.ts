// The closed vocabulary of failures. Workflows see the code as an ApplicationFailure `type`;
// the CLI maps it to an exit code (cli/exit-codes.ts), so both ends speak of the same things.
export const ErrorCode = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'CONFIG_NOT_FOUND',
  UNKNOWN_TARGET: 'UNKNOWN_TARGET',
  SECRET_UNRESOLVED: 'SECRET_UNRESOLVED',
  BAD_INPUT: 'BAD_INPUT',
  TARGET_UNREACHABLE: 'TARGET_UNREACHABLE',
  TARGET_AUTH_FAILED: 'TARGET_AUTH_FAILED',
  TARGET_LOADING: 'TARGET_LOADING',
  CAPTURE_FAILED: 'CAPTURE_FAILED',
  BGSAVE_FAILED: 'BGSAVE_FAILED',
  RDB_INVALID: 'RDB_INVALID',
  STORAGE_FAILED: 'STORAGE_FAILED',
  STORAGE_REFUSED: 'STORAGE_REFUSED',
  BACKUP_NOT_FOUND: 'BACKUP_NOT_FOUND',
  VERIFY_FAILED: 'VERIFY_FAILED',
  TEMPORAL_UNAVAILABLE: 'TEMPORAL_UNAVAILABLE',
  WORKFLOW_FAILED: 'WORKFLOW_FAILED',
  RESTORE_RUNNING: 'RESTORE_RUNNING',
  APPROVAL_REFUSED: 'APPROVAL_REFUSED',
  RESTORE_FAILED: 'RESTORE_FAILED',
  DRILL_FAILED: 'DRILL_FAILED',
  RECOVER_FAILED: 'RECOVER_FAILED',
  NOTIFY_FAILED: 'NOTIFY_FAILED',
  CHECK_FAILED: 'CHECK_FAILED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error a person can act on: what went wrong, and what to do about it. */
export class RunbookError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'RunbookError';
  }
}

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
]);
