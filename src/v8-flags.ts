// Imported first by main.ts. The daemon is long-lived and mostly idle between bursts of small
// queries: V8's size-optimized mode keeps its heap smaller, and answering small queries gains
// little from the speed it gives up (bench/ measures both).
import v8 from 'node:v8';

v8.setFlagsFromString('--optimize-for-size');
