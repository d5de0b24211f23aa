export * from './types.cjs';
