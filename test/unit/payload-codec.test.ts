// The payload codec's keyring: what it encrypts with, what it can still read after a rotation, and
// what it refuses (unknown keys, plaintext, altered ciphertext, passphrases in place of keys).
import { randomBytes } from 'node:crypto';
import type { Payload } from '@temporalio/common';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { AesGcmCodec, dataConverterFor, ENCRYPTED_ENCODING, KEY_ID_METADATA, parsePayloadKey } from '../../worker/payload-codec';

const enc = (s: string) => new TextEncoder().encode(s);
const plain = (value: unknown): Payload => ({ metadata: { encoding: enc('json/plain') }, data: enc(JSON.stringify(value)) });
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString();
const newKey = (id: string) => parsePayloadKey(id, randomBytes(32).toString('base64'));

async function refusal(p: Promise<unknown>): Promise<RunbookError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RunbookError);
  return err as RunbookError;
}

const setEnv: string[] = [];
afterEach(() => {
  for (const name of setEnv.splice(0)) delete process.env[name];
});

function configWithKeys(keys: Record<string, string>) {
  const entries = Object.entries(keys).map(([id, value], i) => {
    const name = `PAYLOAD_CODEC_TEST_${i}`;
    process.env[name] = value;
    setEnv.push(name);
    return `{ id: ${id}, key: env:${name} }`;
  });
  return parseConfig(`temporal: { payloadKeys: [${entries.join(', ')}] }\nstorage: {}\ntargets: {}\n`);
}

describe('the payload codec', () => {
  it('round-trips a payload, encrypting it under the first key with a fresh IV each time', async () => {
    const codec = new AesGcmCodec([newKey('k1')]);
    const original = plain({ target: 'main', password: 'not-in-the-history' });
    const [a] = await codec.encode([original]);
    const [b] = await codec.encode([original]);
    expect(text(a!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(a!.data!).includes(Buffer.from('not-in-the-history'))).toBe(false);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
    const [back] = await codec.decode([a!]);
    expect(text(back!.data)).toBe(text(original.data));
    expect(text(back!.metadata!.encoding)).toBe('json/plain');
  });

  it('reads payloads of the old key after a new key is put first, and encrypts new ones with the new key', async () => {
    const old = newKey('k2024');
    const [sealed] = await new AesGcmCodec([old]).encode([plain('written before the rotation')]);
    const rotated = new AesGcmCodec([newKey('k2025'), old]);
    const [back] = await rotated.decode([sealed!]);
    expect(JSON.parse(text(back!.data))).toBe('written before the rotation');
    const [fresh] = await rotated.encode([plain('after')]);
    expect(text(fresh!.metadata![KEY_ID_METADATA])).toBe('k2025');
  });

  it('names an unknown key id and says to add the old key', async () => {
    const [sealed] = await new AesGcmCodec([newKey('retired')]).encode([plain(1)]);
    const err = await refusal(new AesGcmCodec([newKey('current')]).decode([sealed!]));
    expect(err.code).toBe('SECRET_UNRESOLVED');
    expect(err.message).toContain('"retired"');
    expect(err.message).toContain('known: current');
    expect(err.hint).toMatch(/add the old key/);
  });

  it('refuses a payload that is not encrypted, unless told to let it through (the codec server)', async () => {
    const err = await refusal(new AesGcmCodec([newKey('k1')]).decode([plain({ injected: true })]));
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toMatch(/not encrypted.*json\/plain/);
    const [through] = await new AesGcmCodec([newKey('k1')], { allowPlaintext: true }).decode([plain('shown as is')]);
    expect(JSON.parse(text(through!.data))).toBe('shown as is');
  });

  it('refuses a passphrase and other non-keys, naming the key id and how to make one, never the value', () => {
    for (const value of ['correct horse battery staple', 'short', 'ab'.repeat(31), randomBytes(16).toString('base64'), '00'.repeat(32)]) {
      let err: unknown;
      try {
        parsePayloadKey('prod', value);
      } catch (e) {
        err = e;
      }
      expect(err, value).toBeInstanceOf(RunbookError);
      const { code, message, hint } = err as RunbookError;
      expect(code).toBe('SECRET_UNRESOLVED');
      expect(message).toContain('"prod"');
      expect(hint).toContain('openssl rand -base64 32');
      expect(`${message} ${hint}`).not.toContain(value);
    }
    const passphrase = 'my dog has fleas, twice a year';
    const config = configWithKeys({ k1: passphrase });
    expect(() => dataConverterFor(config)).toThrow(/temporal\.payloadKeys "k1": the key is not 32 bytes/);
  });

  it('accepts 32 random bytes in base64 (with or without padding) and in hex', async () => {
    const bytes = randomBytes(32);
    const forms = [
      bytes.toString('base64'),
      bytes.toString('base64').replace(/=$/, ''),
      bytes.toString('hex'),
      bytes.toString('hex').toUpperCase(),
    ];
    for (const form of forms) expect(parsePayloadKey('k', form).key.equals(bytes)).toBe(true);
    const config = configWithKeys({ current: `${bytes.toString('base64')}\n`, old: randomBytes(32).toString('hex') });
    const codec = dataConverterFor(config)!.payloadCodecs[0]!;
    const [sealed] = await codec.encode([plain('via the config')]);
    expect(text(sealed!.metadata![KEY_ID_METADATA])).toBe('current');
  });

  it('writes the configured key id and nothing derived from the key into the payload', async () => {
    const key = newKey('ops-2025');
    const [sealed] = await new AesGcmCodec([key]).encode([plain('x')]);
    expect(Object.keys(sealed!.metadata!).sort()).toEqual([KEY_ID_METADATA, 'encoding'].sort());
    expect(text(sealed!.metadata![KEY_ID_METADATA])).toBe('ops-2025');
    // Two different keys under the same id produce the same label: the label carries no key material.
    const [other] = await new AesGcmCodec([newKey('ops-2025')]).encode([plain('x')]);
    expect(text(other!.metadata![KEY_ID_METADATA])).toBe(text(sealed!.metadata![KEY_ID_METADATA]));
    const everything = Buffer.concat([...Object.values(sealed!.metadata!).map((v) => Buffer.from(v!)), Buffer.from(sealed!.data!)]);
    for (const form of [key.key, Buffer.from(key.key.toString('hex')), Buffer.from(key.key.toString('base64'))]) {
      expect(everything.includes(form.subarray(0, 8))).toBe(false);
    }
  });

  it('refuses altered ciphertext, a cut payload and a payload relabelled to another known key', async () => {
    const [k1, k2] = [newKey('k1'), newKey('k2')];
    const codec = new AesGcmCodec([k1, k2]);
    const [sealed] = await codec.encode([plain({ approvedBy: 'alice' })]);
    const data = Buffer.from(sealed!.data!);
    for (const i of [0, 12, data.length >> 1, data.length - 1]) {
      const tampered = Buffer.from(data);
      tampered[i] = tampered[i]! ^ 0x01;
      const err = await refusal(codec.decode([{ metadata: sealed!.metadata, data: tampered }]));
      expect(err.code).toBe('SIGNATURE_INVALID');
      expect(err.message).toMatch(/does not authenticate/);
    }
    expect((await refusal(codec.decode([{ metadata: sealed!.metadata, data: data.subarray(0, 20) }]))).code).toBe('SIGNATURE_INVALID');
    const relabelled = { metadata: { ...sealed!.metadata, [KEY_ID_METADATA]: enc('k2') }, data };
    expect((await refusal(codec.decode([relabelled]))).code).toBe('SIGNATURE_INVALID');
  });

  it('is off when no key is configured', () => {
    expect(dataConverterFor(parseConfig('storage: {}\ntargets: {}\n'))).toBeUndefined();
  });

  it('rejects a keyring that repeats an id, at config load', () => {
    expect(() =>
      parseConfig('temporal: { payloadKeys: [{ id: a, key: env:X }, { id: a, key: env:Y }] }\nstorage: {}\ntargets: {}\n'),
    ).toThrow(/temporal\.payloadKeys: expected key ids without repeats/);
  });
});
