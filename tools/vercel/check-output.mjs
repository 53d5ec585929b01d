// Checks what `vercel build` wrote against the project's own description of itself:
// every `[[bin]]` under api/ in Cargo.toml is a function, every route and cron in
// vercel.json made it into config.json, and every route lands on a function that exists.
// Usage: node tools/vercel/check-output.mjs <repo root> <output dir>   (run by .ci/vercel-build)
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

const root = realpathSync(process.argv[2]);
const out = resolve(process.argv[3]);
const problems = [];
const fail = (message) => problems.push(message);
const readJson = (path) => JSON.parse(readFileSync(path, "utf8"));
const posix = (path) => path.split(sep).join("/");

// The functions, as cargo sees them: the root package's binaries whose source is under api/.
const metadata = JSON.parse(
  execFileSync("cargo", ["metadata", "--no-deps", "--format-version", "1", "--locked"], {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  }),
);
const rootPackage = metadata.packages.find((p) => p.manifest_path === join(root, "Cargo.toml"));
const bins = rootPackage.targets
  .filter((t) => t.kind.includes("bin"))
  .map((t) => ({ name: t.name, source: posix(relative(root, t.src_path)) }))
  .filter((b) => b.source.startsWith("api/"));
if (bins.length === 0) fail("Cargo.toml declares no [[bin]] under api/: nothing would be deployed");

// Every api/**/*.rs is a function to Vercel; one without a [[bin]] would be built by its file
// name, which cargo does not know (`autobins = false`).
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
for (const file of walk(join(root, "api")).map((f) => posix(relative(root, f)))) {
  if (file.endsWith(".rs") && !bins.some((b) => b.source === file)) {
    fail(`${file}: Vercel deploys it as a function, but Cargo.toml has no [[bin]] with that path`);
  }
}

const vercelJson = readJson(join(root, "vercel.json"));
const functionsDir = join(out, "functions");
const rows = [];
for (const bin of bins) {
  const fn = bin.source.replace(/\.rs$/, "");
  const dir = join(functionsDir, `${fn}.func`);
  const where = posix(relative(root, dir));
  if (!existsSync(join(dir, ".vc-config.json"))) {
    fail(`${bin.source} (bin ${bin.name}): no ${where}/.vc-config.json`);
    continue;
  }
  const vc = readJson(join(dir, ".vc-config.json"));
  if (vc.runtime !== "executable") fail(`${where}: runtime is ${JSON.stringify(vc.runtime)}, not "executable"`);
  // `vercel build` does not copy files into the .func: `filePathMap` points at them,
  // relative to the project (here `target/release/<bin>`); `--standalone` would copy them.
  const mapped = vc.filePathMap?.[vc.handler];
  const exe = mapped ? resolve(root, mapped) : join(dir, vc.handler ?? "");
  if (!vc.handler || !existsSync(exe)) {
    fail(`${where}: handler ${JSON.stringify(vc.handler)} (${exe}) is missing`);
    continue;
  }
  const st = statSync(exe);
  const head = readFileSync(exe).subarray(0, 4);
  if ((st.mode & 0o111) === 0) fail(`${where}/${vc.handler}: not executable`);
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) fail(`${where}/${vc.handler}: not an ELF binary`);
  const wanted = vercelJson.functions?.[bin.source]?.maxDuration;
  if (wanted !== undefined && vc.maxDuration !== wanted) {
    fail(`${where}: maxDuration ${vc.maxDuration}, vercel.json says ${wanted}`);
  }
  rows.push({
    function: `/${fn}`,
    bin: bin.name,
    executable: posix(relative(root, exe)),
    MB: (st.size / 1e6).toFixed(1),
    maxDuration: vc.maxDuration ?? "default",
    streaming: vc.supportsResponseStreaming ?? false,
  });
}

// Functions the build produced that nothing here asked for (a stale api/ file, say).
const produced = existsSync(functionsDir)
  ? walk(functionsDir)
      .filter((f) => f.endsWith(`.func${sep}.vc-config.json`))
      .map((f) => posix(relative(functionsDir, f)).replace(/\.func\/\.vc-config\.json$/, ""))
  : [];
for (const fn of produced) {
  if (!bins.some((b) => b.source === `${fn}.rs`)) fail(`functions/${fn}.func: not a [[bin]] under api/`);
}

// Routes: vercel.json's, in order, each landing on a function that was built.
const configPath = join(out, "config.json");
const config = existsSync(configPath) ? readJson(configPath) : (fail(`no ${configPath}`), {});
const routes = config.routes ?? [];
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
// The CLI anchors each `src` (`/api/rooms` becomes `^/api/rooms$`), as the platform would.
const anchored = (src) => `${src.startsWith("^") ? "" : "^"}${src}${src.endsWith("$") ? "" : "$"}`;
let from = 0;
for (const want of vercelJson.routes ?? []) {
  const at = routes.findIndex(
    (r, i) =>
      i >= from && r.src === anchored(want.src) && r.dest === want.dest && same(r.methods, want.methods),
  );
  const label = `${(want.methods ?? ["*"]).join(",")} ${want.src} -> ${want.dest}`;
  if (at < 0) {
    fail(`config.json: route ${label} missing (or out of order)`);
    continue;
  }
  from = at + 1;
  const target = want.dest.split("?")[0].replace(/^\//, "");
  if (!produced.includes(target)) fail(`route ${label}: no function ${target}.func was built`);
}
for (const cron of vercelJson.crons ?? []) {
  if (!(config.crons ?? []).some((c) => c.path === cron.path && c.schedule === cron.schedule)) {
    fail(`config.json: cron ${cron.path} (${cron.schedule}) missing`);
  }
  if (!produced.includes(cron.path.split("?")[0].replace(/^\//, ""))) {
    fail(`cron ${cron.path}: no function was built for it`);
  }
}

// The static page (outputDirectory) and the client copied in by buildCommand.
for (const file of ["index.html", "app.js", "chat-client.js"]) {
  if (!existsSync(join(out, "static", file))) fail(`static/${file} missing (outputDirectory / buildCommand)`);
}

// For later steps (the Lambda emulator test runs these): cargo's own binaries, as the
// builder built them (`cargo build --release --bin <name>`).
const release = join(metadata.target_directory, "release");
for (const bin of bins) {
  if (!existsSync(join(release, bin.name))) fail(`${join(release, bin.name)} missing`);
}

for (const r of rows) {
  console.log(
    `  ${r.function.padEnd(28)} bin ${r.bin.padEnd(16)} ${r.MB.padStart(5)} MB  maxDuration ${String(r.maxDuration).padEnd(7)} streaming ${r.streaming}  ${r.executable}`,
  );
}
console.log(`config.json: ${routes.length} routes, crons ${JSON.stringify(config.crons ?? [])}`);
if (problems.length > 0) {
  console.error(`\nvercel build output check FAILED (${problems.length}):`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(
  `vercel build output OK: ${rows.length} functions, ${(vercelJson.routes ?? []).length} routes, ` +
    `${(vercelJson.crons ?? []).length} cron`,
);
console.log(`release binaries (for later steps) in ${release}:`);
for (const bin of bins) console.log(`  ${join(release, bin.name)}   <- ${bin.source}`);
