// The Firestore emulator of last resort for tests/emulators, used only where the official Cloud Firestore
// emulator (a Java jar) is missing: @firestore-emulator/server speaks Firestore's gRPC API but has no
// security rules, no REST API and not every method, so the tests that need those skip.
// Usage: node firestore-fallback.mjs GRPC_PORT CONTROL_PORT
//   CONTROL_PORT answers GET / (readiness) and DELETE / (clear every document).
import http from "node:http";
import { FirestoreServer } from "@firestore-emulator/server";

const [grpcPort, controlPort] = process.argv.slice(2).map(Number);
const server = new FirestoreServer();
await server.start(grpcPort);
http
  .createServer((req, res) => {
    if (req.method === "DELETE") server.state.clear();
    res.setHeader("content-type", "application/json");
    res.end("{}");
  })
  .listen(controlPort, "127.0.0.1");
process.on("SIGTERM", () => {
  server.stop();
  process.exit(0);
});
