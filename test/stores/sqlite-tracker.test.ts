import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'node:test';
import { SQLiteTracker } from '../../src/stores/index.ts';
import { trackerContract } from './tracker-contract.ts';

describe('SQLiteTracker (real file)', () => {
  trackerContract(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tracker-'));
    const opened: SQLiteTracker[] = [];
    const open = () => {
      const t = new SQLiteTracker({ dataDir: dir });
      opened.push(t);
      return t;
    };
    return {
      tracker: open(),
      reopen: open,
      cleanup: async () => {
        for (const t of opened) t.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
});
