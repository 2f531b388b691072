import { Command } from 'commander';
import { readAudit } from '../../domain/audit';
import { storeRegistry } from '../../domain/storage';
import { targetOf } from '../../common/config';
import { action, loadCliConfig, print, type GlobalOptions } from '../context';

export const auditCommand = new Command('audit')
  .description("print a target's audit trail: restore requests, approvals, rejections and outcomes (JSON lines with --json)")
  .argument('<target>')
  .action(
    action(async (target: string, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      targetOf(config, target);
      const events = await readAudit(config, storeRegistry(config), target);
      if (global.json) {
        process.stdout.write(events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : ''));
        return;
      }
      print(global, events, () =>
        events.length === 0
          ? `no audit records for ${target}\n`
          : events
              .map(
                (e) =>
                  `${e.at}  ${e.action} ${e.event.padEnd(9)} by ${e.actor}${e.identity ? ` (${e.identity})` : ''}  ${e.workflowId}${e.detail ? `: ${e.detail}` : ''}`,
              )
              .join('\n') + '\n',
      );
    }),
  );
