// Kept in step with package.json by test/unit/version.test.ts; workflows cannot read files.
export const TOOL_VERSION = '0.1.0';
