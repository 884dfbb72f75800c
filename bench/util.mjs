// Helpers the benchmark scripts share.
import { execFileSync } from 'node:child_process';

/** Whether a command is on PATH. */
export function have(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
