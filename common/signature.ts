// The worker's signature on what it writes (domain/trust/signing.ts makes and checks it).
export interface Signature {
  alg: 'ed25519';
  /** The first 16 hex digits of the SHA-256 of the public key: names it, reveals nothing more. */
  keyId: string;
  /** Base64 of the 64-byte signature. */
  value: string;
}
