// Secrets are resolved here, inside the activity, at the moment of use: they never travel through
// workflow inputs, results or history. Errors name the reference, never a value.
import { readFileSync } from 'node:fs';
import { RunbookError } from '../common/errors';

export function resolveSecret(ref: string, what: string): string {
  let value: string | undefined;
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    value = process.env[name];
    if (value === undefined) {
      throw new RunbookError(
        'SECRET_UNRESOLVED',
        `${what}: environment variable ${name} is not set`,
        `export ${name} in the worker's environment`,
      );
    }
  } else if (ref.startsWith('file:')) {
    const file = ref.slice(5);
    try {
      value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new RunbookError(
        'SECRET_UNRESOLVED',
        `${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`,
        'check the path and that the worker may read it',
      );
    }
  } else {
    throw new RunbookError('SECRET_UNRESOLVED', `${what}: "${ref.slice(0, 8)}…" is not a secret reference`, 'use env:NAME or file:PATH');
  }
  if (value === '') throw new RunbookError('SECRET_UNRESOLVED', `${what}: ${ref} is empty`, 'set a non-empty value');
  return value;
}

export const resolveOptionalSecret = (ref: string | undefined, what: string): string | undefined =>
  ref === undefined ? undefined : resolveSecret(ref, what);
