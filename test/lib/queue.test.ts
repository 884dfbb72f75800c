import { expect, it } from 'vitest';
import { BoundedQueue } from '../../src/lib/index.js';

it('is FIFO, refuses past capacity, and wraps around', () => {
  const q = new BoundedQueue<number>(3);
  expect([q.push(1), q.push(2), q.push(3), q.push(4)]).toEqual([true, true, true, false]);
  expect(q.length).toBe(3);
  expect(q.shift()).toBe(1);
  expect(q.push(5)).toBe(true);
  expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([2, 3, 5, undefined]);
  q.push(6);
  q.clear();
  expect(q.length).toBe(0);
});

it('needs a positive capacity', () => {
  expect(() => new BoundedQueue(0)).toThrow('queue capacity must be a positive integer, got 0');
});
