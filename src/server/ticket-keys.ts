/**
 * TicketKeys: the TLS session-ticket keys of one secure listener (an https
 * or http2 secure server: a tls.Server). They travel to a new instance in the
 * meta of the listener's hand-off record (over the private hand-off socket,
 * never a file or the environment), so a client resumes its session across a
 * redeploy, and they rotate on a schedule that survives redeploys (the meta
 * says how old the current key is).
 *
 * A key is Node's 48 bytes: 16 of name, 16 of HMAC secret, 16 of AES key.
 * Node's public API holds one key per context (setTicketKeys): a ticket made
 * under any other is refused. To keep the previous key accepted after a
 * rotation, the ticket-key callback of the server's context is used where the
 * running Node offers it (`enableTicketKeyCallback`, Node's own since
 * io.js 3); a ticket under the previous key resumes and its client gets a new
 * one. OpenSSL asks the server's first context also for connections that an
 * SNI context serves. Without the callback only the current key is set, with
 * setTicketKeys.
 */
import type tls from 'node:tls';
import { builtin, loadedBuiltin } from '../node-builtins.js';
import type { Meta } from '../meta.js';
import { invalidArgument } from '../errors.js';

/** Bytes of one ticket key (name, HMAC secret, AES key). */
export const TICKET_KEY_BYTES = 48;
/** ms between two rotations of the ticket keys, by default: one hour. */
export const DEFAULT_TICKET_KEY_ROTATION = 3_600_000;
/** The shortest rotation period allowed, ms. */
export const MIN_TICKET_KEY_ROTATION = 100;
/** Longest: what a timer can wait (about 24.8 days). */
export const MAX_TICKET_KEY_ROTATION = 2 ** 31 - 1;
/** Meta of a listener record: the keys, current first, in base64. */
export const TICKET_KEYS_FIELD = 'ticketKeys';
/** Meta of a listener record: ms since the current key was made. */
export const TICKET_AGE_FIELD = 'ticketKeyAge';

const ZERO = Buffer.alloc(16);

/** checkRotation reads the ticketKeyRotation option: 0 (never rotate) or ms in [100, 2^31 - 1]; throws ERR_GRACEFUL_INVALID_ARGUMENT. */
export function checkRotation(api: string, value: unknown): number {
  if (value === 0) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_TICKET_KEY_ROTATION || value > MAX_TICKET_KEY_ROTATION) {
    throw invalidArgument(api, `ticketKeyRotation must be 0 (never rotate) or a whole number of ms from ${MIN_TICKET_KEY_ROTATION} to ${MAX_TICKET_KEY_ROTATION}, got ${typeof value === 'number' ? value : JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

/** The parts of a SecureContext's native handle that the callback mode uses (Node internals). */
interface NativeContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, enc: boolean) => unknown[];
}
interface ServerInternals {
  _sharedCreds?: { context?: NativeContext };
}

export interface TicketKeysOptions {
  /** The listener's name, for the log. */
  name: string;
  /** ms between rotations; 0: never. */
  rotation: number;
  /** The meta of the socket inherited from a predecessor, if any. */
  inherited?: Meta;
  log(msg: string, fields?: Record<string, string | number | boolean | null>): void;
  /** Called after each rotation, with how many this instance made. */
  rotated?: (rotations: number) => void;
}

export class TicketKeys {
  /** Current key first, then the previous one (accepted, in callback mode). */
  private keys: Buffer[];
  private madeAt: number;
  private timer: NodeJS.Timeout | null = null;
  /** Rotations made by this instance. */
  rotations = 0;
  /** 'callback': the previous key is accepted too; 'single': only the current one (Node's setTicketKeys). */
  readonly mode: 'callback' | 'single';

  private constructor(private readonly server: tls.Server, private readonly options: TicketKeysOptions) {
    const got = options.inherited ? readInherited(options.inherited) : null;
    if (got) {
      this.keys = got.keys;
      this.madeAt = Date.now() - got.age;
    } else {
      if (options.inherited) {
        const why = options.inherited[TICKET_KEYS_FIELD] === undefined ? 'sent none (an older version)' : 'sent keys that are not 48 or 96 bytes with an age';
        options.log(`TLS ticket keys of "${options.name}": the predecessor ${why}, so this instance made its own; sessions from before this redeploy do a full handshake`,
          { event: 'tls.ticket-keys-new', listener: options.name });
      }
      this.keys = [builtin('crypto').randomBytes(TICKET_KEY_BYTES)];
      this.madeAt = Date.now();
    }
    this.mode = this.useCallback() ? 'callback' : 'single';
    this.apply();
  }

  /** attach: the keys of server when it is a TLS server (https, http2 secure), else null. */
  static attach(server: unknown, options: TicketKeysOptions): TicketKeys | null {
    const tlsModule = loadedBuiltin('tls'); // no TLS server exists before it is loaded
    if (!tlsModule || !(server instanceof tlsModule.Server)) return null;
    return new TicketKeys(server, options);
  }

  /** meta: what a new instance needs, for the listener's hand-off record. */
  meta(): Meta {
    return { [TICKET_KEYS_FIELD]: Buffer.concat(this.keys).toString('base64'), [TICKET_AGE_FIELD]: Math.max(0, Date.now() - this.madeAt) };
  }

  /** rotate makes a new current key; the current one becomes the previous (accepted in callback mode), the previous is dropped. */
  rotate(): void {
    this.keys = [builtin('crypto').randomBytes(TICKET_KEY_BYTES), this.keys[0]!];
    this.madeAt = Date.now();
    this.rotations++;
    this.apply();
    this.options.log(`TLS ticket keys of "${this.options.name}" rotated`, { event: 'tls.ticket-keys-rotated', listener: this.options.name, rotations: this.rotations });
    if (this.timer) this.schedule();
    this.options.rotated?.(this.rotations);
  }

  /** resume rotates on schedule (at once if the current key is overdue); the timer keeps nothing alive. */
  resume(): void {
    if (this.timer || this.options.rotation === 0) return;
    this.schedule();
  }

  /** pause stops the schedule: this instance stopped accepting (runlevel 1, or a successor took the keys). */
  pause(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(0, this.options.rotation - (Date.now() - this.madeAt));
    this.timer = setTimeout(() => this.rotate(), wait);
    this.timer.unref();
  }

  /** useCallback: the running Node has the ticket-key callback. */
  private useCallback(): boolean {
    return typeof (this.server as unknown as ServerInternals)._sharedCreds?.context?.enableTicketKeyCallback === 'function';
  }

  /** apply gives the keys to the server's context; again after setSecureContext(), which makes a new one. */
  private apply(): void {
    this.server.setTicketKeys(this.keys[0]!);
    if (this.mode !== 'callback') return;
    const context = (this.server as unknown as ServerInternals)._sharedCreds!.context!;
    if (context.onticketkeycallback === undefined) {
      context.enableTicketKeyCallback!();
      const keyring = this;
      // The native side asserts on the array's shape: it is always
      // [code, hmac(16), aes(16)] and, to encrypt, name(16) and iv(16) too.
      // Whatever goes wrong, the answer is "no such key": a full handshake, never a throw.
      context.onticketkeycallback = (name, _iv, enc) => {
        try {
          return keyring.lookup(name, enc);
        } catch {
          return [0, ZERO, ZERO, ZERO, ZERO];
        }
      };
      this.wrapSetSecureContext();
    }
  }

  /** lookup answers the ticket-key callback: 1 use, 2 use and renew, 0 unknown key (a full handshake). */
  private lookup(name: Buffer, enc: boolean): unknown[] {
    const current = this.keys[0]!;
    if (enc) return [1, current.subarray(16, 32), current.subarray(32, 48), current.subarray(0, 16), builtin('crypto').randomBytes(16)];
    const i = this.keys.findIndex((k) => k.subarray(0, 16).equals(name));
    if (i < 0) return [0, ZERO, ZERO];
    const k = this.keys[i]!;
    return [i === 0 ? 1 : 2, k.subarray(16, 32), k.subarray(32, 48)];
  }

  /** wrapSetSecureContext: the application's setSecureContext() (a new certificate) keeps these keys. */
  private wrapSetSecureContext(): void {
    const server = this.server as tls.Server & { setSecureContext(o: tls.SecureContextOptions): void };
    const original = server.setSecureContext;
    if ((original as { ticketKeys?: boolean }).ticketKeys) return;
    const wrapped = (o: tls.SecureContextOptions) => {
      original.call(server, o);
      this.apply();
    };
    (wrapped as { ticketKeys?: boolean }).ticketKeys = true;
    server.setSecureContext = wrapped;
  }
}

/** readInherited: the keys and age of a predecessor's meta, or null when they are missing or malformed. */
function readInherited(meta: Meta): { keys: Buffer[]; age: number } | null {
  const text = meta[TICKET_KEYS_FIELD];
  const age = meta[TICKET_AGE_FIELD];
  if (typeof text !== 'string' || typeof age !== 'number' || !Number.isFinite(age) || age < 0) return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== TICKET_KEY_BYTES && raw.length !== 2 * TICKET_KEY_BYTES) return null;
  const keys = [raw.subarray(0, TICKET_KEY_BYTES)];
  if (raw.length === 2 * TICKET_KEY_BYTES) keys.push(raw.subarray(TICKET_KEY_BYTES));
  return { keys: keys.map((k) => Buffer.from(k)), age };
}
