// Commands for operators: the daemon's health and the firewall (`nsdns status`, `nsdns firewall-reload`).
import type { Command } from 'commander';

export function opsCommands(program: Command): void {
  void program;
}
