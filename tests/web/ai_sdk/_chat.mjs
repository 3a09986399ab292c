// What the drivers share: the `ai` package of a given npm prefix, a chat (AbstractChat, what
// useChat runs in the browser) with an in-memory state, and a description of its last message.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export async function loadAi(prefix) {
  const root = join(prefix, "node_modules", "ai");
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const entry = pkg.exports["."];
  const ai = await import(pathToFileURL(join(root, entry.import ?? entry.default)).href);
  return { ai, version: pkg.version };
}

class State {
  constructor(messages = []) {
    this.status = "ready";
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage = (message) => { this.messages = [...this.messages, message]; };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  };
  snapshot = (thing) => structuredClone(thing);
}

// A chat with its own transport to `api`; `messages` are those the page had stored (a reload
// brings them back before it resumes); errors reported through onError go to `errors`.
export function makeChat(ai, { id, api, messages = [], errors = [] }) {
  class Chat extends ai.AbstractChat {
    constructor(init) {
      super({ ...init, state: new State(messages) });
    }
  }
  return new Chat({
    id,
    transport: new ai.DefaultChatTransport({ api }),
    onError: (error) => errors.push(String(error?.message ?? error)),
  });
}

export function textOf(message) {
  return (message?.parts ?? []).filter((p) => p.type === "text").map((p) => p.text).join("");
}

export function describe(chat, errors) {
  const message = chat.messages.at(-1);
  const parts = message?.parts ?? [];
  return {
    status: chat.status,
    error: chat.error ? String(chat.error.message ?? chat.error) : null,
    errors,
    role: message?.role ?? null,
    text: textOf(message),
    reasoning: parts.filter((p) => p.type === "reasoning").map((p) => p.text).join(""),
    tools: parts
      .filter((p) => p.type.startsWith("tool-"))
      .map((p) => ({ name: p.type.slice(5), id: p.toolCallId, state: p.state, input: p.input ?? null, errorText: p.errorText ?? null })),
    metadata: message?.metadata ?? null,
  };
}
