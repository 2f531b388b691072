// Where the external programs are: scripts/tools.sh installs into the tools dir what PATH lacks.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const toolsDir = (): string => process.env.RUNBOOK_TOOLS_DIR ?? path.join(os.homedir(), '.cache', 'redis-runbooks');

export type Tool = 'temporal' | 'redis-server' | 'redis-cli' | 'redis-check-rdb' | 'redis-check-aof' | 'zstd' | 'age' | 'versitygw';

/** The tools-dir copy when there is one, else the bare name for PATH to find. */
export function toolPath(tool: Tool): string {
  const cached = path.join(toolsDir(), 'bin', tool);
  return existsSync(cached) ? cached : tool;
}
