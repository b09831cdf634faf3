import type { SnapshotInfo } from './snapshot-list.js';

/**
 * What a snapshot shows outside this process (`snapshot:list --json`, the web interface's pages): no absolute
 * path (each file by name), and of the manifest only what describes the run (not the root it was taken from).
 */
export function publicSnapshot(s: SnapshotInfo) {
  return {
    id: s.id,
    timestamp: s.timestamp,
    created: s.created,
    age: s.age,
    status: s.status,
    parts: s.parts,
    partFiles: s.partFiles,
    totalSize: s.totalSize,
    problems: s.problems,
    files: s.files.map((f) => ({ name: f.name, kind: f.kind, size: f.size })),
    ...(s.manifest
      ? {
          manifest: {
            tool: s.manifest.tool,
            command: s.manifest.command,
            created: s.manifest.created,
            completed: s.manifest.completed,
            warnings: s.manifest.warnings,
            ...(s.manifest.serverVersion ? { serverVersion: s.manifest.serverVersion } : {}),
            parts: s.manifest.parts,
          },
        }
      : {}),
  };
}

export type PublicSnapshot = ReturnType<typeof publicSnapshot>;
