// A real push service on 127.0.0.1 for Web Push tests: HTTPS with a self-signed certificate
// made by the openssl CLI for the run (trusted through the sink's caFile option), recording
// each request; and browser-side subscriptions that decrypt what it received (http_ece), as a
// browser's service worker would.
import { execFileSync } from 'node:child_process';
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PushSubscriptionRecord } from '../../src/notify/types.js';

// http_ece (web-push's encryption library) has no type declarations.
const ece = createRequire(import.meta.url)('http_ece') as {
  decrypt(body: Buffer, params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: Buffer }): Buffer;
};

export interface PushRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface PushService {
  origin: string;
  /** The service's certificate, to trust (the sink's caFile). */
  caFile: string;
  /** Requests by endpoint id (`/push/<id>`), in arrival order. */
  received: Map<string, PushRequest[]>;
  close(): void;
}

/** Start the service; it answers an endpoint id with `statusById[id]`, else 201 Created. */
export async function startPushService(statusById: Record<string, number> = {}): Promise<PushService> {
  const work = mkdtempSync(join(tmpdir(), 'tailgrove-push-service-'));
  const keyFile = join(work, 'key.pem');
  const caFile = join(work, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2',
    '-keyout', keyFile, '-out', caFile,
  ], { stdio: 'ignore' });
  const received = new Map<string, PushRequest[]>();
  const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const id = request.url!.replace(/^\/push\//, '');
      received.set(id, [...(received.get(id) ?? []), { headers: request.headers, body: Buffer.concat(chunks) }]);
      response.writeHead(statusById[id] ?? 201).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caFile,
    received,
    close() {
      server.closeAllConnections();
      server.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A subscription as a browser makes one: its own P-256 key pair and 16 random auth bytes. */
export interface Browser {
  subscription: PushSubscriptionRecord;
  ecdh: ECDH;
  auth: Buffer;
}

export function browserSubscription(origin: string, id: string): Browser {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16);
  return { ecdh, auth, subscription: { endpoint: `${origin}/push/${id}`, keys: { p256dh: ecdh.getPublicKey('base64url'), auth: auth.toString('base64url') } } };
}

/** A push message decrypted with the browser's keys, parsed as JSON. */
export function decryptPush(message: PushRequest, { ecdh, auth }: Browser): unknown {
  return JSON.parse(ece.decrypt(message.body, { version: 'aes128gcm', privateKey: ecdh, authSecret: auth }).toString('utf8'));
}
