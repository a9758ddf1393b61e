import tseslint from 'typescript-eslint';

/** The component graph of DESIGN.md §2: programs import protocol, never each other. */
const programs = ['appliance', 'agent', 'restore-pe'];
const graphRules = programs.map((self) => ({
  files: [`${self}/src/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: programs
          .filter((p) => p !== self)
          .flatMap((p) => [
            { group: [`@ferry/${p}`, `@ferry/${p}/*`], message: `${self} must not import ${p}: share code through @ferry/protocol` },
            { group: [`**/${p}/src/**`, `../../${p}/**`], message: `${self} must not import ${p}: share code through @ferry/protocol` },
          ]),
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'web/**', '**/bin/**', 'eslint.config.js', '.cache/**', 'test/out/**', 'iso/work/**', 'iso/out/**', 'agent/out/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/test return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['protocol/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@ferry/*'], message: 'protocol imports nothing of ours' }] }],
    },
  },
  ...graphRules,
);
