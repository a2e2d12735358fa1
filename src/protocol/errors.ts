/**
 * The one error class of Sluice and its closed set of codes.
 *
 * Codes mirror gRPC's (there are no user-defined codes) so every transport can map them
 * without a lookup table per caller. `message` is the public, safe text; whatever caused the
 * error travels in `cause` and only reaches logs.
 * @module
 */

/** Every error code Sluice uses. The set is closed. */
export const ERROR_CODES = [
  'invalid_argument',
  'not_found',
  'already_exists',
  'failed_precondition',
  'out_of_range',
  'resource_exhausted',
  'permission_denied',
  'cancelled',
  'timeout',
  'unavailable',
  'unimplemented',
  'internal',
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Machine-readable facts about an error that a wire adapter may need (never secrets). */
export interface ErrorDetails {
  /** A finer reason than the code, e.g. `action_not_found`, `domain_missing`, `action_rejected`. */
  reason?: string;
  /** The action the error is about, when there is one. */
  actionName?: string;
  [key: string]: unknown;
}

const BRAND = Symbol.for('sluice.error');

/** The error every Sluice API throws and every `error` event carries. */
export class SluiceError extends Error {
  override readonly name = 'SluiceError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True for a SluiceError, also one from another copy of this package. */
  static isInstance(value: unknown): value is SluiceError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /**
   * Wraps anything thrown into a SluiceError. An existing SluiceError is returned as is; an abort
   * becomes `cancelled` (or `timeout` for a `TimeoutError`); anything else becomes `code` with the
   * public `message` given, keeping the original as `cause`.
   */
  static from(reason: unknown, code: ErrorCode = 'internal', message = 'Internal error'): SluiceError {
    if (SluiceError.isInstance(reason)) return reason;
    if (reason instanceof Error || (typeof reason === 'object' && reason !== null && 'name' in reason)) {
      const name = (reason as { name?: unknown }).name;
      if (name === 'TimeoutError') return new SluiceError('timeout', 'The operation timed out', { cause: reason });
      if (name === 'AbortError') return new SluiceError('cancelled', 'The operation was cancelled', { cause: reason });
    }
    return new SluiceError(code, message, { cause: reason });
  }

  /** The public JSON form carried by `error` events. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True when `value` is one of the closed set of error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** The HTTP status each error code maps to on HTTP transports. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 400,
  out_of_range: 410,
  resource_exhausted: 429,
  permission_denied: 403,
  cancelled: 499,
  timeout: 504,
  unavailable: 503,
  unimplemented: 501,
  internal: 500,
};

/**
 * Client input as quoted in an error message or reply: cut after `max` characters (default 200,
 * with `…`), so a hostile value cannot make the message itself huge. `details` keep the whole value.
 */
export function clipped(value: string, max = 200): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
