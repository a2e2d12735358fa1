/**
 * Who made a request, as the routes see it: the transport's authentication hook records the
 * principal of each accepted request here, and every route that creates something (a run, a chat,
 * a voice session, an app instance) gives it the principal's id as owner and checks it when the
 * thing is used again. Kept below the transports so the channel plugins (AI SDK chat, voice) can
 * read it without depending on the HTTP transport.
 * @module
 */

import type { IncomingMessage } from 'node:http';
import type { ActionExecutor } from '../runtime/executor.ts';
import type { Run } from '../runtime/run.ts';

/** Who made a request. `id` is what runs, chats, voice sessions and app instances are owned by. */
export interface Principal {
  /** Stable id of the principal (user id, key fingerprint…). Never a secret: it may be logged. */
  id: string;
  [key: string]: unknown;
}

const principals = new WeakMap<IncomingMessage, Principal>();

type RequestLike = IncomingMessage | { raw: IncomingMessage };

function rawOf(request: RequestLike): IncomingMessage {
  return 'raw' in request ? request.raw : request;
}

/** Records the principal of an authenticated request (the authentication hook does). */
export function setPrincipal(request: RequestLike, principal: Principal): void {
  principals.set(rawOf(request), principal);
}

/** The principal of a request (undefined when authentication is off). */
export function principalOf(request: RequestLike): Principal | undefined {
  return principals.get(rawOf(request));
}

/** The owner id to give what a request creates (undefined when authentication is off). */
export function ownerOf(request: RequestLike): string | undefined {
  return principals.get(rawOf(request))?.id;
}

/**
 * True when `principal` may use a resource owned by `owner`: the same principal, or both
 * anonymous (authentication off). A resource with no owner (started in-process, or before
 * authentication was turned on) is only reachable anonymously, so turning authentication on never
 * exposes it.
 */
export function mayAccess(owner: string | undefined, principal: string | undefined): boolean {
  return owner === principal;
}

/** True when the request's principal may use something owned by `owner`. */
export function owns(request: RequestLike, owner: string | undefined): boolean {
  return mayAccess(owner, ownerOf(request));
}

/** A run by id, if `owner` may use it: someone else's run is undefined, exactly like an unknown one. */
export function ownedRun(executor: ActionExecutor, owner: string | undefined, runId: string): Run | undefined {
  const run = executor.getRun(runId);
  return run !== undefined && mayAccess(run.owner, owner) ? run : undefined;
}

/**
 * Barge-in on behalf of `owner`: acks `responseId` only when its run belongs to `owner`; someone
 * else's stream is answered as an unknown one (false).
 */
export function ackOwned(executor: ActionExecutor, owner: string | undefined, responseId: string): boolean {
  const run = executor.runOfStream(responseId);
  if (run !== undefined && !mayAccess(run.owner, owner)) return false;
  // An unknown id goes to the executor too, which logs it (as Rasa does) and finds nothing.
  return executor.ack(responseId);
}
