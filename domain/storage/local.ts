import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash, randomBytes } from 'node:crypto';
import { assertKey, mustMatch, notFound, type CreateOptions, type Store, type WriteOptions, type Written } from './store';

/**
 * A directory. Writes go to a temp name, are fsynced, then renamed: a crash leaves no half file. What
 * is handed to the file is hashed on its way in, and the rename waits for it to match what was expected.
 */
export class LocalStore implements Store {
  constructor(
    readonly name: string,
    private readonly root: string,
  ) {}

  location(key: string): string {
    return path.join(this.root, assertKey(key));
  }

  async write(key: string, body: Readable | Buffer | string, options?: WriteOptions): Promise<Written> {
    const file = this.location(key);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await removeStalePartials(file);
    const tmp = `${file}.partial-${randomBytes(4).toString('hex')}`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      const out = createWriteStream(tmp, { mode: 0o600, highWaterMark: 1 << 20 });
      const source = typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body;
      // The last hands before the file's: exactly the chunks given to write(2).
      const tap = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      await pipeline(source, tap, out);
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const written = { size, sha256: hash.digest('hex') };
      await mustMatch(this, key, written, options);
      await rename(tmp, file);
      await syncDir(path.dirname(file));
      return written;
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async read(key: string): Promise<Readable> {
    const file = this.location(key);
    const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? notFound(this.name, key) : err;
    });
    return createReadStream('', { fd: fh, highWaterMark: 1 << 20 });
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      return { size: (await stat(this.location(key))).size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async readText(key: string): Promise<string | null> {
    try {
      return await readFile(this.location(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async listDirs(prefix: string): Promise<string[]> {
    try {
      const entries = await readdir(this.location(prefix), { withFileTypes: true });
      return entries.filter((e) => e.isDirectory()).map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async listFiles(prefix: string): Promise<string[]> {
    try {
      const entries = await readdir(this.location(prefix), { withFileTypes: true });
      return entries.filter((e) => e.isFile() && !e.name.includes('.partial-')).map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async removeDir(prefix: string): Promise<void> {
    await rm(this.location(prefix), { recursive: true, force: true });
  }

  /** link(2) never replaces an existing name: of racing writers exactly one links its whole, fsynced file. */
  async createExclusive(key: string, body: string, _options?: CreateOptions): Promise<boolean> {
    const file = this.location(key);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    // Not removeStalePartials: it would delete a racing writer's temp file before its link.
    const tmp = `${file}.partial-${randomBytes(6).toString('hex')}`;
    try {
      await writeFile(tmp, body, { mode: 0o600, flag: 'wx' });
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await link(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        return (await readFile(file, 'utf8')) === body;
      }
      await syncDir(path.dirname(file));
      return true;
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  createIfAbsent(key: string, body: string, options?: CreateOptions): Promise<boolean> {
    return this.createExclusive(key, body, options);
  }
}

/** A writer killed mid-write (SIGKILL, power loss) leaves its temp file; the next write of the key clears it. */
async function removeStalePartials(file: string): Promise<void> {
  const base = `${path.basename(file)}.partial-`;
  const names = await readdir(path.dirname(file)).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(base)).map((n) => unlink(path.join(path.dirname(file), n)).catch(() => {})));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
