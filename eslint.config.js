// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    // Pipelines and operators are pure: they get their collaborators as ports.
    files: ['src/streams/**/*.ts'],
    // A test may exercise an operator with a real decoder; the operator itself may not.
    ignores: ['src/streams/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/adapters/*', '!**/adapters/ports.ts'],
              message: 'src/streams may only import the port interfaces (src/adapters/ports.ts).',
            },
            {
              group: [
                'slonik',
                '@slonik/*',
                'kafkajs',
                'ioredis',
                'ws',
                '@grpc/*',
                'pg',
                'pino',
                'prom-client',
              ],
              message: 'src/streams never imports a client library; take a port instead.',
            },
          ],
        },
      ],
    },
  },
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
    files: ['src/config.ts', 'scripts/**/*.ts', 'bench/**/*.ts', 'test/helpers.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
