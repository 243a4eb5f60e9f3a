/**
 * Turns every PromQL query of a Grafana dashboard into a Prometheus recording rule, so that
 * `promtool check rules` parses each one with Prometheus's own parser: a panel whose query does
 * not parse only shows an error once someone opens it, and no test would notice.
 *
 * Grafana variables are replaced first ($__rate_interval by a duration, $namespace by a value);
 * a variable the dashboard does not declare is an error, since Grafana would leave it in the
 * query as text.
 *
 * Usage: node scripts/ci/dashboard-rules.ts DASHBOARD.json OUT.rules.yml
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

type Target = { readonly expr?: string; readonly refId?: string; readonly hide?: boolean };
type Panel = {
  readonly title?: string;
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
};
type Variable = { readonly name: string; readonly type: string };
export type Dashboard = {
  readonly panels?: readonly Panel[];
  readonly templating?: { readonly list?: readonly Variable[] };
};

export type DashboardQuery = {
  readonly where: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
};

const slug = (text: string): string =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 60) || 'x';

/** Grafana's global variables that stand for a duration or a number in a query. */
const BUILT_IN: Readonly<Record<string, string>> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
  __interval_ms: '60000',
  __range_ms: '3600000',
  __range_s: '3600',
};

/** $name, ${name}, ${name:format} and the deprecated [[name]]. */
const VARIABLE = /\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]/g;

/** The expression with every variable replaced; throws naming the variables it does not know. */
export const substituteVariables = (expr: string, variables: readonly Variable[]): string => {
  const unknown: string[] = [];
  const result = expr.replace(VARIABLE, (all, braced?: string, bare?: string, bracketed?: string) => {
    const name = braced ?? bare ?? bracketed ?? '';
    const builtIn = BUILT_IN[name];
    if (builtIn !== undefined) return builtIn;
    const variable = variables.find((candidate) => candidate.name === name);
    if (!variable) {
      unknown.push(all);
      return all;
    }
    // An interval variable stands where PromQL wants a duration; any other for a label value.
    return variable.type === 'interval' ? '5m' : 'dashboard_variable_value';
  });
  if (unknown.length > 0) throw new Error(`undeclared Grafana variable ${unknown.join(', ')} in: ${expr}`);
  return result;
};

const panelsOf = (panels: readonly Panel[]): Panel[] =>
  panels.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])]);

/** Every panel query, variables substituted; throws naming each query with an unknown variable. */
export const dashboardQueries = (dashboard: Dashboard): DashboardQuery[] => {
  const variables = dashboard.templating?.list ?? [];
  const queries: DashboardQuery[] = [];
  const problems: string[] = [];
  for (const panel of panelsOf(dashboard.panels ?? [])) {
    for (const target of panel.targets ?? []) {
      if (!target.expr) continue;
      const title = panel.title ?? '?';
      const refId = target.refId ?? '?';
      const where = `panel "${title}" query ${refId}`;
      try {
        queries.push({ where, panel: title, refId, expr: substituteVariables(target.expr, variables) });
      } catch (error) {
        problems.push(`${where}: ${(error as Error).message}`);
      }
    }
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return queries;
};

/** A Prometheus rules file with one recording rule per query; the query's place is a label. */
export const recordingRulesFile = (queries: readonly DashboardQuery[]): string =>
  stringify(
    {
      groups: [
        {
          name: 'grafana-dashboard-queries',
          rules: queries.map(({ where, panel, refId, expr }, index) => ({
            // promtool names a rule that does not parse by its record name: let that name the panel.
            record: `dashboard_q${index + 1}:${slug(panel)}:${slug(refId)}`,
            expr,
            labels: { dashboard_query: where },
          })),
        },
      ],
    },
    { lineWidth: 0 },
  );

if (import.meta.filename === process.argv[1]) {
  const [dashboardPath, outPath] = process.argv.slice(2);
  if (!dashboardPath || !outPath) {
    console.error('usage: node scripts/ci/dashboard-rules.ts DASHBOARD.json OUT.rules.yml');
    process.exit(2);
  }
  try {
    const queries = dashboardQueries(JSON.parse(readFileSync(dashboardPath, 'utf8')) as Dashboard);
    if (queries.length === 0) throw new Error(`${dashboardPath}: no PromQL query found`);
    writeFileSync(outPath, recordingRulesFile(queries));
    console.log(`${dashboardPath}: ${queries.length} queries written as recording rules to ${outPath}`);
  } catch (error) {
    console.error(`${dashboardPath}: ${(error as Error).message}`);
    process.exit(1);
  }
}
