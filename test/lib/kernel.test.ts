import { expect, it } from 'vitest';
import { procEndpoint } from '../../src/lib/kernel.js';

it('writes addresses the way /proc/net/udp does', () => {
  expect(procEndpoint('127.0.0.1', 12345)).toBe('0100007F:3039');
  expect(procEndpoint('0.0.0.0', 80)).toBe('00000000:0050');
  expect(procEndpoint('::1', 9)).toBe('00000000000000000000000001000000:0009');
  expect(procEndpoint('::', 9)).toBe('00000000000000000000000000000000:0009');
  expect(procEndpoint('fe80::1:2', 1)).toBe('000080FE000000000000000002000100:0001');
  expect(procEndpoint('::ffff:127.0.0.1', 1)).toBe('0000000000000000FFFF00000100007F:0001');
});
