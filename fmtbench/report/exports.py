"""The "Exports" section: one line per export the study made, from the provenance file each export wrote."""
from __future__ import annotations

import pandas as pd

from fmtbench.atomic import read_json


def section(provenance_paths) -> list[str]:
    """The exports' table (format, precision, device, image size, status, compile or build time, the cache load
    in a fresh process, how); nothing where the study made none."""
    rows = []
    for path in provenance_paths:
        provenance = read_json(path)
        details = provenance.get("details") or {}
        seconds = details.get("compile_seconds") or details.get("build_seconds") or provenance.get("export_seconds")
        warm = (details.get("warm_load") or {}).get("seconds")
        rows.append({"format": provenance["format"], "precision": provenance["precision"],
                     "device": provenance["device"], "image size": provenance["image_size"] or "any",
                     "status": provenance["status"],
                     "seconds": "–" if seconds is None else f"{seconds:.1f}",
                     "cache load in a fresh process (s)": "–" if warm is None else f"{warm:.1f}",
                     "how": (details.get("method") or provenance.get("reason") or "")[:160].replace("|", "\\|")})
    if not rows:
        return []
    table = pd.DataFrame(rows).sort_values(["format", "precision", "device", "image size"], key=lambda c: c.astype(str))
    return ["## Exports", "", "One artifact per format and precision (and image size / device where the format "
            "needs it); compile and build times are paid once, here (a torch.compile row's processes load the "
            "compiled model from the cache the export warmed; that load is their first run).", "",
            table.to_markdown(index=False), ""]
