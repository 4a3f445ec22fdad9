"""A JSON Schema as a flat list of fields (`members[].contact_id`), with each field's type in
words, whether it is required and its description: the rows of docs/topics.md and what
`field_changes` compares (which `wecom-stream schemas publish` uses to name the fields
behind a refusal)."""

from __future__ import annotations

from typing import Any

__all__ = ["SchemaFields", "cell", "field_changes"]

_MAX_DEPTH = 4


def cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


class SchemaFields:
    """The rows (path, type, required, description) of a schema, nested objects flattened."""

    def __init__(self, schemas: dict[str, Any], ref_prefix: str) -> None:
        self.schemas = schemas
        self.ref_prefix = ref_prefix
        self.rows: list[tuple[str, str, str, str]] = []

    def resolve(self, schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(self.ref_prefix):
            name = ref[len(self.ref_prefix) :]
            return name, self.schemas[name]
        return None, schema

    def type_of(self, schema: dict[str, Any]) -> str:
        name, target = self.resolve(schema)
        if name is not None:
            return f"`{name}`"
        if "const" in target:
            return f"`{target['const']}`"
        if "enum" in target:
            return "one of " + ", ".join(f"`{v}`" for v in target["enum"])
        if "anyOf" in target:
            return " or ".join(self.type_of(s) for s in target["anyOf"])
        kind = target.get("type")
        if isinstance(kind, list):
            return " or ".join(kind)
        if kind == "array":
            return f"array of {self.type_of(target.get('items', {}))}"
        if kind is None:
            return "any JSON"
        text = str(kind)
        if "format" in target:
            text += f" ({target['format']})"
        bounds = [f"≥ {target['minimum']}" if "minimum" in target else ""]
        bounds.append(f"≤ {target['maximum']}" if "maximum" in target else "")
        return " ".join([text, *filter(None, bounds)])

    def _objects_in(self, schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(suffix, object schema) reachable from a property: itself, its array items,
        the branches of an anyOf."""
        _, target = self.resolve(schema)
        if target.get("type") == "array":
            return [("[]" + s, o) for s, o in self._objects_in(target.get("items", {}))]
        if "anyOf" in target:
            return [found for branch in target["anyOf"] for found in self._objects_in(branch)]
        return [("", target)] if "properties" in target else []

    def add(self, schema: dict[str, Any], prefix: str = "", depth: int = 0) -> None:
        _, target = self.resolve(schema)
        required = dict.fromkeys(target.get("required", ()), "yes")
        either = [b["required"] for b in target.get("anyOf", ()) if list(b) == ["required"]]
        for names in either:  # a field required under any of its names
            for name in names:
                others = [f"`{n}`" for group in either for n in group if n != name]
                required[name] = "yes, or " + " or ".join(others)
        for name, prop in target.get("properties", {}).items():
            _, resolved = self.resolve(prop)
            text = prop.get("description") or resolved.get("description", "")
            self.rows.append((prefix + name, self.type_of(prop), required.get(name, ""), text))
            if depth < _MAX_DEPTH:
                for suffix, nested in self._objects_in(prop):
                    self.add(nested, f"{prefix}{name}{suffix}.", depth + 1)

    def table(self) -> list[str]:
        lines = ["| field | type | required | description |", "|---|---|---|---|"]
        for path, kind, required, text in self.rows:
            lines.append(f"| `{path}` | {cell(kind)} | {required} | {cell(text)} |")
        return lines


def _rows(schema: dict[str, Any]) -> dict[str, tuple[str, str]]:
    fields = SchemaFields(schema.get("definitions", {}), "#/definitions/")
    root = schema
    if "anyOf" in schema and "properties" not in schema:  # the `data`-wrapped or flat body
        refs = [r for b in schema["anyOf"] for r in (b, *b.get("allOf", ())) if "$ref" in r]
        root = fields.resolve(refs[0])[1] if refs else schema
    fields.add(root)
    return {path: (kind, required) for path, kind, required, _ in fields.rows}


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed, field by field, from the JSON Schema `old` to `new` (both with local
    `#/definitions/` references): fields removed, added, retyped, newly required or no
    longer required. Explains a registry's verdict; the verdict is the registry's."""
    before, after = _rows(old), _rows(new)
    changes = [f"`{path}` removed" for path in before if path not in after]
    for path, (kind, required) in after.items():
        if path not in before:
            changes.append(f"`{path}` added" + (" (required)" if required else ""))
            continue
        old_kind, old_required = before[path]
        if kind != old_kind:
            changes.append(f"`{path}` retyped: {old_kind} -> {kind}")
        if bool(required) != bool(old_required):
            changes.append(f"`{path}` " + ("now required" if required else "no longer required"))
    return changes
