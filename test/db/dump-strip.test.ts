import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStripMatcher, expandStrip } from '../../src/db/strip.js';
import { UsageError } from '../../src/errors.js';

void test('groups expand recursively, once each', () => {
  const p = expandStrip(['@stripped']);
  assert.ok(p.includes('log_url'));
  assert.ok(p.includes('session'));
  assert.ok(p.includes('*__temp*'));
  assert.ok(p.includes('*_cl'));
  assert.ok(p.includes('system_config_snapshot'));
  assert.equal(new Set(p).size, p.length);
  const trade = expandStrip(['@trade']);
  for (const t of ['sales_*', 'quote', 'customer_entity*']) assert.ok(trade.includes(t), t);
});

void test('specs may hold several tokens separated by spaces or commas', () => {
  assert.deepEqual(expandStrip(['a b,c', ' d ']), ['a', 'b', 'c', 'd']);
});

void test('an unknown group is a usage error naming it', () => {
  assert.throws(
    () => expandStrip(['@nope']),
    (e: unknown) => e instanceof UsageError && /@nope/.test(e.message),
  );
});

void test('matching: names, wildcards, groups', () => {
  const m = createStripMatcher([
    '@log',
    '@sessions',
    '@idx',
    '@ee_changelog',
    '@admin',
    'my_table',
    'tmp_?x',
    '@search',
  ]);
  for (const t of [
    'log_url',
    'report_viewed_product_index',
    'session',
    'persistent_session',
    'catalog_product_index_price_idx',
    'catalog_product_entity_cl',
    'admin_user',
    'admin_passwords',
    'ui_bookmark',
    'my_table',
    'tmp_ax',
    'catalogsearch_fulltext_scope1',
    'search_query',
  ]) {
    assert.ok(m.matches(t), t);
  }
  for (const t of [
    'core_config_data',
    'sales_order',
    'my_table2',
    'tmp_abx',
    'log_url2',
    'catalog_product_entity',
    'customer_entity',
  ]) {
    assert.ok(!m.matches(t), t);
  }
});

void test('customers / sales / quotes groups', () => {
  const m = createStripMatcher(['@customers', '@sales', '@quotes']);
  for (const t of [
    'customer_entity',
    'customer_address_entity_varchar',
    'sales_order',
    'sales_invoice_grid',
    'quote',
    'quote_item',
    'newsletter_subscriber',
  ]) {
    assert.ok(m.matches(t), t);
  }
  for (const t of ['catalog_product_entity', 'core_config_data', 'quotes_extra']) assert.ok(!m.matches(t), t);
});

void test('table prefix: groups match prefixed tables; prefixed names match too', () => {
  const m = createStripMatcher(['@sessions', '@idx', 'mg_core_config_data'], 'mg_');
  assert.ok(m.matches('mg_session'));
  assert.ok(m.matches('mg_catalog_product_index_price_idx'));
  assert.ok(m.matches('mg_core_config_data'));
  assert.ok(!m.matches('mg_sales_order'));
  assert.ok(m.matches('session'), 'an unprefixed table still matches its own name');
});

void test('regex metacharacters in names are literal', () => {
  const m = createStripMatcher(['a.b', 'c+d']);
  assert.ok(m.matches('a.b'));
  assert.ok(!m.matches('axb'));
  assert.ok(m.matches('c+d'));
  assert.ok(!m.matches('ccd'));
});

void test('no strip spec matches nothing', () => {
  assert.ok(!createStripMatcher([]).matches('session'));
});
