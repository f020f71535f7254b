// WebSocket spoken by hand over a raw TCP socket, for clients no library would make: ones
// that stop reading at the TCP level, announce frames they never send, or break the
// protocol on purpose.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/** A raw connection whose upgrade succeeded. */
export interface RawWebSocket {
  readonly socket: Socket;
  /** Bytes the server sent after its handshake response and before the first read. */
  readonly leftover: Buffer;
}

/** Opens a TCP connection to `port` (on 127.0.0.1), rejecting on error. */
export const openTcp = (port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });

/** The upgrade request of a WebSocket client, written by hand. */
export const upgradeRequest = (port: number, path = '/ws'): string =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
  `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
  'Sec-WebSocket-Version: 13\r\n\r\n';

/**
 * Connects and performs the WebSocket handshake by hand. The socket is left paused with no
 * reader: until the caller reads, nothing more is taken from the kernel, so the server's
 * writes fill the TCP buffers and then its own.
 */
export const openRawWebSocket = async (port: number): Promise<RawWebSocket> => {
  const socket = await openTcp(port);
  socket.write(upgradeRequest(port));
  const received = await new Promise<Buffer>((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.includes('\r\n\r\n')) {
        socket.off('data', onData);
        socket.off('error', reject);
        socket.pause();
        resolve(buffer);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  const end = received.indexOf('\r\n\r\n') + 4;
  const head = received.subarray(0, end).toString('latin1');
  if (!head.startsWith('HTTP/1.1 101')) {
    socket.destroy();
    throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  }
  return { socket, leftover: received.subarray(end) };
};

/** WebSocket opcodes. */
export const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/**
 * One client frame. `declaredLength` writes a payload length other than the payload's own
 * (to announce bytes never sent); `masked: false` breaks the rule that clients mask.
 */
export const encodeFrame = (
  opcode: number,
  payload: Buffer,
  options: { fin?: boolean; masked?: boolean; rsv1?: boolean; declaredLength?: number } = {},
): Buffer => {
  const length = options.declaredLength ?? payload.length;
  const masked = options.masked ?? true;
  const header: number[] = [
    ((options.fin ?? true) ? 0x80 : 0) | (options.rsv1 === true ? 0x40 : 0) | opcode,
  ];
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) header.push(maskBit | length);
  else if (length < 65_536) header.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    header.push(maskBit | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    header.push(...big);
  }
  if (!masked) return Buffer.concat([Buffer.from(header), payload]);
  const mask = randomBytes(4);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i += 1) body[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0);
  return Buffer.concat([Buffer.from(header), mask, body]);
};

/** A text frame holding `text`. */
export const textFrame = (text: string): Buffer => encodeFrame(OPCODE.text, Buffer.from(text));

/**
 * Reads the socket until the server's close frame and resolves with its status code
 * (1005 when it carries none); rejects if the connection ends without one or after
 * `timeoutMs`. Frames before it (replies) are skipped.
 */
export const readCloseCode = (raw: RawWebSocket, timeoutMs = 10_000): Promise<number> =>
  new Promise((resolve, reject) => {
    const { socket } = raw;
    let buffer: Buffer = raw.leftover;
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      outcome();
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no close frame within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const scan = () => {
      for (;;) {
        if (buffer.length < 2) return;
        const opcode = (buffer[0] ?? 0) & 0x0f;
        let length = (buffer[1] ?? 0) & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (buffer.length < offset + length) return;
        if (opcode === OPCODE.close) {
          const code = length >= 2 ? buffer.readUInt16BE(offset) : 1005;
          finish(() => resolve(code));
          return;
        }
        buffer = buffer.subarray(offset + length);
      }
    };
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      scan();
    };
    const onClose = () =>
      finish(() => reject(new Error('the connection ended without a close frame')));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.resume();
    scan();
  });
