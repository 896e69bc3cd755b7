// A scriptable automerge-repo 2.5.6 client for interop tests. Prints one JSON object per
// line; exits non-zero on failure; never runs longer than IBIS_JS_TIMEOUT ms (20 s).
//
//   node client.mjs <ws-url> create <json>            -> {"url": ...} once a second client can read it
//   node client.mjs <ws-url> find <url>               -> {"doc": ...} or {"unavailable": true}
//   node client.mjs <ws-url> watch <url> <n>          -> {"doc": ...} on every change, n times
//   node client.mjs <ws-url> change <url> <json>      -> {"ok": true} (merges the JSON into the root)
//   node client.mjs <ws-url> ephemeral-send <url> <json>   -> broadcasts every 200 ms until stdin closes
//   node client.mjs <ws-url> ephemeral-listen <url>   -> {"message": ..., "senderId": ...} for the first one
//   node client.mjs <ws-url> audit <url>...           -> {"url", "written": [...]} per document: every
//                                                        change's message and the strings its ops wrote
//                                                        (or {"url", "unavailable": true})
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import * as Automerge from "@automerge/automerge";

const [url, command, ...args] = process.argv.slice(2);
const timeout = Number(process.env.IBIS_JS_TIMEOUT ?? 20000);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (e) => {
  say({ error: String(e?.message ?? e) });
  process.exit(1);
};
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
setTimeout(() => fail(`timed out after ${timeout} ms`), timeout).unref();

const repo = () => new Repo({ network: [new WebSocketClientAdapter(url, 500)] });
const find = async (r, docUrl) => {
  try {
    return await r.find(docUrl);
  } catch (e) {
    return null;
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

switch (command) {
  case "create": {
    const r = repo();
    const handle = r.create(JSON.parse(args[0]));
    // Done when a fresh client can read it back through the server.
    for (;;) {
      await sleep(200);
      const other = repo();
      const found = await find(other, handle.url);
      const ok = found && JSON.stringify(found.doc()) === JSON.stringify(handle.doc());
      await other.shutdown();
      if (ok) break;
    }
    say({ url: handle.url });
    process.exit(0);
  }
  case "find": {
    const handle = await find(repo(), args[0]);
    say(handle ? { doc: handle.doc() } : { unavailable: true });
    process.exit(0);
  }
  case "watch": {
    const handle = await find(repo(), args[0]);
    if (!handle) fail("unavailable");
    let left = Number(args[1] ?? 1);
    say({ doc: handle.doc(), ready: true });
    handle.on("change", ({ doc }) => {
      say({ doc });
      if (--left <= 0) process.exit(0);
    });
    break;
  }
  case "change": {
    const r = repo();
    const handle = await find(r, args[0]);
    if (!handle) fail("unavailable");
    const patch = JSON.parse(args[1]);
    handle.change((d) => Object.assign(d, patch));
    await sleep(1000);
    say({ ok: true });
    process.exit(0);
  }
  case "ephemeral-send": {
    const handle = await find(repo(), args[0]);
    if (!handle) fail("unavailable");
    const message = JSON.parse(args[1]);
    say({ sending: true });
    process.stdin.on("close", () => process.exit(0));
    process.stdin.resume();
    for (;;) {
      handle.broadcast(message);
      await sleep(200);
    }
  }
  case "ephemeral-listen": {
    const handle = await find(repo(), args[0]);
    if (!handle) fail("unavailable");
    handle.on("ephemeral-message", ({ message, senderId }) => {
      say({ message, senderId });
      process.exit(0);
    });
    say({ listening: true });
    break;
  }
  case "audit": {
    // Everything each document's history holds, as this client received it.
    const r = repo();
    for (const docUrl of args) {
      const handle = await find(r, docUrl);
      if (!handle) {
        say({ url: docUrl, unavailable: true });
        continue;
      }
      const written = Automerge.getAllChanges(handle.doc()).map((bytes) => {
        const change = Automerge.decodeChange(bytes);
        let text = (change.message ?? "") + "\n";
        for (const op of change.ops) {
          if (typeof op.value === "string") text += op.value;
        }
        return text;
      });
      say({ url: docUrl, written });
    }
    process.exit(0);
  }
  default:
    fail(`unknown command ${command}`);
}
