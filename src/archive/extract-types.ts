/** The messages between extract.ts and its worker thread (extract-worker.ts). */
import type { WarningCodeValue } from '../events.js';
import type { LinkedFile, TreeChanges } from './extract-compare.js';
import type { KeptSet, SparsePlanResult } from './extract-sparse.js';

export interface WorkerInput {
  mode: 'verify' | 'extract';
  file: string;
  destDir?: string;
  /** Int32Array[0] != 0 means abort */
  abort: SharedArrayBuffer;
  /** 'code': skip excluded paths; 'media': accept archives rooted at the store root (pub/media/...) too */
  filter: 'none' | 'code' | 'media';
  /** we run as root: give what we create to `owner` */
  chown: boolean;
  /** who owns what is restored (the live tree's owner); undefined: the running user. Never the archive's ids. */
  owner?: { uid: number; gid: number };
  /** keep set-id/sticky bits and world-writable modes as archived (they are still reported) */
  keepModes: boolean;
  /** restore symlinks whose target leaves the tree (reported); else such an archive is refused */
  allowOutsideLinks: boolean;
  /** what the archive may expand to: the free space of `dir` less a margin, and at most maxBytes */
  limit: { dir: string; maxBytes?: number };
  umask: number;
  /**
   * compare every entry with this live directory (resolved): in extract mode, files equal to their live twin
   * are staged as hard links to it (extract-compare.ts); in both modes the result lists what changed
   */
  compare?: { liveDir: string; sparse?: boolean };
}

export interface WorkerResult {
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  /** bytes of regular file contents */
  bytes: number;
  /** uncompressed tar stream bytes */
  tarBytes: number;
  /** attributes of the archive root entry ('./' or 'pub/media/'), when the archive had one */
  rootAttrs?: { mode: number; uid: number; gid: number; mtime: number };
  skipped: number;
  /** with `compare`: what differs between the archive and the live tree */
  changes?: TreeChanges;
  /** with `compare` in extract mode: the staged hard links to live files */
  linked?: LinkedFile[];
  linkedBytes?: number;
  /**
   * with `compare.sparse` (a code rollback whose live root only we can change): the sparse swap plan; what it
   * leaves in place (its KeptSet) comes beside the result, in shared memory (extract.ts KeptHandle)
   */
  sparse?: SparsePlanResult;
}

export type WorkerMessage =
  | { t: 'progress'; entries: number; bytes: number }
  | { t: 'warning'; code: WarningCodeValue; path: string; message: string }
  /** the last message; `kept`: a sparse plan's kept set, in shared memory (extract-sparse.ts KeptSet) */
  | { t: 'done'; result: WorkerResult; kept?: KeptSet }
  | {
      t: 'error';
      kind: 'format' | 'unsafe' | 'io' | 'interrupted' | 'gzip' | 'limit' | 'internal' | 'live-changed';
      message: string;
      entry?: string;
      code?: string;
    };
