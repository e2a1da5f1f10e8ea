"""The base of every params model: unknown keys are errors, values are immutable, numbers are
numbers (no "6", 2.0 or true for an int, no string or boolean for a float) and finite."""
from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
