// Compiles shaders and pipelines with Tint, the WGSL compiler Chrome ships, through Dawn's null backend:
// no GPU is needed. Reads a manifest on standard input (written by tests/shaders.rs):
//   { "shaders":   [{ "name", "source", "features": ["subgroups", ...] }],
//     "pipelines": [{ "shader", "entry", "constants": { NAME: number } }] }
// and fails on any error or warning. The device gets WebGPU's default limits, so a pipeline that needs
// more (workgroup size, workgroup storage) fails here too.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

const input = await new Promise((resolve) => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => (text += chunk));
  process.stdin.on('end', () => resolve(text));
});
const manifest = JSON.parse(input);

const adapter = await create(['backend=null']).requestAdapter();
if (!adapter) {
  console.error('Dawn offered no null adapter');
  process.exit(2);
}
const features = [...new Set(manifest.shaders.flatMap((s) => s.features))];
const missing = features.filter((f) => !adapter.features.has(f));
if (missing.length > 0) {
  console.error(`Dawn's null adapter lacks ${missing.join(', ')}`);
  process.exit(2);
}
const device = await adapter.requestDevice({ requiredFeatures: features });

let passed = 0;
let failed = 0;
const report = (what, problems) => {
  if (problems.length === 0) {
    passed += 1;
    console.log(`ok    ${what}`);
  } else {
    failed += 1;
    console.log(`FAIL  ${what}\n      ${problems.join('\n      ')}`);
  }
};

const modules = new Map();
for (const shader of manifest.shaders) {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: shader.name, code: shader.source });
  const info = await module.getCompilationInfo();
  const error = await device.popErrorScope();
  const problems = info.messages.map((m) => `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`);
  if (error && problems.length === 0) problems.push(error.message);
  report(`${shader.name} (features: ${shader.features.join(', ') || 'none'})`, problems);
  modules.set(shader.name, module);
}

for (const p of manifest.pipelines) {
  const constants = Object.entries(p.constants).map(([k, v]) => `${k}=${v}`).join(', ');
  const what = `${p.shader} ${p.entry}${constants ? ` (${constants})` : ''}`;
  const module = modules.get(p.shader);
  if (!module) {
    report(what, [`no shader named ${p.shader} in the manifest`]);
    continue;
  }
  device.pushErrorScope('validation');
  try {
    await device.createComputePipelineAsync({
      label: what,
      layout: 'auto',
      compute: { module, entryPoint: p.entry, constants: p.constants },
    });
    const error = await device.popErrorScope();
    report(what, error ? [error.message] : []);
  } catch (e) {
    await device.popErrorScope();
    report(what, [String(e.message ?? e)]);
  }
}

console.log(`tint: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
