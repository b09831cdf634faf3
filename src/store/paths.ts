import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CliError, errnoCode } from '../errors.js';

/** Paths of a Magento store that every command needs. */
export interface StorePaths {
  root: string;
  backupsDir: string;
  mediaDir: string;
}

export function storePaths(root: string): StorePaths {
  const abs = path.resolve(root);
  return {
    root: abs,
    backupsDir: path.join(abs, 'var', 'backups'),
    mediaDir: path.join(abs, 'pub', 'media'),
  };
}

/** A Magento root has app/etc (config.php / env.php live there). Refuse anything else before touching it. */
export async function assertMagentoRoot(root: string): Promise<StorePaths> {
  const paths = storePaths(root);
  let st;
  try {
    st = await fsp.stat(paths.root);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new CliError(`Magento root ${paths.root} does not exist (see --root)`);
    // EACCES (a parent this user may not enter), ELOOP, EIO...: the environment, not a bug of ours
    throw new CliError(`Magento root ${paths.root} cannot be read (${code ?? 'error'}; see --root)`, {
      cause: err,
    });
  }
  if (!st.isDirectory()) throw new CliError(`Magento root ${paths.root} is not a directory (see --root)`);
  const etc = await fsp.stat(path.join(paths.root, 'app', 'etc')).catch(() => null);
  if (!etc?.isDirectory()) {
    throw new CliError(
      `${paths.root} is not a Magento root: app/etc not found (run from the store or use --root DIR)`,
    );
  }
  return paths;
}
