import { spawn, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/magebackup.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawn the built binary. `onStderr` sees stderr as it arrives (to send a signal at the right moment);
 * `nodeArgs` go to node before the binary (e.g. `--import` of module hooks).
 */
export function runCli(
  args: string[],
  options: SpawnOptions & {
    onStderr?: (text: string, child: ReturnType<typeof spawn>) => void;
    nodeArgs?: string[];
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const { onStderr, nodeArgs = [], ...spawnOptions } = options;
    const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...spawnOptions,
      env: { ...process.env, NO_COLOR: '1', ...spawnOptions.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
