// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Module boundaries: each layer may import only the layers below it
 * (core <- protocol <- registry <- delivery <- transport <- server <- cli).
 * A violation is a lint error, so the architecture cannot drift silently.
 */
const layer = (dir, forbidden) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((f) => ({
          group: [`**/${f}/*`, `**/${f}.js`],
          message: `src/${dir} must not depend on ${f} (see the layering in docs/architecture.md).`,
        })),
      },
    ],
  },
});

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
  layer('core', ['protocol', 'registry', 'delivery', 'transport', 'server', 'cli']),
  layer('protocol', ['registry', 'delivery', 'transport', 'server', 'cli']),
  layer('registry', ['protocol', 'delivery', 'transport', 'server', 'cli']),
  layer('delivery', ['transport', 'server', 'cli']),
  layer('transport', ['server', 'cli', 'api', 'client']),
  layer('api', ['protocol', 'registry', 'delivery', 'transport', 'server', 'cli', 'client']),
  layer('auth', ['protocol', 'registry', 'delivery', 'transport', 'server', 'cli', 'api', 'client', 'metrics']),
  layer('metrics', ['protocol', 'registry', 'delivery', 'transport', 'server', 'cli', 'api', 'client']),
  layer('client', ['protocol', 'registry', 'delivery', 'transport', 'server', 'cli', 'api', 'metrics']),
);
