// A page that loses its connection mid-reply and comes back on another worker, with the
// Vercel AI SDK's own chat engine: useChat({resume: true}) after a reload.
//
//   node resume.mjs <npm prefix> <api of worker 1> <api of worker 2> <chat id> <prompt> <chars>
//
// The chat sends `prompt` to worker 1 and, once `chars` characters of the reply have come,
// drops the connection (chat.stop(): the fetch is aborted, as a closed tab's is). A new chat
// with the same id and the stored user message then resumes from worker 2. Prints the text
// seen before the cut, and the resumed chat's messages and state.
import { describe, loadAi, makeChat, textOf } from "./_chat.mjs";

const [prefix, api1, api2, id, prompt, chars] = process.argv.slice(2);
const { ai, version } = await loadAi(prefix);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const firstErrors = [];
const first = makeChat(ai, { id, api: api1, errors: firstErrors });
const sending = first.sendMessage({ text: prompt });
const deadline = Date.now() + 20_000;
while (textOf(first.messages.at(-1)).length < Number(chars) && Date.now() < deadline) {
  await sleep(5);
}
const seen = textOf(first.messages.at(-1));
await first.stop();
await sending;

const errors = [];
const second = makeChat(ai, { id, api: api2, messages: first.messages.slice(0, 1), errors });
await second.resumeStream();
process.stdout.write(
  JSON.stringify({
    version,
    seen,
    cut: { status: first.status, errors: firstErrors },
    roles: second.messages.map((m) => m.role),
    resumed: describe(second, errors),
  }),
);
