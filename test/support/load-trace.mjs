// What a Node process loads, for tests of what a program needs at start: run it as
// `node --import ./test/support/load-trace.mjs ...` with LOAD_TRACE=<file>, which gets one URL or
// path a line: every ES module resolved, and at exit every CommonJS module in require's cache (those
// that packages require pass no ES module hook).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const log = process.env.LOAD_TRACE;

if (isMainThread && log) {
  register(import.meta.url);
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () =>
    appendFileSync(
      log,
      Object.keys(cache)
        .map((f) => `${f}\n`)
        .join(''),
    ),
  );
}

/** The hook, in the loader's thread. */
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (log) appendFileSync(log, `${resolved.url}\n`);
  return resolved;
}
