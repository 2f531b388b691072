#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so that an installed `runbook` needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/index.ts');
