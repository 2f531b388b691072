// `runbook keys`: making the keys the config refers to. The private half goes to a file only this user
// can read, never to the terminal; the public half and the YAML to paste are printed.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { RunbookError } from '../../common/errors';
import { action, parseOptions, print, type GlobalOptions } from '../context';

const signingOptions = z.object({ out: z.string().trim().min(1, 'a file name') });

const signing = new Command('signing')
  .description("make the worker's signing key (Ed25519): it signs every manifest and drill report the worker stores")
  .requiredOption('--out <file>', 'where to write the private key (PEM, mode 0600); an existing file is never overwritten')
  .action(
    action(async (raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(signingOptions, raw);
      const file = path.resolve(opts.out);
      const { generateSigningKey } = await import('../../domain/trust/signing');
      const key = generateSigningKey();
      try {
        // 'wx': fails if the file exists, so a key in use is never replaced by accident.
        writeFileSync(file, key.privatePem, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
        throw new RunbookError(
          'BAD_INPUT',
          exists ? `${file} already exists: it is left as it is` : `cannot write ${file}: ${(err as Error).message}`,
          exists
            ? 'choose another --out, or remove the old key yourself if it is really unused'
            : 'pass --out with a file in a writable folder',
        );
      }
      const yaml = `signing:\n  key: ${JSON.stringify(`file:${file}`)}\n  trust:\n    - "${key.publicKey}"\n`;
      print(global, { file, publicKey: key.publicKey, keyId: key.keyId, yaml }, () =>
        [
          `wrote the private key to ${file} (mode 0600): keep it where only the worker can read it`,
          `public key ${key.publicKey} (key id ${key.keyId})`,
          '',
          'add to runbook.yaml (every reader needs the trust list; only the worker needs the key):',
          '',
          yaml,
        ].join('\n'),
      );
    }),
  );

export const keysCommand = new Command('keys').description('make the keys the config refers to').addCommand(signing);
