import { WarningCode } from '../../events.js';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { deadRunNotice, isMaintenanceEnabled, setMaintenance } from '../../maintenance/maintenance.js';
import { assertMagentoRoot } from '../../store/paths.js';
import type { CommandRun } from '../context.js';

export async function maintenanceCommand(
  run: CommandRun,
  action: 'status' | 'enable' | 'disable',
): Promise<number> {
  const { root } = await assertMagentoRoot(run.root);
  if (action !== 'status') {
    await setMaintenance(root, action === 'enable');
    const text = action === 'enable' ? 'Enabled maintenance mode' : 'Disabled maintenance mode';
    run.reporter.result(text, {
      type: 'result',
      command: `maintenance:${action}`,
      enabled: action === 'enable',
    });
    return 0;
  }
  const dead = await deadRunNotice(root);
  if (dead) run.reporter.onEvent({ type: 'warning', code: WarningCode.DEAD_RUN, message: dead });
  const enabled = await isMaintenanceEnabled(root);
  const ips = (await fsp.readFile(path.join(root, 'var', '.maintenance.ip'), 'utf8').catch(() => ''))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const text =
    `Status: maintenance mode is ${enabled ? 'active' : 'not active'}.\n` +
    `List of exempt IP-addresses: ${ips.length ? ips.join(' ') : 'none'}`;
  run.reporter.result(text, { type: 'result', command: 'maintenance:status', enabled, exemptIps: ips });
  return 0;
}
