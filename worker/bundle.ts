// The workflow bundle, built once per version of the workflow code in a separate process and cached:
// webpack at worker start would cost the worker seconds and ~150 MiB of memory it never gives back.
// The compiled CLI (`npm run build`) carries its bundle, made from the same sources, beside it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { toolsDir } from '../domain/tools';

const root = fileURLToPath(new URL('..', import.meta.url));
/** In dist/ (compiled, flat): the bundle the build wrote next to this code. From the sources: none. */
const prebuilt = import.meta.url.endsWith('.ts') ? undefined : fileURLToPath(new URL('workflow-bundle.js', import.meta.url));

/** A hash of everything the bundle is made of: our workflow-side sources and the SDK's version. */
function sourceHash(): string {
  const h = createHash('sha256');
  for (const dir of ['workflows', 'common']) {
    for (const name of readdirSync(path.join(root, dir)).sort()) {
      if (name.endsWith('.ts')) h.update(name).update(readFileSync(path.join(root, dir, name)));
    }
  }
  h.update(readFileSync(path.join(root, 'node_modules', '@temporalio', 'workflow', 'package.json')));
  return h.digest('hex').slice(0, 16);
}

export async function workflowBundlePath(): Promise<string> {
  if (prebuilt && existsSync(prebuilt)) return prebuilt;
  const file = path.join(toolsDir(), 'bundles', `workflows-${sourceHash()}.js`);
  if (!existsSync(file)) {
    await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(root, 'worker', 'build-bundle.ts'), file], { cwd: root });
  }
  return file;
}
