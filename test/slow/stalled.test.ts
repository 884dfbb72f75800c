/**
 * Stalled and slow consumers, 10 s floods: the checks of test/cli/stalled.test.ts at the
 * length the issue asks for. Run with `npx vitest run --config vitest.slow.config.ts`.
 */
import { stalledSuite } from '../helpers/stalled.js';

stalledSuite(10_000);
