"""Arrow schemas and `datasets` features derived from the pydantic models."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from datasets import Features
from pydantic import BaseModel
from pydantic_to_pyarrow import get_pyarrow_schema


def _storable(t: pa.DataType) -> pa.DataType:
    """`t` as `datasets` and every Parquet reader can hold it: enums (dictionary columns) as plain strings,
    name -> number tables (map columns; schemas/signals.py NamedValues) as lists of {name, value}."""
    if pa.types.is_dictionary(t):
        return t.value_type
    if pa.types.is_map(t):
        return pa.list_(pa.struct([pa.field("name", t.key_type, nullable=False), pa.field("value", t.item_type)]))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_storable(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_storable(t.value_type)))
    return t


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    schema = get_pyarrow_schema(model)
    return pa.schema([f.with_type(_storable(f.type)) for f in schema])


def features(model: type[BaseModel]) -> Features:
    return Features.from_arrow_schema(arrow_schema(model))


def to_table(rows: Iterable[BaseModel], model: type[BaseModel]) -> pa.Table:
    return pa.Table.from_pylist([r.model_dump(mode="json") for r in rows], schema=arrow_schema(model))
