import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { SQLitePersister } from '../../src/stores/index.ts';
import { persisterContract } from './contract.ts';

describe('SQLitePersister (real files in a temp dir)', () => {
  persisterContract(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sqlite-'));
    const opened: SQLitePersister[] = [];
    const open = () => {
      const p = new SQLitePersister({ dataDir: dir });
      opened.push(p);
      return p;
    };
    return {
      persister: open(),
      reopen: open,
      cleanup: async () => {
        for (const p of opened) p.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });

  test('the file is under the data dir, in WAL mode, with the documented columns and key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sqlite-'));
    try {
      const persister = new SQLitePersister({ dataDir: join(dir, 'nested'), table: 'custom_steps' });
      persister.initialize();
      persister.close();
      const db = new DatabaseSync(join(dir, 'nested', 'sluice.db'));
      assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
      const columns = (db.prepare('PRAGMA table_info(custom_steps)').all() as { name: string; pk: number }[]).map((c) => [c.name, c.pk]);
      assert.deepEqual(columns, [
        ['app_id', 1],
        ['partition_key', 2],
        ['sequence_id', 3],
        ['action', 0],
        ['status', 0],
        ['state', 0],
        ['result', 0],
        ['error', 0],
        ['started_at', 0],
        ['ended_at', 0],
      ]);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('table names are identifiers, never interpolated user data', () => {
    assert.throws(() => new SQLitePersister({ path: ':memory:', table: 'x"; DROP TABLE y; --' }), /plain SQL identifier/);
  });
});
