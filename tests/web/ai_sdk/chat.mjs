// Drives a streamwrap chat server with the Vercel AI SDK's own chat engine (AbstractChat,
// what useChat runs in the browser, with its DefaultChatTransport), from a given install
// of the `ai` package.
//
//   node chat.mjs <npm prefix holding node_modules/ai> <api url> <prompt>...
//
// Each prompt is sent as a new chat's first message; then the chat is asked to resume its
// stream (what useChat({resume: true}) does on page load). Prints one JSON object: the
// version of `ai`, and per prompt the chat's status and error and the assistant message.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [prefix, api, ...prompts] = process.argv.slice(2);
const root = join(prefix, "node_modules", "ai");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const entry = pkg.exports["."];
const ai = await import(pathToFileURL(join(root, entry.import ?? entry.default)).href);

class State {
  constructor() {
    this.status = "ready";
    this.error = undefined;
    this.messages = [];
  }
  pushMessage = (message) => { this.messages = [...this.messages, message]; };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends ai.AbstractChat {
  constructor(init) {
    super({ ...init, state: new State() });
  }
}

function describe(chat, errors) {
  const message = chat.messages.at(-1);
  const parts = message?.parts ?? [];
  return {
    status: chat.status,
    error: chat.error ? String(chat.error.message ?? chat.error) : null,
    errors,
    role: message?.role ?? null,
    text: parts.filter((p) => p.type === "text").map((p) => p.text).join(""),
    reasoning: parts.filter((p) => p.type === "reasoning").map((p) => p.text).join(""),
    tools: parts
      .filter((p) => p.type.startsWith("tool-"))
      .map((p) => ({ name: p.type.slice(5), id: p.toolCallId, state: p.state, input: p.input ?? null, errorText: p.errorText ?? null })),
    metadata: message?.metadata ?? null,
  };
}

const results = [];
for (const prompt of prompts) {
  const errors = [];
  const chat = new Chat({
    id: `chat-${results.length}`,
    transport: new ai.DefaultChatTransport({ api }),
    onError: (error) => errors.push(String(error?.message ?? error)),
  });
  await chat.sendMessage({ text: prompt });
  const reply = describe(chat, errors);
  // A page load with useChat({resume: true}): GET <api>/<chat id>/stream.
  const resumeErrors = [];
  const resumed = new Chat({
    id: chat.id,
    transport: new ai.DefaultChatTransport({ api }),
    onError: (error) => resumeErrors.push(String(error?.message ?? error)),
  });
  await resumed.resumeStream();
  reply.resume = { status: resumed.status, error: resumed.error ? String(resumed.error.message) : null, errors: resumeErrors, messages: resumed.messages.length };
  results.push(reply);
}
process.stdout.write(JSON.stringify({ version: pkg.version, results }));
