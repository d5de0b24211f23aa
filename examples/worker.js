// A worker process: it knows only its bearer token and its task id, and asks
// the orchestrator (its parent, over IPC) for everything.
const bearer = process.env.CAPTOKEN_BEARER;
const taskId = process.env.CAPTOKEN_TASK;
if (!bearer || !taskId) {
  console.error('worker: CAPTOKEN_BEARER and CAPTOKEN_TASK are required');
  process.exit(2);
}

let nextId = 0;
const pending = new Map();
process.on('message', (reply) => {
  pending.get(reply.id)?.(reply);
  pending.delete(reply.id);
});
const call = (verb, fields = {}) =>
  new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    process.send({ id, verb, ...fields });
  });

const prompt = await call('fetch_prompt', { taskId });
if (!prompt.ok) process.exit(1);
// Touching another task's state is refused by the ownership gate.
await call('read_task_state', { taskId: 'root' === taskId ? 'someone-else' : 'root' });
// A child task of its own; the store makes its id (a Worker cannot choose one).
const child = await call('start_task');
if (child.ok) {
  await call('dispatch_attempt', { taskId: child.reply.taskId });
}
await call('post_result', { taskId, result: `done at ${taskId}` });
process.disconnect();
