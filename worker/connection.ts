// How the worker and the CLI reach Temporal: address, namespace, TLS, API key and gRPC metadata, each
// from the config's `temporal:` block when set there, else from Temporal's standard environment
// variables and client profile (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
// TEMPORAL_PROFILE, temporal.toml), else the embedded dev server on 127.0.0.1. Secrets are read only
// when connecting. A failed connection is diagnosed with a TLS handshake of our own, since gRPC only
// says "Failed to connect before the deadline".
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { TLSConfig } from '@temporalio/client';
import { loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import type { Config } from '../common/config';
import { RunbookError } from '../common/errors';
import { resolveSecret } from '../domain/secrets';

/** Where Temporal is: no secret in it, fit for messages. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  /** Where the address came from: it decides which setting a message points to. */
  addressFrom: 'config' | 'environment' | 'dev server';
}

/** What Connection.connect and NativeConnection.connect take, secrets resolved. Never print it. */
export interface TemporalConnectionSettings extends TemporalTarget {
  tls?: TLSConfig | boolean;
  /** Where the TLS settings came from, for the same reason. */
  tlsFrom?: 'config' | 'environment';
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** Temporal's own client settings: environment variables over the profile of the TOML file. */
function clientProfile(): ClientConfigProfile {
  try {
    return loadClientConfigProfile();
  } catch (err) {
    throw new RunbookError(
      'CONFIG_INVALID',
      `Temporal client profile (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE or temporal.toml): ${(err as Error).message}`,
      'fix the profile file or the TEMPORAL_* variables, or set temporal.address in the config',
    );
  }
}

export function temporalTarget(config: Config, profile = clientProfile()): TemporalTarget {
  const t = config.temporal;
  const addressFrom = t.address ? 'config' : profile.address ? 'environment' : 'dev server';
  return {
    address: t.address ?? profile.address ?? `127.0.0.1:${t.devServer.port}`,
    namespace: t.namespace ?? profile.namespace ?? 'default',
    addressFrom,
  };
}

function fromSource(source: ConfigDataSource | undefined, what: string): Buffer | undefined {
  if (!source) return undefined;
  if ('data' in source) return Buffer.from(source.data);
  try {
    return readFileSync(source.path);
  } catch (err) {
    throw new RunbookError(
      'SECRET_UNRESOLVED',
      `${what}: cannot read ${source.path} (${(err as NodeJS.ErrnoException).code})`,
      'check the path in the TEMPORAL_TLS_* variable or the profile',
    );
  }
}

function resolveTls(config: Config, profile: ClientConfigProfile): TLSConfig | boolean | undefined {
  const own = config.temporal.tls;
  if (own === false) return false;
  const env = profile.tls && !profile.tls.disabled ? profile.tls : undefined;
  if (own === undefined && !env) return profile.tls?.disabled ? false : undefined;
  const o = own === true || own === undefined ? {} : own;
  const ca = o.ca ? Buffer.from(resolveSecret(o.ca, 'temporal.tls.ca')) : fromSource(env?.serverCACert, 'TEMPORAL_TLS_SERVER_CA_CERT');
  // A certificate and its key go together: both from the config, or both from the environment.
  const pair =
    o.cert && o.key
      ? { crt: Buffer.from(resolveSecret(o.cert, 'temporal.tls.cert')), key: Buffer.from(resolveSecret(o.key, 'temporal.tls.key')) }
      : env?.clientCert && env.clientKey
        ? { crt: fromSource(env.clientCert, 'TEMPORAL_TLS_CLIENT_CERT')!, key: fromSource(env.clientKey, 'TEMPORAL_TLS_CLIENT_KEY')! }
        : undefined;
  const serverName = o.serverName ?? env?.serverName;
  return {
    ...(ca ? { serverRootCACertificate: ca } : {}),
    ...(pair ? { clientCertPair: pair } : {}),
    ...(serverName ? { serverNameOverride: serverName } : {}),
  };
}

/** Everything a connection needs, computed once per connection; reads the secrets. */
export function temporalConnectionSettings(config: Config): TemporalConnectionSettings {
  const profile = clientProfile();
  const target = temporalTarget(config, profile);
  const apiKey = config.temporal.apiKey ? resolveSecret(config.temporal.apiKey, 'temporal.apiKey') : profile.apiKey;
  const tlsConfig = resolveTls(config, profile);
  return {
    ...target,
    ...(tlsConfig !== undefined ? { tls: tlsConfig, tlsFrom: config.temporal.tls !== undefined ? 'config' : 'environment' } : {}),
    ...(apiKey ? { apiKey } : {}),
    ...(profile.grpcMeta && Object.keys(profile.grpcMeta).length ? { metadata: profile.grpcMeta } : {}),
  };
}

let ipServerNameQuiet = false;
/**
 * grpc-js sends an IP address as the TLS server name, and Node warns about that (DEP0123) on stderr,
 * where the CLI's --json errors must stand alone: that one warning is dropped, once TLS to an IP is used.
 */
function quietIpServerNameWarning(): void {
  if (ipServerNameQuiet) return;
  ipServerNameQuiet = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' ? (rest[0] as { code?: string } | null)?.code : rest[1];
    if (code !== 'DEP0123') emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

/** The options Connection.connect and NativeConnection.connect share. */
export function connectOptions(s: TemporalConnectionSettings): {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
} {
  const t = tlsOn(s);
  if (t && !t.serverNameOverride && net.isIP(splitAddress(s.address)?.host ?? '')) quietIpServerNameWarning();
  return {
    address: s.address,
    ...(s.tls !== undefined ? { tls: s.tls } : {}),
    ...(s.apiKey ? { apiKey: s.apiKey } : {}),
    ...(s.metadata ? { metadata: s.metadata } : {}),
  };
}

/** The dev server of `runbook dev`, the demo and the benchmarks: plain, local, no credentials. */
export function devServerSettings(config: Config, address: string): TemporalConnectionSettings {
  return { address, namespace: temporalTarget(config).namespace, addressFrom: 'dev server' };
}

const tlsOn = (s: TemporalConnectionSettings): TLSConfig | undefined =>
  s.tls === false ? undefined : typeof s.tls === 'object' ? s.tls : s.tls === true || s.apiKey ? {} : undefined;

interface Cause {
  cause: string;
  /** Absent: the usual hint for an unreachable address. */
  hint?: string;
}

const UNTRUSTED_SERVER = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/** The settings a hint names: the config's keys, or Temporal's variables when TLS came from there. */
const names = (s: TemporalConnectionSettings) =>
  s.tlsFrom === 'environment'
    ? {
        ca: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
        cert: 'TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH',
        name: 'TEMPORAL_TLS_SERVER_NAME',
      }
    : { ca: 'temporal.tls.ca', cert: 'temporal.tls.cert and key', name: 'temporal.tls.serverName' };

const certRefused = (s: TemporalConnectionSettings, cause: string): Cause => ({
  cause,
  hint: `set ${names(s).cert} to a certificate for client authentication, signed by a CA the server trusts`,
});

function classify(err: NodeJS.ErrnoException, s: TemporalConnectionSettings, t: TLSConfig): Cause | undefined {
  const code = err.code ?? '';
  const text = `${code} ${err.message}`.toLowerCase();
  const n = names(s);
  if (code === 'ECONNREFUSED') return { cause: 'nothing listens there (connection refused)' };
  if (UNTRUSTED_SERVER.has(code)) {
    return { cause: `the server's certificate is not signed by a CA this trusts (${code})`, hint: `set ${n.ca} to the CA that signed it` };
  }
  if (code === 'CERT_HAS_EXPIRED') return { cause: "the server's certificate has expired", hint: 'renew the server certificate' };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      cause: `the server's certificate is not for ${t.serverNameOverride ?? splitAddress(s.address)?.host ?? s.address} (${err.message.split(': ').pop()})`,
      hint: `connect by a name the certificate holds, or set ${n.name} to one`,
    };
  }
  if (text.includes('certificate required') || text.includes('alert handshake failure') || text.includes('alert_handshake_failure')) {
    return t.clientCertPair
      ? certRefused(s, 'the server refused the TLS handshake')
      : { cause: 'the server requires a client certificate', hint: `set ${n.cert}` };
  }
  if (
    /alert[ _](unknown[ _]ca|bad[ _]certificate|certificate[ _](unknown|expired|revoked)|unsupported[ _]certificate|access[ _]denied)/.test(
      text,
    )
  ) {
    return certRefused(s, `the server refused the client certificate (${code || err.message})`);
  }
  if (text.includes('wrong version number') || text.includes('packet length too long') || text.includes('unknown protocol')) {
    return {
      cause: 'the server does not speak TLS',
      hint: 'remove temporal.tls (and TEMPORAL_TLS*) for a plaintext server, or check the port',
    };
  }
  return undefined;
}

function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

/**
 * A TLS handshake with the same settings, then an HTTP/2 preface to draw out a refusal that TLS 1.3
 * sends only after the handshake (a missing or untrusted client certificate). Undefined: TLS is fine.
 */
export async function diagnoseConnection(s: TemporalConnectionSettings, timeoutMs = 3000): Promise<Cause | undefined> {
  const split = splitAddress(s.address);
  if (!split) return { cause: 'the address is not host:port', hint: 'set temporal.address (or TEMPORAL_ADDRESS) to host:port' };
  const { host, port } = split;
  const t = tlsOn(s);
  return new Promise((resolve) => {
    let done = false;
    const finish = (c: Cause | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(c);
    };
    const servername = t?.serverNameOverride ?? (net.isIP(host) ? undefined : host);
    const socket = t
      ? tls.connect({
          host,
          port,
          ...(servername ? { servername } : {}),
          ...(t.serverRootCACertificate ? { ca: Buffer.from(t.serverRootCACertificate) } : {}),
          ...(t.clientCertPair ? { cert: Buffer.from(t.clientCertPair.crt), key: Buffer.from(t.clientCertPair.key) } : {}),
          ...(t.serverNameOverride
            ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(t.serverNameOverride!, cert) }
            : {}),
          ALPNProtocols: ['h2'],
        })
      : // Plaintext configured: does the server speak TLS instead?
        tls.connect({ host, port, rejectUnauthorized: false, ...(net.isIP(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.once('secureConnect', () => {
      if (!t) {
        return finish({
          cause: 'the server speaks TLS, and this connects without it',
          hint: 'set temporal.tls (true for a publicly trusted certificate, or ca, cert and key), or TEMPORAL_TLS=true',
        });
      }
      if (socket.alpnProtocol !== 'h2') {
        return finish({
          cause: 'the server (or a TLS proxy in front of it) does not negotiate HTTP/2 by ALPN',
          hint: 'let the TLS endpoint offer ALPN "h2": the worker requires it',
        });
      }
      // Client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS.
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      socket.once('data', () => finish(undefined));
      // A gRPC server answers the preface at once; one that hangs up instead judged the certificate
      // after the handshake (as servers that verify it themselves do, with no TLS alert).
      socket.once('end', () =>
        finish(
          t.clientCertPair
            ? certRefused(s, 'the server hung up right after the TLS handshake: it refused the client certificate, most likely')
            : {
                cause: 'the server hung up right after the TLS handshake: it requires a client certificate, most likely',
                hint: `set ${names(s).cert}`,
              },
        ),
      );
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (!t) return finish(err.code === 'ECONNREFUSED' ? classify(err, s, {}) : undefined);
      finish(classify(err, s, t));
    });
    socket.once('close', () => finish(undefined));
  });
}

/** A connection failure as TEMPORAL_UNAVAILABLE, with the likely cause when one can be found. */
export async function unreachable(s: TemporalConnectionSettings, err: unknown): Promise<RunbookError> {
  const grpcCode = ((err as { cause?: { code?: unknown } }).cause?.code ?? (err as { code?: unknown }).code) as number | string | undefined;
  const first = String((err as Error)?.message ?? err).split('\n')[0];
  const where = `Temporal at ${s.address}`;
  if (grpcCode === 16 || grpcCode === 7) {
    return new RunbookError(
      'TEMPORAL_UNAVAILABLE',
      `${where} refused the credentials (${grpcCode === 16 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED'})`,
      'check temporal.apiKey (or TEMPORAL_API_KEY) and the client certificate, and that they grant the namespace',
    );
  }
  const found = await diagnoseConnection(s).catch(() => undefined);
  const hint =
    s.addressFrom === 'config'
      ? 'check temporal.address in the config'
      : s.addressFrom === 'environment'
        ? 'check TEMPORAL_ADDRESS (or the Temporal client profile), or set temporal.address'
        : 'start the embedded server and a worker with `runbook dev`, or set temporal.address';
  return new RunbookError('TEMPORAL_UNAVAILABLE', `cannot reach ${where}: ${found ? found.cause : first}`, found?.hint ?? hint);
}
