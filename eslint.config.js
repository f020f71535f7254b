// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const clientLibraries = [
  'slonik',
  '@slonik/*',
  'kafkajs',
  'ioredis',
  'ws',
  '@grpc/*',
  'grpc-health-check',
  'pg',
  'pino',
  'prom-client',
];
const adapterFolders = ['postgres', 'kafka', 'redis', 'grpc'];

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      '.cache/',
      'test-results/',
      'eslint.config.js',
      // docs/composing.md's code while its test runs; the test type-checks it.
      'test/docs/.generated-*/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='env']",
          message: 'Read settings through src/config.ts, which parses the environment once.',
        },
      ],
    },
  },
  // The architecture, as import rules without exceptions: src/core is the domain and its
  // ports and imports nothing of the project outside itself; src/streams (pure RxJS) and
  // src/adapters (the store clients) build on core and never on each other; each adapter
  // folder speaks to one technology and imports no other adapter folder.
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../*', '../../*', '!../core/*'],
              message: 'src/core imports only src/core: it is the domain and its ports.',
            },
            { group: clientLibraries, message: 'src/core never imports a client library.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/streams/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/adapters/**', '**/servers/**', '**/services/**', '**/cli/**'],
              message: 'src/streams imports src/core (the ports), never adapters or servers.',
            },
            {
              group: clientLibraries,
              message: 'src/streams never imports a client library; take a port instead.',
            },
          ],
        },
      ],
    },
  },
  ...adapterFolders.map((folder) => ({
    files: [`src/adapters/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/streams/**',
                '**/servers/**',
                '**/services/**',
                '**/cli/**',
                '**/testing/**',
              ],
              message: 'src/adapters imports src/core, never streams, servers or services.',
            },
            {
              group: adapterFolders
                .filter((other) => other !== folder)
                .flatMap((other) => [`**/adapters/${other}/**`, `../${other}/**`]),
              message: `src/adapters/${folder} speaks to one technology; share through src/core.`,
            },
          ],
        },
      ],
    },
  })),
  {
    // The status page's scripts run in the browser as they are: no types, browser globals.
    files: ['src/servers/status/**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'crypto',
          'document',
          'fetch',
          'location',
          'performance',
          'setTimeout',
          'clearTimeout',
          'WebSocket',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    // The configuration module and the process launchers (scripts, the benchmark) read the
    // environment.
    files: [
      'src/config.ts',
      'scripts/**/*.ts',
      'bench/**/*.ts',
      'test/helpers.ts',
      'test/outsideTools.ts',
    ],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
