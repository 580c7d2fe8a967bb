// Imported first by main.ts. The daemon is long-lived and mostly idle between bursts of small
// queries: V8's size-optimized mode keeps its heap markedly smaller, with no measurable change in
// queries per second on the bench (see bench/README.md).
import v8 from 'node:v8';

v8.setFlagsFromString('--optimize-for-size');
