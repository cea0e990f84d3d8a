// Reads a GGUF file with an independent reader (@huggingface/gguf) and compares what it sees
// with what dspark's own parser sees (`dspark info --gguf --json`): every metadata key and
// value, the header counts, and each tensor's name, ggml type, dimensions and data offset.
//
//   node compare.mjs DSPARK_BINARY FILE.gguf
//
// Prints one line and exits 0 when the two agree; lists every difference and exits 1 when
// they do not (or when either reader fails). Integers are compared exactly up to 2^53 (past
// that both sides are rounded to the same double, as JSON.parse in Node 20 cannot keep them);
// FLOAT32 values with a relative tolerance of 1e-6; FLOAT64 values exactly.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { gguf, GGMLQuantizationType, GGUFValueType } from "@huggingface/gguf";

const HEADER_KEYS = ["version", "tensor_count", "kv_count"]; // added to metadata by @huggingface/gguf
const FLOAT32_REL_TOL = 1e-6;
const MAX_ELEMENT_DIFFS = 10; // differing elements shown per array; the rest are counted

const args = process.argv.slice(2);
if (args.length !== 2) {
  console.error("usage: node compare.mjs DSPARK_BINARY FILE.gguf");
  process.exit(2);
}
const [binary, file] = args;

const jsVersion = JSON.parse(
  readFileSync(new URL("./node_modules/@huggingface/gguf/package.json", import.meta.url), "utf8"),
).version;

let ours, theirs;
try {
  const out = execFileSync(binary, ["info", "--gguf", "--json", file], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    stdio: ["ignore", "pipe", "inherit"],
  });
  ours = JSON.parse(out);
} catch (e) {
  console.error(`${file}: dspark info --gguf --json failed: ${e.message}`);
  process.exit(1);
}
try {
  theirs = await gguf(file, { allowLocalFile: true, typedMetadata: true });
} catch (e) {
  console.error(`${file}: @huggingface/gguf ${jsVersion} cannot read it: ${e.message}`);
  process.exit(1);
}

const diffs = [];
const show = (v) => (typeof v === "bigint" ? `${v}n` : JSON.stringify(v));

// An integer from either side (bigint or number) against dspark's JSON number.
function sameInteger(js, json) {
  if (typeof json !== "number" || !Number.isInteger(json)) return false;
  if (typeof js === "bigint") return Number.isSafeInteger(json) ? js === BigInt(json) : Number(js) === json;
  return Number.isInteger(js) && js === json;
}

function sameFloat(js, json, relTol) {
  if (typeof js !== "number") return false;
  if (Number.isNaN(js)) return json === "nan";
  if (!Number.isFinite(js)) return json === (js > 0 ? "inf" : "-inf");
  if (typeof json !== "number") return false;
  return js === json || Math.abs(js - json) <= relTol * Math.max(Math.abs(js), Math.abs(json));
}

// `type`: the GGUF value type of this value when known (nested arrays do not say theirs).
function sameScalar(js, json, type) {
  switch (typeof js) {
    case "bigint":
      return sameInteger(js, json);
    case "number":
      if (type === GGUFValueType.FLOAT32) return sameFloat(js, json, FLOAT32_REL_TOL);
      if (type === GGUFValueType.FLOAT64) return sameFloat(js, json, 0);
      if (type === undefined && !Number.isInteger(js)) return sameFloat(js, json, FLOAT32_REL_TOL);
      return sameInteger(js, json);
    case "boolean":
    case "string":
      return js === json;
    default:
      return false;
  }
}

// Appends the differences between two values to `out`; `where` names the value.
function compareValue(js, json, type, subType, where, out) {
  if (Array.isArray(js) || Array.isArray(json)) {
    if (!Array.isArray(js) || !Array.isArray(json)) {
      out.push(`${where}: @huggingface/gguf ${Array.isArray(js) ? "an array" : show(js)}, dspark ${
        Array.isArray(json) ? "an array" : show(json)}`);
      return;
    }
    if (js.length !== json.length) {
      out.push(`${where}: @huggingface/gguf ${js.length} elements, dspark ${json.length}`);
      return;
    }
    const inner = [];
    for (let k = 0; k < js.length; k++) {
      compareValue(js[k], json[k], subType, undefined, `${where}[${k}]`, inner);
    }
    out.push(...inner.slice(0, MAX_ELEMENT_DIFFS));
    if (inner.length > MAX_ELEMENT_DIFFS) {
      out.push(`${where}: ${inner.length - MAX_ELEMENT_DIFFS} more differing elements`);
    }
    return;
  }
  if (!sameScalar(js, json, type)) out.push(`${where}: @huggingface/gguf ${show(js)}, dspark ${show(json)}`);
}

// Header: @huggingface/gguf puts it among the metadata (unless the file has a key of that name).
const oursMeta = ours.metadata;
const header = {
  version: ours.version,
  tensor_count: ours.tensors.length,
  kv_count: Object.keys(oursMeta).length,
};
for (const key of HEADER_KEYS) {
  if (key in oursMeta) continue; // the file's own key overwrote the header field; compared below
  if (!sameInteger(theirs.metadata[key], header[key]))
    diffs.push(`header ${key}: @huggingface/gguf ${show(theirs.metadata[key])}, dspark ${header[key]}`);
}
const alignment = theirs.metadata["general.alignment"] ?? 32;
if (!sameInteger(alignment, ours.alignment))
  diffs.push(`alignment: @huggingface/gguf ${show(alignment)}, dspark ${ours.alignment}`);

// Metadata: the same keys, the same values.
const theirsKeys = Object.keys(theirs.metadata).filter((k) => !HEADER_KEYS.includes(k) || k in oursMeta);
for (const key of theirsKeys)
  if (!(key in oursMeta)) diffs.push(`metadata ${JSON.stringify(key)}: only @huggingface/gguf has it`);
for (const key of Object.keys(oursMeta)) {
  if (!(key in theirs.metadata)) {
    diffs.push(`metadata ${JSON.stringify(key)}: only dspark has it`);
    continue;
  }
  const typed = theirs.typedMetadata[key];
  const where = `metadata ${JSON.stringify(key)}`;
  compareValue(theirs.metadata[key], oursMeta[key], typed?.type, typed?.subType, where, diffs);
}

// Tensors: the same names in the same order, with the same types, dimensions and offsets.
const ggmlName = (t) => GGMLQuantizationType[t] ?? `unknown ggml type ${t}`;
if (theirs.tensorInfos.length !== ours.tensors.length)
  diffs.push(`tensor count: @huggingface/gguf ${theirs.tensorInfos.length}, dspark ${ours.tensors.length}`);
const n = Math.min(theirs.tensorInfos.length, ours.tensors.length);
for (let i = 0; i < n; i++) {
  const a = theirs.tensorInfos[i];
  const b = ours.tensors[i];
  const where = `tensor #${i} ${JSON.stringify(b.name)}`;
  if (a.name !== b.name) {
    diffs.push(`tensor #${i}: name @huggingface/gguf ${JSON.stringify(a.name)}, dspark ${JSON.stringify(b.name)}`);
  }
  if (ggmlName(a.dtype) !== b.type) {
    diffs.push(`${where}: type @huggingface/gguf ${ggmlName(a.dtype)}, dspark ${b.type}`);
  }
  const shapeA = a.shape.map(String).join(", ");
  const shapeB = b.shape.map(String).join(", ");
  if (a.shape.length !== b.shape.length || !a.shape.every((d, k) => sameInteger(d, b.shape[k])))
    diffs.push(`${where}: shape @huggingface/gguf [${shapeA}], dspark [${shapeB}]`);
  if (!sameInteger(a.offset, b.offset)) {
    diffs.push(`${where}: offset @huggingface/gguf ${a.offset}, dspark ${b.offset}`);
  }
}

if (diffs.length > 0) {
  console.error(`${file}: @huggingface/gguf ${jsVersion} and dspark differ (${diffs.length}):`);
  for (const d of diffs) console.error(`  ${d}`);
  process.exit(1);
}
console.log(
  `${file}: ${Object.keys(oursMeta).length} metadata keys, ${ours.tensors.length} tensors identical ` +
    `(GGUF v${ours.version}; dspark and @huggingface/gguf ${jsVersion})`,
);
