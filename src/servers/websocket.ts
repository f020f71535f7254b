import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from '../logger.ts';
import type { DecodeFrameConfig } from '../streams/operators/decodeFrame.ts';
import type { Submission } from '../streams/types.ts';
import { createAdmission, type AdmissionLimits, type Pausable } from './admission.ts';
import {
  createConnectionActor,
  ignoreConnection,
  type ConnectionActor,
  type ConnectionObserver,
  type ReplyRef,
} from './connectionActor.ts';
import { routeRequests, type HttpRoutes } from './http.ts';

/** Settings of the WebSocket server. */
export interface WebSocketServerConfig extends AdmissionLimits {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly maxFrameBytes: number;
  readonly pingIntervalMs: number;
  readonly decode: DecodeFrameConfig;
}

/** A running ingest WebSocket server. */
export interface IngestServer {
  readonly port: number;
  readonly http: Server;
  /** Unacked purchases across all connections. */
  readonly unacked: number;
  readonly connections: number;
  /** Stops accepting connections and reading frames; replies still go out. */
  stopAccepting(): void;
  /** Closes every socket (1001 going away) and the HTTP server. */
  close(): Promise<void>;
}

/** What the server needs from the rest of the ingest service. */
export interface WebSocketServerDeps {
  readonly submit: (submission: Submission<ReplyRef>) => void;
  /** What the same port answers over plain HTTP (health, metrics, the status page). */
  readonly routes: HttpRoutes;
  readonly logger: Logger;
  /** Told what each connection received, refused and answered (metrics). */
  readonly observer?: ConnectionObserver;
}

// ws hands a message over as one Buffer (the default binaryType); the other shapes
// only appear with other binary types, handled for completeness.
const textOf = (data: RawData): string =>
  Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Buffer.from(data).toString('utf8');

/** Output a slow reader may leave queued before its socket stops being read. */
const MAX_BUFFERED_BYTES = 1 << 20;
/** Frames whose replies wait behind an earlier frame's before the socket stops being read. */
const MAX_WAITING_FRAMES = 1_000;

/**
 * Holds a socket's writes until the end of the current tick, so the replies the pipeline
 * hands over together (a batch's outcomes) leave in one write per socket instead of one
 * system call per frame. ws corks around each frame; an outer cork spans them all.
 */
const createCorker = () => {
  const corked = new Set<Duplex>();
  const uncorkAll = () => {
    for (const raw of corked) raw.uncork();
    corked.clear();
  };
  return (socket: WebSocket) => {
    // ws keeps its TCP socket in `_socket` (not in its typings).
    const raw = (socket as unknown as { _socket?: Duplex })._socket;
    if (raw === undefined || corked.has(raw)) return;
    raw.cork();
    corked.add(raw);
    if (corked.size === 1) process.nextTick(uncorkAll);
  };
};

/**
 * Reading a socket stops for any of several reasons (admission, unread replies, drain)
 * and resumes only once none holds.
 */
const createReadGate = (socket: WebSocket) => {
  const reasons = new Set<string>();
  return {
    get paused() {
      return reasons.size > 0;
    },
    reason: (name: string): Pausable => ({
      pause() {
        if (reasons.size === 0) socket.pause();
        reasons.add(name);
      },
      resume() {
        if (reasons.delete(name) && reasons.size === 0) socket.resume();
      },
    }),
  };
};

/**
 * Serves WebSocket clients on `path`, one {@link ConnectionActor} per socket, and
 * `routes` over plain HTTP on the same port. Dead peers are found by ping/pong; frames
 * over `maxFrameBytes` close the socket with 1009, the only input that does.
 */
export const startWebSocketServer = async (
  config: WebSocketServerConfig,
  deps: WebSocketServerDeps,
): Promise<IngestServer> => {
  const http = createServer(routeRequests(deps.routes, deps.logger));
  const wss = new WebSocketServer({
    server: http,
    path: config.path,
    maxPayload: config.maxFrameBytes,
    perMessageDeflate: false,
  });
  const admission = createAdmission(config);
  const sockets = new Map<
    WebSocket,
    {
      actor: ConnectionActor;
      gate: ReturnType<typeof createReadGate>;
      alive: boolean;
      remote: string;
    }
  >();
  let accepting = true;
  const cork = createCorker();
  const observer = deps.observer ?? ignoreConnection;

  wss.on('connection', (socket, request) => {
    if (!accepting) return socket.close(1001, 'server shutting down');
    const remote = `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`;
    const openedAt = performance.now();
    const gate = createReadGate(socket);
    const output = gate.reason('output');
    // Replies decided at once (errors, refusals) still wait for an earlier frame's ack;
    // they are bounded too.
    const backlog = gate.reason('backlog');
    const actor = createConnectionActor({
      decode: config.decode,
      ticket: admission.open(gate.reason('admission')),
      submit: deps.submit,
      isAccepting: () => accepting,
      observer,
      send: (text) => {
        if (socket.readyState !== socket.OPEN) return;
        cork(socket);
        // A client that does not read its replies stops being read itself, so replies
        // queued for it stay bounded too.
        socket.send(text, () => {
          if (socket.bufferedAmount <= MAX_BUFFERED_BYTES / 2) output.resume();
        });
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) output.pause();
        if (actor.pendingFrames <= MAX_WAITING_FRAMES / 2) backlog.resume();
      },
    });
    const entry = { actor, gate, alive: true, remote };
    sockets.set(socket, entry);
    deps.logger.info('connection opened', { remote, connections: sockets.size });
    socket.on('pong', () => {
      entry.alive = true;
    });
    socket.on('message', (data, isBinary) => {
      entry.alive = true;
      actor.receive(isBinary ? null : textOf(data));
      if (actor.pendingFrames > MAX_WAITING_FRAMES) backlog.pause();
    });
    socket.on('error', (error) => {
      // A frame over maxFrameBytes: ws closes the socket with 1009, the frame's only answer.
      if ((error as { code?: unknown }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        observer.refused('too_large', 1);
      }
      deps.logger.debug('socket error', { remote, error });
    });
    socket.on('close', (code) => {
      actor.close();
      sockets.delete(socket);
      deps.logger.info('connection closed', {
        remote,
        code,
        durationMs: Math.round(performance.now() - openedAt),
        purchases: actor.received,
        connections: sockets.size,
      });
    });
  });

  const pinger = setInterval(() => {
    for (const [socket, entry] of sockets) {
      // A socket not being read cannot show us its pongs; backpressure is not death.
      if (entry.gate.paused) {
        entry.alive = true;
        continue;
      }
      if (!entry.alive) {
        deps.logger.info('closing a dead connection (no pong)', { remote: entry.remote });
        socket.terminate();
        continue;
      }
      entry.alive = false;
      socket.ping();
    }
  }, config.pingIntervalMs);
  pinger.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      // ws re-emits the HTTP server's errors on itself, where one without a listener
      // would be thrown: a taken port must reject the start instead.
      wss.once('error', reject);
      http.listen(config.port, config.host, () => {
        wss.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(pinger);
    wss.close();
    throw error;
  }
  wss.on('error', (error) => deps.logger.error('WebSocket server error', { error }));
  const port = (http.address() as AddressInfo).port;

  return {
    port,
    http,
    get unacked() {
      return admission.unacked;
    },
    get connections() {
      return sockets.size;
    },
    stopAccepting() {
      // The port keeps answering HTTP while the drain runs — /readyz says 503, /metrics
      // shows it — and WebSocket upgrades are closed at once with 1001.
      accepting = false;
      for (const entry of sockets.values()) entry.gate.reason('draining').pause();
    },
    async close() {
      clearInterval(pinger);
      accepting = false;
      const closing = [...sockets.keys()].map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.readyState === socket.CLOSED) return resolve();
            socket.once('close', () => resolve());
            // Read again so the client's answering close frame arrives.
            socket.resume();
            socket.close(1001, 'server shutting down');
            setTimeout(() => {
              socket.terminate();
              resolve();
            }, 2_000).unref();
          }),
      );
      await Promise.all(closing);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
};
