// ESLint flat config: `npm run lint` (eslint, then prettier --check). Few rules, each one meaningful:
// typescript-eslint's recommended set, promise misuse (typed), unused code, import cycles, and the
// workflow determinism boundary.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const DETERMINISM = 'workflows are deterministic: do I/O in an activity';

// Every Node built-in, with or without `node:`, and its subpaths (fs/promises, stream/web, ...).
// Regexes rather than globs: a glob `events` would also match '../common/events'.
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const builtins = [...new Set(builtinModules.map((m) => m.replace(/^node:/, '').split('/')[0]))];
const nodeBuiltinRegex = `^(node:.*|(${builtins.map(escape).join('|')})(/.*)?)$`;

export default defineConfig(
  globalIgnores([
    'dist/',
    'coverage/',
    '**/.cache/',
    '.runbook/',
    'test/histories/**',
    'test/artifacts/**',
    'bench/results/**',
    '**/*.d.ts',
  ]),

  js.configs.recommended,
  tseslint.configs.recommended,

  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: globals.node,
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },

  // Plain JS (bin/runbook.js, this file) is outside tsconfig: lint it without type information.
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [tseslint.configs.disableTypeChecked],
  },

  // Import cycles over the whole source. Type-only imports (`import type`) are not counted: they are
  // erased at run time, so they cannot cause a half-initialised module.
  {
    files: ['**/*.{ts,js}'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },

  // Workflow code runs in Temporal's deterministic sandbox and is replayed: no I/O, no Node built-ins,
  // and no value imports of activity/worker/CLI code (type-only imports of activities are fine).
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: nodeBuiltinRegex, caseSensitive: true, message: DETERMINISM },
            {
              regex: '^(ioredis|prom-client|@aws-sdk/.*|@temporalio/(client|worker|activity))(/.*)?$',
              caseSensitive: true,
              message: DETERMINISM,
            },
            {
              regex: '^(\\.\\./)+(activities|domain|worker|cli)[^/]*(/.*)?$',
              caseSensitive: true,
              allowTypeImports: true,
              message: DETERMINISM,
            },
          ],
        },
      ],
    },
  },
);
