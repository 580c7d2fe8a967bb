// The control socket's protocol: one JSON request per line, one JSON response per line.
// Shared by the daemon (server) and the CLI (client). Requests are checked by the schemas in
// control-schemas.ts; only their types are imported here, so the CLI does not load zod.
import type { ControlRequest } from './control-schemas.js';

export type { ControlRequest };

export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } };

export const DEFAULT_SOCKET = '/run/nsdns/nsdns.sock';
