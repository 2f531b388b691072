import { open } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { targetOf } from '../../common/config';
import { durationMs } from '../../common/duration';
import { RunbookError } from '../../common/errors';
import { action, loadCliConfig, parseOptions, print, type GlobalOptions } from '../context';

const options = z.object({
  out: z.string().trim().min(1, 'a file name').optional(),
  days: z
    .string()
    .regex(/^\d{1,5}$/, 'a whole number of days')
    .transform(Number)
    .pipe(z.number().int().min(1, 'at least 1 day').max(36_500, 'at most 36500 days')),
});

export const reportCommand = new Command('report')
  .description("write a target's backups, drills, restores and approvals as one self-contained HTML page")
  .argument('<target>')
  .option('--out <file>', 'the file to write (default: ./<target>-report.html)')
  .option('--days <n>', 'cover the last n days', '90')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const opts = parseOptions(options, raw);
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const target = targetOf(config, targetName);
      const [{ readAudit }, { listBackups }, { listDrillReports }, { storeRegistry }, { renderHtmlReport }] = await Promise.all([
        import('../../domain/audit'),
        import('../../domain/catalog'),
        import('../../domain/drill-store'),
        import('../../domain/storage'),
        import('../html-report'),
      ]);
      const stores = storeRegistry(config);
      const [entries, drills, audit] = await Promise.all([
        listBackups(config, stores, targetName),
        listDrillReports(config, stores, targetName),
        readAudit(config, stores, targetName),
      ]);

      const now = new Date();
      const since = now.getTime() - opts.days * 86_400_000;
      const within = (iso: string | undefined) => Date.parse(iso ?? '') >= since;
      const data = {
        target: targetName,
        generatedAt: now.toISOString(),
        objectives: { rpoMs: durationMs(target.rpo), rtoMs: durationMs(target.rto) },
        backups: entries.map((e) => e.manifest).filter((m) => within(m.createdAt)),
        drills: drills.filter((d) => within(d.startedAt)),
        audit: audit.filter((e) => within(e.at)),
        periodDays: opts.days,
      };

      const file = path.resolve(opts.out ?? `${targetName}-report.html`);
      try {
        // For its reader only (it maps the backups and servers); an existing file is made so before it is filled.
        const fh = await open(file, 'w', 0o600);
        try {
          await fh.chmod(0o600);
          await fh.writeFile(renderHtmlReport(data));
        } finally {
          await fh.close();
        }
      } catch (err) {
        throw new RunbookError(
          'BAD_INPUT',
          `cannot write ${file}: ${(err as Error).message}`,
          'pass --out with a file in a writable folder',
        );
      }
      print(global, { file, backups: data.backups.length, drills: data.drills.length, events: data.audit.length }, () => `${file}\n`);
    }),
  );
