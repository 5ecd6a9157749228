// uWS's HttpRequest over node:http's IncomingMessage. Like uWS's, it is valid only while the
// route handlers run: afterwards every call throws (copy what you need first).
import type { IncomingMessage } from 'node:http';
import type { HttpRequest, RecognizedString } from 'uWebSockets.js';
import { textOf } from './bytes.js';
import { unsupported } from './unsupported.js';

const EXPIRED = 'uWS.HttpRequest must not be accessed after await or route handler return. See documentation for uWS.HttpRequest and consult the user manual.';

export class CompatRequest implements HttpRequest {
  /** Set by setYield: the handler passed the request on. */
  yielded = false;
  private message: IncomingMessage | undefined;
  private readonly path: string;
  private readonly query: string;
  private readonly method: string;

  constructor(message: IncomingMessage) {
    this.message = message;
    const url = message.url ?? '';
    const mark = url.indexOf('?');
    this.path = mark < 0 ? url : url.slice(0, mark);
    this.query = mark < 0 ? '' : url.slice(mark + 1);
    this.method = (message.method ?? '').toLowerCase();
  }

  /** The handlers returned: from now on the request may not be used. */
  expire(): void {
    this.message = undefined;
  }

  /** A header by its lowercase name, '' when absent (Node joins repeated headers with ', '). */
  getHeader(lowerCaseKey: RecognizedString): string {
    const value = this.live().headers[textOf(lowerCaseKey)];
    if (value === undefined) return '';
    return typeof value === 'string' ? value : (value[0] ?? '');
  }

  /** The path, without the query. */
  getUrl(): string {
    this.live();
    return this.path;
  }

  /** Lowercase, like uWS. */
  getMethod(): string {
    this.live();
    return this.method;
  }

  /** The raw query (after `?`), or one decoded parameter; '' when absent. */
  getQuery(): string;
  getQuery(key: string): string;
  getQuery(key?: string): string {
    this.live();
    return key === undefined ? this.query : (new URLSearchParams(this.query).get(key) ?? '');
  }

  setYield(yielded: boolean): HttpRequest {
    this.live();
    this.yielded = yielded;
    return this;
  }

  getParameter(): never {
    return unsupported('HttpRequest.getParameter');
  }

  getCaseSensitiveMethod(): never {
    return unsupported('HttpRequest.getCaseSensitiveMethod');
  }

  forEach(): never {
    return unsupported('HttpRequest.forEach');
  }

  private live(): IncomingMessage {
    if (this.message === undefined) throw new Error(EXPIRED);
    return this.message;
  }
}
