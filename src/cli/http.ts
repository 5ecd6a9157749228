// Talking to a running server over HTTP (the admin API, /stats), for the CLI. node:http
// rather than fetch: fetch refuses some ports (6000, 6666, 10080, …) a server may listen on.
import http from 'node:http';
import https from 'node:https';
import { abort, fail } from './usage.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
// A server that accepts the connection but never answers must not hang the command.
const REQUEST_TIMEOUT_MS = 10_000;

export interface JsonRequest {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

interface Reply {
  status: number;
  statusText: string;
  text: string;
}

/** The server's HTTP address from --url; its ws:// address names the same server. */
export function serverUrl(text: string, help: string): URL {
  let url: URL;
  try {
    url = new URL(text.replace(/^ws(s?):/, 'http$1:'));
  } catch {
    fail(`--url "${text}" is not a URL (example: ${DEFAULT_URL})`, help);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`--url "${text}" must be http:// (or the server's ws:// address)`, help);
  return url;
}

function send(url: URL, request: JsonRequest): Promise<Reply> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const outgoing = transport.request(url, { method: request.method ?? 'GET', headers: request.headers ?? {}, timeout: REQUEST_TIMEOUT_MS }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? '', text }));
      response.on('error', reject);
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    outgoing.on('error', reject);
    outgoing.end(request.body);
  });
}

/** `request` to `path` on the server, and its JSON reply; a refusal or no server exits 1. */
export async function fetchJson(server: URL, path: string, request: JsonRequest = {}): Promise<unknown> {
  const url = new URL(path, server);
  let reply: Reply;
  try {
    reply = await send(url, request);
  } catch (error) {
    abort(`the server is not reachable at ${server.origin} (${(error as Error).message})`);
  }
  let body: unknown;
  try {
    body = JSON.parse(reply.text);
  } catch {
    body = undefined;
  }
  if (reply.status < 200 || reply.status > 299) {
    const reason = (body as { error?: unknown } | undefined)?.error ?? reply.text.trim();
    abort(`${url.pathname}: the server answered ${reply.status} ${reply.statusText}${reason === '' ? '' : `: ${String(reason)}`}`);
  }
  if (body === undefined) abort(`${url.pathname}: the server's answer is not JSON: ${reply.text.slice(0, 200)}`);
  return body;
}
