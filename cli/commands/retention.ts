import { Command } from 'commander';
import { z } from 'zod';
import { retention } from '../../activities';
import { storeRegistry } from '../../domain/storage';
import { targetOf } from '../../common/config';
import { action, connectClient, loadCliConfig, print, type GlobalOptions } from '../context';

const options = z.object({ dryRun: z.boolean().default(false) });

export const retentionCommand = new Command('retention')
  .description("apply a target's retention policy now (every backup also applies it when it ends)")
  .argument('<target>')
  .option('--dry-run', 'show what would be deleted, delete nothing')
  .action(
    action(async (target: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { dryRun } = options.parse(raw);
      const config = loadCliConfig(global);
      targetOf(config, target);
      // Temporal tells a running backup's unfinished folder from an abandoned one; without it, both stay.
      const temporal = await connectClient(config).catch(() => undefined);
      const outcome = await retention({ config, stores: storeRegistry(config), temporal }, target, dryRun);
      const verb = dryRun ? 'would delete' : 'deleted';
      print(global, outcome, () =>
        [
          ...outcome.kept.map((k) => `keep   ${k.backupId} (${k.reasons.join(', ')})`),
          ...outcome.deleted.map((id) => `${dryRun ? 'delete' : 'deleted'} ${id}`),
          ...outcome.suspicious.map((id) => `leave  ${id} (its manifest is damaged or names another backup: look at it)`),
          ...outcome.abandoned.map((id) => `${dryRun ? 'clear' : 'cleared'}  ${id} (unfinished run that ended)`),
          `${verb} ${outcome.deleted.length} backup(s), kept ${outcome.kept.length}${dryRun ? ' (dry run: nothing was deleted)' : ''}`,
          '',
        ].join('\n'),
      );
      await temporal?.connection.close();
    }),
  );
