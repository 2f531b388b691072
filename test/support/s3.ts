// A real S3 server for tests: versitygw over a temp directory (posix backend), on a free port. It can be
// killed and started again on the same port over the same directories, so that what it stored (objects
// and unfinished multipart uploads alike) is there again when it comes back, as after a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { toolPath } from '../../domain/tools';
import { freePort } from './redis';

export interface S3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  root: string;
  client(): S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
  port: number;
  /** SIGKILL: the server dies with whatever it was doing, as in a crash. */
  kill(): Promise<void>;
  /** Starts it again on the same port over the same data. */
  start(): Promise<void>;
  running(): boolean;
}

export async function startS3(secretAccessKey = 'test-s3-secret'): Promise<S3Server> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'rr-s3-'));
  const data = path.join(root, 'data');
  const sidecar = path.join(root, 'meta');
  mkdirSync(data);
  mkdirSync(sidecar);
  const port = await freePort();
  const accessKeyId = 'runbook-test';
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child) return;
    const c = spawn(toolPath('versitygw'), ['--port', `127.0.0.1:${port}`, '--quiet', 'posix', '--sidecar', sidecar, data], {
      env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = c;
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!(await canConnect(port))) {
      if (c.exitCode !== null || Date.now() > deadline) {
        child = undefined;
        c.kill('SIGKILL');
        throw new Error(`versitygw did not start on port ${port}: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const kill = async () => {
    const c = child;
    if (!c) return;
    child = undefined;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    }
  };
  const client = () => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });

  await start();
  return {
    endpoint,
    port,
    accessKeyId,
    secretAccessKey,
    root,
    client,
    async createBucket(name) {
      const c = client();
      await c.send(new CreateBucketCommand({ Bucket: name }));
      c.destroy();
    },
    kill,
    start,
    running: () => child !== undefined,
    async stop() {
      await kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
