// Health of endpoints, as the daemon's probes or an outside system report it. Kept beside the
// snapshot rather than in it: a state change must not recompile a network, yet the next query
// must see it (views drop their memo when `version` moves).
//
// States are kept per network, then per endpoint id: an id is unique only inside its network (a
// registry file chooses its own ids), so a file that reuses another network's endpoint id reaches
// only an endpoint of its own network.

import type { HealthState } from './types.js';

export type { HealthState };

export class HealthStates {
  private readonly networks = new Map<string, Map<string, HealthState>>();
  /** Bumped on every change. */
  version = 0;

  /** An endpoint with no check and no state set counts as healthy. */
  get(network: string, endpointId: string): HealthState {
    return this.networks.get(network)?.get(endpointId) ?? 'healthy';
  }

  /** Records a state; true when it changed. */
  set(network: string, endpointId: string, state: HealthState): boolean {
    const changed = this.get(network, endpointId) !== state;
    let states = this.networks.get(network);
    if (!states) this.networks.set(network, (states = new Map()));
    states.set(endpointId, state);
    if (changed) this.version++;
    return changed;
  }

  delete(network: string, endpointId: string): void {
    const states = this.networks.get(network);
    if (!states?.delete(endpointId)) return;
    if (states.size === 0) this.networks.delete(network);
    this.version++;
  }

  /** A network withdrawn: its endpoints' states go with it. */
  deleteNetwork(network: string): void {
    if (this.networks.delete(network)) this.version++;
  }
}
