/**
 * Authentication of the gRPC transport: the `authorization` metadata (`Bearer <key>`, or Basic as
 * Rasa's `basic_auth`), checked for every method but `grpc.health.v1.Health`, before the call is
 * routed. A refused call ends at once with UNAUTHENTICATED; an accepted one carries its principal
 * to the service implementations in Connect's context values.
 * @module
 */

import type * as http2 from 'node:http2';
import { createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { Principal } from '../../channels/principal.ts';
import { verifiedClientCertificate, type AuthRequest } from '../auth.ts';

/** The principal of a call (undefined when authentication is off). */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: 'sluice principal' });

/** Methods that stay open: health checks (load balancers and orchestrators probe without keys). */
export function isOpenMethod(path: string): boolean {
  return path.startsWith('/grpc.health.v1.Health/');
}

/** The owner id of a call: what the runs it starts are owned by, and what it may use. */
export function ownerOfCall(context: Pick<HandlerContext, 'values'>): string | undefined {
  return context.values.get(principalKey)?.id;
}

/** The AuthRequest view of an HTTP/2 gRPC request (pseudo-headers left out). */
export function grpcAuthRequest(req: http2.Http2ServerRequest): AuthRequest {
  const headers: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(req.headers)) if (!name.startsWith(':')) headers[name] = value;
  const url = req.url;
  const q = url.indexOf('?');
  const certificate = verifiedClientCertificate(req.stream?.session?.socket);
  return {
    ...(certificate === undefined ? {} : { clientCertificate: certificate }),
    headers,
    url,
    query: new URLSearchParams(q === -1 ? '' : url.slice(q + 1)),
    method: req.method,
    remoteAddress: req.socket?.remoteAddress,
    transport: 'grpc',
  };
}
