// @ts-check
import tseslint from 'typescript-eslint';

/**
 * The rooms and their doors (docs/architecture.md): lib/ knows no service and no tool; a service
 * imports lib/ and never another service or a tool; tools/ may import anything. The patterns
 * match the import as written: a relative path that climbs out of the room into another.
 */
const SERVICES = ['ingest', 'processor', 'outbound', 'console'];
const libDoors = [
  {
    regex: '^(\\.\\./)+(services|tools)/',
    message:
      'lib/ knows no service and no tool: move what both need into lib/ (what services agree on: lib/contracts)',
  },
];
/** @param {string} service */
const serviceDoors = (service) => [
  {
    regex: `^(\\.\\./)+(services/)?(${SERVICES.filter((other) => other !== service).join('|')})/src/`,
    message: `services/${service} imports no other service: what services share lives in lib/ (contracts: lib/contracts)`,
  },
  {
    regex: '^(\\.\\./)+tools/',
    message: 'a service imports no operator tool: what both need belongs in lib/',
  },
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.cache/**', '.local/**', 'dist/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // An async function without await is a fine way to return a promise.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'TSEnumDeclaration',
          message: 'Use an `as const` object and a derived union (erasable syntax).',
        },
      ],
    },
  },
  { files: ['lib/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: libDoors }] } },
  ...SERVICES.map((service) => ({
    files: [`services/${service}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: serviceDoors(service) }] },
  })),
  {
    // The seed's rules are pure: no I/O, clock, environment or randomness inside them. (This
    // replaces the processor's rule above for these files, so its doors are repeated here.)
    files: ['services/processor/src/rules/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...serviceDoors('processor'),
            {
              group: ['node:*', 'fs', 'http', 'https', 'net', 'child_process'],
              message: 'rules are pure: no Node I/O modules here',
            },
            {
              group: [
                'kafkajs',
                'ioredis',
                '@hubspot/*',
                'koa',
                '**/lib/kafka/**',
                '**/lib/redis.ts',
                '**/lib/hubspot/api.ts',
              ],
              message: 'rules are pure: I/O belongs in adapters',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'time arrives as an argument (receivedAt, occurredAt)' },
        { object: 'Math', property: 'random', message: 'rules are deterministic' },
        { object: 'process', property: 'env', message: 'configuration arrives as an argument' },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
