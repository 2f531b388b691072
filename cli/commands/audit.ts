import { Command } from 'commander';
import { auditLine, escapeControls } from '../../common/audit';
import { targetOf } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { action, loadCliConfig, print, type GlobalOptions } from '../context';

export const auditCommand = new Command('audit')
  .description(
    "print a target's audit trail: restore requests, approvals, rejections and outcomes (JSON lines with --json); " +
      '--verify proves its hash chain and signatures in every destination (exit 12 when broken)',
  )
  .argument('<target>')
  .option('--verify', 'verify the chain in every destination: signatures, links, order, and the destinations against each other')
  .action(
    action(async (target: string, opts: { verify?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      targetOf(config, target);
      const [{ readAudit, verifyAudit }, { servicesFor }] = await Promise.all([
        import('../../domain/audit'),
        import('../../domain/services'),
      ]);
      const services = servicesFor(config);
      if (opts.verify) {
        const v = await verifyAudit(services, target);
        const legacy = v.legacy ? ` (and ${v.legacy} older record${v.legacy === 1 ? '' : 's'} from before the chain, unverifiable)` : '';
        if (v.ok) {
          const where = v.destinations.map((d) => d.destination).join(', ');
          print(global, v, () => `${v.records} record${v.records === 1 ? '' : 's'}, chain intact in ${where}${legacy}\n`);
          return;
        }
        if (global.json) print(global, v, () => '');
        throw new RunbookError(
          'AUDIT_BROKEN',
          `the audit trail of ${target} is broken:\n` +
            v.breaks.map((b) => `  destination ${b.destination}, seq ${b.seq}: ${b.kind}: ${escapeControls(b.message)}`).join('\n'),
          'nothing was changed; keep the destinations as they are for the investigation, and compare them (a copy that verifies holds the original records)',
        );
      }
      const entries = await readAudit(config, services.stores, target);
      if (global.json) {
        process.stdout.write(entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''));
        return;
      }
      print(global, entries, () =>
        entries.length === 0 ? `no audit records for ${target}\n` : entries.map((e) => auditLine(e)).join('\n') + '\n',
      );
    }),
  );
