"""How a row is measured: every measurement setting, declared once, as config.yaml's `measurement` nests them.

- `DeviceSettings` (`measurement.cpu`, `measurement.cuda`): how many measuring processes a row gets, and how each
  measures one configuration: warm-up, latency samples, back-to-back phase;
- `Thresholds` (shared by the devices): what the row's marks are judged with;
- `Harness` (`measurement.harness`): the measuring harness's own parts, each switchable (an ablation flips them).

`Settings` is one device's rows' settings: the record a row keeps of how it was measured (results.Row), the
benchmark job's params (`for_device`) and what the measurement reads. The config schema's `measurement` part is made
from these records (`config_schema`; `python -m fmtbench.settings` writes it into schemas/config.schema.yaml, a test
keeps it in step), with each field's description, bounds and default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from pathlib import Path

from fmtbench.typedjson import doc, from_json, json_schema, to_json

# One hour: a bound on each phase of one measuring process (warm-up, timing), so its runtime stays finite.
_SECONDS = {"minimum": 0, "maximum": 3600}
_ITERATIONS = {"minimum": 1, "maximum": 100000}


@dataclass(frozen=True, kw_only=True)
class DeviceSettings:
    processes: int = doc("independent measuring processes per row (each measures every configuration of its job, in "
                         "another order)", default=1, minimum=1, maximum=20)
    max_processes: int = doc("more processes, up to this many, for rows whose processes disagree by more than "
                             "unstable_spread (at least `processes`)", default=1, minimum=1, maximum=20)
    end_to_end_processes: int | None = doc("measuring processes per real-loader row, where they run apart from the "
                                           "model-alone rows (harness loaders_apart; null: `processes`)",
                                           default=None, minimum=1, maximum=20)
    warmup_iters: int = doc("warm-up calls, at least", **_ITERATIONS)
    warmup_seconds: float = doc("warm-up seconds, at least", **_SECONDS)
    min_iters: int = doc("timed calls, at least", **_ITERATIONS)
    min_seconds: float = doc("timed seconds, at least", **_SECONDS)
    max_seconds: float = doc("time cap of the latency samples (min_iters is a floor past it)", exclusiveMinimum=0,
                             maximum=3600)
    target_ci: float = doc("stop timing once the median's 95 % interval is within ± this share of it (0: off)",
                           default=0, minimum=0, maximum=1)
    throughput_seconds: float = doc("back-to-back phase of a dummy-loader row on CUDA (calls queued, one "
                                    "synchronisation per block), after its latency samples (0: not measured)",
                                    default=0, **_SECONDS)
    energy_seconds: float = doc("the back-to-back phase lasts at least this long in a row's first process, where the "
                                "board's energy counter is read over it (0: as throughput_seconds)", default=0,
                                **_SECONDS)

    def stall_timeout(self) -> float:
        """The longest a measuring process may go without reaching its next stage: generous for loading, compiler
        caches and a configuration's phases, bounded so that a hang becomes a `failed` row."""
        return 300 + 3 * (self.warmup_seconds + self.max_seconds + self.throughput_seconds + self.energy_seconds)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    noisy_iqr_ratio: float = doc("mark a row noisy when a process's IQR / median exceeds this", default=0.10,
                                 exclusiveMinimum=0)
    unstable_spread: float = doc("mark a row whose per-process medians (or back-to-back rates) spread by more than "
                                 "this share of their median (stats.unstable)", default=0.05, exclusiveMinimum=0)
    host_bound_share: float = doc("mark a CUDA row host-bound when in some process the GPU was busy for less than "
                                  "this share of a synchronised call or of the back-to-back phase (its figures are "
                                  "then the host's launch rate)",
                                  default=0.9, exclusiveMinimum=0, maximum=1)


@dataclass(frozen=True, kw_only=True)
class Harness:
    """What the harness does besides calling the model; each part can be switched off, so what it costs is a
    configuration, not a code edit."""
    device_memory_sampling: bool = doc("CUDA rows: the job process reads device memory in use every ms through NVML "
                                       "while a configuration is measured (false: only at each stage of the "
                                       "configuration)", default=True)
    contention_watch: bool = doc("record what else used the machine's cores and GPU while each configuration was "
                                 "measured", default=True)
    loaders_apart: bool = doc("measure the dummy-loader rows in processes of their own, without the real loaders' "
                              "DataLoader workers alive beside them (false: every loader of a batch size in one "
                              "process)", default=True)
    rotate_order: bool = doc("each measuring process takes the configurations in another order (false: the same "
                             "order)", default=True)
    gc_during_measurement: bool = doc("leave Python's garbage collector on while a configuration is measured (false: "
                                      "off from a configuration's start to its end, as timeit does; a collection "
                                      "runs between configurations)", default=False)
    freeze_after_load: bool = doc("a measuring process moves what it holds once its model is loaded (its imports, "
                                  "the model) into the garbage collector's permanent generation (gc.freeze), so the "
                                  "collection between configurations scans only what the configurations made "
                                  "(false: each collection scans every object, some 340,000 in a process that has "
                                  "imported torch)", default=True)
    pin_cores: bool = doc("a benchmark job runs on its own share of the cores (false: on every core it may use)",
                          default=True)
    keep_freed_memory: bool = doc("a measuring process's C heap keeps the memory a call frees for the next call, as "
                                  "jemalloc and tcmalloc do (false: glibc's default, which maps each large block anew "
                                  "and unmaps it when freed, so every call faults its activations in again)",
                                  default=True)
    release_first_call_cache: bool = doc("CUDA rows: right after a configuration's first call, torch's caching "
                                         "allocator gives what it holds unused (cuDNN's autotuning workspaces) back to "
                                         "the driver, and the warm-up grows it again to what the running model needs: "
                                         "the steady memory figure is the same whether or not an earlier "
                                         "configuration of the process had tuned the shape (false: the configuration "
                                         "that tunes a shape keeps the tuning's cache in its figure)", default=True)
    host_turns: bool = doc("CPU rows take the host's CPUs in turns with the study's heavy host work (a CUDA job's "
                           "real-loader processes, exports, references: fmtbench.host_turns): a CPU measuring process "
                           "runs only while none of them does, so a CPU job runs beside the CUDA jobs instead of "
                           "claiming every core (false: a CPU job claims every core from Snakemake and nothing of the "
                           "study runs beside it)", default=True)


@dataclass(frozen=True, kw_only=True)
class Settings(Thresholds, DeviceSettings):
    """How the row was measured: its device's settings, the thresholds its marks were judged with, and the
    harness's parts (a mapping: rows of other versions recorded other parts). A row written before rows recorded a
    setting reads it as None; the report takes the declared default for it (`default`)."""
    harness: dict[str, bool] = doc("the harness's parts, on or off (settings.Harness)")

    @property
    def switches(self) -> Harness:
        return Harness(**self.harness)

    def with_processes(self, processes: int, max_processes: int | None = None) -> Settings:
        return replace(self, processes=processes, max_processes=max(processes, max_processes or processes))

    @classmethod
    def from_json(cls, value: dict) -> Settings:
        return from_json(cls, value)

    def to_json(self) -> dict:
        return to_json(self)


def for_device(section: dict, device: str) -> dict:
    """The settings of `device`'s rows (`Settings`, as JSON) from config.yaml's `measurement` (its defaults filled
    in): `measurement.<device>`, the shared thresholds and the harness, keys in the config's order (a benchmark job's
    params: Snakemake compares their text)."""
    thresholds = {item.name: section[item.name] for item in fields(Thresholds)}
    return {**section[device], **thresholds, "harness": dict(section["harness"])}


def default(name: str):
    """The declared default of a setting (what a row that did not record it was measured with)."""
    return next(item.default for item in fields(Settings) if item.name == name)


def _config_part(cls) -> dict:
    """A record's part of the config schema: its fields with their defaults; required are those without one."""
    schema = json_schema(cls)
    for item in fields(cls):
        if item.default is not dataclasses.MISSING:
            schema["properties"][item.name]["default"] = item.default
    schema["required"] = [item.name for item in fields(cls) if item.default is dataclasses.MISSING]
    if not schema["required"]:
        del schema["required"]
    return schema


def config_schema() -> dict:
    """config.yaml's `measurement` as the config schema checks it and fills in its defaults."""
    thresholds = _config_part(Thresholds)
    harness = {**_config_part(Harness), "default": {},
               "description": "the measuring harness's own parts, each switchable (to measure what it costs)"}
    devices = {device: _config_part(DeviceSettings) for device in ("cpu", "cuda")}
    return {"type": "object", "additionalProperties": False, "required": list(devices),
            "properties": {**devices, **thresholds["properties"], "harness": harness}}


CONFIG_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
_BEGIN = "  # measurement: generated from fmtbench/settings.py by `python -m fmtbench.settings`; edit it there\n"
_END = "  # end of the generated measurement\n"


def write_config_schema(path: Path = CONFIG_SCHEMA) -> None:
    """Writes `config_schema()` into the config schema file, between its markers."""
    import yaml
    text = path.read_text()
    head, rest = text.split(_BEGIN, 1)
    _, tail = rest.split(_END, 1)
    block = yaml.safe_dump({"measurement": config_schema()}, sort_keys=False, width=110, allow_unicode=True)
    path.write_text(head + _BEGIN + "".join(f"  {line}\n" for line in block.splitlines()) + _END + tail)


if __name__ == "__main__":
    write_config_schema()
