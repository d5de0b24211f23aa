// The one-click demo swarm: operators, workers, child tasks down to the depth
// cap, a consumed budget, an exhausted token, a task mismatch, a role
// violation and a revoked tree, narrated step by step at the chosen pace. It
// drives the same actions as the buttons, so every step shows in the tables
// and the audit log.
import { sleep, shortFp } from './util.js';

function uniqueTaskId(api, base) {
  let id = base;
  for (let n = 2; api.store.task(id); n++) id = `${base}-${n}`;
  return id;
}

/**
 * @param api the console's actions
 * @param opts { pace: ms between steps, narrate(step, total, text, state), ensureStore() }
 */
export async function runDemo(api, { pace, narrate, ensureStore }) {
  ensureStore();
  const max = api.settings.maxSpawnDepth;
  const total = 18 + 2 * Math.max(0, max - 1);
  let step = 0;
  const say = async (text) => {
    narrate(++step, total, text);
    await sleep(pace);
  };
  const denied = async (mode, bearer, verb, task, text) => {
    const d = await api.decide(mode, bearer, verb, task);
    await say(`${text} → ${d.allowed ? 'allowed' : d.code}`);
    return d;
  };

  const alpha = api.attachOperator('op-alpha');
  await say(`Operator op-alpha attaches and receives a session token (${shortFp(alpha.fingerprint)}).`);
  const beta = api.attachOperator('op-beta');
  await say(`Operator op-beta attaches too (${shortFp(beta.fingerprint)}).`);

  const ingest = api.startTask(alpha.fingerprint, uniqueTaskId(api, 'ingest'));
  await say(`op-alpha starts root task ${ingest.taskId} at depth 0.`);
  const summarise = api.startTask(beta.fingerprint, uniqueTaskId(api, 'summarise'));
  await say(`op-beta starts root task ${summarise.taskId} at depth 0.`);

  const w1 = api.dispatch(alpha.fingerprint, ingest.taskId, { maxUses: 3 });
  await say(`op-alpha dispatches an attempt: worker ${shortFp(w1.fingerprint)} bound to ${ingest.taskId}, budget 3 uses.`);
  const w2 = api.dispatch(beta.fingerprint, summarise.taskId);
  await say(`op-beta dispatches worker ${shortFp(w2.fingerprint)} to ${summarise.taskId}, unlimited uses.`);

  await denied('verify', w1.bearer, 'fetch_prompt', ingest.taskId, `Worker ${shortFp(w1.fingerprint)} calls fetch_prompt (one use spent)`);
  await denied('verify', w1.bearer, 'post_result', ingest.taskId, `Worker ${shortFp(w1.fingerprint)} calls post_result (one use spent)`);

  // Recursive swarming down to the depth cap.
  let parentWorker = w1;
  let refused = false;
  let depth = 0;
  for (let guard = 0; guard <= max && !refused; guard++) {
    let child;
    try {
      child = api.startTask(parentWorker.fingerprint);
    } catch (err) {
      refused = true;
      await say(`Worker ${shortFp(parentWorker.fingerprint)} at depth ${depth} tries to start a child: refused, ${err.code}: ${err.message}.`);
      break;
    }
    depth = child.spawnDepth;
    await say(`Worker ${shortFp(parentWorker.fingerprint)} starts child task ${child.taskId} at depth ${depth}${parentWorker === w1 ? ': its last use' : ''}.`);
    parentWorker = api.dispatch(alpha.fingerprint, child.taskId);
    await say(`op-alpha dispatches worker ${shortFp(parentWorker.fingerprint)} to ${child.taskId} (depth ${depth}).`);
  }

  await denied('verify', w1.bearer, 'fetch_data', ingest.taskId, `Worker ${shortFp(w1.fingerprint)} calls fetch_data with its budget spent`);
  await denied('verify', w2.bearer, 'fetch_prompt', ingest.taskId, `Worker ${shortFp(w2.fingerprint)} asks for the prompt of another task (${ingest.taskId})`);

  const observer = api.mint('observer-1', 'observer');
  await say(`An observer token is minted for observer-1 (${shortFp(observer.fingerprint)}).`);
  await denied('verify', observer.bearer, 'read_trace', undefined, 'observer-1 reads the trace');
  await denied('check', observer.bearer, 'start_task', undefined, 'observer-1 tries to start a task');

  const once = api.dispatch(beta.fingerprint, summarise.taskId, { maxUses: 1 });
  await say(`op-beta dispatches a one-time worker ${shortFp(once.fingerprint)} to ${summarise.taskId}.`);
  await denied('verify', once.bearer, 'post_result', summarise.taskId, `One-time worker ${shortFp(once.fingerprint)} posts its result`);

  const n = api.revokeTask(summarise.taskId);
  await say(`op-beta revokes the whole tree of ${summarise.taskId}: ${n} token(s) revoked.`);
  await denied('verify', w2.bearer, 'post_result', summarise.taskId, `Worker ${shortFp(w2.fingerprint)} calls post_result after the revocation`);

  narrate(total, total, `${api.store.size} tokens, ${api.store.tasks().length} tasks. Budgets consumed, exhausted and revoked tokens, and a spawn refused by the depth cap: see the task tree, the token table and the audit log.`, 'done');
}
