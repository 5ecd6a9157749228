// The operator's HTTP endpoints on the server's port: liveness, readiness, Prometheus
// metrics, and the fallback for every other path. They answer from the first moment the
// port listens, while recovery may still run: not ready means 503.
import type uWS from 'uWebSockets.js';
import type { Registry } from 'prom-client';

export interface HttpRoutesOptions {
  ready: () => boolean;
  /** The metrics registry once the pipeline runs; undefined while recovering or when disabled. */
  metrics: () => Registry | undefined;
  metricsEnabled: boolean;
}

function json(res: uWS.HttpResponse, status: string, value: unknown): void {
  res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(`${JSON.stringify(value)}\n`));
}

export function registerHttpRoutes(app: uWS.TemplatedApp, options: HttpRoutesOptions): void {
  // Liveness: the process answers. Readiness: recovery finished, sessions are accepted.
  app.get('/health', (res) => json(res, '200 OK', { status: 'live', ready: options.ready() }));
  app.get('/ready', (res) => (options.ready() ? json(res, '200 OK', { status: 'ready' }) : json(res, '503 Service Unavailable', { status: 'recovering' })));
  if (options.metricsEnabled) {
    app.get('/metrics', (res) => {
      const registry = options.metrics();
      if (registry === undefined) {
        res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').end('tailgrove: recovering\n');
        return;
      }
      let aborted = false;
      res.onAborted(() => (aborted = true));
      registry.metrics().then(
        (text) => aborted || res.cork(() => res.writeHeader('content-type', registry.contentType).end(text)),
        (error: Error) => aborted || res.cork(() => res.writeStatus('500 Internal Server Error').writeHeader('content-type', 'text/plain').end(`${error.message}\n`)),
      );
    });
  }
  // Everything else. WebSocket upgrades fall through (yield) to the socket route once ready.
  app.any('/*', (res, req) => {
    if (!options.ready()) {
      res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').writeHeader('retry-after', '1').end('tailgrove: recovering, try again shortly\n');
      return;
    }
    if (req.getMethod() === 'get' && req.getHeader('upgrade').toLowerCase() === 'websocket') {
      req.setYield(true);
      return;
    }
    res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('tailgrove: connect a WebSocket to this address (docs/PROTOCOL.md); operators: /health, /ready, /metrics, /stats, /\n');
  });
}
