// One error type for the whole daemon: a stable code a script can match on, a message a person
// can act on, and the underlying cause. Codes are listed here so they stay unique and greppable.

export type ErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_REGISTRY_FILE'
  | 'ERR_REGISTRY_CONFLICT'
  | 'ERR_PARSER_UNAVAILABLE'
  | 'ERR_STATE'
  | 'ERR_LISTEN'
  | 'ERR_UPSTREAM_UNREACHABLE'
  | 'ERR_OVERLOAD'
  | 'ERR_BAD_REQUEST'
  | 'ERR_NOT_FOUND'
  | 'ERR_CONFLICT'
  | 'ERR_IPAM_EXHAUSTED'
  | 'ERR_NETNS'
  | 'ERR_NETNS_BIND'
  | 'ERR_LINK'
  | 'ERR_FIREWALL'
  | 'ERR_EGRESS_FULL'
  | 'ERR_DAEMON_UNREACHABLE'
  | 'ERR_INTERNAL';

export class NsdnsError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NsdnsError';
    this.code = code;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
