// Request routing as uWS's HttpRouter (uWebSockets.js 20.30) does it, checked against the
// native module in test/native-free-transport.test.ts:
// - a tree per method of URL segments (`any` registers in the tree of each of the nine
//   methods uWS knows, so a static `any` route beats a `get` wildcard);
// - at each level, the nodes of WebSocket routes come first, then static segments, then
//   wildcards (`*` matches the rest of the URL, also an empty last segment: `/*` matches `/`);
// - at a node, handlers in priority order (WebSocket, a method's, any's), then in order of
//   registration; a handler that yields passes the request on, and a request no handler
//   takes is not routed (the caller closes the connection, like uWS).
// Routes may be added at any time, also after listen. Parameter segments (`/:id`) are not
// implemented.
import { unsupported } from './unsupported.js';

export const ANY_METHODS: readonly string[] = ['get', 'post', 'head', 'put', 'delete', 'connect', 'options', 'trace', 'patch'];

/** Handler priorities at one node: lower runs first. */
export const PRIORITY_WEBSOCKET = 0;
export const PRIORITY_METHOD = 1;
export const PRIORITY_ANY = 2;

interface RouteNode<Handler> {
  name: string;
  /** The node of a WebSocket route: such nodes come before their siblings. */
  webSocket: boolean;
  children: RouteNode<Handler>[];
  /** Sorted by priority, then by registration. */
  handlers: { priority: number; handler: Handler }[];
}

function newNode<Handler>(name: string, webSocket: boolean): RouteNode<Handler> {
  return { name, webSocket, children: [], handlers: [] };
}

/** The segments of a path: `/` is one empty segment, `/a/` is `a` and an empty one. */
function segmentsOf(path: string): string[] {
  return path.length === 0 ? [] : path.slice(1).split('/');
}

/** Static segments before wildcards (uWS's lexicalOrder). */
function rank(name: string): number {
  return name.startsWith('*') ? 0 : 1;
}

export class Router<Handler> {
  private readonly methods = new Map<string, RouteNode<Handler>>();

  add(methods: readonly string[], pattern: string, priority: number, handler: Handler): void {
    const segments = segmentsOf(pattern);
    if (segments.some((segment) => segment.startsWith(':'))) unsupported(`parameter routes (${pattern})`);
    const webSocket = priority === PRIORITY_WEBSOCKET;
    for (const method of methods) {
      let node = this.methods.get(method);
      if (node === undefined) this.methods.set(method, (node = newNode(method, false)));
      for (const segment of segments) node = this.child(node, segment, webSocket);
      // uWS aborts the process here ("Internal routing error"); throwing is kinder.
      if (node.handlers.some((existing) => existing.priority === priority)) throw new Error(`uws-compat: ${method} ${pattern} is routed twice`);
      const at = node.handlers.findIndex((existing) => existing.priority > priority);
      node.handlers.splice(at < 0 ? node.handlers.length : at, 0, { priority, handler });
    }
  }

  /** Offers the request to each matching handler in order until `tryHandler` says it was handled. */
  route(method: string, path: string, tryHandler: (handler: Handler) => boolean): boolean {
    const root = this.methods.get(method);
    return root !== undefined && this.match(root, segmentsOf(path), 0, tryHandler);
  }

  private child(parent: RouteNode<Handler>, name: string, webSocket: boolean): RouteNode<Handler> {
    const existing = parent.children.find((child) => child.name === name && child.webSocket === webSocket);
    if (existing !== undefined) return existing;
    const node = newNode<Handler>(name, webSocket);
    // After its equals: WebSocket nodes first, then by rank.
    const at = parent.children.findIndex((child) => (webSocket !== child.webSocket ? webSocket : rank(child.name) < rank(name)));
    parent.children.splice(at < 0 ? parent.children.length : at, 0, node);
    return node;
  }

  private match(parent: RouteNode<Handler>, segments: string[], index: number, tryHandler: (handler: Handler) => boolean): boolean {
    if (index === segments.length) return parent.handlers.some(({ handler }) => tryHandler(handler));
    const segment = segments[index];
    for (const child of parent.children) {
      if (child.name.startsWith('*')) {
        if (child.handlers.some(({ handler }) => tryHandler(handler))) return true;
      } else if (child.name === segment && this.match(child, segments, index + 1, tryHandler)) {
        return true;
      }
    }
    return false;
  }
}
