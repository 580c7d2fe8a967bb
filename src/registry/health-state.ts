// Health of endpoints, as the daemon's probes or an outside system report it. Kept beside the
// snapshot rather than in it: a state change must not recompile a network, yet the next query
// must see it (views drop their memo when `version` moves).

import type { HealthState } from './types.js';

export type { HealthState };

export class HealthStates {
  private readonly states = new Map<string, HealthState>();
  /** Bumped on every change. */
  version = 0;

  /** An endpoint with no check and no state set counts as healthy. */
  get(endpointId: string): HealthState {
    return this.states.get(endpointId) ?? 'healthy';
  }

  /** Records a state; true when it changed. */
  set(endpointId: string, state: HealthState): boolean {
    if (this.get(endpointId) === state) {
      this.states.set(endpointId, state);
      return false;
    }
    this.states.set(endpointId, state);
    this.version++;
    return true;
  }

  delete(endpointId: string): void {
    if (this.states.delete(endpointId)) this.version++;
  }
}
