// The control socket's protocol: one JSON request per line, one JSON response per line.
// Shared by the daemon (server) and the CLI (client).

export interface ControlRequest {
  id: number;
  method: string;
  params?: unknown;
}

export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } };

export const DEFAULT_SOCKET = '/run/nsdns/nsdns.sock';
