/**
 * What the Grafana dashboard and the Prometheus alerts name: the metrics and labels of each
 * PromQL expression, read as text (no Prometheus needed). Used by
 * test/unit/infra-artefacts.unit.spec.ts (every name is declared) and
 * test/integration/metrics-exercised.int.spec.ts (every named metric moves).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export const DASHBOARD = 'infra/grafana/pipeline-dashboard.json';
export const ALERTS = 'infra/prometheus/alerts.yml';

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

export type Reference = {
  readonly metrics: readonly { readonly name: string; readonly matcherLabels: readonly string[] }[];
  readonly groupingLabels: readonly string[];
};

/** The metric names and label names one PromQL expression (or Grafana label_values query) uses. */
export const referencesIn = (expression: string): Reference => {
  const metrics: { name: string; matcherLabels: string[] }[] = [];
  const groupingLabels: string[] = [];
  let rest = expression.replace(
    /\blabel_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*([a-zA-Z_]\w*)\s*\)/g,
    (_all, metric: string, label: string) => {
      metrics.push({ name: metric, matcherLabels: [label] });
      return ' ';
    },
  );
  rest = rest.replace(
    /([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g,
    (_all, metric: string | undefined, matchers: string) => {
      const matcherLabels = [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map(
        (match) => match[1]!,
      );
      if (metric && !PROMQL_KEYWORDS.has(metric)) metrics.push({ name: metric, matcherLabels });
      return ' ';
    },
  );
  rest = rest.replace(
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_all, labels: string) => {
      groupingLabels.push(
        ...labels
          .split(',')
          .map((label) => label.trim())
          .filter(Boolean),
      );
      return ' ';
    },
  );
  rest = rest.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\[[^\]]*\]|\$\w+/g, ' ');
  for (const match of rest.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const identifier = match[0];
    const followedByParenthesis = /^\s*\(/.test(rest.slice(match.index + identifier.length));
    const partOfNumber = match.index > 0 && /[\d.]/.test(rest[match.index - 1]!);
    if (followedByParenthesis || partOfNumber || PROMQL_KEYWORDS.has(identifier.toLowerCase())) continue;
    metrics.push({ name: identifier, matcherLabels: [] });
  }
  return { metrics, groupingLabels };
};

type Panel = {
  readonly title?: string;
  readonly targets?: readonly { expr?: string }[];
  readonly panels?: readonly Panel[];
};
type Variable = {
  readonly name: string;
  readonly type: string;
  readonly definition?: string;
  readonly query?: string | { readonly query?: string };
};

/**
 * Every series name a dashboard panel, a dashboard variable or an alert uses (as written:
 * `x_bucket` for a histogram), each with where it is used.
 */
export const seriesNamedByArtefacts = (repositoryRoot: URL): Map<string, string[]> => {
  const read = (path: string): string => readFileSync(new URL(path, repositoryRoot), 'utf8');
  const named = new Map<string, string[]>();
  const add = (where: string, expression: string): void => {
    for (const { name } of referencesIn(expression).metrics)
      named.set(name, [...new Set([...(named.get(name) ?? []), where])]);
  };
  const dashboard = JSON.parse(read(DASHBOARD)) as {
    panels: readonly Panel[];
    templating: { list: readonly Variable[] };
  };
  const panelsOf = (panels: readonly Panel[]): Panel[] =>
    panels.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])]);
  for (const panel of panelsOf(dashboard.panels))
    for (const target of panel.targets ?? [])
      if (target.expr) add(`panel "${panel.title ?? '?'}"`, target.expr);
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query =
      variable.definition ?? (typeof variable.query === 'string' ? variable.query : variable.query?.query);
    if (query) add(`variable ${variable.name}`, query);
  }
  const rules = (
    parse(read(ALERTS)) as {
      groups: readonly { rules: readonly { alert?: string; record?: string; expr: string }[] }[];
    }
  ).groups.flatMap((group) => group.rules);
  for (const rule of rules) add(`alert ${rule.alert ?? rule.record ?? '?'}`, rule.expr);
  return named;
};
