// `npm run build`: the CLI as compiled JavaScript in dist/ (or --outdir), so that `runbook` starts
// without compiling TypeScript, and the workflow bundle prebuilt beside it, so that a worker starts
// without webpack. The sources import without extensions (moduleResolution "Bundler"), which Node
// cannot run as emitted: esbuild bundles our code, one ESM entry with a chunk per lazily imported
// part, and leaves every package in node_modules as an import. Types are checked by `npm run typecheck`.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(path.join(root, 'package.json'));

/**
 * A deep import into a package without an "exports" map (`@temporalio/common/lib/internal-non-workflow`)
 * names a directory or omits the extension: fine for tsx and require, refused by Node's ESM loader.
 * Such an import stays external, spelled as the file that require would load.
 */
const deepImports: Plugin = {
  name: 'deep-imports',
  setup(b) {
    b.onResolve({ filter: /^(@[^/]+\/)?[^./@][^/]*\/.+/ }, ({ path: spec }) => {
      if (isBuiltin(spec)) return undefined;
      const name = spec
        .split('/')
        .slice(0, spec.startsWith('@') ? 2 : 1)
        .join('/');
      const pkgFile = path.join(root, 'node_modules', name, 'package.json');
      if (!existsSync(pkgFile) || (JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports?: unknown }).exports) {
        return { path: spec, external: true };
      }
      const file = path.relative(path.dirname(pkgFile), require.resolve(spec)).split(path.sep).join('/');
      return { path: `${name}/${file}`, external: true };
    });
  },
};

const at = process.argv.indexOf('--outdir');
const outdir = path.resolve(root, at > 0 && process.argv[at + 1] ? process.argv[at + 1]! : 'dist');
// Built beside and swapped in whole: a `runbook` started meanwhile sees the old build or the new one.
const partial = `${outdir}.partial-${process.pid}`;

rmSync(partial, { recursive: true, force: true });
try {
  // The workflow bundle first: a build whose entry exists always has its bundle (worker/bundle.ts).
  const bundle = path.join(partial, 'workflow-bundle.js');
  execFileSync(process.execPath, ['--import', 'tsx', path.join(root, 'worker', 'build-bundle.ts'), bundle], {
    cwd: root,
    stdio: 'inherit',
  });
  await build({
    absWorkingDir: root,
    entryPoints: { runbook: 'cli/index.ts' },
    outdir: partial,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    plugins: [deepImports],
    tsconfig: 'tsconfig.build.json',
    // Names survive bundling as written: errors and logs name classes and functions.
    keepNames: true,
    sourcemap: true,
    chunkNames: 'chunk-[hash]',
    logLevel: 'warning',
  });
  rmSync(outdir, { recursive: true, force: true });
  renameSync(partial, outdir);
} finally {
  if (existsSync(partial)) rmSync(partial, { recursive: true, force: true });
}
process.stdout.write(`built ${path.relative(root, outdir) || '.'}/runbook.js and its workflow bundle\n`);
