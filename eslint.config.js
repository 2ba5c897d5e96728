// Lint rules. The protocol core must stay pure: no I/O, no clock, no ambient randomness,
// no async. Everything it needs arrives through its inputs, so the simulator can replay any run.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const impureGlobals = ['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'process',
  'performance', 'Date', 'Promise', 'fetch', 'require'].map((name) => ({
  name,
  message: 'src/core is pure: time, I/O and scheduling come in through tick/step/Ready.',
}));

// ESLint requires a default export from its config file.
// eslint-disable-next-line no-restricted-syntax
export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' },
        { selector: "CallExpression[callee.property.name='only']", message: 'No focused tests.' }],
      'max-len': ['error', { code: 120, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', 'fs', 'net', 'crypto', 'zlib', '../runtime/*', '../io/*', '../testing/*'], message: 'src/core does no I/O and depends on nothing outside core and util.' }] }],
      'no-restricted-globals': ['error', ...impureGlobals],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'Use the injected Random.' }],
      'no-restricted-syntax': ['error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' },
        { selector: 'FunctionDeclaration[async=true], ArrowFunctionExpression[async=true], FunctionExpression[async=true]', message: 'src/core is synchronous.' }],
    },
  },
);
