import { Command } from 'commander';
import * as units from '../../common/units';
import { z } from 'zod';
import { parseBackupId } from '../../common/backup-id';
import { RunbookError } from '../../common/errors';
import { artifactKeys } from '../../common/types';
import { findBackup, listBackups } from '../../domain/catalog';
import { storeRegistry } from '../../domain/storage';
import { verifyCopy } from '../../domain/verify';
import { keyring } from '../../domain/crypto/keys';
import { action, parseOptions, loadCliConfig, print, type GlobalOptions } from '../context';
import { EXIT } from '../exit-codes';

/** Table cells: no space inside a size. */
const mib = (n: number) => units.mib(n).replace(' ', '');

const list = new Command('list')
  .description('list the backups of a target (only those with a manifest exist)')
  .argument('<target>')
  .action(
    action(async (target: string, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const entries = await listBackups(config, storeRegistry(config), target);
      print(
        global,
        entries.map((e) => ({
          backupId: e.backupId,
          createdAt: e.createdAt,
          rdbSize: e.manifest.rdb.size,
          storedSize: e.manifest.artifact.size,
          keys: e.manifest.rdb.keys,
          verified: e.manifest.verification.copies.every((c) => c.ok),
          destinations: e.destinations,
          tags: e.manifest.tags,
        })),
        () =>
          entries.length === 0
            ? `no backups of ${target}\n`
            : [
                'BACKUP ID                                  CREATED (UTC)         RDB        STORED     KEYS      DESTINATIONS',
                ...entries.map((e) =>
                  [
                    e.backupId.padEnd(42),
                    e.createdAt.slice(0, 19).padEnd(21),
                    mib(e.manifest.rdb.size).padEnd(10),
                    mib(e.manifest.artifact.size).padEnd(10),
                    String(e.manifest.rdb.keys).padEnd(9),
                    e.destinations.join(','),
                  ].join(' '),
                ),
              ].join('\n') + '\n',
      );
    }),
  );

const show = new Command('show')
  .description('show a backup: its manifest and report')
  .argument('<backupId>')
  .action(
    action(async (backupId: string, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      parseBackupId(backupId);
      const config = loadCliConfig(global);
      const stores = storeRegistry(config);
      const entry = await findBackup(config, stores, backupId);
      const reportText = await stores(entry.destinations[0]!).readText(artifactKeys(entry.target, backupId).reportText);
      print(global, { ...entry, report: reportText }, () => {
        const m = entry.manifest;
        return [
          reportText ?? `backup ${backupId} of ${entry.target}`,
          `copies:`,
          ...m.copies.map((c) => `  ${c.destination}: ${c.location} (${mib(c.size)})`),
          `checksums: stored sha256 ${m.artifact.sha256}`,
          `           RDB    sha256 ${m.rdb.sha256}`,
          `prefixes (SCAN sample of ${m.prefixes.sampleSize}): ${
            m.prefixes.top
              .slice(0, 8)
              .map((p) => `${p.prefix}~${p.estimated}`)
              .join(' ') || 'none'
          }`,
          '',
        ].join('\n');
      });
    }),
  );

const verifyOptions = z.object({ destination: z.string().optional() });

const verify = new Command('verify')
  .description('re-read every stored copy of a backup and check it against its manifest')
  .argument('<backupId>')
  .option('--destination <name>', 'check only this destination')
  .action(
    action(async (backupId: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(verifyOptions, raw);
      parseBackupId(backupId);
      const config = loadCliConfig(global);
      const stores = storeRegistry(config);
      const entry = await findBackup(config, stores, backupId);
      const destinations = opts.destination ? [opts.destination] : entry.destinations;
      if (opts.destination && !entry.destinations.includes(opts.destination)) {
        throw new RunbookError(
          'BACKUP_NOT_FOUND',
          `backup ${backupId} has no copy in ${opts.destination}`,
          `its copies: ${entry.destinations.join(', ')}`,
        );
      }
      const m = entry.manifest;
      const key = artifactKeys(entry.target, backupId).data(m.artifact.file);
      const checks = await Promise.all(
        destinations.map((d) => verifyCopy(stores(d), key, { ...m.artifact, rdb: m.rdb }, { keys: keyring(config) })),
      );
      const ok = checks.every((c) => c.ok);
      print(global, { backupId, ok, checks }, () =>
        checks.map((c) => `${c.ok ? 'ok    ' : 'FAILED'} ${c.destination}: ${c.detail}\n`).join(''),
      );
      if (!ok) process.exitCode = EXIT.VERIFY;
    }),
  );

export const backupsCommand = new Command('backups')
  .description('list, show and verify backups')
  .addCommand(list)
  .addCommand(show)
  .addCommand(verify);
