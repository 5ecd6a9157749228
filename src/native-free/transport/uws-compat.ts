// A pure-JavaScript stand-in for the part of uWebSockets.js tailgrove uses, over node:http
// and the `ws` package, for where native addons cannot load. It imports only uWS's types
// (erased): loading it loads no native module. Load one or the other at startup:
//   const uWS = native ? (await import('uWebSockets.js')).default : (await import('../native-free/transport/uws-compat.js')).default
// What it implements and how it differs from uWS: docs/NATIVE-FREE.md ("Transport").
import type uWS from 'uWebSockets.js';
import type { us_listen_socket, us_socket } from 'uWebSockets.js';
import { CompatApp, CompatListenSocket } from './app.js';

/** The module-level functions tailgrove calls; the objects they return are typed as uWS's own. */
export type UwsTransport = Pick<typeof uWS, 'App' | 'us_listen_socket_close' | 'us_socket_local_port'>;

const uwsCompat: UwsTransport = {
  App: () => new CompatApp(),
  /** Stops accepting; open connections stay (like uWS). */
  us_listen_socket_close(listenSocket: us_listen_socket): void {
    if (listenSocket instanceof CompatListenSocket) listenSocket.server.close();
  },
  us_socket_local_port(socket: us_socket): number {
    return socket instanceof CompatListenSocket ? socket.port() : -1;
  },
};

export default uwsCompat;
