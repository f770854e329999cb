"""What a row times: the one word for the split between the dummy loader's rows and the real loaders' rows.

- `Scope.MODEL_ALONE`: the model alone on a batch made before its baseline (the dummy loader); timed call by call
  between two synchronisations (latency), then back to back.
- `Scope.END_TO_END`: the model fed by a real loader (its workers, or the GPU decoder), timed on the model's stream
  while the loader feeds it back to back (under load), with the pipeline's own rate.

A loader names its scope (`data.Loader.scenario`), the measuring process times a configuration by it
(`measure.scenarios`), a round's processes take one scope each (`measure.schedule`) and the report's two kinds of
table are its two members. The values are the words every row records for it (`ProcessTiming.kind`,
`Timing.kind`, the end-to-end rates' `basis`), so the results read as before.
"""
from enum import StrEnum


class Scope(StrEnum):
    MODEL_ALONE = "latency"
    END_TO_END = "under_load"
