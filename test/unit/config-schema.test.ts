// runbook.example.yaml against the config schema: it loads, it shows every key the schema accepts
// (walked through the generated JSON Schema), and `runbook config schema` prints that JSON Schema.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join as pathJoin } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../cli/commands/config';
import { loadConfig } from '../../common/config';
import { runCli } from '../support/cli';

const EXAMPLE = fileURLToPath(new URL('../../runbook.example.yaml', import.meta.url));
/** The example as written, defaults not filled in: a key the loader defaults is still a key the example lacks. */
const example = (): Record<string, unknown> => parseYaml(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema | Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  allOf?: Schema[];
  const?: unknown;
  $ref?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function deref(schema: Schema, root: Schema): Schema {
  if (!schema.$ref) return schema;
  // Local references only (#/definitions/x, #/$defs/x): the generator writes no others.
  const target = schema.$ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<unknown>((node, part) => (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')], root);
  return deref(target as Schema, root);
}

/** Whether there are keys below this schema that an example could leave out. */
function hasKeys(schema: Schema, root: Schema): boolean {
  const s = deref(schema, root);
  return Boolean(s.properties || s.oneOf || s.anyOf || s.allOf || isObject(s.additionalProperties) || s.items);
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/**
 * Every key path of `schema` that none of `values` (the example's values at that place: all entries of
 * a map, all items of a list) has. A union is walked variant by variant, over the values of that
 * variant (told apart by the property with a `const`, such as `type: s3`), and a variant no value
 * takes is itself missing.
 */
function missingPaths(schema: Schema, values: unknown[], path: string, root: Schema = schema): string[] {
  const s = deref(schema, root);
  const missing: string[] = [];
  for (const part of s.allOf ?? []) missing.push(...missingPaths(part, values, path, root));
  (s.oneOf ?? s.anyOf ?? []).forEach((variant, i) => {
    const v = deref(variant, root);
    const tag = Object.entries(v.properties ?? {}).find(([, p]) => deref(p, root).const !== undefined);
    const label = tag ? `${tag[0]}=${String(deref(tag[1], root).const)}` : `variant ${i + 1}`;
    const own = tag ? values.filter((x) => isObject(x) && x[tag[0]] === deref(tag[1], root).const) : values;
    if (own.length === 0) missing.push(`${path}(${label})`);
    else missing.push(...missingPaths(v, own, `${path}(${label})`, root));
  });
  const objects = values.filter(isObject);
  for (const [key, sub] of Object.entries(s.properties ?? {})) {
    const children = objects.filter((o) => key in o).map((o) => o[key]);
    if (children.length === 0) missing.push(join(path, key));
    else missing.push(...missingPaths(sub, children, join(path, key), root));
  }
  if (isObject(s.additionalProperties)) {
    const entries = objects.flatMap((o) =>
      Object.entries(o)
        .filter(([k]) => !(k in (s.properties ?? {})))
        .map(([, v]) => v),
    );
    const where = join(path, '<name>');
    if (entries.length === 0 && hasKeys(s.additionalProperties, root)) missing.push(where);
    else missing.push(...missingPaths(s.additionalProperties, entries, where, root));
  }
  if (s.items && !Array.isArray(s.items)) {
    const items = values.filter(Array.isArray).flat();
    if (items.length === 0 && hasKeys(s.items, root)) missing.push(`${path}[]`);
    else missing.push(...missingPaths(s.items, items, `${path}[]`, root));
  }
  return missing;
}

// ajv arrives with webpack (through @temporalio/worker), not as a dependency of ours: use it when it is there.
interface AjvLike {
  compile(schema: unknown): ((data: unknown) => boolean) & { errors?: unknown[] | null };
}
async function optionalImport(name: string): Promise<unknown> {
  try {
    const mod = (await import(name)) as { default?: unknown };
    return mod.default ?? mod;
  } catch {
    return undefined;
  }
}
const Ajv = (await optionalImport('ajv')) as (new (opts: object) => AjvLike) | undefined;
const addFormats = (await optionalImport('ajv-formats')) as ((ajv: AjvLike) => void) | undefined;

describe('runbook.example.yaml', () => {
  it('loads with the real config loader, secret references left unresolved', () => {
    const config = loadConfig(EXAMPLE);
    expect(Object.keys(config.targets).length).toBeGreaterThan(0);
    // Loading resolves no secret: the references are kept as written, whatever the environment holds.
    expect(config.temporal.payloadKeys?.[0]?.key).toMatch(/^(env|file):/);
  });

  it('sets every key the schema accepts, with an entry of every storage and writer type', () => {
    const missing = missingPaths(configJsonSchema() as Schema, [example()], '');
    expect(missing, `runbook.example.yaml lacks: ${missing.join(', ')}`).toEqual([]);
  });

  it('has a key-walk that notices a key, a nested key and a union variant the example lacks', () => {
    const cut = example();
    const temporal = cut.temporal as Record<string, unknown>;
    delete temporal.apiKey;
    const main = (cut.targets as Record<string, Record<string, Record<string, unknown>>>).main!;
    delete main.drill!.rpoWindow;
    const restore = main.restore as { writers: { type: string }[] };
    restore.writers = restore.writers.filter((w) => w.type !== 'http');
    const storage = cut.storage as Record<string, { type: string }>;
    for (const [k, v] of Object.entries(storage)) if (v.type === 's3') delete storage[k];
    const missing = missingPaths(configJsonSchema() as Schema, [cut], '');
    expect(missing).toEqual(
      expect.arrayContaining([
        'temporal.apiKey',
        'targets.<name>.drill.rpoWindow',
        'targets.<name>.restore.writers[](type=http)',
        'storage.<name>(type=s3)',
      ]),
    );
  });

  it.skipIf(!Ajv /* skipped only without ajv, which comes with the worker's webpack */)(
    'is valid against the generated JSON Schema, which refuses an unknown key',
    () => {
      const ajv = new Ajv!({ allErrors: true, strict: true, validateFormats: Boolean(addFormats) });
      addFormats?.(ajv);
      const validate = ajv.compile(configJsonSchema());
      const valid = validate(example());
      expect(validate.errors ?? [], 'the schema refuses runbook.example.yaml').toEqual([]);
      expect(valid).toBe(true);

      const typo = example();
      (typo.targets as Record<string, Record<string, unknown>>).main!.retension = { daily: 7 };
      expect(validate(typo)).toBe(false);
    },
  );
});

describe('runbook config', () => {
  it('schema prints the JSON Schema of the config, with the targets map', async () => {
    // runCli passes --config; `config schema` reads no config file.
    const { status, stdout, stderr } = await runCli(EXAMPLE, 'config', 'schema');
    expect(stderr).toBe('');
    expect(status).toBe(0);
    const printed = JSON.parse(stdout) as { properties: Record<string, unknown> };
    expect(printed.properties.targets).toBeDefined();
    expect(printed).toEqual(configJsonSchema());
  });

  it('check prints ok for a valid file and exits 3 with the loader error for an invalid one', async () => {
    const ok = await runCli(EXAMPLE, 'config', 'check');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('ok\n');

    const dir = mkdtempSync(pathJoin(os.tmpdir(), 'config-check-'));
    try {
      const file = pathJoin(dir, 'runbook.yaml');
      writeFileSync(file, readFileSync(EXAMPLE, 'utf8').replace('redis://10.0.0.5:6379/0', 'http://10.0.0.5'));
      const bad = await runCli(EXAMPLE, 'config', 'check', file);
      expect(bad.status).toBe(3);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toContain('targets.main.url: expected a Redis URL');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
