/**
 * Stalled and slow consumers, short floods (2 s): every verb that writes output, to a pipe
 * nobody reads (listen's own is in bounded.test.ts). The 10 s run: test/slow/stalled.test.ts.
 */
import { fifoWithoutReader, stalledSuite } from '../helpers/stalled.js';

stalledSuite(2000);
fifoWithoutReader();
