#!/usr/bin/env node
// runbook: the command line of redis-runbooks. One file per command under commands/. A command imports
// what only it needs (the Temporal client or worker, storage, signing) in its action, so that every
// start stays quick (test/integration/compiled-cli.test.ts checks what `--help` loads).
import { Command, CommanderError } from 'commander';
import { TOOL_VERSION } from '../common/version';
import { approveCommand, rejectCommand } from './commands/approve';
import { auditCommand } from './commands/audit';
import { backupCommand } from './commands/backup';
import { restoreCommand } from './commands/restore';
import { backupsCommand } from './commands/backups';
import { devCommand } from './commands/dev';
import { drillCommand, drillsCommand } from './commands/drill';
import { drCommand } from './commands/dr';
import { reportCommand } from './commands/report';
import { checkCommand } from './commands/check';
import { codecServerCommand } from './commands/codec-server';
import { configCommand } from './commands/config';
import { keysCommand } from './commands/keys';
import { retentionCommand } from './commands/retention';
import { schedulesCommand } from './commands/schedules';
import { statusCommand } from './commands/status';
import { workerCommand } from './commands/worker';
import { EXIT, EXIT_HELP } from './exit-codes';

// The locked AWS SDK supports Node 20; its notice about future releases is not the operator's concern.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const program = new Command('runbook')
  .description('Durable Redis backup and recovery runbooks on Temporal')
  .version(TOOL_VERSION)
  .option('-c, --config <file>', 'config file (default: $RUNBOOK_CONFIG or ./runbook.yaml)')
  .option('--json', 'machine-readable output')
  .addHelpText('after', EXIT_HELP)
  .addCommand(backupCommand)
  .addCommand(backupsCommand)
  .addCommand(restoreCommand)
  .addCommand(approveCommand)
  .addCommand(rejectCommand)
  .addCommand(drCommand)
  .addCommand(drillCommand)
  .addCommand(drillsCommand)
  .addCommand(auditCommand)
  .addCommand(reportCommand)
  .addCommand(checkCommand)
  .addCommand(configCommand)
  .addCommand(keysCommand)
  .addCommand(retentionCommand)
  .addCommand(schedulesCommand)
  .addCommand(statusCommand)
  .addCommand(workerCommand)
  .addCommand(devCommand)
  .addCommand(codecServerCommand)
  .exitOverride()
  .showHelpAfterError();

// With --json, commander's own refusals (unknown option, missing argument) are JSON too.
if (process.argv.includes('--json')) {
  const json = (str: string) =>
    `${JSON.stringify({ error: { code: 'BAD_INPUT', message: str.trim().replace(/^error: /, ''), exitCode: EXIT.USAGE } })}\n`;
  const quiet = (cmd: Command): void => {
    // The help a command group prints when called without a subcommand is replaced by one JSON error.
    cmd.configureOutput({ outputError: (str) => process.stderr.write(json(str)), writeErr: () => {} }).showHelpAfterError(false);
    cmd.commands.forEach(quiet);
  };
  quiet(program);
}

const override = (cmd: Command): void => {
  cmd.exitOverride();
  cmd.commands.forEach(override);
};
override(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.help' && process.argv.includes('--json')) {
      process.stderr.write(
        `${JSON.stringify({ error: { code: 'BAD_INPUT', message: 'a command is needed: see `runbook --help`', exitCode: EXIT.USAGE } })}\n`,
      );
    }
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  }
  throw err;
}
