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
wss.on("listening", () => {
  process.stdout.write(JSON.stringify({ port: wss.address().port }) + "\n");
});
process.on("SIGTERM", stop);
process.stdin.on("close", stop);
process.stdin.resume();
