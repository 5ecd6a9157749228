// Sending one notification to a user's push subscriptions, a piscina task on a thread of its
// own: every message is encrypted for its subscription (ECDH + HKDF + AES-GCM) and carries a
// freshly signed VAPID JWT, CPU work that must not run on the IO thread. Each subscription
// gets an outcome; one failing endpoint never fails the others.
import { rootCertificates } from 'node:tls';
import { Agent } from 'node:https';
import webpush from 'web-push';
import type { PushSubscriptionRecord } from './types.js';

export interface PushRequest {
  subscriptions: PushSubscriptionRecord[];
  /** The notification's JSON, already cut to fit a push message. */
  payload: string;
  vapid: { subject: string; publicKey: string; privateKey: string };
  ttlSeconds: number;
  /** PEM certificates trusted in addition to Node's bundled roots (a private CA). */
  ca?: string | undefined;
}

export interface PushOutcome {
  endpoint: string;
  /** The push service accepted the message (2xx). */
  ok: boolean;
  /** The push service's HTTP status; 0 when there was no answer. */
  status: number;
  /** 404 or 410: the subscription expired or was unsubscribed, and must be forgotten. */
  gone: boolean;
  /** Why there was no answer (network error, timeout, unusable subscription keys). */
  error?: string;
}

// A push service that accepts the connection and then stalls must not hold the task forever.
const SOCKET_TIMEOUT_MS = 10_000;

// One agent per CA bundle, kept across tasks so connections to a push service are reused.
const agents = new Map<string, Agent>();

function agentFor(ca: string): Agent {
  let agent = agents.get(ca);
  if (agent === undefined) {
    // `ca` replaces Node's trusted roots: keep them, so public push services still verify.
    agent = new Agent({ keepAlive: true, ca: [...rootCertificates, ca] });
    agents.set(ca, agent);
  }
  return agent;
}

async function pushTo(subscription: PushSubscriptionRecord, request: PushRequest): Promise<PushOutcome> {
  const { endpoint } = subscription;
  try {
    const { statusCode } = await webpush.sendNotification(subscription, request.payload, {
      vapidDetails: request.vapid,
      TTL: request.ttlSeconds,
      urgency: 'normal',
      contentEncoding: 'aes128gcm',
      timeout: SOCKET_TIMEOUT_MS,
      ...(request.ca === undefined ? {} : { agent: agentFor(request.ca) }),
    });
    return { endpoint, ok: true, status: statusCode, gone: false };
  } catch (error) {
    if (error instanceof webpush.WebPushError) {
      return { endpoint, ok: false, status: error.statusCode, gone: error.statusCode === 404 || error.statusCode === 410 };
    }
    return { endpoint, ok: false, status: 0, gone: false, error: error instanceof Error ? error.message : String(error) };
  }
}

export default async function push(request: PushRequest): Promise<PushOutcome[]> {
  return Promise.all(request.subscriptions.map((subscription) => pushTo(subscription, request)));
}
