import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS, FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';

export interface SlowBodyLimit {
  /** How often the bytes received are looked at. */
  windowMs: number;
  /** A request body must bring at least this many bytes per window until it is complete. */
  minBytes: number;
}

/**
 * 16 KiB a minute: far below any agent (its slowest network throttle, 1 Mbit/s, sends 7.5 MB a minute), far
 * above a slow-loris client trickling a byte now and then to hold a connection forever.
 */
export const DEFAULT_SLOW_BODY: SlowBodyLimit = { windowMs: 60_000, minBytes: 16 * 1024 };

/**
 * Cuts a request whose body trickles in slower than the limit (slow-loris): answers 408 REQUEST_TOO_SLOW if it
 * still can, and closes the connection. Reads the socket's byte counter only, so it never changes how the body
 * stream flows. Requests without a body, or whose body is complete, are not watched.
 */
export function guardSlowBody(req: IncomingMessage, res: ServerResponse, limit: SlowBodyLimit, log: Logger): void {
  if (req.method === 'GET' || req.method === 'HEAD' || req.headers.upgrade) return;
  const socket = req.socket;
  let last = socket.bytesRead;
  const timer = setInterval(() => {
    if (req.complete || socket.destroyed) {
      clearInterval(timer);
      return;
    }
    const now = socket.bytesRead;
    if (now - last >= limit.minBytes) {
      last = now;
      return;
    }
    clearInterval(timer);
    log.warn({ method: req.method, url: req.url, remote: socket.remoteAddress, bytes: now - last, windowMs: limit.windowMs }, 'request body too slow: connection closed');
    const message = `the request body brought ${now - last} bytes in ${limit.windowMs / 1000} s (at least ${limit.minBytes} needed): the connection is closed`;
    // Destroying the request (not only its socket) ends whatever reads the body with this error: once the 408 is
    // sent, closing the socket alone leaves a reader of the body (an upload holding its cycle's lock) waiting forever.
    const cut = (): void => {
      req.destroy(new FerryError('REQUEST_TOO_SLOW', message));
    };
    if (!res.headersSent) {
      res.writeHead(408, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ ok: false, code: 'REQUEST_TOO_SLOW', message, hint: ERRORS.REQUEST_TOO_SLOW.hint }), cut);
      setTimeout(cut, 1000).unref();
    } else {
      cut();
    }
  }, limit.windowMs);
  timer.unref();
  req.once('close', () => clearInterval(timer));
}

/**
 * Bytes that are not HTTP (garbage after a body shorter than its Content-Length, oversized headers): node's parser
 * gives up on the connection. Answer in the one error shape, with a code, after any reply still being written.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending && !pending.writableFinished) {
    pending.once('finish', () => socket.destroy());
    setTimeout(() => socket.destroy(), 5000).unref();
    return;
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, text, code] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? ([431, 'Request Header Fields Too Large', 'BAD_REQUEST'] as const)
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ([408, 'Request Timeout', 'REQUEST_TOO_SLOW'] as const)
        : ([400, 'Bad Request', 'BAD_REQUEST'] as const);
  const body = JSON.stringify({ ok: false, code, message: `the request is not valid HTTP (${err.code ?? err.message})`, hint: ERRORS[code].hint });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
