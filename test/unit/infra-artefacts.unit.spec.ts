/**
 * The Grafana dashboard and the Prometheus alerts name metrics and labels by string: nothing
 * breaks when a service renames one, the panel just goes blank and the alert never fires. These
 * tests read the metric declarations (services/<name>/src/metrics.ts) as text and check that every
 * metric and label the dashboard and the alerts use is declared. With promtool (scripts/ci/check-deploy.sh
 * fetches it into .cache/promtool/), the rules and every dashboard query also go through Prometheus's
 * own parser.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { referencesIn } from '../support/promql-references.ts';
import {
  dashboardQueries,
  recordingRulesFile,
  substituteVariables,
  type Dashboard,
} from '../../scripts/ci/dashboard-rules.ts';

const repositoryRoot = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, repositoryRoot), 'utf8');

type MetricKind = 'Counter' | 'Gauge' | 'Histogram' | 'Summary';
type DeclaredMetric = {
  readonly name: string;
  readonly kind: MetricKind;
  readonly labels: readonly string[];
};

/** `new Counter({ name: '...', labelNames: ['...'] ... })` blocks of a metrics file. */
const metricsDeclaredIn = (source: string): DeclaredMetric[] => {
  const parts = source.split(/new (Counter|Gauge|Histogram|Summary)\(\{/);
  const declared: DeclaredMetric[] = [];
  for (let index = 1; index + 1 < parts.length; index += 2) {
    const kind = parts[index] as MetricKind;
    const body = parts[index + 1]!;
    const name = /\bname:\s*'([^']+)'/.exec(body)?.[1];
    assert.ok(name, `a ${kind} without a literal name in:\n${body.slice(0, 200)}`);
    const labelList = /\blabelNames:\s*\[([^\]]*)\]/.exec(body)?.[1] ?? '';
    declared.push({ name, kind, labels: [...labelList.matchAll(/'([^']+)'/g)].map((match) => match[1]!) });
  }
  return declared;
};

/** Labels every series gets besides its own: the registry's default label and the scrape's target labels. */
const TARGET_LABELS = ['service', 'namespace', 'pod', 'instance', 'job'];

/** Metrics from outside the services that the artefacts may use, with their labels. */
const EXTERNAL_SERIES: Readonly<Record<string, readonly string[]>> = {
  // kafka-exporter (the consumer-lag alert says it is required).
  kafka_consumergroup_lag: ['consumergroup', 'topic', 'partition'],
};

/** Series name → labels it may carry: histograms expose _bucket (with le), _sum and _count. */
const seriesOf = (declared: readonly DeclaredMetric[]): Map<string, readonly string[]> => {
  const series = new Map<string, readonly string[]>(Object.entries(EXTERNAL_SERIES));
  for (const { name, kind, labels } of declared) {
    const all = [...labels, ...TARGET_LABELS];
    if (kind === 'Histogram') {
      series.set(`${name}_bucket`, [...all, 'le']);
      series.set(`${name}_sum`, all);
      series.set(`${name}_count`, all);
    } else if (kind === 'Summary') {
      series.set(name, [...all, 'quantile']);
      series.set(`${name}_sum`, all);
      series.set(`${name}_count`, all);
    } else {
      series.set(name, all);
    }
  }
  return series;
};

/** What is wrong with one expression: unknown metrics, or labels its metrics do not have. */
const problemsIn = (
  where: string,
  expression: string,
  series: ReadonlyMap<string, readonly string[]>,
): string[] => {
  const { metrics, groupingLabels } = referencesIn(expression);
  const problems: string[] = [];
  if (metrics.length === 0) problems.push(`${where}: no metric found in ${expression}`);
  for (const { name, matcherLabels } of metrics) {
    const labels = series.get(name);
    if (!labels) {
      problems.push(`${where}: metric ${name} is not declared in services/*/src/metrics.ts`);
      continue;
    }
    for (const label of matcherLabels)
      if (!labels.includes(label)) problems.push(`${where}: ${name} has no label ${label}`);
  }
  const labelsOfAll = new Set(metrics.flatMap(({ name }) => series.get(name) ?? []));
  for (const label of groupingLabels)
    if (!labelsOfAll.has(label)) problems.push(`${where}: no metric in the expression has label ${label}`);
  return problems;
};

type GrafanaTarget = { readonly expr?: string; readonly legendFormat?: string };
type GrafanaPanel = {
  readonly title?: string;
  readonly type: string;
  readonly targets?: readonly GrafanaTarget[];
  readonly panels?: readonly GrafanaPanel[];
};
type GrafanaVariable = {
  readonly name: string;
  readonly type: string;
  readonly definition?: string;
  readonly query?: string | { readonly query?: string };
};
type GrafanaDashboard = {
  readonly schemaVersion: number;
  readonly panels: readonly GrafanaPanel[];
  readonly templating: { readonly list: readonly GrafanaVariable[] };
};
type AlertRule = {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
};
type RuleFile = {
  readonly groups: readonly { readonly name: string; readonly rules: readonly AlertRule[] }[];
};

const METRICS_FILES = [
  'services/ingest/src/metrics.ts',
  'services/processor/src/metrics.ts',
  'services/outbound/src/metrics.ts',
  'lib/orgs/metrics.ts',
];
const DASHBOARD = 'infra/grafana/pipeline-dashboard.json';
const ALERTS = 'infra/prometheus/alerts.yml';
const ALERT_TESTS = 'infra/prometheus/alerts.test.yml';

/** The consumer metrics every service declares by calling createConsumerMetrics with its name. */
const CONSUMER_METRICS = 'lib/kafka/service-consumer.ts';
const consumerMetricsOf = (source: string): DeclaredMetric[] => {
  const service = /createConsumerMetrics\(\s*registry,\s*'([^']+)'/.exec(source)?.[1];
  if (service === undefined) return [];
  const named = read(CONSUMER_METRICS).replace(
    /\bname:\s*`\$\{service\}_([^`]+)`/g,
    (_all, rest: string) => `name: '${service}_${rest}'`,
  );
  return metricsDeclaredIn(named.slice(named.indexOf('export const createConsumerMetrics')));
};

const declared = METRICS_FILES.flatMap((path) => [
  ...metricsDeclaredIn(read(path)),
  ...consumerMetricsOf(read(path)),
]);
const series = seriesOf(declared);

const panelsOf = (panels: readonly GrafanaPanel[]): GrafanaPanel[] =>
  panels.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])]);

describe('infrastructure artefacts (dashboard, alerts) against the declared metrics', () => {
  it('given the metrics files, when read, then every service declares its metrics', () => {
    for (const prefix of ['ingest_', 'processor_', 'outbound_']) {
      assert.ok(
        declared.some(({ name }) => name.startsWith(prefix)),
        `no ${prefix}* metric found`,
      );
    }
    assert.ok(series.has('ingest_durable_write_seconds_bucket'), 'histograms expose _bucket series');
  });

  it('given a renamed metric or label, when an expression is checked, then the check reports it', () => {
    assert.deepEqual(
      problemsIn('ok', 'sum by (reason) (rate(ingest_webhook_rejections_total[5m]))', series),
      [],
    );
    assert.deepEqual(
      problemsIn('renamed', 'sum(rate(ingest_webhook_request_total{status="503"}[5m]))', series),
      ['renamed: metric ingest_webhook_request_total is not declared in services/*/src/metrics.ts'],
    );
    assert.deepEqual(
      problemsIn('label', 'sum by (reasons) (rate(processor_dead_letters_total{cause="x"}[5m]))', series),
      [
        'label: processor_dead_letters_total has no label cause',
        'label: no metric in the expression has label reasons',
      ],
    );
    assert.deepEqual(problemsIn('suffix', 'rate(processor_events_total_bucket[5m])', series), [
      'suffix: metric processor_events_total_bucket is not declared in services/*/src/metrics.ts',
    ]);
  });

  it('given the Grafana dashboard, when its queries are read, then every metric and label is declared', () => {
    const dashboard = JSON.parse(read(DASHBOARD)) as GrafanaDashboard;
    assert.ok(dashboard.schemaVersion >= 36, 'a current dashboard schema');
    assert.ok(
      dashboard.templating.list.some(
        (variable) => variable.name === 'DS_PROMETHEUS' && variable.type === 'datasource',
      ),
    );
    const problems: string[] = [];
    let queries = 0;
    for (const panel of panelsOf(dashboard.panels)) {
      for (const target of panel.targets ?? []) {
        if (!target.expr) continue;
        queries += 1;
        const where = `panel "${panel.title ?? '?'}"`;
        problems.push(...problemsIn(where, target.expr, series));
        // A legend naming a label the query aggregates away shows a blank.
        const { groupingLabels } = referencesIn(target.expr);
        for (const [, label] of (target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
          if (!groupingLabels.includes(label!))
            problems.push(`${where}: legend uses {{${label!}}}, which the query drops`);
        }
      }
    }
    for (const variable of dashboard.templating.list) {
      if (variable.type !== 'query') continue;
      const query =
        variable.definition ??
        (typeof variable.query === 'string' ? variable.query : variable.query?.query) ??
        '';
      problems.push(...problemsIn(`variable ${variable.name}`, query, series));
    }
    assert.ok(queries >= 20, `expected the dashboard's panels, found ${queries} queries`);
    assert.deepEqual(problems, []);
  });

  it('given the alerting rules, when read, then every metric and label is declared and every alert is actionable', () => {
    const rules = (parse(read(ALERTS)) as RuleFile).groups.flatMap((group) => group.rules);
    const problems: string[] = [];
    for (const rule of rules) {
      const where = `alert ${rule.alert ?? rule.record ?? '?'}`;
      problems.push(...problemsIn(where, rule.expr, series));
      if (!rule.alert) continue;
      if (!['critical', 'warning', 'info'].includes(rule.labels?.severity ?? ''))
        problems.push(`${where}: no severity label`);
      if (!rule.annotations?.summary) problems.push(`${where}: no summary`);
      if ((rule.annotations?.description ?? '').length < 80)
        problems.push(`${where}: the description should say what to do next`);
      // An annotation naming a label the expression aggregates away renders empty.
      const { groupingLabels } = referencesIn(rule.expr);
      for (const text of Object.values(rule.annotations ?? {})) {
        for (const [, label] of text.matchAll(/\$labels\.(\w+)/g)) {
          if (!groupingLabels.includes(label!))
            problems.push(`${where}: annotation uses $labels.${label!}, which the expression drops`);
        }
      }
    }
    const referenced = new Set(
      rules.flatMap((rule) => referencesIn(rule.expr).metrics.map(({ name }) => name)),
    );
    for (const name of [
      'processor_dead_letters_total',
      'outbound_dead_letters_total',
      'ingest_webhook_rejections_total',
      'ingest_webhook_requests_total',
      'processor_hubspot_reconnect_required_total',
      'outbound_retries_total',
      'processor_handler_failures_total',
      'outbound_handler_failures_total',
      'ingest_durable_write_seconds_bucket',
      'processor_event_delay_seconds_bucket',
    ]) {
      if (!referenced.has(name)) problems.push(`no alert on ${name}`);
    }
    assert.deepEqual(problems, []);
  });

  it('given Grafana variables in a query, when substituted, then built-ins become durations and an undeclared one is refused', () => {
    const variables = [
      { name: 'namespace', type: 'query' },
      { name: 'window', type: 'interval' },
    ];
    assert.equal(
      substituteVariables(
        'rate(x{namespace=~"$namespace", pod="${namespace:regex}", job="[[namespace]]"}[$__rate_interval]) + rate(x[$window])',
        variables,
      ),
      'rate(x{namespace=~"dashboard_variable_value", pod="dashboard_variable_value", job="dashboard_variable_value"}[5m]) + rate(x[5m])',
    );
    assert.throws(
      () => substituteVariables('rate(x{namespace=~"$namspace"}[5m])', variables),
      /undeclared Grafana variable \$namspace/,
    );
    const dashboard: Dashboard = {
      panels: [{ title: 'Row', panels: [{ title: 'Inner', targets: [{ refId: 'A', expr: 'up' }] }] }],
    };
    assert.deepEqual(dashboardQueries(dashboard), [
      { where: 'panel "Inner" query A', panel: 'Inner', refId: 'A', expr: 'up' },
    ]);
  });

  /** promtool from $PROMTOOL, PATH, or where scripts/ci/check-deploy.sh leaves it; undefined without. */
  const findPromtool = (): string | undefined => {
    const cached = fileURLToPath(new URL('.cache/promtool/promtool', repositoryRoot));
    for (const candidate of [process.env.PROMTOOL, 'promtool', existsSync(cached) ? cached : undefined]) {
      if (candidate && !spawnSync(candidate, ['--version']).error) return candidate;
    }
    return undefined;
  };

  it('given promtool, when the rules are checked and their unit tests run, then both pass', function () {
    const promtool = findPromtool();
    // promtool comes with Debian's "prometheus" package (npm run check:deploy fetches it); without
    // it only the checks above run.
    if (promtool === undefined) {
      this.skip();
      return;
    }
    const cwd = fileURLToPath(repositoryRoot);
    for (const args of [
      ['check', 'rules', ALERTS],
      ['test', 'rules', ALERT_TESTS],
    ]) {
      const run: SpawnSyncReturns<string> = spawnSync(promtool, args, { cwd, encoding: 'utf8' });
      assert.equal(run.status, 0, `promtool ${args.join(' ')}:\n${run.stdout}${run.stderr}`);
    }
  });

  it("given promtool, when every dashboard query is checked as a recording rule, then Prometheus's parser accepts each", function () {
    const promtool = findPromtool();
    if (promtool === undefined) {
      this.skip();
      return;
    }
    const queries = dashboardQueries(JSON.parse(read(DASHBOARD)) as Dashboard);
    assert.ok(queries.length >= 20, `expected the dashboard's panels, found ${queries.length} queries`);
    const directory = mkdtempSync(join(tmpdir(), 'dashboard-rules-'));
    try {
      const rules = join(directory, 'dashboard.rules.yml');
      writeFileSync(rules, recordingRulesFile(queries));
      const run = spawnSync(promtool, ['check', 'rules', rules], { encoding: 'utf8' });
      assert.equal(run.status, 0, `promtool check rules (dashboard queries):\n${run.stdout}${run.stderr}`);
      assert.match(run.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
