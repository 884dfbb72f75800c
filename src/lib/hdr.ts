/**
 * hdr-histogram-js, loaded at the first histogram rather than at start-up: loading it takes
 * 60 ms here (as long as Node itself takes to start), which every verb paid, `listen` and
 * `send` included, though only `bench` and `proxy` use it.
 */
import { createRequire } from 'node:module';
import type * as Hdr from 'hdr-histogram-js';

export type { Histogram } from 'hdr-histogram-js';

let loaded: typeof Hdr | undefined;

/** The hdr-histogram-js module, loaded on the first call. */
export function hdr(): typeof Hdr {
  loaded ??= createRequire(import.meta.url)('hdr-histogram-js') as typeof Hdr;
  return loaded;
}
