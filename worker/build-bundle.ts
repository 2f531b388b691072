// Writes the workflow bundle to the file named by the first argument (used by worker/bundle.ts).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowsPath } from './workflows-path';

const file = process.argv[2]!;
const { code } = await bundleWorkflowCode({
  workflowsPath,
  logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
});
mkdirSync(path.dirname(file), { recursive: true });
writeFileSync(`${file}.${process.pid}.partial`, code);
renameSync(`${file}.${process.pid}.partial`, file);
