/**
 * How a certificate names a node of the cluster: a subject alternative name of type URI,
 * `multipaxos:node:<id>` with the id in decimal (no sign, no leading zero). A certificate may name
 * several nodes (not advised); a certificate that names none cannot take part in the transport.
 */
import type { X509Certificate } from 'node:crypto';

export const NODE_ID_URI_PREFIX = 'multipaxos:node:';

const NODE_URI = /^URI:multipaxos:node:([1-9][0-9]{0,9})$/;

/** The node ids a certificate names (empty: none). */
export function nodeIdsOf(certificate: X509Certificate | undefined): number[] {
  const names = certificate?.subjectAltName;
  if (names === undefined) return [];
  const ids: number[] = [];
  // Node lists the names as "TYPE:value, TYPE:value"; a value holding a comma is quoted, so it
  // never matches the pattern and names no node.
  for (const name of names.split(', ')) {
    const match = NODE_URI.exec(name);
    if (match === null) continue;
    const id = Number(match[1]);
    if (id <= 0xffff_ffff) ids.push(id);
  }
  return ids;
}

export const ROLE_URI_PREFIX = 'multipaxos:role:';
const ROLE_URI = /^URI:multipaxos:role:(read|write|admin)$/;

/**
 * The API role a client certificate grants (SAN URI `multipaxos:role:<role>`), the highest if it
 * names several; undefined when it names none.
 */
export function roleOf(certificate: X509Certificate | undefined): 'read' | 'write' | 'admin' | undefined {
  const names = certificate?.subjectAltName;
  if (names === undefined) return undefined;
  const roles = names.split(', ').map((name) => ROLE_URI.exec(name)?.[1]).filter((role) => role !== undefined);
  for (const role of ['admin', 'write', 'read'] as const) if (roles.includes(role)) return role;
  return undefined;
}

/** Whether the certificate names `nodeId`. */
export function certificateNames(certificate: X509Certificate | undefined, nodeId: number): boolean {
  return nodeIdsOf(certificate).includes(nodeId);
}
