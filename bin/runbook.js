#!/usr/bin/env node
// Runs the compiled CLI (dist/, from `npm run build`) when it is there and no source is newer than it,
// else the TypeScript through tsx, so that a checkout needs no build step and an edit is never run stale.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = new URL('../dist/runbook.js', import.meta.url);

/** Whether any source under dir changed after `since` (a few milliseconds for the whole tree). */
function changedSince(dir, since) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = `${dir}/${entry.name}`;
    if (entry.isDirectory() ? changedSince(file, since) : entry.name.endsWith('.ts') && statSync(file).mtimeMs > since) return true;
  }
  return false;
}

const fresh = (() => {
  if (!existsSync(compiled)) return false;
  const built = statSync(compiled).mtimeMs;
  return !['common', 'domain', 'workflows', 'activities', 'worker', 'cli'].some(
    (d) => existsSync(root + d) && changedSince(root + d, built),
  );
})();

if (fresh) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/index.ts');
}
