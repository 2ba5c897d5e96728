/**
 * Which role each route of the HTTP API needs (see src/security/tokens.ts for the roles):
 *
 *   GET  /v1/kv/{key} (stale or not), /v1/kv?prefix=     read
 *   GET  /v1/watch (server-sent events of changes)        read
 *   PUT, DELETE /v1/kv/{key}                             write
 *   /v1/members*, /v1/master*, /v1/snapshots (any method) admin
 *   /v1/sessions* (any method: sessions propose)          write
 *   GET  /status, /metrics, /v1/node-status              read, or nobody with openMonitoring
 *   GET  /v1/cluster-status                              read
 *   GET  /, /ui (the status page: static, no data)       nobody (it asks for a token, see ui/status-page.ts)
 *   any method but GET and HEAD                          at least write, whatever the path
 *   anything else                                        admin (a route this table does not name)
 *
 * Deciding from the method and the path alone, before the request is routed, keeps every route,
 * present or future, behind a token unless this table says otherwise. `path` must be the very
 * path the server routes on (the raw one, dot segments and backslashes as sent): deciding on a
 * normalised path while the router reads another let `/v1/kv/..` pass as a read.
 */
import { isAdminPath } from '../node/admin-api.js';
import { allows, type Role, type TokenStore } from '../security/tokens.js';
import { KvError, NOT_APPLIED } from './kv-error.js';

/** The role a request needs; null: none (only /status and /metrics, with openMonitoring). */
export function requiredRole(method: string, path: string, openMonitoring: boolean): Role | null {
  const byPath = routeRole(path, openMonitoring);
  if (method === 'GET' || method === 'HEAD') return byPath;
  // Anything but a read may change something: never less than write, whatever the path.
  return byPath !== null && allows(byPath, 'write') ? byPath : 'write';
}

/** The role a GET of `path` needs. */
function routeRole(path: string, openMonitoring: boolean): Role | null {
  if (path === '/status' || path === '/metrics' || path === '/v1/node-status') return openMonitoring ? null : 'read';
  if (path === '/' || path === '/ui') return null;
  if (path === '/v1/cluster-status') return 'read';
  if (isAdminPath(path) || path === '/v1/snapshots' || path.startsWith('/v1/snapshots/')) return 'admin';
  if (path === '/v1/kv' || path.startsWith('/v1/kv/') || path === '/v1/watch') return 'read';
  if (path === '/v1/sessions' || path.startsWith('/v1/sessions/')) return 'write';
  return 'admin';
}

/**
 * Throws UNAUTHENTICATED (401) or FORBIDDEN (403) unless the request's token, or else the role its
 * verified client certificate grants (`certificateRole`), allows it. Returns the role it was
 * allowed with (undefined: the route needs none).
 */
export function authorize(tokens: TokenStore, authorization: string | undefined, certificateRole: Role | undefined,
  method: string, path: string, openMonitoring: boolean): Role | undefined {
  const needed = requiredRole(method, path, openMonitoring);
  if (needed === null) return undefined;
  const role = authorization === undefined ? certificateRole : tokens.authenticate(authorization);
  if (role === undefined) {
    throw new KvError('UNAUTHENTICATED', authorization === undefined
      ? 'this node requires a token ("Authorization: Bearer TOKEN") or a client certificate with a role'
      : 'the token is not valid here', NOT_APPLIED);
  }
  if (!allows(role, needed)) {
    throw new KvError('FORBIDDEN', `${method} ${path} needs the ${needed} role; the caller has ${role}`, NOT_APPLIED);
  }
  return role;
}

/** Refusals of the token check, by kind (the server's request metrics). */
export interface AuthRefusals {
  unauthenticated: number;
  forbidden: number;
}

/** `authorize`, with each refusal counted in `refusals`. */
export function authorizeCounted(refusals: AuthRefusals, tokens: TokenStore, authorization: string | undefined,
  certificateRole: Role | undefined, method: string, path: string, openMonitoring: boolean): Role | undefined {
  try {
    return authorize(tokens, authorization, certificateRole, method, path, openMonitoring);
  } catch (error) {
    if (error instanceof KvError && error.code === 'FORBIDDEN') refusals.forbidden++;
    else refusals.unauthenticated++;
    throw error;
  }
}
