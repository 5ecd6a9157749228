// uWS's App over node:http: routes shared by every listen of the app (one node:http server
// each), requests and upgrade requests routed the same way, as uWS routes them.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HttpRequest, HttpResponse, RecognizedString, TemplatedApp, WebSocketBehavior, us_listen_socket } from 'uWebSockets.js';
import { textOf } from './bytes.js';
import { CompatRequest } from './http-request.js';
import { PlainResponse, UpgradeResponse, type CompatResponse } from './http-response.js';
import { ANY_METHODS, PRIORITY_ANY, PRIORITY_METHOD, PRIORITY_WEBSOCKET, Router } from './router.js';
import { unsupported } from './unsupported.js';
import { WebSocketRoute } from './websocket.js';

type RouteHandler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;
/** What the router holds: the app's handlers, and the WebSocket routes' (which need the shim's own types). */
type RoutedHandler = (res: CompatResponse, req: CompatRequest) => void | Promise<void>;
type ListenCallback = (listenSocket: us_listen_socket | false) => void | Promise<void>;

/** What listen hands back: the node:http server behind it. */
export class CompatListenSocket {
  readonly server: Server;

  constructor(server: Server) {
    this.server = server;
  }

  /** The port it listens on, or -1 once closed (like uWS). */
  port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? -1;
  }
}

export class CompatApp implements TemplatedApp {
  private readonly router = new Router<RoutedHandler>();

  get(pattern: RecognizedString, handler: RouteHandler): TemplatedApp {
    this.router.add(['get'], textOf(pattern), PRIORITY_METHOD, handler);
    return this;
  }

  post(pattern: RecognizedString, handler: RouteHandler): TemplatedApp {
    this.router.add(['post'], textOf(pattern), PRIORITY_METHOD, handler);
    return this;
  }

  any(pattern: RecognizedString, handler: RouteHandler): TemplatedApp {
    this.router.add(ANY_METHODS, textOf(pattern), PRIORITY_ANY, handler);
    return this;
  }

  ws<UserData>(pattern: RecognizedString, behavior: WebSocketBehavior<UserData>): TemplatedApp {
    this.router.add(['get'], textOf(pattern), PRIORITY_WEBSOCKET, new WebSocketRoute(behavior).handle);
    return this;
  }

  /**
   * Listens (always exclusively: Node does not share ports, so LIBUS_LISTEN_EXCLUSIVE_PORT
   * changes nothing) and calls back with a listen socket, or false when the port is taken or
   * the address is not this host's. Unlike uWS, the callback runs later, not within listen.
   * Also the form (host, port, options, callback) the native module takes and its typings lack.
   */
  listen(host: RecognizedString, port: number, cb: ListenCallback): TemplatedApp;
  listen(port: number, cb: ListenCallback): TemplatedApp;
  listen(port: number, options: number, cb: ListenCallback): TemplatedApp;
  listen(host: RecognizedString, port: number, options: number, cb: ListenCallback): TemplatedApp;
  listen(...args: [RecognizedString | number, ...(number | ListenCallback)[]]): TemplatedApp {
    const callback = args[args.length - 1] as ListenCallback;
    const host = typeof args[0] === 'number' ? undefined : textOf(args[0]);
    const port = (host === undefined ? args[0] : args[1]) as number;
    const server = createServer({ noDelay: true });
    server.on('request', this.onRequest);
    server.on('upgrade', this.onUpgrade);
    // Before listening, an error is the answer; after, a failed accept is not fatal (uSockets goes on).
    let listening = false;
    server.on('error', () => {
      if (!listening) void callback(false);
    });
    try {
      server.listen({ host, port, exclusive: true }, () => {
        listening = true;
        void callback(new CompatListenSocket(server));
      });
    } catch {
      void callback(false);
    }
    return this;
  }

  private readonly onRequest = (message: IncomingMessage, reply: ServerResponse): void => {
    const response = new PlainResponse(message, reply);
    if (this.dispatch(message, response)) response.discardUnreadBody();
    else message.socket.destroy();
  };

  private readonly onUpgrade = (message: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Nothing else listens on a socket handed over by 'upgrade' until `ws` takes it.
    socket.on('error', () => socket.destroy());
    if (!this.dispatch(message, new UpgradeResponse(message, socket, head))) socket.destroy();
  };

  /** Routes the request; false when no handler took it: uWS then closes the connection. */
  private dispatch(message: IncomingMessage, response: CompatResponse): boolean {
    const request = new CompatRequest(message);
    try {
      return this.router.route(request.getMethod(), request.getUrl(), (handler) => {
        request.yielded = false;
        void handler(response, request);
        return !request.yielded;
      });
    } finally {
      request.expire();
    }
  }

  options(): never {
    return unsupported('App.options');
  }

  del(): never {
    return unsupported('App.del');
  }

  patch(): never {
    return unsupported('App.patch');
  }

  put(): never {
    return unsupported('App.put');
  }

  head(): never {
    return unsupported('App.head');
  }

  connect(): never {
    return unsupported('App.connect');
  }

  trace(): never {
    return unsupported('App.trace');
  }

  listen_unix(): never {
    return unsupported('App.listen_unix');
  }

  publish(): never {
    return unsupported('App.publish');
  }

  numSubscribers(): never {
    return unsupported('App.numSubscribers');
  }

  addServerName(): never {
    return unsupported('App.addServerName');
  }

  domain(): never {
    return unsupported('App.domain');
  }

  removeServerName(): never {
    return unsupported('App.removeServerName');
  }

  missingServerName(): never {
    return unsupported('App.missingServerName');
  }
}
