// captoken/redis from CommonJS.
import captokenRedis = require('captoken/redis');

const { RedisTokenStore } = captokenRedis;
declare const client: object;
async function main(): Promise<captokenRedis.Grant> {
  const store = await RedisTokenStore.open(client, { secret: new Uint8Array(32), namespace: 'n' });
  const op = await store.attachOperator('op');
  // @ts-expect-error check never takes a number as its verb
  await store.check(op.bearer, 42);
  return store.verify(op.bearer, 'heartbeat');
}
export { main };
