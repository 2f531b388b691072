import { Command } from 'commander';
import * as units from '../../common/units';
import { z } from 'zod';
import { parseBackupId } from '../../common/backup-id';
import { RunbookError } from '../../common/errors';
import { artifactKeys } from '../../common/types';
import type { CatalogEntry } from '../../domain/catalog';
import { action, parseOptions, loadCliConfig, print, type GlobalOptions } from '../context';
import { EXIT } from '../exit-codes';

/** Table cells: no space inside a size. */
const mib = (n: number) => units.mib(n).replace(' ', '');

/** What a manifest says, read defensively: one that does not count may not even have the fields. */
const said = (e: CatalogEntry) => ({
  rdbSize: Number(e.manifest.rdb?.size ?? NaN),
  storedSize: Number(e.manifest.artifact?.size ?? NaN),
  keys: Number(e.manifest.rdb?.keys ?? NaN),
  verified: Array.isArray(e.manifest.verification?.copies) && e.manifest.verification.copies.every((c) => c.ok),
});
const cell = (n: number, f: (n: number) => string) => (Number.isFinite(n) ? f(n) : '?');

const list = new Command('list')
  .description('list the backups of a target (only those with a manifest exist), with whether each is trusted and why not')
  .argument('<target>')
  .action(
    action(async (target: string, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const [{ listBackups }, { storeRegistry }] = await Promise.all([import('../../domain/catalog'), import('../../domain/storage')]);
      const entries = await listBackups(config, storeRegistry(config), target, { includeUntrusted: true });
      print(
        global,
        entries.map((e) => ({
          backupId: e.backupId,
          createdAt: e.createdAt,
          ...said(e),
          destinations: e.destinations,
          tags: e.manifest.tags,
          trust: e.trust,
          ...(e.otherCopies ? { otherCopies: e.otherCopies } : {}),
        })),
        () =>
          entries.length === 0
            ? `no backups of ${target}\n`
            : [
                'BACKUP ID                                  CREATED (UTC)         RDB        STORED     KEYS      TRUST     DESTINATIONS',
                ...entries.flatMap((e) => {
                  const m = said(e);
                  return [
                    [
                      e.backupId.padEnd(42),
                      String(e.createdAt).slice(0, 19).padEnd(21),
                      cell(m.rdbSize, mib).padEnd(10),
                      cell(m.storedSize, mib).padEnd(10),
                      cell(m.keys, String).padEnd(9),
                      e.trust.state.padEnd(9),
                      e.destinations.join(','),
                    ].join(' '),
                    ...(e.trust.reason ? [`  ${e.trust.state}: ${e.trust.reason}`] : []),
                    ...(e.otherCopies ?? []).map(
                      (o) => `  the copy in ${o.destination} is ${o.trust.state}: ${o.trust.reason ?? 'it differs'}`,
                    ),
                  ];
                }),
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
      const [{ inspectBackup }, { storeRegistry }] = await Promise.all([import('../../domain/catalog'), import('../../domain/storage')]);
      const stores = storeRegistry(config);
      // Shown whatever its trust, so that a person can look at what was planted or changed.
      const entry = await inspectBackup(config, stores, backupId);
      const trusted = entry.trust.state === 'trusted';
      const reportText = trusted ? await stores(entry.destinations[0]!).readText(artifactKeys(entry.target, backupId).reportText) : null;
      print(global, { ...entry, report: reportText }, () => {
        const m = entry.manifest;
        return [
          trusted
            ? `trust: signed by key ${entry.trust.keyId}`
            : `trust: ${entry.trust.state.toUpperCase()}: ${entry.trust.reason} (this manifest does not count; nothing uses it)`,
          ...(entry.otherCopies ?? []).map(
            (o) => `       the copy in ${o.destination} is ${o.trust.state}: ${o.trust.reason ?? 'it differs'}`,
          ),
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

const verifyOptions = z.object({ destination: z.string().optional(), allowUnsigned: z.boolean().default(false) });

const verify = new Command('verify')
  .description('re-read every stored copy of a backup and check it against its manifest')
  .argument('<backupId>')
  .option('--destination <name>', 'check only this destination')
  .option('--allow-unsigned', 'also check a backup whose manifest is unsigned (made before signing); never a forged one')
  .action(
    action(async (backupId: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(verifyOptions, raw);
      parseBackupId(backupId);
      const config = loadCliConfig(global);
      const [{ findBackup }, { storeRegistry }, { verifyCopy }, { keyring }] = await Promise.all([
        import('../../domain/catalog'),
        import('../../domain/storage'),
        import('../../domain/verify'),
        import('../../domain/crypto/keys'),
      ]);
      const stores = storeRegistry(config);
      const entry = await findBackup(config, stores, backupId, { allowUnsigned: opts.allowUnsigned });
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
