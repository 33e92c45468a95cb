"""Walk the pydantic schema by key path: which keys exist where, and what a field expects.

Used to turn pydantic error locations into user-facing dotted keys (dropping discriminator tags), to list
sibling keys for did-you-mean suggestions, and to check `a.b=c` overrides against the schema.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo


@dataclass
class Node:
    """One point of the schema: the annotation there and, when it is a model field, its FieldInfo."""

    annotation: Any
    field: FieldInfo | None = None


def strip(annotation: Any) -> Any:
    """Remove ``Annotated[...]`` and ``Optional`` wrappers: ``Annotated[int | None, ...]`` -> ``int``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_union(annotation):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return strip(members[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def model_members(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation can hold: one for a model, several for a (discriminated) union."""
    annotation = strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if _is_union(annotation):
        found: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            found.extend(model_members(arg))
        return found
    return []


def tag_of(model: type[BaseModel], discriminator: str) -> str | None:
    """The Literal value of ``discriminator`` in ``model`` (e.g. ``model_type`` -> ``"openpi"``)."""
    field = model.model_fields.get(discriminator)
    if field is None:
        return None
    args = typing.get_args(strip(field.annotation))
    return str(args[0]) if args else None


def discriminator_of(members: list[type[BaseModel]]) -> str | None:
    """The field name that tells the union members apart (a Literal field all members share)."""
    if len(members) < 2:
        return None
    common = set(members[0].model_fields)
    for member in members[1:]:
        common &= set(member.model_fields)
    for name in sorted(common):
        tags = [tag_of(member, name) for member in members]
        if all(typing.get_origin(strip(m.model_fields[name].annotation)) is typing.Literal for m in members) and len(
            set(tags)
        ) == len(tags):
            return name
    return None


def pick_member(members: list[type[BaseModel]], tag: Any) -> type[BaseModel] | None:
    """The union member whose discriminator equals ``tag`` (or whose class name is ``tag``)."""
    name = discriminator_of(members)
    for member in members:
        if (name and tag_of(member, name) == str(tag)) or member.__name__ == tag:
            return member
    return None


def clean_location(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    """Map a pydantic error ``loc`` to (dotted key parts without union tags, sibling keys of the last part).

    ``('actor', 'model', 'openpi', 'noise_levl')`` -> (['actor', 'model', 'noise_levl'], [fields of the openpi
    model]). Sibling keys are empty where the container is not a model (a dict or a list).
    """
    annotation: Any = root
    parts: list[str] = []
    siblings: list[str] = []
    for element in loc:
        if _is_type_tag(annotation, element):
            continue  # pydantic names the member of a plain union (`str`, `int`, `list[str]`) in the loc
        members = model_members(annotation)
        if len(members) > 1:
            chosen = pick_member(members, element)
            if chosen is not None:
                annotation = chosen
                continue
        if len(members) == 1 and isinstance(element, str):
            siblings = list(members[0].model_fields)
            field = members[0].model_fields.get(element)
            annotation = field.annotation if field is not None else None
        else:
            siblings = []
            annotation = _item_annotation(annotation)
        parts.append(str(element))
    return parts, siblings


def _is_type_tag(annotation: Any, element: Any) -> bool:
    inner = strip(annotation)
    if not _is_union(inner) or model_members(inner) or not isinstance(element, str):
        return False
    return element in {"str", "int", "float", "bool", "none"} or "[" in element


def _item_annotation(annotation: Any) -> Any:
    """The value type inside ``dict[str, V]``, ``list[V]`` or ``tuple[V, ...]``; None when unknown."""
    args = typing.get_args(strip(annotation))
    if not args:
        return None
    return args[-1] if typing.get_origin(strip(annotation)) is dict else args[0]


def lookup(root: type[BaseModel], parts: list[str], data: dict[str, Any]) -> tuple[Node | None, list[str], int]:
    """Follow ``parts`` through the schema, using ``data`` (the raw config) to choose union members.

    Returns (node, sibling keys at the first unknown part, index of that part); node is None when a part does
    not exist. Parts under a free-form dict (``component_placement``, ``init_params``) are always accepted.
    """
    node = Node(root)
    current: Any = data
    for index, part in enumerate(parts):
        members = model_members(node.annotation)
        if not members:
            inner = strip(node.annotation)
            if typing.get_origin(inner) is dict or inner is Any or inner is dict:
                return Node(_item_annotation(inner) if typing.get_origin(inner) is dict else Any), [], -1
            return None, [], index
        model = _choose(members, current)
        known = _union_keys(members) if model is None else list(model.model_fields)
        if model is None:
            if part not in known:
                return None, known, index
            model = next(m for m in members if part in m.model_fields)
        field = model.model_fields.get(part)
        if field is None:
            return None, known, index
        node = Node(field.annotation, field)
        current = current.get(part) if isinstance(current, dict) else None
    return node, [], -1


def _choose(members: list[type[BaseModel]], current: Any) -> type[BaseModel] | None:
    if len(members) == 1:
        return members[0]
    name = discriminator_of(members)
    if name and isinstance(current, dict) and name in current:
        return pick_member(members, current[name])
    return None


def _union_keys(members: list[type[BaseModel]]) -> list[str]:
    keys: list[str] = []
    for member in members:
        keys.extend(key for key in member.model_fields if key not in keys)
    return keys


def field_description(root: type[BaseModel], parts: list[str], data: dict[str, Any]) -> str | None:
    """The ``description`` of the field at ``parts``, if there is one."""
    node, _, _ = lookup(root, parts, data)
    return node.field.description if node is not None and node.field is not None else None
