// Encrypts every payload Temporal stores (workflow inputs, results, queries, updates, failures,
// heartbeats) with AES-256-GCM, so that the history holds nothing readable without the key. Used by
// the worker and by every `runbook` command, which therefore decode transparently.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { DefaultFailureConverter, type LoadedDataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Config } from '../common/config';
import { RunbookError } from '../common/errors';
import { resolveSecret } from '../domain/secrets';

const ENCODING = 'binary/encrypted';
const { Payload: PayloadProto } = proto.temporal.api.common.v1;
const utf8 = (s: string) => new TextEncoder().encode(s);

export class AesGcmCodec implements PayloadCodec {
  readonly keyId: string;
  private readonly key: Buffer;

  /** Any secret text: it is stretched to a 256-bit key with HKDF-SHA256. */
  constructor(secret: string) {
    this.key = Buffer.from(hkdfSync('sha256', secret, 'redis-runbooks', 'temporal payloads', 32));
    this.keyId = createHash('sha256').update(this.key).digest('hex').slice(0, 16);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', this.key, iv);
      const sealed = Buffer.concat([iv, c.update(PayloadProto.encode(p).finish()), c.final(), c.getAuthTag()]);
      return { metadata: { encoding: utf8(ENCODING), 'encryption-key-id': utf8(this.keyId) }, data: sealed };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (Buffer.from(p.metadata?.encoding ?? []).toString() !== ENCODING) return p;
      const keyId = Buffer.from(p.metadata?.['encryption-key-id'] ?? []).toString();
      if (keyId !== this.keyId) {
        throw new RunbookError(
          'SECRET_UNRESOLVED',
          `a payload is encrypted with key ${keyId}, not the configured ${this.keyId}`,
          'set temporal.payloadKey to the key the workflows were started with',
        );
      }
      const data = Buffer.from(p.data ?? []);
      const d = createDecipheriv('aes-256-gcm', this.key, data.subarray(0, 12));
      d.setAuthTag(data.subarray(data.length - 16));
      const plain = Buffer.concat([d.update(data.subarray(12, data.length - 16)), d.final()]);
      return PayloadProto.decode(plain) as Payload;
    });
  }
}

/** The data converter for client and worker: encrypted payloads, and failure messages moved into them. */
export function dataConverterFor(config: Config): { payloadCodecs: PayloadCodec[]; failureConverter: DefaultFailureConverter } | undefined {
  const ref = config.temporal.payloadKey;
  if (!ref) return undefined;
  return {
    payloadCodecs: [new AesGcmCodec(resolveSecret(ref, 'temporal.payloadKey'))],
    failureConverter: new DefaultFailureConverter({ encodeCommonAttributes: true }),
  };
}

export type { LoadedDataConverter };
