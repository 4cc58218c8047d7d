// Runs a MicroPython program under the real MicroPython (WebAssembly build, npm package
// @micropython/micropython-webassembly-pyscript, pinned in package-lock.json) for tests/firmware/.
//
//   node tests/firmware/run_mpy.mjs PROGRAM.py [PARAMS.json]
//
// Before the program runs, its filesystem holds gateway_firmware/ and the shims (machine, network,
// ntptime, onewire, ds18x20, umqtt.simple, sim) under /lib, the params as /params.json and an empty
// /flash (the board's flash). stdout and stderr are relayed line by line; the exit code is 1 when the
// program raised (the traceback goes to stderr).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
let loadMicroPython;
try {
  ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
} catch (e) {
  console.error("MicroPython for the firmware tests is not installed: run `make setup`");
  process.exit(3);
}

const [program, params] = process.argv.slice(2);
if (!program) {
  console.error("usage: node run_mpy.mjs PROGRAM.py [PARAMS.json]");
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: 16 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copyTree(src, dst) {
  try { mp.FS.mkdir(dst); } catch { /* exists */ }
  for (const name of readdirSync(src)) {
    const path = join(src, name);
    if (statSync(path).isDirectory()) {
      if (name !== "__pycache__") copyTree(path, dst + "/" + name);
    } else if (name.endsWith(".py")) {
      mp.FS.writeFile(dst + "/" + name, readFileSync(path));
    }
  }
}

mp.FS.mkdir("/lib");
copyTree(join(root, "gateway_firmware"), "/lib/gateway_firmware");
copyTree(join(here, "shims"), "/lib");
mp.FS.mkdir("/flash");
mp.FS.writeFile("/params.json", params ? readFileSync(params) : "{}");

try {
  mp.runPython(readFileSync(program, "utf8"));
} catch (e) {
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
}
