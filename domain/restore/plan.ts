// The restore's plan: which backup replaces what, proven before anyone is asked to approve it. The
// whole backup is fetched, decrypted, decompressed and checked against its manifest (checksums and the
// RDB header) onto this worker, where the later steps of the same run find it proven.
import { targetOf } from '../../common/config';
import { durationMs } from '../../common/duration';
import { fail } from '../../common/errors';
import { maxRdbVersionFor } from '../../common/rdb';
import type { RestorePlan } from '../../common/restore-types';
import { findBackup, listBackups } from '../catalog';
import { countingBytes, type Progress } from '../progress';
import { connectTarget } from '../redis-target';
import type { Services } from '../services';
import { localRdb } from './local-rdb';
import { readTargetState } from './make-live';

export interface PlanInput {
  target: string;
  from: string;
  sourceTarget?: string;
  preferDestination?: string;
  /** The restore's run: the copy proven here is trusted by its later steps. */
  runId?: string;
  /** Accept a backup whose manifest is unsigned (made before manifests were signed); never a forged one. */
  allowUnsigned?: boolean;
}

export async function planRestore(s: Services, input: PlanInput, p: Progress): Promise<RestorePlan> {
  const t = targetOf(s.config, input.target);
  const source = input.sourceTarget ?? input.target;
  const entry =
    input.from === 'latest'
      ? (await listBackups(s.config, s.stores, source)).find((e) => e.manifest.verification.copies.every((c) => c.ok))
      : await findBackup(s.config, s.stores, input.from, { allowUnsigned: input.allowUnsigned });
  if (!entry) fail('BACKUP_NOT_FOUND', `target ${input.target} has no verified backup`, 'take one with `runbook backup`');
  if (entry.target !== source) fail('BAD_INPUT', `backup ${entry.backupId} is of target ${entry.target}, not ${source}`);
  const m = entry.manifest;
  const order = [...entry.destinations].sort((a, b) => Number(b === input.preferDestination) - Number(a === input.preferDestination));
  const proven = await localRdb(s.stores, m, order, {
    keys: s.keys,
    signal: p.signal,
    runId: input.runId,
    onBytes: countingBytes(p, 'fetch', m.artifact.size),
  });
  const client = await connectTarget(input.target, t);
  const current = await readTargetState(client).finally(() => client.disconnect());
  if (current.role !== 'master')
    fail('BAD_INPUT', `target ${input.target} is a ${current.role}`, 'restore into the master; its replicas follow it');
  const maxRdbVersion = maxRdbVersionFor(current.version);
  if (m.rdb.version > maxRdbVersion) {
    fail(
      'RDB_INVALID',
      `backup ${m.backupId} is RDB version ${m.rdb.version}, but the target runs Redis ${current.version}, which loads RDB versions up to ${maxRdbVersion}`,
      'restore into a Redis at least as new as the one backed up',
    );
  }
  const r = t.restore;
  return {
    target: input.target,
    strategy: r.strategy,
    current,
    backup: {
      backupId: m.backupId,
      createdAt: m.createdAt,
      ageSeconds: Math.round((Date.now() - Date.parse(m.createdAt)) / 1000),
      rdbVersion: m.rdb.version,
      keys: m.rdb.keys,
      expires: m.rdb.expires,
      keyspace: m.keyspace,
      size: m.rdb.size,
      rdbSha256: m.rdb.sha256,
      trust: entry.trust.state === 'trusted' ? 'signed' : 'unsigned',
      source: proven.destination,
    },
    allowUnsigned: input.allowUnsigned === true,
    maxRdbVersion,
    writers: r.writers.map((w) => w.name),
    pauseWrites: r.pauseWrites && r.strategy !== 'logical',
    pauseLimitMs: durationMs(r.pauseLimit),
    approvers: r.approvers,
    approvalsRequired: r.approvals,
    allowSelfApproval: r.allowSelfApproval,
    approvalTimeoutMs: durationMs(r.approvalTimeout),
  };
}
