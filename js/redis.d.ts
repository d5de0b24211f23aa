export * from './redis.cjs';
