#!/usr/bin/env python3
"""Validates every golden example in schemas/examples/ against schemas/dialect.xsd, and
checks that an invalid shape is refused (so the check itself can fail)."""
import pathlib
import sys

import xmlschema

root = pathlib.Path(__file__).resolve().parents[2]
schema = xmlschema.XMLSchema(str(root / "schemas" / "dialect.xsd"))
passed = failed = 0
for example in sorted((root / "schemas" / "examples").glob("*.xml")):
    try:
        schema.validate(str(example))
        passed += 1
    except xmlschema.XMLSchemaException as e:
        print(f"FAILED {example.name}: {e}", file=sys.stderr)
        failed += 1
for bad in ["<ib xmlns='urn:stanzad:dialect:0'/>", "<ack xmlns='urn:stanzad:dialect:0' id='x'/>",
            "<receipt xmlns='urn:stanzad:dialect:0' id='x' type='seen'/>"]:
    if schema.is_valid(bad):
        print(f"FAILED: the schema accepts {bad}", file=sys.stderr)
        failed += 1
    else:
        passed += 1
print(f"schemas: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
