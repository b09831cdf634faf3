// Secondary keys of big shadow tables built after their rows (restore-indexes.ts): which keys, and the round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparableDefinition, deferrableKeys } from '../../src/db/restore-indexes.js';

const table = (lines: string[], tail = ') ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4'): string =>
  ['CREATE TABLE `t` (', ...lines, tail].join('\n');

void test('the plain keys after the primary key are dropped and added back in their order', () => {
  const def = table([
    '  `id` int(11) NOT NULL AUTO_INCREMENT,',
    "  `a` varchar(20) DEFAULT NULL COMMENT 'x (y)',",
    '  `b` int(11) DEFAULT NULL,',
    '  PRIMARY KEY (`id`),',
    '  UNIQUE KEY `U_A` (`a`,`b`),',
    "  KEY `K``B` (`b`) COMMENT 'it''s b',",
    '  KEY `K_A` (`a`(5)),',
    '  CONSTRAINT `fk` FOREIGN KEY (`b`) REFERENCES `p` (`id`)',
  ]);
  assert.deepEqual(deferrableKeys(def), {
    drops: ['DROP INDEX `U_A`', 'DROP INDEX `K``B`', 'DROP INDEX `K_A`'],
    adds: [
      'ADD UNIQUE KEY `U_A` (`a`,`b`)',
      "ADD KEY `K``B` (`b`) COMMENT 'it''s b'",
      'ADD KEY `K_A` (`a`(5))',
    ],
  });
});

void test('only a suffix of plain B-tree keys; nothing without a primary key, on other engines or odd tables', () => {
  const cols = ['  `id` int(11) NOT NULL,', '  `a` text DEFAULT NULL,'];
  // a FULLTEXT key sorts last: the keys before it cannot be added back after it
  assert.equal(
    deferrableKeys(
      table([...cols, '  PRIMARY KEY (`id`),', '  KEY `k` (`id`,`a`(3)),', '  FULLTEXT KEY `f` (`a`)']),
    ),
    undefined,
  );
  // a long unique key (USING HASH) stays, the plain key before it too (order), the one after it goes
  assert.deepEqual(
    deferrableKeys(
      table([...cols, '  PRIMARY KEY (`id`),', '  UNIQUE KEY `h` (`a`) USING HASH,', '  KEY `k` (`id`)']),
    ),
    { drops: ['DROP INDEX `k`'], adds: ['ADD KEY `k` (`id`)'] },
  );
  assert.equal(deferrableKeys(table([...cols, '  UNIQUE KEY `u` (`id`),', '  KEY `k` (`a`(3))'])), undefined);
  assert.equal(deferrableKeys(table([...cols, '  PRIMARY KEY (`id`)'])), undefined);
  const keyed = [...cols, '  PRIMARY KEY (`id`),', '  KEY `k` (`a`(3))'];
  assert.equal(deferrableKeys(table(keyed, ') ENGINE=MyISAM DEFAULT CHARSET=latin1')), undefined);
  assert.equal(
    deferrableKeys(table(keyed, ') ENGINE=InnoDB DEFAULT CHARSET=latin1 WITH SYSTEM VERSIONING')),
    undefined,
  );
  assert.equal(
    deferrableKeys(table(keyed, ') ENGINE=InnoDB DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)')),
    undefined,
  );
  assert.equal(
    deferrableKeys(table([...keyed, '  `g` int(11) GENERATED ALWAYS AS (`id` + 1) VIRTUAL'])),
    undefined,
  );
  assert.equal(deferrableKeys(table([...cols, '  PRIMARY KEY (`id`),', '  KEY `kä` (`a`(3))'])), undefined);
  // a comment that only looks like a generated column is no reason
  assert.ok(deferrableKeys(table(["  `c` int(11) COMMENT 'AS (x)',", ...keyed])));
});

void test('definitions compare without their AUTO_INCREMENT', () => {
  assert.equal(
    comparableDefinition(table(['  `id` int(11) NOT NULL'])),
    comparableDefinition(
      table(['  `id` int(11) NOT NULL'], ') ENGINE=InnoDB AUTO_INCREMENT=9000 DEFAULT CHARSET=utf8mb4'),
    ),
  );
  assert.notEqual(
    comparableDefinition(table(['  `id` int(11) NOT NULL'])),
    comparableDefinition(table(['  `id` bigint(20) NOT NULL'])),
  );
});
