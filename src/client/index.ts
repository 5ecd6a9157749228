// tailgrove/client: the reference client for Node and browsers (docs/PROTOCOL.md).
// Tokens are minted by the app's backend (`mintToken` in the main package), never here:
// the signing secret must not reach a device.
import { TailgroveClient } from './client.js';
import type { Client, ConnectOptions } from './types.js';

export { TailgroveError } from './errors.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
export type { AppendOptions, Attached, Client, ConnectOptions, Entry, LeasedLog, PushSubscriptionJSON, Session, Signal, Tail, TailOptions, WriterEpochStore } from './types.js';

/** Connect to a tailgrove server; resolves once the first session is open. Later drops reconnect on their own. */
export async function connect(url: string, options: ConnectOptions): Promise<Client> {
  const token: unknown = options?.token;
  if (!((typeof token === 'string' && token.length > 0) || typeof token === 'function')) {
    throw new TypeError('connect(url, { token }): token must be a non-empty string (a JWT from your backend or `npx tailgrove token`) or a function returning one');
  }
  const client = new TailgroveClient(url, options);
  await client.open();
  return client;
}
