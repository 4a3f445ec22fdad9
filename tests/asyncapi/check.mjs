// Parses an AsyncAPI document with @asyncapi/parser (the reference parser: schema of the
// spec, bindings, references, Spectral's AsyncAPI rules). Argument: the document's path.
// Output: one JSON object {"errors": [...], "warnings": [...], "operations": N,
// "channels": N, "messages": N}; exit status 1 when the document has an error.
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, process.argv[2]).parse();
const shown = (d) => `${SEVERITY[d.severity]} ${d.code} at /${d.path.join("/")}: ${d.message}`;
const errors = diagnostics.filter((d) => d.severity === 0).map(shown);
const warnings = diagnostics.filter((d) => d.severity !== 0).map(shown);
console.log(
  JSON.stringify({
    errors,
    warnings,
    operations: document ? document.operations().length : 0,
    channels: document ? document.channels().length : 0,
    messages: document ? document.messages().length : 0,
  }),
);
process.exit(errors.length > 0 || document === undefined ? 1 : 0);
