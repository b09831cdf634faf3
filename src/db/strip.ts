/**
 * `--strip`: tables whose structure is dumped but whose data is left out. Magento table groups as in
 * n98-magerun2 (`@log`, `@sessions`, ...), plain table names and `*`/`?` wildcards. Names are matched without
 * Magento's db.table_prefix (so `@sales` finds `mg_sales_order`); a pattern that names the prefixed table also
 * matches. Pure: no I/O.
 */
import { UsageError } from '../errors.js';

export const STRIP_GROUPS: Readonly<Record<string, string>> = {
  log: 'log_url log_url_info log_visitor log_visitor_info log_visitor_online report_event report_compared_product_index report_viewed_*',
  sessions: 'session persistent_session',
  search: 'catalogsearch_* search_query search_synonyms',
  idx: '*_idx',
  ee_changelog: '*_cl',
  temp: '*__temp*',
  admin:
    'admin* magento_logging_event magento_logging_event_changes ui_bookmark authorization_role authorization_rule',
  oauth: 'oauth_*',
  dotmailer: 'email_*',
  stripped:
    '@log @sessions @temp @ee_changelog @dotmailer *_index_batches reporting_* system_config_snapshot',
  customers:
    'customer_address* customer_entity* customer_grid_flat customer_log customer_visitor newsletter_subscriber product_alert* vault_payment_token* wishlist* company* magento_customerbalance* magento_customersegment_customer magento_reward*',
  sales:
    'sales_* magento_sales_* magento_customercustomattributes_sales_flat_* magento_rma* magento_giftregistry* paypal_billing_agreement* paypal_payment_transaction paypal_settlement_report* downloadable_link_purchased*',
  quotes: 'quote quote_* magento_customercustomattributes_sales_flat_quote*',
  trade: '@customers @sales @quotes',
};

export interface StripMatcher {
  /** true when `table` (as named in the database, prefix included) is stripped */
  matches(table: string): boolean;
}

/** Expand `@group` references (recursively) into plain patterns; throws UsageError naming an unknown group. */
export function expandStrip(specs: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (token: string, via: string | null): void => {
    if (token === '') return;
    if (token.startsWith('@')) {
      const name = token.slice(1);
      const def = STRIP_GROUPS[name];
      if (def === undefined) {
        const known = Object.keys(STRIP_GROUPS)
          .map((g) => '@' + g)
          .join(' ');
        throw new UsageError(
          `--strip: unknown table group ${token}${via ? ` (in ${via})` : ''}; known groups: ${known}`,
        );
      }
      if (seen.has(name)) return;
      seen.add(name);
      for (const t of def.split(/\s+/)) visit(t, token);
      return;
    }
    if (!out.includes(token)) out.push(token);
  };
  // specs may hold several space- or comma-separated tokens each (`--strip "@log @sessions"`)
  for (const spec of specs) for (const token of spec.split(/[\s,]+/)) visit(token, null);
  return out;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function createStripMatcher(specs: readonly string[], tablePrefix = ''): StripMatcher {
  const patterns = expandStrip(specs).map(globToRegExp);
  return {
    matches(table: string): boolean {
      const bare =
        tablePrefix !== '' && table.startsWith(tablePrefix) ? table.slice(tablePrefix.length) : null;
      for (const re of patterns) {
        if (re.test(table)) return true;
        if (bare !== null && re.test(bare)) return true;
      }
      return false;
    },
  };
}
