// A JS automerge-repo 2.5.6 sync server (like the published sync server, bound to
// 127.0.0.1): WebSocketServerAdapter + NodeFSStorageAdapter.
//
//   node server.mjs <port, 0 for any> <storage dir>   -> {"port": N} when listening
// Stops when stdin closes or on SIGTERM.
import { Repo } from "@automerge/automerge-repo";
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket";
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs";
import { WebSocketServer } from "ws";

const [port, dir] = process.argv.slice(2);
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(port ?? 0) });
const repo = new Repo({
  network: [new WebSocketServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir ?? ".js-server-data"),
  peerId: `js-sync-server-${process.pid}`,
  sharePolicy: async () => true,
});
const stop = async () => {
  await repo.shutdown().catch(() => {});
  wss.close();
  process.exit(0);
};
// Announce the port only once the repo's adapter handles connections: the Repo attaches
// it asynchronously, and a client that connects before then is reset.
wss.on("listening", () => {
  const announce = () => {
    if (wss.listenerCount("connection") > 0) {
      process.stdout.write(JSON.stringify({ port: wss.address().port }) + "\n");
    } else {
      setTimeout(announce, 5);
    }
  };
  announce();
});
process.on("SIGTERM", stop);
process.stdin.on("close", stop);
process.stdin.resume();
