import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'demo-store/**',
      '.bench/**',
      'bin/**',
      'scripts/**/*.mjs',
      'eslint.config.js',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // layer rule: domain code never imports the CLI or UI
    },
  },
  {
    // the web pages' script runs in the browser, as it is (no build step): linted without type information
    files: ['src/web/assets/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { sourceType: 'script', parserOptions: { projectService: false, project: null } },
  },
  {
    files: [
      'src/backup/**',
      'src/store/**',
      'src/restore/**',
      'src/archive/**',
      'src/db/**',
      'src/maintenance/**',
      'src/fs/**',
    ],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/cli/**', '**/ui/**', 'ora', 'commander'] }],
    },
  },
);
