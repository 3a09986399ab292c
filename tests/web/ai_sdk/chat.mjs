// Drives a streamwrap chat server with the Vercel AI SDK's own chat engine (AbstractChat,
// what useChat runs in the browser, with its DefaultChatTransport), from a given install
// of the `ai` package.
//
//   node chat.mjs <npm prefix holding node_modules/ai> <api url> <prompt>...
//
// Each prompt is sent as a new chat's first message; then the chat is asked to resume its
// stream (what useChat({resume: true}) does on page load). Prints one JSON object: the
// version of `ai`, and per prompt the chat's status and error and the assistant message.
import { describe, loadAi, makeChat } from "./_chat.mjs";

const [prefix, api, ...prompts] = process.argv.slice(2);
const { ai, version } = await loadAi(prefix);

const results = [];
for (const prompt of prompts) {
  const errors = [];
  const chat = makeChat(ai, { id: `chat-${results.length}`, api, errors });
  await chat.sendMessage({ text: prompt });
  const reply = describe(chat, errors);
  // A page load with useChat({resume: true}): GET <api>/<chat id>/stream.
  const resumeErrors = [];
  const resumed = makeChat(ai, { id: chat.id, api, errors: resumeErrors });
  await resumed.resumeStream();
  reply.resume = { status: resumed.status, error: resumed.error ? String(resumed.error.message) : null, errors: resumeErrors, messages: resumed.messages.length };
  results.push(reply);
}
process.stdout.write(JSON.stringify({ version, results }));
