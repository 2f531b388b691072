// Activities of the restore runbook. Each is safe to retry: planning and verifying only read; pausing
// and resuming are idempotent; making a backup live starts over from the same proven file.
import { Context } from '@temporalio/activity';
import { targetOf } from '../common/config';
import { fail } from '../common/errors';
import type { MakeLiveResult, RestoreCheck, RestorePlan, TargetState, WriterPauseState } from '../common/restore-types';
import { findBackup } from '../domain/catalog';
import { connectTarget } from '../domain/redis-target';
import { localRdb, removeLocalRdb } from '../domain/restore/local-rdb';
import { makeLive, readTargetState } from '../domain/restore/make-live';
import { planRestore, type PlanInput } from '../domain/restore/plan';
import { databasesFor } from '../domain/restore/scratch';
import { referencePool, restoreChecks } from '../domain/restore/verify';
import { pauseWriter, resumeWriter } from '../domain/restore/writers';
import { runCommand } from '../domain/tools';
import type { Progress } from '../domain/progress';
import { workflowIds } from '../common/workflow-ids';
import type { SignedStatement, Signer, StatementKind } from '../common/approval-statement';
import { stallMsFor, type Deps } from './deps';
import { createGate } from './gate';
import { whileMoving } from './heartbeat';

export function createRestoreActivities(deps: Deps) {
  const { config, stores, keys } = deps;
  const references = referencePool();
  const gate = createGate(deps);
  const writerOf = (target: string, name: string) =>
    targetOf(config, target).restore.writers.find((x) => x.name === name) ??
    fail('CONFIG_INVALID', `target ${target} has no writer named ${name}`);
  const runId = () => Context.current().info.workflowExecution?.runId;
  /** The backup's one manifest, read by id, and its RDB on this worker: proven by this run's plan, or proven now. */
  const backupOnWorker = async (backupId: string, p: Progress, allowUnsigned?: boolean) => {
    const { manifest, destinations } = await findBackup(config, stores, backupId, { allowUnsigned });
    const { file } = await localRdb(stores, manifest, destinations, { keys, signal: p.signal, runId: runId(), onBytes: () => p.moved() });
    return { manifest, rdbFile: file };
  };
  const onTarget = async <T>(target: string, fn: (c: Awaited<ReturnType<typeof connectTarget>>) => Promise<T>) => {
    const client = await connectTarget(target, targetOf(config, target));
    try {
      return await fn(client);
    } finally {
      client.disconnect();
    }
  };

  return {
    /** What would be replaced by what: nothing is touched. Refuses what cannot work before anyone approves it. */
    async planRestore(input: Omit<PlanInput, 'runId'>): Promise<RestorePlan> {
      return whileMoving((p) => planRestore(deps, { ...input, runId: runId() }, p), stallMsFor(config, input.sourceTarget ?? input.target));
    },

    /** Who signed a statement sent to this run: the workflow counts it only if this says who. */
    async verifyStatement(input: { kind: StatementKind; signed: SignedStatement }): Promise<Signer> {
      return gate.verifyStatement(input);
    },

    async pauseWriter(input: { target: string; writer: string }): Promise<WriterPauseState> {
      await gate.approvedRun(input.target);
      return pauseWriter(writerOf(input.target, input.writer));
    },

    async resumeWriter(input: { target: string; paused: WriterPauseState }): Promise<void> {
      await gate.approvedRun(input.target);
      return resumeWriter(writerOf(input.target, input.paused.writer), input.paused);
    },

    /** CLIENT PAUSE is time-limited on purpose: if the runbook dies, writers come back after limitMs. */
    async pauseClientWrites(input: { target: string; limitMs: number }): Promise<void> {
      await gate.approvedRun(input.target);
      return onTarget(input.target, async (c) => void (await c.call('CLIENT', 'PAUSE', String(input.limitMs), 'WRITE')));
    },

    async unpauseClientWrites(input: { target: string }): Promise<void> {
      await gate.approvedRun(input.target);
      return onTarget(input.target, async (c) => void (await c.call('CLIENT', 'UNPAUSE')));
    },

    /** `undo`: the rollback to the safety backup, retried until it succeeds (activities/failures.ts). */
    async makeLive(input: { target: string; backupId: string; undo?: boolean; allowUnsigned?: boolean }): Promise<MakeLiveResult> {
      const approved = await gate.approvedRun(input.target);
      return whileMoving(async (p) => {
        // Fetching is alive while bytes arrive; making live is local work under its own deadlines.
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, p, input.allowUnsigned);
        // Only what was approved goes live: the signed backup, or this run's own safety backup as its undo.
        const safetyOfThisRun = manifest.workflow.workflowId === workflowIds.safetyBackup(input.target, approved.runId);
        if (input.undo ? !safetyOfThisRun : input.backupId !== approved.plan.backupId || manifest.rdb.sha256 !== approved.plan.rdbSha256) {
          fail(
            'GATE_REFUSED',
            input.undo
              ? `the worker refuses to roll ${input.target} back to ${input.backupId}: it is not the safety backup of run ${approved.runId}`
              : `the worker refuses to make ${input.backupId} live on ${input.target}: the signed approvals are for ${approved.plan.backupId} (RDB SHA-256 ${approved.plan.rdbSha256.slice(0, 12)}…)`,
          );
        }
        const databases = databasesFor(manifest.keyspace);
        // The reference that verification compares the target with loads meanwhile, on the other core.
        references.start(input.backupId, rdbFile, databases);
        return p.alive(
          makeLive({
            targetName: input.target,
            target: targetOf(config, input.target),
            rdbFile,
            backupId: input.backupId,
            databases,
            heartbeat: (d) => p.moved(d),
            signal: p.signal,
          }),
        );
      });
    },

    /** What is on the target now, in one line: for a report that must say what it could not undo. */
    async describeTarget(input: { target: string }): Promise<string> {
      return onTarget(input.target, async (c) => {
        const s = await readTargetState(c);
        return `${s.role}, Redis ${s.version}, ${s.keys} keys (${
          Object.entries(s.keyspace)
            .map(([db, k]) => `${db}: ${k.keys}`)
            .join(', ') || 'empty'
        })`;
      });
    },

    /** The target's own check (a smoke test, an application probe), run before verification. */
    async afterMakeLive(input: { target: string }): Promise<void> {
      await gate.approvedRun(input.target);
      const command = targetOf(config, input.target).restore.afterMakeLive;
      if (command) await runCommand(command, { what: 'afterMakeLive', code: 'VERIFY_FAILED', timeoutMs: 10 * 60_000 });
    },

    /** Is the target now the backup? Key counts, a sample of keys against the backup, settings as before. */
    async verifyRestore(input: {
      target: string;
      backupId: string;
      before: TargetState;
      sample?: number;
      allowUnsigned?: boolean;
    }): Promise<RestoreCheck[]> {
      return whileMoving(async (p) => {
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, p, input.allowUnsigned);
        const reference = await p.alive(references.take(input.backupId, rdbFile, databasesFor(manifest.keyspace)));
        try {
          return await p.alive(onTarget(input.target, (c) => restoreChecks(manifest, reference.client, c, input.before, input.sample)));
        } finally {
          await reference.stop();
        }
      });
    },

    /** The decrypted copies on this worker are production data: removed, and a failure to remove them is told. */
    async removeRestoreFiles(input: { backupIds: string[] }): Promise<void> {
      await Promise.all(input.backupIds.map((id) => references.drop(id)));
      await Promise.all(input.backupIds.map(removeLocalRdb));
    },
  };
}
