"""Arrow schemas and `datasets` features derived from the pydantic models."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from datasets import Features
from pydantic import BaseModel
from pydantic_to_pyarrow import get_pyarrow_schema


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    schema = get_pyarrow_schema(model)
    # Enums arrive as dictionary columns; `datasets` and some Parquet readers want plain strings.
    fields = [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
    return pa.schema(fields)


def features(model: type[BaseModel]) -> Features:
    return Features.from_arrow_schema(arrow_schema(model))


def to_table(rows: Iterable[BaseModel], model: type[BaseModel]) -> pa.Table:
    return pa.Table.from_pylist([r.model_dump(mode="json") for r in rows], schema=arrow_schema(model))
