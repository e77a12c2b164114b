// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Every folder of src/; each one's allowed imports are listed below, the rest are errors. */
const FOLDERS = [
  'core',
  'protocol',
  'registry',
  'delivery',
  'session',
  'transport',
  'api',
  'auth',
  'broker',
  'node',
  'metrics',
  'api-client',
  'client',
  'server',
  'cli',
];

/**
 * Module boundaries: src/<dir> may import only the folders in `allowed` (and itself); see
 * the table in docs/architecture.md, which test/unit/docs.test.ts compares with this file.
 * A violation is a lint error, so the architecture cannot drift silently.
 */
const layer = (dir, allowed, extra = { patterns: [], rules: {} }) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...FOLDERS.filter((f) => f !== dir && !allowed.includes(f)).map((f) => ({
            // Not `**/${f}.js`: src/api/auth.ts is api's own, not the auth folder.
            group: [`**/${f}/*`, `../${f}.js`],
            message: `src/${dir} must not depend on ${f} (see the layering in docs/architecture.md).`,
          })),
          ...extra.patterns,
        ],
      },
    ],
    ...extra.rules,
  },
});

/**
 * `core` and `client` are shared with browsers (the client SDK, `ServerFrame`): no node module, no node
 * global. Bytes are Uint8Array (a Buffer is one, so node callers pass Buffers unchanged).
 */
const BROWSER_SAFE = {
  patterns: [
    { group: ['node:*'], message: 'src/core and src/client are browser-safe: no node: modules (see docs/architecture.md).' },
    {
      group: ['buffer', 'events', 'fs', 'net', 'http', 'https', 'os', 'path', 'stream', 'crypto', 'util', 'zlib', 'url'],
      message: 'src/core and src/client are browser-safe: no node modules (see docs/architecture.md).',
    },
  ],
  rules: {
    'no-restricted-globals': [
      'error',
      { name: 'Buffer', message: 'src/core is browser-safe: use Uint8Array (a Buffer is one) and core/utf8.ts.' },
      { name: 'process', message: 'src/core is browser-safe: no process global.' },
      { name: 'require', message: 'src/core is ESM and browser-safe.' },
    ],
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['eslint.config.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  layer('core', [], BROWSER_SAFE),
  layer('protocol', ['core']),
  layer('registry', ['core']),
  layer('delivery', ['core', 'protocol', 'registry']),
  layer('session', ['core', 'protocol', 'auth']),
  layer('transport', ['core', 'protocol', 'registry', 'delivery', 'session', 'auth']),
  layer('api', ['core', 'metrics']),
  layer('auth', ['core']),
  layer('broker', ['core']),
  layer('node', ['core', 'registry', 'delivery', 'broker', 'auth']),
  layer('metrics', ['core']),
  layer('api-client', ['core']),
  layer('client', ['core'], BROWSER_SAFE),
  layer('server', ['core', 'protocol', 'registry', 'delivery', 'session', 'transport', 'api', 'auth', 'broker', 'node', 'metrics']),
  layer('cli', [
    'core',
    'protocol',
    'registry',
    'delivery',
    'session',
    'transport',
    'api',
    'auth',
    'broker',
    'node',
    'metrics',
    'api-client',
    'server',
  ]),
);
