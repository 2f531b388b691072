// Exit codes, set in one place and listed in `runbook --help` and the README.
import { ErrorCode } from '../common/errors';

export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  CONFIG: 3,
  TEMPORAL: 4,
  TARGET: 5,
  FAILED: 6,
  VERIFY: 7,
  NOT_FOUND: 8,
  REFUSED: 9,
  CHECK: 10,
  NO_WORKER: 11,
  TRUST: 12,
} as const;

export const EXIT_HELP = `
With --json, a failure is one JSON line on stderr: {"error":{"code","message","hint","exitCode"}}.

Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  bad usage or input (unknown option, malformed backup id or option value)
  3  configuration invalid or missing, unknown target, unresolved secret reference, storage refusing the credentials or the write
  4  Temporal unreachable
  5  Redis target unreachable, refusing the credentials, or loading
  6  the runbook ran and failed, or was cancelled (see its message and the Temporal UI)
  7  verification failed: a stored copy does not match its checksums
  8  backup or workflow not found
  9  refused: a restore of the target is already running, the approver may not decide, or the worker's gate refused a step
  10 runbook check: a target is out of its objectives (backup too old, drill failed or overdue, ...)
  11 no worker polls the task queue: start \`runbook worker\` (queries, approvals and --wait need one)
  12 trust: a signature is missing, forged or not trusted, or the audit trail is broken`;

export function exitCodeFor(code: string | undefined): number {
  switch (code) {
    case ErrorCode.BAD_INPUT:
      return EXIT.USAGE;
    case ErrorCode.CONFIG_INVALID:
    case ErrorCode.CONFIG_NOT_FOUND:
    case ErrorCode.UNKNOWN_TARGET:
    case ErrorCode.SECRET_UNRESOLVED:
    case ErrorCode.STORAGE_REFUSED:
      return EXIT.CONFIG;
    case ErrorCode.TEMPORAL_UNAVAILABLE:
      return EXIT.TEMPORAL;
    case ErrorCode.TARGET_UNREACHABLE:
    case ErrorCode.TARGET_AUTH_FAILED:
    case ErrorCode.TARGET_LOADING:
      return EXIT.TARGET;
    case ErrorCode.VERIFY_FAILED:
      return EXIT.VERIFY;
    case ErrorCode.BACKUP_NOT_FOUND:
    case ErrorCode.WORKFLOW_NOT_FOUND:
      return EXIT.NOT_FOUND;
    case ErrorCode.CHECK_FAILED:
      return EXIT.CHECK;
    case ErrorCode.NO_WORKER:
      return EXIT.NO_WORKER;
    case ErrorCode.RESTORE_RUNNING:
    case ErrorCode.APPROVAL_REFUSED:
    case ErrorCode.GATE_REFUSED:
      return EXIT.REFUSED;
    case ErrorCode.SIGNATURE_INVALID:
    case ErrorCode.AUDIT_BROKEN:
      return EXIT.TRUST;
    default:
      return code ? EXIT.FAILED : EXIT.INTERNAL;
  }
}
