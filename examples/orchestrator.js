// An orchestrator that runs a small swarm of real worker processes.
//
// It attaches an Operator, starts a root task and dispatches a worker for it.
// Each worker is a child process that receives only its bearer token (in the
// CAPTOKEN_BEARER environment variable) and calls back over IPC; every call
// is decided here by the store. Workers spawn child tasks (their ids are made
// by the store: a Worker cannot choose them) and dispatch a worker for each,
// handing down their own budget, until the depth cap refuses; then the whole
// task tree is revoked.
//
// Run: node examples/orchestrator.js   (prints a log and a final JSON summary)
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { TokenStore, CapTokenError } from 'captoken';

const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));
const store = new TokenStore({ secret: randomBytes(32), maxSpawnDepth: 4 });
const operator = store.attachOperator('orchestrator');
const root = store.startTask(operator.bearer, { taskId: 'root' });
// The root worker's budget. Everything below it is paid out of it: a Worker's
// dispatch transfers uses from its own budget, so the whole tree never makes
// more than ROOT_BUDGET calls.
const ROOT_BUDGET = 16;

const summary = {
  allowed: 0, denied: {}, results: {}, depths: {}, parents: {}, budgets: {}, spawnRefused: null,
};
const bearers = new Map(); // taskId -> bearer of the worker dispatched for it
const running = new Set();
const log = (line) => console.log(line);

function decide(bearer, call) {
  const { verb, taskId } = call;
  try {
    let reply;
    switch (verb) {
      case 'start_task':
        // A child of the worker's own task; the store makes its id.
        reply = store.startTask(bearer);
        summary.depths[reply.taskId] = reply.spawnDepth;
        summary.parents[reply.taskId] = reply.parentId;
        break;
      case 'dispatch_attempt': {
        // The worker hands its new child all of its uses but two: the one this
        // dispatch spends and the one it keeps for its own post_result.
        const left = store.check(bearer, verb, taskId).usesLeft;
        const maxUses = left === null ? null : left - 2;
        const minted = store.dispatchAttempt(bearer, taskId, { maxUses });
        summary.budgets[taskId] = minted.token.max_uses;
        launch(taskId, minted.bearer);
        reply = { fingerprint: minted.fingerprint };
        break;
      }
      default: {
        const grant = store.verify(bearer, verb, taskId);
        reply = { usesLeft: grant.usesLeft };
        if (verb === 'fetch_prompt') reply.prompt = `work on ${taskId}, then spawn a child`;
        if (verb === 'post_result') summary.results[taskId] = call.result;
      }
    }
    summary.allowed += 1;
    log(`allow ${verb.padEnd(16)} task=${verb === 'start_task' ? reply.taskId : taskId ?? '-'}`);
    return { ok: true, reply };
  } catch (error) {
    if (!(error instanceof CapTokenError)) throw error;
    summary.denied[error.code] = (summary.denied[error.code] ?? 0) + 1;
    if (error.code === 'ERR_SPAWN_DEPTH_EXCEEDED') {
      summary.spawnRefused = { current: error.current, max: error.max };
    }
    log(`deny  ${verb.padEnd(16)} task=${taskId ?? '-'} ${error.code}`);
    return { ok: false, code: error.code };
  }
}

function launch(taskId, bearer) {
  bearers.set(taskId, bearer);
  const child = fork(workerScript, [], {
    env: { ...process.env, CAPTOKEN_BEARER: bearer, CAPTOKEN_TASK: taskId },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  running.add(child);
  child.on('message', (call) => child.send({ id: call.id, ...decide(bearer, call) }));
  child.on('exit', (code) => {
    running.delete(child);
    if (code !== 0) summary.failedWorkers = (summary.failedWorkers ?? 0) + 1;
    if (running.size === 0) finish();
  });
}

function finish() {
  const revoked = store.revokeTask(root.taskId);
  const afterRevoke = [...bearers.entries()].map(([taskId, bearer]) => store.check(bearer, 'fetch_prompt', taskId));
  summary.revokedTokens = revoked;
  summary.refusedAfterRevoke = afterRevoke.filter((d) => !d.allowed && d.code === 'ERR_TOKEN_REVOKED').length;
  summary.tasks = store.tasks().length;
  summary.workers = bearers.size;
  log(`revoked ${revoked} tokens under ${root.taskId}`);
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
}

const first = store.dispatchAttempt(operator.bearer, root.taskId, { maxUses: ROOT_BUDGET });
summary.depths[root.taskId] = root.spawnDepth;
summary.parents[root.taskId] = null;
summary.budgets[root.taskId] = first.token.max_uses;
launch(root.taskId, first.bearer);
