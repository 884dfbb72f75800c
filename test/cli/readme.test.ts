/** The README's library example, and docs/api.md's bench example, run as written against the built package. */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it, onTestFinished } from 'vitest';
import { start } from '../helpers/cli.js';

it('the library example in the README prints what it received', async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const code = /## Library\n\n```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  // Inside the package, `import 'udpkit'` resolves to the package itself (self-reference).
  const file = `${root}.readme-example-${process.pid}.mjs`;
  writeFileSync(file, code as string);
  onTestFinished(() => rmSync(file, { force: true }));
  const r = await start(process.execPath, [file]).wait();
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^Hello from 127\.0\.0\.1:\d+\n$/);
  expect(r.code).toBe(0);
});

it("docs/api.md's bench example runs and prints what was sent and lost", async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const api = readFileSync(`${root}docs/api.md`, 'utf8');
  const code = /## Bench\n[\s\S]*?```js\n([\s\S]*?)```/.exec(api)?.[1];
  expect(code).toBeDefined();
  const file = `${root}.api-bench-example-${process.pid}.mjs`;
  writeFileSync(file, code as string);
  onTestFinished(() => rmSync(file, { force: true }));
  const r = await start(process.execPath, [file]).wait();
  expect(r.stderr).toBe('');
  expect(r.stdout).toBe('2000 0\n');
  expect(r.code).toBe(0);
});
