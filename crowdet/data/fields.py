"""Source fields that no `ImageRecord` attribute models, carried from reader to writer.

A reader keeps, per record and per box, every field it does not turn into an attribute (odgt
`head_attr.occ`, `head_attr.unsure`, a tag other than person/mask, COCO `segmentation`, ...) in
the source's own nesting; a writer merges them back into what it writes, its own fields winning.
Equal dicts are shared between boxes (CrowdHuman's `head_attr` takes a handful of values), so
they are read-only.
"""

from __future__ import annotations

NO_FIELDS: dict = {}  # shared "nothing else": never mutate


class FieldTable:
    """Unknown fields of many objects, equal ones stored once."""

    def __init__(self, known: frozenset[str], nested: dict[str, frozenset[str]] | None = None):
        self.known, self.nested = known, nested or {}
        self._shared: dict[str, dict] = {}

    def unknown(self, obj: dict, **also) -> dict:
        """Fields of `obj` outside `known` (and, inside each `nested` dict, outside its known
        keys), plus `also`; `NO_FIELDS` when there are none."""
        out = {k: v for k, v in obj.items() if k not in self.known}
        for key, sub_known in self.nested.items():
            sub = obj.get(key)
            if isinstance(sub, dict) and not sub.keys() <= sub_known:
                out[key] = {k: v for k, v in sub.items() if k not in sub_known}
        out.update(also)
        if not out:
            return NO_FIELDS
        key = repr(sorted(out.items(), key=lambda kv: kv[0]))
        return self._shared.setdefault(key, out)


def merge_fields(target: dict, fields: dict) -> dict:
    """Add `fields` to `target` (in place, returned): keys of `target` win; a dict in both is
    merged one level down the same way."""
    for key, value in fields.items():
        mine = target.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            for sub, v in value.items():
                mine.setdefault(sub, v)
        elif key not in target:
            target[key] = value
    return target
