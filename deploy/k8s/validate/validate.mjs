// Validates the KEDA and Prometheus Operator objects of rendered manifests with the precompiled
// schemas of @kubernetes-models/keda and @kubernetes-models/prometheus-operator (offline). Input: a JSON array of objects on stdin (tests/deploy passes each
// kustomize build). Output: one JSON line per object, {"kind", "name", "errors": [...]};
// exit status 1 when any object is invalid. These schemas ignore unknown fields: the pytest
// side also checks every field against the CRDs (deploy/k8s/crds/).
import { readFileSync } from "node:fs";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const MODELS = { "keda.sh/v1alpha1": keda, "monitoring.coreos.com/v1": monitoring };

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const obj of objects) {
  const group = MODELS[obj.apiVersion];
  if (group === undefined) continue;
  const Model = group[obj.kind];
  const name = obj.metadata?.name;
  let errors = [];
  if (Model === undefined) {
    errors = [`no model for ${obj.apiVersion} ${obj.kind}`];
  } else {
    try {
      new Model(obj).validate();
    } catch (err) {
      errors = (err.errors ?? [err]).map((e) =>
        e.instancePath !== undefined ? `${e.instancePath || "/"} ${e.message}` : String(e.message ?? e),
      );
    }
  }
  failed ||= errors.length > 0;
  console.log(JSON.stringify({ kind: obj.kind, name, errors }));
}
process.exit(failed ? 1 : 0);
