// Writer controllers: what pauses an application's writers and brings them back. Pausing returns
// what resuming needs (Kanister's ScaleWorkload keeps the original replica count the same way), so
// the workflow can record the undo before it takes the next step.
import type { WriterConfig } from '../../common/config';
import { durationMs } from '../../common/duration';
import { RunbookError } from '../../common/errors';
import type { WriterPauseState } from '../../common/restore-types';
import { resolveOptionalSecret } from '../secrets';
import { runCommand, runTool } from '../tools';

async function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return (await runTool(file, args, { what: `${file} ${args.join(' ')}`, code: 'WRITER_FAILED', timeoutMs })).stdout;
}

async function shell(command: string, timeoutMs: number, what: string): Promise<void> {
  await runCommand(command, { what: `${what} command`, code: 'WRITER_FAILED', timeoutMs });
}

async function post(url: string, token: string | undefined, timeoutMs: number, what: string): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ source: 'redis-runbooks', action: what }),
    signal: AbortSignal.timeout(timeoutMs),
  }).catch((err: Error) => {
    throw new RunbookError('WRITER_FAILED', `${what} POST ${url} failed: ${err.message}`);
  });
  if (!res.ok) throw new RunbookError('WRITER_FAILED', `${what} POST ${url} answered ${res.status}`);
}

const ANNOTATION = 'redis-runbooks/original-replicas';

const kubectlArgs = (w: Extract<WriterConfig, { type: 'kubernetes' }>) => [
  ...(w.context ? ['--context', w.context] : []),
  '--namespace',
  w.namespace,
];

export async function pauseWriter(w: WriterConfig): Promise<WriterPauseState> {
  const timeout = durationMs(w.timeout);
  switch (w.type) {
    case 'command':
      await shell(w.pause, timeout, `writer ${w.name} pause`);
      return { writer: w.name, state: {} };
    case 'http':
      await post(w.pauseUrl, resolveOptionalSecret(w.token, `writer ${w.name} token`), timeout, 'pause');
      return { writer: w.name, state: {} };
    case 'kubernetes': {
      // The original count is kept on the deployment itself: a retried pause (scaled to 0, then the
      // worker died) must not record 0 as the count to come back to.
      const got = await run(
        w.kubectl,
        [...kubectlArgs(w), 'get', 'deployment', w.deployment, '-o', `jsonpath={.spec.replicas} {.metadata.annotations.${ANNOTATION}}`],
        timeout,
      );
      const [current, annotated] = got.trim().split(/\s+/);
      const replicas = Number(annotated || current);
      if (!annotated) {
        await run(
          w.kubectl,
          [...kubectlArgs(w), 'annotate', 'deployment', w.deployment, `${ANNOTATION}=${replicas}`, '--overwrite'],
          timeout,
        );
      }
      await run(w.kubectl, [...kubectlArgs(w), 'scale', 'deployment', w.deployment, '--replicas=0'], timeout);
      await run(
        w.kubectl,
        [...kubectlArgs(w), 'rollout', 'status', 'deployment', w.deployment, `--timeout=${Math.ceil(timeout / 1000)}s`],
        timeout + 5000,
      );
      return { writer: w.name, state: { replicas } };
    }
  }
}

export async function resumeWriter(w: WriterConfig, paused: WriterPauseState): Promise<void> {
  const timeout = durationMs(w.timeout);
  switch (w.type) {
    case 'command':
      return shell(w.resume, timeout, `writer ${w.name} resume`);
    case 'http':
      return post(w.resumeUrl, resolveOptionalSecret(w.token, `writer ${w.name} token`), timeout, 'resume');
    case 'kubernetes':
      // Back to the count recorded at pause time, never a guess.
      await run(w.kubectl, [...kubectlArgs(w), 'scale', 'deployment', w.deployment, `--replicas=${paused.state.replicas}`], timeout);
      await run(w.kubectl, [...kubectlArgs(w), 'annotate', 'deployment', w.deployment, `${ANNOTATION}-`], timeout);
      return;
  }
}
