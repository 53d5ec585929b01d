// Starts the dev server (`cargo run -p chat-dev --bin dev-server`) on a
// free port for a test, waits for /api/health, and stops it (SIGINT to its process group,
// so its throwaway Postgres shuts down too).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * @param {{ env?: Record<string, string>, timeoutMs?: number }} [options]
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>}
 */
export async function startDevServer({ env = {}, timeoutMs = 600_000 } = {}) {
  const port = await freePort();
  const child = spawn("cargo", ["run", "-q", "-p", "chat-dev", "--bin", "dev-server"], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
    stdio: ["ignore", "ignore", "inherit"],
    detached: true, // its own process group, stopped as one
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  const url = `http://localhost:${port}`;
  const stop = async () => {
    if (exited || child.pid === undefined) return;
    const gone = new Promise((resolve) => child.once("exit", resolve));
    try {
      process.kill(-child.pid, "SIGINT");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, 15_000);
    await gone;
    clearTimeout(timer);
  };
  // The first run compiles: allow for it.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error("the dev server exited before answering /api/health");
    try {
      const response = await fetch(`${url}/api/health`);
      if (response.ok) return { url, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the dev server did not answer within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
