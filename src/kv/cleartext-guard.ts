/**
 * Where a credential (a bearer token, or a role carried for a caller) may be sent: over HTTPS, or
 * over plain HTTP to this machine's loopback only. A token sent in cleartext across a network can
 * be read and replayed by anyone on the path, so clients and forwarding nodes refuse to attach one
 * to any other http: URL (and never fall back from https to http).
 */
import { isIP } from 'node:net';

export function mayCarryCredentials(endpoint: string | URL): boolean {
  let url: URL;
  try {
    url = typeof endpoint === 'string' ? new URL(endpoint) : endpoint;
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  return isLoopbackHost(url.hostname);
}

/** Whether a host name or address (IPv6 with or without brackets) is this machine's loopback. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}
