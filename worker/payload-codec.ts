// Encrypts every payload Temporal stores (workflow inputs, results, queries, updates, failures,
// heartbeats) with AES-256-GCM, so that the history holds nothing readable without the key. Used by
// the worker, by every `runbook` command (which therefore decode transparently) and by
// `runbook codec-server` for the Temporal UI.
//
// A keyring: the first key of temporal.payloadKeys encrypts, every key decrypts, so a key is rotated
// by putting a new one first and keeping the old ones while histories encrypted with them exist. Each
// payload names its key by the configured id, which says nothing about the key itself.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DefaultFailureConverter, type LoadedDataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Config } from '../common/config';
import { RunbookError } from '../common/errors';
import { resolveSecret } from '../domain/secrets';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const { Payload: PayloadProto } = proto.temporal.api.common.v1;
const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString();

export interface PayloadKey {
  id: string;
  key: Buffer;
}

export const MAKE_KEY_HINT = 'make one with `openssl rand -base64 32` and store it where the reference points';

/**
 * A key is 32 random bytes, written in base64 (44 characters) or hex (64 digits). Anything else, a
 * passphrase above all, is refused: nothing here stretches weak text into a key. Never quotes the value.
 */
export function parsePayloadKey(id: string, value: string): PayloadKey {
  const v = value.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(v)) key = Buffer.from(v, 'hex');
  else if (/^[A-Za-z0-9+/]{43}=?$/.test(v) || /^[A-Za-z0-9_-]{43}=?$/.test(v))
    key = Buffer.from(v.replace(/=$/, ''), /[_-]/.test(v) ? 'base64url' : 'base64');
  if (!key || key.length !== 32) {
    throw new RunbookError(
      'SECRET_UNRESOLVED',
      `temporal.payloadKeys "${id}": the key is not 32 bytes in base64 or hex (a passphrase is not accepted)`,
      MAKE_KEY_HINT,
    );
  }
  // 32 random bytes have about 30 distinct values; a run of zeros or a repeated pattern is no key.
  if (new Set(key).size < 16) {
    throw new RunbookError(
      'SECRET_UNRESOLVED',
      `temporal.payloadKeys "${id}": the key is not random (too few distinct bytes)`,
      MAKE_KEY_HINT,
    );
  }
  return { id, key };
}

export interface CodecOptions {
  /**
   * Let payloads that are not encrypted through decoding unchanged. Only for the codec server, whose
   * caller (the Temporal UI) shows them anyway; the worker and the CLI refuse them, since anyone who can
   * reach Temporal could have written them.
   */
  allowPlaintext?: boolean;
}

export class AesGcmCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  private readonly current: PayloadKey;

  constructor(
    keys: PayloadKey[],
    private readonly options: CodecOptions = {},
  ) {
    if (!keys.length) throw new RunbookError('CONFIG_INVALID', 'temporal.payloadKeys is empty', 'give at least one key');
    this.current = keys[0]!;
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The id new payloads are encrypted under. */
  get keyId(): string {
    return this.current.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', this.current.key, iv);
      // The key id is authenticated too: a payload cannot be relabelled.
      c.setAAD(utf8(this.current.id));
      const sealed = Buffer.concat([iv, c.update(PayloadProto.encode(p).finish()), c.final(), c.getAuthTag()]);
      return { metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.current.id) }, data: sealed };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (text(p.metadata?.encoding) !== ENCRYPTED_ENCODING) {
        if (this.options.allowPlaintext) return p;
        throw new RunbookError(
          'SIGNATURE_INVALID',
          `a payload from Temporal is not encrypted (encoding ${JSON.stringify(text(p.metadata?.encoding).slice(0, 40) || 'none')}), and temporal.payloadKeys is set: refused`,
          'start runbooks, signals and updates with `runbook` (or a client with the same temporal.payloadKeys), never with plain input',
        );
      }
      const keyId = text(p.metadata?.[KEY_ID_METADATA]);
      const key = this.keys.get(keyId);
      if (!key) {
        throw new RunbookError(
          'SECRET_UNRESOLVED',
          `a payload is encrypted with key "${keyId.slice(0, 63)}", which is not in temporal.payloadKeys (known: ${[...this.keys.keys()].join(', ')})`,
          `add the old key as { id: ${keyId.slice(0, 63)}, key: ... } after the first of temporal.payloadKeys: keep retired keys while histories encrypted with them exist`,
        );
      }
      const data = Buffer.from(p.data ?? []);
      try {
        if (data.length < 28) throw new Error('too short');
        const d = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
        d.setAAD(utf8(keyId));
        d.setAuthTag(data.subarray(data.length - 16));
        const plain = Buffer.concat([d.update(data.subarray(12, data.length - 16)), d.final()]);
        return PayloadProto.decode(plain) as Payload;
      } catch {
        throw new RunbookError(
          'SIGNATURE_INVALID',
          `a payload encrypted with key "${keyId}" does not authenticate: it was altered, or the key under that id is not the one it was made with`,
          'check that every worker and CLI has the same key under that id; an altered history cannot be read',
        );
      }
    });
  }
}

/** The configured keyring, resolved and checked; undefined when no key is configured. */
export function payloadKeysOf(config: Config): PayloadKey[] | undefined {
  const keys = config.temporal.payloadKeys;
  if (!keys?.length) return undefined;
  return keys.map((k) => parsePayloadKey(k.id, resolveSecret(k.key, `temporal.payloadKeys "${k.id}"`)));
}

/** The data converter for client and worker: encrypted payloads, and failure messages moved into them. */
export function dataConverterFor(config: Config): { payloadCodecs: PayloadCodec[]; failureConverter: DefaultFailureConverter } | undefined {
  const keys = payloadKeysOf(config);
  if (!keys) return undefined;
  return {
    payloadCodecs: [new AesGcmCodec(keys)],
    failureConverter: new DefaultFailureConverter({ encodeCommonAttributes: true }),
  };
}

export type { LoadedDataConverter };
