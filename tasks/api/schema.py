"""Touches to the generated OpenAPI document that the serializers cannot express."""

STRICT_REQUEST_COMPONENTS = ("TaskWriteRequest", "PatchedTaskPatchRequest", "TaskPatchRequest")


def strict_request_bodies(result, generator, request, public):
    """The task endpoints refuse unknown fields; say so, so that generated clients and schema
    fuzzers know it."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in STRICT_REQUEST_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
