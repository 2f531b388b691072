// A TLS endpoint in front of a plaintext Temporal dev server, which has no TLS options of its own, and
// the certificates for it, made with the real `openssl`.
//
// A Node TLS pipe rather than stunnel: stunnel (5.x, as Debian ships it) cannot offer ALPN, and the
// worker's Rust client refuses a server that does not negotiate "h2" (H2NotNegotiated), while the
// CLI's grpc-js client does not care. The pipe offers h2 and forwards the decrypted bytes untouched.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

export interface CertFiles {
  dir: string;
  /** The CA that signed the server and the good client certificate. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Another CA, and a client certificate it signed: the server must refuse it. */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
}

const openssl = (cwd: string, ...args: string[]) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

function sign(dir: string, ca: string, name: string, subject: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(
    dir,
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${subject}`,
  );
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    `${name}.ext`,
  );
}

/** A CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and a second CA's client certificate. */
export function makeCerts(dir: string): CertFiles {
  mkdirSync(dir, { recursive: true });
  for (const ca of ['ca', 'other-ca']) {
    openssl(
      dir,
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.pem`,
      '-subj',
      `/CN=${ca} test`,
    );
  }
  sign(dir, 'ca', 'server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  sign(dir, 'ca', 'client', 'runbook-worker', 'extendedKeyUsage=clientAuth\n');
  sign(dir, 'other-ca', 'other-client', 'intruder', 'extendedKeyUsage=clientAuth\n');
  const f = (name: string) => path.join(dir, name);
  return {
    dir,
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.pem'),
    otherClientCert: f('other-client.pem'),
    otherClientKey: f('other-client.key'),
  };
}

export interface TlsPipe {
  port: number;
  address: string;
  /** Handshakes that completed with a client certificate the server trusts. */
  accepted(): number;
  close(): Promise<void>;
}

const serverOptions = (certs: CertFiles): tls.TlsOptions => ({
  key: readFileSync(certs.serverKey),
  cert: readFileSync(certs.serverCert),
  ca: readFileSync(certs.ca),
  requestCert: true,
  rejectUnauthorized: true,
  ALPNProtocols: ['h2'],
});

/** TLS with a required client certificate on 127.0.0.1, piped to a plaintext gRPC server. */
export async function startTlsPipe(certs: CertFiles, upstream: string): Promise<TlsPipe> {
  const [host, port] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = tls.createServer(serverOptions(certs), (client) => {
    accepted++;
    const up = net.connect({ host, port });
    sockets.add(client).add(up);
    client.pipe(up).pipe(client);
    const end = () => (client.destroy(), up.destroy());
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  // A refused handshake is the point of some tests: nothing to report.
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const listening = (server.address() as net.AddressInfo).port;
  return {
    port: listening,
    address: `127.0.0.1:${listening}`,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface HeaderRecorder {
  address: string;
  /** The request headers of every gRPC call received. */
  calls: http2.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/**
 * An HTTP/2 server with the same TLS that records each gRPC call's headers and refuses it
 * (UNAUTHENTICATED): enough to see what a client sends as `authorization`.
 */
export async function startHeaderRecorder(certs: CertFiles): Promise<HeaderRecorder> {
  const calls: http2.IncomingHttpHeaders[] = [];
  const server = http2.createSecureServer({ ...serverOptions(certs), allowHTTP1: false } as http2.SecureServerOptions);
  server.on('stream', (stream, headers) => {
    calls.push(headers);
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'recorded' },
      { endStream: true },
    );
  });
  server.on('tlsClientError', () => {});
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    calls,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}
